"""The cascade (``search.cascade``): the strategy screens the whole pool, early-stopped ground truth ranks its
top ``screen``, and full ground truth trains the best ``search.top_k`` of those. A screened motif costs
``fraction`` of a full evaluation, once: the ledger keeps its early score."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from omegaconf import DictConfig

from dish.core.errors import ConfigError
from dish.motifs.kind import Motif
from dish.predictors.early_stop import FRACTION, column_fraction
from dish.predictors.table_column import column_scores
from dish.search.strategies import Strategy
from dish.store.tables import GroundTruthTable, load_table


class EarlyScores:
    """Early-stopped ground truth of a table's motifs: a learning-curve column of the searched table
    (``cascade.column``, its fraction from ``_epoch<N>`` over ``cascade.epochs``) or a second table of the same
    motifs trained at ``cascade.fraction`` of the budget (``cascade.table``, ranked by ``cascade.score``)."""

    def __init__(self, settings: DictConfig, table: GroundTruthTable | None, motif_type: type[Motif]) -> None:
        if table is None:
            raise ConfigError("search.cascade.screen", "reads early-stopped ground truth from tables, and this "
                              "search has none", accepted=["null (live ground truth)",
                                                           "an integer with ground_truth.oracle=table"])
        if (settings.column is None) == (settings.table is None):
            raise ConfigError("search.cascade", "needs one source of early-stopped scores: table or column, got "
                              f"table={settings.table!r} column={settings.column!r}",
                              accepted=["table=<a ground-truth CSV at a fraction of the budget>",
                                        "column=<a learning-curve column of ground_truth.table>"])
        if settings.column is not None:
            self.table, self.column = table, settings.column
            self.fraction = (column_fraction(settings.column, settings.epochs) if settings.fraction is None
                             else settings.fraction)
        else:
            self.table, self.column = load_table(settings.table, motif_type, settings.score), None
            self.fraction = settings.fraction
        FRACTION.check("search.cascade.fraction", self.fraction)
        self.early = {motif.key: float(score) for motif, score in zip(self.table.motifs, self.table.scores,
                                                                       strict=True)}

    def scores(self, motifs: Sequence[Motif]) -> np.ndarray:
        """Higher = better; NaN for a motif the early table lacks (screened last)."""
        if self.column is not None:
            return column_scores(self.table, self.column, list(motifs), "search.cascade.column")
        return np.array([self.early.get(motif.key, math.nan) for motif in motifs])


class Cascade:
    """A `Strategy` that screens the inner strategy's top `screen` with early-stopped ground truth; the ledger's
    `screened` (motif key -> early score and round) is shared and grows as it screens."""

    why = "cascade"
    takes_whole_round = False

    def __init__(self, inner: Strategy, early: EarlyScores, screen: int, screened: dict[str, dict[str, Any]]
                 ) -> None:
        self.inner, self.early, self.screen, self.screened = inner, early, screen, screened

    def rank(self, evaluated: Sequence[tuple[Motif, float]], pool: Sequence[Motif], count: int, round_: int,
             rng: random.Random) -> list[int] | None:
        ranked = self.inner.rank(evaluated, pool, min(self.screen, len(pool)), round_, rng)
        if ranked is None:
            return None
        top = ranked[:self.screen]
        fresh = [i for i in top if pool[i].key not in self.screened]
        for i, score in zip(fresh, self.early.scores([pool[i] for i in fresh]), strict=True):
            self.screened[pool[i].key] = {"score": float(score) if math.isfinite(score) else None, "round": round_,
                                          "cost": self.early.fraction}
        early = np.array([_score(self.screened[pool[i].key]) for i in top])
        return [top[j] for j in np.argsort(-early, kind="stable")]


def _score(entry: dict[str, Any]) -> float:
    return -math.inf if entry["score"] is None else entry["score"]
