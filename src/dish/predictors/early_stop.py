"""Early stopping: each motif's ground truth at a fraction of its training budget, the estimator practitioners use
instead of a surrogate. Trained now (``early_stop.fraction``) or read from a learning-curve column of the table
(``early_stop.column``)."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from dish.core.errors import POSITIVE, POSITIVE_INT, TEXT, ConfigError, Rule
from dish.core.provenance import ground_truth_hash
from dish.ground_truth.job import run_ground_truth
from dish.motifs.kind import Motif
from dish.predictors.context import PredictorContext
from dish.predictors.table_column import column_scores
from dish.store.csv_store import GroundTruthStore
from dish.store.tables import score_sign

log = logging.getLogger(__name__)
FRACTION = Rule(("a number in (0, 1]",), lambda value: POSITIVE.test(value) and value <= 1)  # type: ignore[operator]
CURVE_COLUMN = re.compile(r"_epoch(\d+)$")
"""A learning-curve column's name ends in the epoch it was read after: ``val_loss_epoch5``."""
STORE = "early_stop.csv"
"""The live mode's own ground-truth store, in the predictor's output folder."""


class EarlyStopPredictor:
    """Each motif's ground truth after a fraction of its training budget, oriented so that higher = better.

    Live (`fraction` without `column`): the motifs to score train now as one population job of
    tasks/ground_truth.py under the table's own config, cut by the motif kind's host to the fraction (its
    `stop_field`, rounded up to at least one epoch or window; the full run's schedule is kept, so this is the
    full run stopped early), scored by the `score` column the comparison ranks by. Its rows go to a store of its
    own (``early_stop.csv`` in ``context.output_dir``; a temporary one without it), so a rerun trains only the
    motifs it lacks. Only for a table this project trained (``context.built``).

    Column (`column`): a numeric column of the table, e.g. a learning curve's ``val_loss_epoch1``; a motif
    without a value gets the median of the others. Its fraction of the budget is `fraction` where given, else
    the column's ``_epoch<N>`` over `epochs`, the table's full budget in epochs.
    """

    name = "early_stop"
    uses_training_scores = False

    def __init__(self, context: PredictorContext, score: str, fraction: float | None = None,
                 column: str | None = None, epochs: int | None = None) -> None:
        FRACTION.or_null().check("early_stop.fraction", fraction)
        TEXT.or_null().check("early_stop.column", column)
        POSITIVE_INT.or_null().check("early_stop.epochs", epochs)
        self.context, self.score = context, score
        self.column = column
        self.job: DictConfig | None = None
        self.recorded_seconds_per_motif = 0.0
        if column is not None:
            score_sign(column, "early_stop.column")
            self.gt_evaluations_per_motif = column_fraction(column, epochs) if fraction is None else fraction
            if context.gt_seconds is not None:
                self.recorded_seconds_per_motif = self.gt_evaluations_per_motif * context.gt_seconds
        elif fraction is not None:
            self.job, self.gt_evaluations_per_motif = self._cut_budget(fraction)
        else:
            raise ConfigError("early_stop", "needs a budget", accepted=[
                "early_stop.fraction=<a number in (0, 1]: re-train the ground truth at that fraction of its budget>",
                "early_stop.column=<a learning-curve column of the table>"])

    def _cut_budget(self, fraction: float) -> tuple[DictConfig, float]:
        """The ground-truth config cut to `fraction` of its budget, and the fraction it spends once rounded up."""
        context = self.context
        if not context.built or context.ground_truth is None:
            curves = [] if context.table is None else [name for name in context.table.extra
                                                       if CURVE_COLUMN.search(name)]
            raise ConfigError("early_stop.fraction", "re-training at a fraction of the budget needs a table this "
                              "project trained (gt.build); this one comes from outside", accepted=[
                                  *([f"early_stop.column={name}" for name in curves]
                                    or ["early_stop.column=<a learning-curve column of the table>"]),
                                  "gt.build=<the ground-truth overrides that train the table>"])
        host = context.motif_type.ground_truth
        if self.score not in host.scores:
            raise ConfigError("gt.score", f"the {context.motif_type.kind} ground truth early_stop re-trains writes "
                              f"no {self.score!r} column", accepted=host.scores)
        full = OmegaConf.select(context.ground_truth, host.budget_field)
        kept = max(1, math.ceil(round(fraction * full, 9)))  # round: 0.07 * 100 is 7.000000000000001
        job = copy.deepcopy(context.ground_truth)
        with open_dict(job):
            if kept < full:  # the whole budget keeps the ground truth's own config (and config hash)
                OmegaConf.update(job, host.stop_field, kept, force_add=True)
            job.logger = None
            job.force = False
            job.trainer.enable_progress_bar = False
        log.info("early_stop: %s=%d, %.3g of the ground truth's %s=%d", host.stop_field, kept, kept / full,
                 host.budget_field, full)
        return job, kept / full

    def fit(self, motifs: list[Motif], scores: np.ndarray) -> None:
        """Nothing to fit: early stopping uses no training motifs."""

    def predict(self, motifs: list[Motif]) -> np.ndarray:
        """The motifs' early-stopped scores (float64, higher = better; -inf where training failed)."""
        if self.job is None:
            if self.context.table is None:
                raise ConfigError("early_stop.column", f"{self.column!r} reads a column of the ranked table, and "
                                  "this run ranks none", accepted=["early_stop.fraction=<a number in (0, 1]>"])
            return column_scores(self.context.table, self.column, motifs, "early_stop.column")
        with _folder(self.context.output_dir) as folder:
            job = copy.deepcopy(self.job)
            with open_dict(job):
                job.population = {"motifs": list(dict.fromkeys(motif.key for motif in motifs))}
                job.store.path = str(folder / STORE)
                job.trainer.default_root_dir = str(folder)
            run_ground_truth(job)  # trains only the motifs its store lacks under this config
            spec = ground_truth_hash(job)
            rows = {row["motif_key"]: row for row in GroundTruthStore(job.store.path, self.context.motif_type).read()
                    if row["config_hash"] == spec}
        sign = score_sign(self.score)
        return np.array([sign * float(rows[motif.key][self.score]) if rows[motif.key]["status"] == "ok" else -math.inf
                         for motif in motifs], dtype=np.float64)


def column_fraction(column: str, epochs: int | None) -> float:
    """The fraction of the table's `epochs` that a learning-curve column ``..._epoch<N>`` spends."""
    match = CURVE_COLUMN.search(column)
    if match is None:
        raise ConfigError("early_stop.fraction", f"is needed: column {column!r} does not say its epoch "
                          "(..._epoch<N>)", accepted=["a number in (0, 1]: the fraction of the budget it spends"])
    epoch = int(match[1])
    if epochs is None or epoch > epochs:
        raise ConfigError("early_stop.epochs", f"got {epochs!r}; the table's full budget in epochs tells what "
                          f"fraction {column!r} spends", accepted=[f"an integer >= {epoch} (50 for NAS-Bench-NLP)"])
    return epoch / epochs


@contextlib.contextmanager
def _folder(output_dir: Path | None) -> Iterator[Path]:
    """`output_dir`, or a temporary folder deleted afterwards where there is none."""
    if output_dir is not None:
        yield Path(output_dir)
        return
    with tempfile.TemporaryDirectory(prefix="early_stop-") as temporary:
        yield Path(temporary)
