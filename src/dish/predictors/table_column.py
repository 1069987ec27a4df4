"""A score a table already carries (a training-free score, a learning-curve point) read as a prediction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dish.core.errors import ConfigError
from dish.motifs.kind import Motif
from dish.store.tables import GroundTruthTable, score_sign


def column_scores(table: GroundTruthTable, column: str, motifs: Sequence[Motif], field: str) -> np.ndarray:
    """The `column` of `table` for `motifs` (by key), oriented by its name so that higher is better; a motif
    without a value gets the median of those present (neutral), so a partly empty column still ranks the rest.
    `field` names the config field that chose the column, for the one-line error of a column the table lacks."""
    if column not in table.extra:
        raise ConfigError(field, f"the table has no numeric column {column!r}", accepted=sorted(table.extra))
    sign = score_sign(column, field)
    position = {motif.key: index for index, motif in enumerate(table.motifs)}
    values = sign * table.extra[column][[position[motif.key] for motif in motifs]]
    present = np.isfinite(values)
    return np.where(present, values, np.median(values[present]) if present.any() else 0.0)


class TableColumnPredictor:
    """Ranks motifs by a column of the table (e.g. a training-free score the table's authors computed); it
    neither fits nor trains, so it consumes no ground truth here."""

    uses_training_scores = False

    def __init__(self, name: str, table: GroundTruthTable, column: str, field: str) -> None:
        self.name, self.table, self.column, self.field = name, table, column, field
        score_sign(column, field)

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        """Nothing to learn."""

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        return column_scores(self.table, self.column, motifs, self.field)
