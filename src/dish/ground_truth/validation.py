"""The ground-truth job's values, checked before any data is loaded or anything trains."""

from __future__ import annotations

import torch
from hydra.utils import get_class, get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from dish.core.errors import BOOLEAN, INTEGER, POSITIVE, POSITIVE_INT, ConfigError
from dish.core.runtime import config_group
from dish.motifs.kind import Motif

INSTANTIATE_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
OPTIMIZER_ACCEPTS = {"lr": "a number >= 0", "momentum": "a number >= 0", "dampening": "a number >= 0",
                     "weight_decay": "a number >= 0", "eps": "a number >= 0", "betas": "two numbers in [0, 1)"}
"""What torch's optimizers accept for their common options, for the error when one refuses a value."""


def validate_ground_truth(cfg: DictConfig) -> None:
    """The ground-truth job's settings: budget, optimizer, seed, threads, checkpoints and the motifs."""
    POSITIVE_INT.check("trainer.max_epochs", cfg.trainer.max_epochs)
    INTEGER.check("seed", cfg.seed)
    POSITIVE_INT.or_null().check("threads", cfg.threads)
    BOOLEAN.check("force", cfg.force)
    POSITIVE_INT.or_null().check("checkpoint.every_n_epochs", cfg.checkpoint.every_n_epochs)
    POSITIVE.or_null().check("checkpoint.every_minutes", cfg.checkpoint.every_minutes)
    motifs = motifs_from_config(cfg)
    scores = type(motifs[0]).ground_truth.scores
    if cfg.objective not in scores:
        raise ConfigError("objective", f"the {type(motifs[0]).kind} ground truth writes no {cfg.objective!r} column",
                          accepted=scores)
    if cfg.get("optimizer"):  # optimizer=none: the model's own update rule
        _check_optimizer(cfg.optimizer)


def motifs_from_config(cfg: DictConfig) -> list[Motif]:
    """The motifs the ``population`` config lists for the chosen kind, else the single motif of the `motif`
    group."""
    motif_type: type[Motif] = get_class(cfg.motif._target_)
    population = OmegaConf.to_container(cfg.population, resolve=True) or {}
    if all(value is None for value in population.values()):
        with config_group("motif"):
            return [instantiate(cfg.motif)]
    motifs = motif_type.from_population_config(population)
    if not motifs:
        raise ConfigError("population", "lists no motif; give at least one")
    return motifs


def _check_optimizer(optimizer: DictConfig) -> None:
    """Build the optimizer on a dummy parameter; a value torch refuses names its field."""
    parameter = [torch.nn.Parameter(torch.zeros(1))]
    try:
        instantiate(optimizer)(parameter)
    except (TypeError, ValueError) as exc:
        target = get_object(optimizer._target_)
        options = {key: value for key, value in OmegaConf.to_container(optimizer, resolve=True).items()
                   if key not in INSTANTIATE_KEYS}
        for field, value in options.items():  # the option torch refuses on its own
            try:
                target(parameter, **{field: value})
            except (TypeError, ValueError) as refused:
                accepted = OPTIMIZER_ACCEPTS.get(field, f"what {optimizer._target_} accepts")
                raise ConfigError(f"optimizer.{field}", f"got {value!r}; {optimizer._target_} says: {refused}",
                                  accepted=[accepted]) from None
        raise ConfigError("optimizer", f"{optimizer._target_} refuses these options together: {exc}",
                          accepted=[f"options {optimizer._target_} accepts together"]) from None
