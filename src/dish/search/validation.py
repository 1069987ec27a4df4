"""The search's values, checked before anything trains."""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import DictConfig

from dish.core.errors import INTEGER, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, ConfigError
from dish.ground_truth.validation import validate_ground_truth
from dish.motifs.kind import Motif
from dish.predictors.registry import FITTED_PREDICTORS, PredictorContext, check_predictor
from dish.search.acquisition import ACQUISITIONS, UNCERTAIN_PREDICTORS

SEARCH_PREDICTORS = (*FITTED_PREDICTORS, "tpe", "random")
"""What `search.predictor` accepts: a predictor that learns from the evaluated motifs, Optuna's TPE, or none
(random search)."""
UNCERTAIN = ("gp", "random_forest")
"""Predictors with a posterior whatever their options (the dish has one as an ensemble)."""
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
    if settings.predictor not in ("random", "tpe"):
        check_predictor(cfg, settings.predictor, PredictorContext(motif_type, settings.seed))
    validate_acquisition(cfg)
    POSITIVE_INT.or_null().check("search.cascade.screen", settings.cascade.screen)
    if cfg.ground_truth.oracle == "live":  # (the oracle's own settings: `dish.search.oracles.check_settings`)
        validate_ground_truth(cfg)


def validate_acquisition(cfg: DictConfig) -> None:
    """``search.acquisition`` exists and its predictor can say how sure it is."""
    settings = cfg.search
    if settings.acquisition not in ACQUISITIONS:
        raise ConfigError("search.acquisition", f"unknown acquisition {settings.acquisition!r}",
                          accepted=ACQUISITIONS)
    POSITIVE.check("search.kappa", settings.kappa)
    NON_NEGATIVE.check("search.min_distance", settings.min_distance)
    if settings.acquisition == "greedy":
        return
    if settings.predictor in ("random", "tpe"):
        raise ConfigError("search.acquisition", f"{settings.acquisition!r} does not apply to search.predictor="
                          f"{settings.predictor}, which picks without a predictor", accepted=["greedy"])
    replicas = cfg.dish.get("ensemble") or 1
    if settings.predictor == "dish" and replicas < 2:
        raise ConfigError("search.acquisition", f"{settings.acquisition!r} needs a predictor with uncertainty, and "
                          f"a dish with dish.ensemble={replicas} has none", accepted=UNCERTAIN_PREDICTORS)
    encodings = (cfg.get("dish_stacked") or {}).get("encodings")
    if settings.predictor == "dish_stacked" and replicas < 2 and encodings is not None \
            and not set(encodings) & set(UNCERTAIN):
        raise ConfigError("search.acquisition", f"{settings.acquisition!r} needs a predictor with uncertainty, and "
                          f"none of dish_stacked's inputs ({', '.join(encodings)}, a dish with dish.ensemble="
                          f"{replicas}) has any", accepted=UNCERTAIN_PREDICTORS)
    if settings.predictor not in (*UNCERTAIN, "dish", "dish_stacked"):
        raise ConfigError("search.acquisition", f"{settings.acquisition!r} needs a predictor with uncertainty, and "
                          f"search.predictor={settings.predictor} has none", accepted=UNCERTAIN_PREDICTORS)

