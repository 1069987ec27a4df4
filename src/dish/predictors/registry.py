"""The predictors a comparison or search can name: the dish and every surrogate, built from their config."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from omegaconf import DictConfig, OmegaConf

from dish.core.errors import ConfigError
from dish.core.runtime import config_group
from dish.motifs.kind import Motif
from dish.predictors.petri_dish.harness import DishPredictor
from dish.predictors.surrogates import SURROGATES

PREDICTORS = ("dish", *SURROGATES)


class Predictor(Protocol):
    name: str

    def fit(self, motifs: list[Motif], scores: np.ndarray) -> None: ...

    def predict(self, motifs: list[Motif]) -> np.ndarray: ...


def applies(name: str, motif_type: type[Motif]) -> bool:
    """Whether predictor `name` can rank motifs of `motif_type` (the quadratic needs a scalar field)."""
    return not (name in SURROGATES and SURROGATES[name].needs_scalar_field and motif_type.scalar_field is None)


def chosen_predictors(names: Sequence[str] | None, motif_type: type[Motif]) -> list[str]:
    """`names`, or with None every predictor that applies to `motif_type`, in `PREDICTORS` order."""
    return list(names) if names is not None else [name for name in PREDICTORS if applies(name, motif_type)]


def make_predictor(name: str, cfg: DictConfig, motif_type: type[Motif], seed: int,
                   checkpoint_dir: Path | None = None) -> Predictor:
    """The predictor called `name`, configured from ``cfg.dish`` or ``cfg.surrogates.<name>``; a dish with a
    `checkpoint_dir` resumes an interrupted fit from there."""
    if name == "dish":
        options = OmegaConf.to_container(cfg.dish, resolve=True)
        return DishPredictor(motif_type, checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
                             seed=seed, **options)
    if name in SURROGATES:
        options = OmegaConf.to_container(cfg.surrogates[name], resolve=True) if name in cfg.surrogates else {}
        return SURROGATES[name](seed=seed, **options)
    raise ConfigError("predictors", f"unknown predictor {name!r}", accepted=PREDICTORS)


def check_predictor(cfg: DictConfig, name: str, motif_type: type[Motif]) -> None:
    """Build the predictor `name` from its options (``dish.*`` or ``surrogates.<name>.*``), which checks them."""
    if name == "dish":
        DishPredictor(motif_type, **OmegaConf.to_container(cfg.dish, resolve=True))  # type: ignore[arg-type]
    elif name in SURROGATES:
        options = OmegaConf.to_container(cfg.surrogates[name], resolve=True) if name in cfg.surrogates else {}
        with config_group(f"surrogates.{name}"):
            SURROGATES[name](**options)  # type: ignore[arg-type]
        if not applies(name, motif_type):
            raise ConfigError("predictors", f"{name} needs a motif kind with a scalar field; "
                              f"{motif_type.kind} has none", accepted=[p for p in PREDICTORS if p != name])
    else:
        raise ConfigError("predictors", f"unknown predictor {name!r}", accepted=PREDICTORS)

