"""Optuna's TPE as a search strategy over a finite pool (``search.predictor=tpe``): the Bayesian optimisation a
practitioner would run instead of the dish.

Each motif is written as Optuna parameters (`Motif.search_params`: a slope as a log-uniform float, an activation's
ops and a cell's nodes as categories); a fresh study each round holds every evaluated motif as a finished trial
(so a resumed search draws as an uninterrupted one), TPE suggests a point, and the pick is the candidate nearest
to it (categories that differ, plus the distance in each float's log range).
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from dish.motifs.kind import Motif

MISSING = "-"
"""A parameter a motif does not have (cells of different sizes), as a category."""


def _optuna() -> Any:
    """Optuna, imported quietly: optuna 2.x (what hydra-optuna-sweeper pins) imports SQLAlchemy names that
    SQLAlchemy 2 has moved, which warns at import time only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class TpeSearch:
    """Picks by Optuna's TPE sampler (its defaults: 10 random start-up trials, then TPE), snapped to the pool:
    a `dish.search.strategies.Strategy`."""

    why = "tpe"
    takes_whole_round = False

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def rank(self, evaluated: Sequence[tuple[Motif, float]], pool: Sequence[Motif], count: int, round_: int,
             rng: random.Random) -> list[int]:
        """Indices of `count` distinct motifs of `pool`, in the order TPE suggested them."""
        optuna = _optuna()
        every = [motif for motif, _ in evaluated] + list(pool)
        params = [motif.search_params() for motif in every]
        distributions = _distributions(params)
        sampler = optuna.samplers.TPESampler(seed=_round_seed(self.seed, round_))
        study = optuna.create_study(direction="maximize", sampler=sampler)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for (_, score), values in zip(evaluated, params, strict=False):
                if math.isfinite(score):
                    study.add_trial(optuna.trial.create_trial(params=values, distributions=distributions,
                                                              value=score))
            candidates = params[len(evaluated):]
            chosen: list[int] = []
            for _ in range(min(count, len(pool))):
                trial = study.ask(distributions)
                index = _nearest(trial.params, candidates, distributions, exclude=chosen)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)  # the pick is told, not the raw suggestion
                chosen.append(index)
        return chosen


def _round_seed(seed: int, round_: int) -> int:
    return random.Random(f"tpe-{seed}-{round_}").randrange(2**31)


def _distributions(params: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each parameter's Optuna distribution over the values the motifs take: a float that varies and stays
    positive is log-uniform, any other float uniform, anything else categorical (missing ones included)."""
    optuna = _optuna()
    names = list(dict.fromkeys(name for values in params for name in values))
    for values in params:
        for name in names:
            values.setdefault(name, MISSING)
    distributions = {}
    for name in names:
        values = [entry[name] for entry in params]
        numbers = [value for value in values if isinstance(value, float)]
        if len(numbers) == len(values) and min(numbers) < max(numbers):
            low, high = min(numbers), max(numbers)
            distributions[name] = (optuna.distributions.LogUniformDistribution(low, high) if low > 0
                                   else optuna.distributions.UniformDistribution(low, high))
        else:
            distributions[name] = optuna.distributions.CategoricalDistribution(
                sorted({str(value) for value in values}))
            for entry in params:
                entry[name] = str(entry[name])
    return distributions


def _nearest(suggested: dict[str, Any], candidates: Sequence[dict[str, Any]], distributions: dict[str, Any],
             exclude: Sequence[int]) -> int:
    """The candidate closest to `suggested` that is not in `exclude` (ties: the first)."""
    optuna = _optuna()
    distance = np.zeros(len(candidates))
    for name, distribution in distributions.items():
        column = [entry[name] for entry in candidates]
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            distance += np.array([value != suggested[name] for value in column], dtype=float)
        else:
            log = isinstance(distribution, optuna.distributions.LogUniformDistribution)
            scale = np.log if log else np.asarray
            span = scale(distribution.high) - scale(distribution.low)
            distance += np.abs(scale(np.array(column)) - scale(suggested[name])) / span
    distance[list(exclude)] = np.inf
    return int(np.argmin(distance))
