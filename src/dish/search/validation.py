"""The search's values, checked before anything trains."""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import DictConfig

from dish.core.errors import INTEGER, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE_INT, ConfigError
from dish.ground_truth.validation import validate_ground_truth
from dish.motifs.kind import Motif
from dish.predictors.registry import FITTED_PREDICTORS, PredictorContext, check_predictor

SEARCH_PREDICTORS = (*FITTED_PREDICTORS, "random")
"""What `search.predictor` accepts: a predictor that learns from the evaluated motifs, or none (random
search)."""
STOP_TARGETS = ("best", "top_fraction")


def validate_search(cfg: DictConfig) -> None:
    """The search's settings, its predictor's options and, for live ground truth, the ground-truth job's."""
    settings = cfg.search
    if settings.predictor not in SEARCH_PREDICTORS:
        raise ConfigError("search.predictor", f"unknown predictor {settings.predictor!r}", accepted=SEARCH_PREDICTORS)
    for field in ("budget", "top_k"):
        if not POSITIVE_INT.test(settings[field]):
            raise ConfigError(f"search.{field}", f"must be a positive integer, got {settings[field]!r}")
    if not NON_NEGATIVE_INT.test(settings.explore):
        raise ConfigError("search.explore", f"must be a non-negative integer, got {settings.explore!r}")
    if settings.stop_at is not None and settings.stop_at not in STOP_TARGETS:
        raise ConfigError("search.stop_at", f"unknown target {settings.stop_at!r}", accepted=[*STOP_TARGETS, None])
    INTEGER.check("search.seed", settings.seed)
    NON_NEGATIVE_INT.check("search.start.random", settings.start.random)
    motif_type: type[Motif] = get_class(cfg.motif._target_)
    rules = motif_type.candidate_settings
    for field, value in settings.candidates.items():
        if field not in rules:
            raise ConfigError(f"search.candidates.{field}", f"is not read by motif kind {motif_type.kind!r}",
                              accepted=list(rules))
        rules[field].check(f"search.candidates.{field}", value)
    missing = [field for field in rules if field not in settings.candidates]
    if missing:
        raise ConfigError(f"search.candidates.{missing[0]}", f"is required by motif kind {motif_type.kind!r}",
                          accepted=list(rules))
    NON_NEGATIVE.check("search.tolerance", settings.tolerance)
    if settings.predictor != "random":
        check_predictor(cfg, settings.predictor, PredictorContext(motif_type, settings.seed))
    if cfg.ground_truth.oracle == "live":  # (the oracle's own settings: `dish.search.oracles.check_settings`)
        validate_ground_truth(cfg)
