"""What every predictor is (fit on scored motifs, predict new ones), and what it may read besides the scored
motifs it fits on: the table, the ground truth it replaces, a folder of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from omegaconf import DictConfig

from dish.motifs.kind import Motif
from dish.store.tables import GroundTruthTable


class Predictor(Protocol):
    """Learns score(motif) from scored motifs (`fit`) and scores others (`predict`, higher = better).

    Its cost is read from optional attributes: `uses_training_scores` (default True: the training motifs' ground
    truth is spent on it), `gt_evaluations_per_motif` (default 0: the fraction of one ground-truth evaluation
    each scored motif costs, e.g. early stopping's) and `recorded_seconds_per_motif` (default 0: seconds per
    motif spent before this process, e.g. the training behind a table's learning-curve column)."""

    name: str

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None: ...

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray: ...


@dataclass(frozen=True)
class Posterior:
    """What a predictor with uncertainty says of some motifs (higher = better): its `mean` score, its `std`, and
    `draws` of plausible score vectors (an ensemble's replicas, a forest's trees, or samples of a GP's posterior),
    shape (draws, motifs)."""

    mean: np.ndarray
    std: np.ndarray
    draws: np.ndarray

    @classmethod
    def of_members(cls, members: np.ndarray, mean: np.ndarray | None = None) -> Posterior:
        """The posterior an ensemble's member predictions (members, motifs) describe; `mean` where the ensemble
        scores by something else (a median)."""
        return cls(members.mean(0) if mean is None else mean, members.std(0), members)


@dataclass(frozen=True)
class PredictorContext:
    """The setting one predictor is built in.

    `ground_truth` is the composed config of tasks/ground_truth.py (``gt.build``'s overrides; the defaults when
    the table comes from outside); `built` says whether the table's rows were trained with it (a table of the
    project's own, ``gt.build`` set), so that a predictor re-running ground truth measures the same task.
    `gt_seconds` is the mean seconds of one ground-truth evaluation of the table (None where the table has no
    timing), `table` the table being ranked (None in a live search), `output_dir` a folder for the predictor's
    files (checkpoints, its own store; None: keep nothing)."""

    motif_type: type[Motif]
    seed: int = 0
    ground_truth: DictConfig | None = None
    built: bool = False
    table: GroundTruthTable | None = None
    gt_seconds: float | None = None
    output_dir: Path | None = None
