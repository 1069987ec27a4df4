"""The predictors a comparison or search can name, built from their config: the dish, the surrogates, the
stacked dish, early stopping and the zero-cost proxies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dish.core.errors import ConfigError
from dish.core.runtime import config_group
from dish.motifs.kind import Motif
from dish.predictors.context import Predictor, PredictorContext
from dish.predictors.early_stop import EarlyStopPredictor
from dish.predictors.petri_dish.harness import DishPredictor
from dish.predictors.stacked import StackedPredictor
from dish.predictors.surrogates import SURROGATES
from dish.predictors.table_column import TableColumnPredictor
from dish.predictors.zero_cost import PROXIES, proxy_applies

FITTED_PREDICTORS = ("dish", *SURROGATES, "dish_stacked")
"""The predictors that learn from scored motifs: what a search can refit every round."""
PREDICTORS = (*FITTED_PREDICTORS, "early_stop", *PROXIES)
DEFAULT_PREDICTORS = ("dish", "nn_surrogate", "gp", "quadratic")
"""``predictors: null``: the paper's comparison (those that apply to the kind); the rest are named."""

__all__ = [
    "FITTED_PREDICTORS",
    "PREDICTORS",
    "Predictor",
    "PredictorContext",
    "check_predictor",
    "chosen_predictors",
    "make_predictor",
]


def _options(cfg: DictConfig, path: str) -> dict[str, Any]:
    node = OmegaConf.select(cfg, path)
    return {} if node is None else OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def _dish(cfg: DictConfig, context: PredictorContext) -> Predictor:
    folder = None if context.output_dir is None else str(context.output_dir / "dish")
    return DishPredictor(context.motif_type, checkpoint_dir=folder, seed=context.seed, **_options(cfg, "dish"))


def _surrogate(name: str) -> Callable[[DictConfig, PredictorContext], Predictor]:
    def build(cfg: DictConfig, context: PredictorContext) -> Predictor:
        with config_group(f"surrogates.{name}"):
            return SURROGATES[name](seed=context.seed, **_options(cfg, f"surrogates.{name}"))
    return build


def _stacked(cfg: DictConfig, context: PredictorContext) -> Predictor:
    """The dish stacked with encoding models (``dish_stacked.encodings``; null: every one that applies to the
    kind) and optionally a zero-cost proxy."""
    options = _options(cfg, "dish_stacked")
    encodings = options.get("encodings")
    if encodings is None:
        encodings = [name for name in SURROGATES if applies(name, context.motif_type)]
    for name in encodings:
        if name not in SURROGATES or not applies(name, context.motif_type):
            raise ConfigError("dish_stacked.encodings", f"got {name!r}",
                              accepted=[s for s in SURROGATES if applies(s, context.motif_type)])
    proxy = options.get("zero_cost")
    if proxy is not None and proxy not in PROXIES:
        raise ConfigError("dish_stacked.zero_cost", f"got {proxy!r}", accepted=[*PROXIES, "null"])
    inputs = [*encodings, "dish", *([proxy] if proxy is not None else [])]
    return StackedPredictor({name: _factory(name, cfg, context) for name in inputs},
                            folds=options.get("folds", 4), seed=context.seed)


def _factory(name: str, cfg: DictConfig, context: PredictorContext) -> Callable[[], Predictor]:
    return lambda: make_predictor(name, cfg, context)


def _early_stop(cfg: DictConfig, context: PredictorContext) -> Predictor:
    return EarlyStopPredictor(context, score=cfg.gt.score, **_options(cfg, "early_stop"))


def _proxy(name: str) -> Callable[[DictConfig, PredictorContext], Predictor]:
    def build(cfg: DictConfig, context: PredictorContext) -> Predictor:
        """The table's own column of the proxy where it carries one (``zero_cost.columns.<name>``, else
        ``zc_<name>``), else the proxy computed here on the ground truth's network at initialisation."""
        column = _options(cfg, "zero_cost.columns").get(name, f"zc_{name}")
        if context.table is not None and column in context.table.extra:
            return TableColumnPredictor(name, context.table, column, f"zero_cost.columns.{name}")
        options = {key: value for key, value in _options(cfg, "zero_cost").items() if key != "columns"}
        with config_group("zero_cost"):
            return PROXIES[name](context, **options)
    return build


BUILDERS: dict[str, Callable[[DictConfig, PredictorContext], Predictor]] = {
    "dish": _dish, **{name: _surrogate(name) for name in SURROGATES}, "dish_stacked": _stacked,
    "early_stop": _early_stop, **{name: _proxy(name) for name in PROXIES},
}


def applies(name: str, motif_type: type[Motif]) -> bool:
    """Whether predictor `name` can rank motifs of `motif_type` (the quadratic needs a scalar field, a proxy a
    host it is defined on)."""
    if name in SURROGATES:
        return not (SURROGATES[name].needs_scalar_field and motif_type.scalar_field is None)
    return name not in PROXIES or proxy_applies(name, motif_type)


def chosen_predictors(names: Sequence[str] | None, motif_type: type[Motif]) -> list[str]:
    """`names`, or with None every predictor of `DEFAULT_PREDICTORS` that applies to `motif_type`."""
    return list(names) if names is not None else [name for name in DEFAULT_PREDICTORS if applies(name, motif_type)]


def make_predictor(name: str, cfg: DictConfig, context: PredictorContext) -> Predictor:
    """The predictor called `name`, configured from its section of `cfg` (``dish``, ``surrogates.<name>``,
    ``dish_stacked``, ``early_stop``, ``zero_cost``), in `context`."""
    if name not in BUILDERS:
        raise ConfigError("predictors", f"unknown predictor {name!r}", accepted=PREDICTORS)
    return BUILDERS[name](cfg, context)


def check_predictor(cfg: DictConfig, name: str, context: PredictorContext) -> None:
    """Build the predictor `name` in `context` (without a table yet), which checks its options and that it
    applies to the kind, before anything trains."""
    if name not in BUILDERS:
        raise ConfigError("predictors", f"unknown predictor {name!r}", accepted=PREDICTORS)
    kind = context.motif_type.kind
    if not applies(name, context.motif_type):
        raise ConfigError("predictors", f"{name} needs a motif kind with a scalar field; {kind} has none"
                          if name in SURROGATES else f"{name} does not apply to motif kind {kind!r}",
                          accepted=[p for p in PREDICTORS if applies(p, context.motif_type)])
    make_predictor(name, cfg, context)
    if name == "dish_stacked":
        check_predictor(cfg, "dish", context)
