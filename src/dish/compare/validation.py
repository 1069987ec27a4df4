"""The comparison's values, checked before any table is read or anything trains."""

from __future__ import annotations

from pathlib import Path

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from dish.core.errors import INTEGER, NON_NEGATIVE_INT, NUMBER, POSITIVE_INT, TEXT, ConfigError, one_of
from dish.motifs.kind import motif_class
from dish.predictors.registry import PredictorContext, check_predictor, chosen_predictors
from dish.store.tables import SPLIT_PROTOCOLS, score_sign


def validate_compare(cfg: DictConfig) -> None:
    """The comparison's settings: the table (``gt.*``), the split's types and every predictor's options."""
    if OmegaConf.is_missing(cfg.gt, "path"):
        raise ConfigError("gt.path", "is required: the ground-truth CSV to compare the predictors on",
                          accepted=["a CSV file, e.g. gt.path=store/sigmoid_slope_digits.csv"])
    if cfg.gt.get("build") is None and not Path(cfg.gt.path).is_file():
        raise ConfigError("gt.path", f"no such file {cfg.gt.path}",
                          accepted=["an existing ground-truth CSV", "gt.build=[...] to train it first"])
    score_sign(cfg.gt.score, "gt.score")
    try:
        motif_type = motif_class(cfg.gt.motif)
    except ConfigError as exc:
        raise ConfigError("gt.motif", exc.problem, exc.accepted) from None
    INTEGER.check("seed", cfg.seed)
    POSITIVE_INT.or_null().check("threads", cfg.threads)
    POSITIVE_INT.check("metrics.k", cfg.metrics.k)
    _check_split(cfg.split)
    NUMBER.or_null().check("gt.timing_scale", cfg.gt.get("timing_scale", 1.0))
    TEXT.or_null().check("gt.timing_column", cfg.gt.get("timing_column"))
    host = compose(config_name="ground_truth", overrides=host_overrides(cfg))
    context = PredictorContext(motif_type, cfg.seed, host, built=cfg.gt.get("build") is not None)
    for name in chosen_predictors(cfg.predictors, motif_type):
        check_predictor(cfg, name, context)


def host_overrides(cfg: DictConfig) -> list[str]:
    """The overrides of tasks/ground_truth.py whose network early stopping trains and the zero-cost proxies probe:
    ``gt.build``, else ``gt.host``, else the kind's own default host (``motif=<gt.motif>``, where the kind has a
    config file; a kind from another package has none, and its proxies then ask for ``gt.build``)."""
    overrides = cfg.gt.get("build") or cfg.gt.get("host")
    if overrides is not None:
        return list(overrides)
    known = GlobalHydra.instance().config_loader().get_group_options("motif")
    return [f"motif={cfg.gt.motif}"] if cfg.gt.motif in known else []


def _check_split(split: DictConfig) -> None:
    """The types of the split's fields (how many motifs it selects is checked once the table is read)."""
    one_of(*SPLIT_PROTOCOLS).check("split.protocol", split.protocol)
    rules = {"n": NON_NEGATIVE_INT, "slope_min": NUMBER.or_null(), "slope_max": NUMBER.or_null(), "column": TEXT,
             "folds": POSITIVE_INT.or_null(), "fold": NON_NEGATIVE_INT}
    for field, rule in rules.items():
        if field in split:
            rule.check(f"split.{field}", split[field])
    folds = split.get("folds")
    if folds is not None and not (folds >= 2 and split.get("fold", 0) < folds):
        raise ConfigError("split.fold" if folds >= 2 else "split.folds",
                          f"fold {split.get('fold', 0)} of {folds} folds", accepted=[
                              "split.folds: null or at least 2", "split.fold: 0 to split.folds - 1"])
