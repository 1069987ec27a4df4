"""What picks a round's motifs (``search.predictor``): a predictor through an acquisition, Optuna's TPE, or
nothing (random search). Each strategy ranks the candidates it would send to ground truth, best first."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from dish.motifs.kind import Motif
from dish.predictors.context import Predictor
from dish.search.acquisition import Acquisition, pick
from dish.search.tpe import TpeSearch

__all__ = ["PredictorSearch", "RandomSearch", "Strategy", "TpeSearch"]


class Strategy(Protocol):
    why: str
    """What its picks are called in the ledger (``predicted``, ``tpe``, ``random``)."""
    takes_whole_round: bool
    """Whether it also takes the round's ``search.explore`` picks (random search), else they are random."""

    def rank(self, evaluated: Sequence[tuple[Motif, float]], pool: Sequence[Motif], count: int, round_: int,
             rng: random.Random) -> list[int] | None:
        """Indices of distinct candidates of `pool`, best first: at least the `count` to evaluate, perhaps all of
        them (the random picks of the round are drawn from the rest in this order). None: it has no opinion
        this round, e.g. a dish whose every outer step diverged."""
        ...


class RandomSearch:
    why = "random"
    takes_whole_round = True

    def rank(self, evaluated: Sequence[tuple[Motif, float]], pool: Sequence[Motif], count: int, round_: int,
             rng: random.Random) -> list[int] | None:
        return rng.sample(range(len(pool)), count)


class PredictorSearch:
    """Fit the predictor on every evaluated motif, then pick by the acquisition."""

    why = "predicted"
    takes_whole_round = False

    def __init__(self, predictor: Predictor, acquisition: Acquisition, min_distance: float, seed: int) -> None:
        self.predictor, self.acquisition, self.min_distance, self.seed = predictor, acquisition, min_distance, seed

    def rank(self, evaluated: Sequence[tuple[Motif, float]], pool: Sequence[Motif], count: int, round_: int,
             rng: random.Random) -> list[int] | None:
        motifs = [motif for motif, _ in evaluated]
        self.predictor.fit(motifs, np.array([score for _, score in evaluated]))
        draws = random.Random(f"{self.seed}-{round_}-draws")  # the round's random picks keep their own stream
        return pick(self.acquisition, self.predictor, pool, motifs, count, self.min_distance, draws)
