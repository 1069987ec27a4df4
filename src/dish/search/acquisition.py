"""How a search turns a predictor's opinion of the candidates into a round's picks (``search.acquisition``).

`greedy` takes the predicted best; `thompson`, `ucb` and `ei` read the predictor's `Posterior` (an ensemble's
replicas, a forest's trees, a GP): thompson takes each pick as the best of another drawn score vector, ucb the
best mean plus `kappa` sds, ei the largest expected improvement over the best evaluated motif. Every pick after
the first skips candidates within ``search.min_distance`` of one already picked this round (in the pool's
standardised features) while any other is left, so a batch holds no near-duplicates.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

from dish.core.errors import ConfigError
from dish.motifs.kind import Motif
from dish.predictors.context import Posterior, Predictor
from dish.predictors.surrogates import motif_features


class Acquisition(ABC):
    """Scores the candidates for each pick of a round: higher = picked first."""

    name: str
    needs_posterior = True
    needs_incumbent = False

    def opinion(self, predictor: Predictor, pool: Sequence[Motif], known: Sequence[Motif]) -> Posterior:
        """The predictor's posterior on `known` (first) and `pool` in one call, as a `Posterior` of both."""
        motifs = [*known, *pool]
        if not self.needs_posterior:
            mean = predictor.predict(motifs)
            return Posterior(mean, np.zeros_like(mean), mean[None])
        posterior = getattr(predictor, "posterior", None)
        if posterior is None:
            raise ConfigError("search.acquisition", f"{self.name!r} needs a predictor with uncertainty, and "
                              f"{predictor.name!r} has none", accepted=UNCERTAIN_PREDICTORS)
        return posterior(motifs)

    @abstractmethod
    def values(self, posterior: Posterior, incumbent: float, pick: int, order: np.ndarray) -> np.ndarray:
        """The acquisition value of every candidate for the round's `pick`-th pick (`order`: a seeded permutation
        of the posterior's draws)."""


class Greedy(Acquisition):
    name = "greedy"
    needs_posterior = False

    def values(self, posterior: Posterior, incumbent: float, pick: int, order: np.ndarray) -> np.ndarray:
        return posterior.mean


class Thompson(Acquisition):
    name = "thompson"

    def values(self, posterior: Posterior, incumbent: float, pick: int, order: np.ndarray) -> np.ndarray:
        return posterior.draws[order[pick % len(order)]]


class UpperConfidenceBound(Acquisition):
    name = "ucb"

    def __init__(self, kappa: float) -> None:
        self.kappa = kappa

    def values(self, posterior: Posterior, incumbent: float, pick: int, order: np.ndarray) -> np.ndarray:
        return posterior.mean + self.kappa * posterior.std


class ExpectedImprovement(Acquisition):
    name = "ei"
    needs_incumbent = True

    def values(self, posterior: Posterior, incumbent: float, pick: int, order: np.ndarray) -> np.ndarray:
        gain = posterior.mean - incumbent
        std = np.maximum(posterior.std, 1e-12)
        z = gain / std
        return np.where(posterior.std > 0, gain * norm.cdf(z) + std * norm.pdf(z), np.maximum(gain, 0.0))


ACQUISITIONS = ("greedy", "thompson", "ucb", "ei")
UNCERTAIN_PREDICTORS = ["dish with dish.ensemble >= 2 (dish=ensemble)", "gp", "random_forest",
                        "dish_stacked with gp, random_forest or an ensemble dish among its inputs"]


def make_acquisition(name: str, kappa: float) -> Acquisition:
    """The acquisition ``search.acquisition`` names."""
    built = {"greedy": Greedy, "thompson": Thompson, "ei": ExpectedImprovement}
    if name == "ucb":
        return UpperConfidenceBound(kappa)
    if name not in built:
        raise ConfigError("search.acquisition", f"unknown acquisition {name!r}", accepted=ACQUISITIONS)
    return built[name]()


def pick(acquisition: Acquisition, predictor: Predictor, pool: Sequence[Motif], known: Sequence[Motif],
         count: int, min_distance: float, rng: random.Random) -> list[int] | None:
    """Indices of `pool`, best first: `count` distinct picks, then the others by the last pick's acquisition
    value (None when the predictor scores no candidate, e.g. a dish whose every outer step diverged)."""
    known = known if acquisition.needs_incumbent else []
    both = acquisition.opinion(predictor, pool, known)
    if not np.isfinite(both.mean[len(known):]).any():
        return None
    incumbent = float(np.max(both.mean[:len(known)], initial=-np.inf, where=np.isfinite(both.mean[:len(known)])))
    posterior = Posterior(both.mean[len(known):], both.std[len(known):], both.draws[:, len(known):])
    order = np.array(rng.sample(range(len(posterior.draws)), len(posterior.draws)))
    features = motif_features(pool)
    features = (features - features.mean(0)) / np.where(features.std(0) > 0, features.std(0), 1.0)
    chosen: list[int] = []
    for index in range(count):
        values = np.nan_to_num(acquisition.values(posterior, incumbent, index, order), nan=-np.inf)
        values[chosen] = -np.inf
        if chosen and min_distance > 0:
            near = np.linalg.norm(features[:, None, :] - features[None, chosen, :], axis=2).min(1) < min_distance
            if (~near & (values > -np.inf)).any():
                values[near] = -np.inf
        if not (values > -np.inf).any():  # every candidate left is unscored: take them in pool order
            values = np.where(np.isin(np.arange(len(pool)), chosen), -np.inf, 0.0)
        chosen.append(int(np.argmax(values)))
    values = np.nan_to_num(acquisition.values(posterior, incumbent, max(count - 1, 0), order), nan=-np.inf)
    rest = [int(i) for i in np.argsort(-values, kind="stable") if i not in set(chosen)]
    return chosen + rest
