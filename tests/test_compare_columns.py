"""A table's own columns as rankers of its held-out motifs (dish.compare.columns)."""

from __future__ import annotations

import csv

import pytest

from dish.compare.columns import column_rankings


def test_each_column_ranks_the_held_out_motifs_of_the_comparisons_splits(tmp_path):
    path = tmp_path / "table.csv"
    slopes = [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slope", "val_loss", "val_loss_epoch1", "zc_free", "widgets"])
        for i, slope in enumerate(slopes):
            # the early loss keeps the final order; the free score reverses it and is missing for two motifs
            writer.writerow([slope, 1.0 - 0.1 * i, 2.0 - 0.05 * i, "" if i in (0, 7) else -i, 3])
    found = column_rankings(path, "sigmoid_slope", "val_loss", [3], [0, 1])
    assert found["left_out"] == {"widgets": "its name gives no direction"}
    for kendall, spearman, held_out in found["results"][("val_loss_epoch1", 3)]:
        assert (kendall, spearman, held_out) == (pytest.approx(1.0), pytest.approx(1.0), 5)
    for kendall, _, held_out in found["results"][("zc_free", 3)]:
        assert kendall == pytest.approx(-1.0) and 3 <= held_out < 5
