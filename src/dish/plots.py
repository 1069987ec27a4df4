"""Figures: the true score over the motif axis with every predictor's curve, training motifs marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display here or on a cluster node
import matplotlib.pyplot as plt
import numpy as np

from dish.gt_table import GroundTruthTable


def _on_true_scale(values: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Predictor scores mapped to the true scores' mean and spread, so all curves share one axis."""
    spread = values.std()
    standard = (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
    return standard * true.std() + true.mean()


def plot_comparison(table: GroundTruthTable, train: GroundTruthTable, curves: dict[str, np.ndarray],
                    score_name: str, path: Path) -> None:
    """Write a PNG: x = the motif's first feature (log axis), y = score (higher = better)."""
    x = np.array([motif.features()[0] for motif in table.motifs])
    trained = {motif.key for motif in train.motifs}
    marked = np.array([motif.key in trained for motif in table.motifs])
    figure, axes = plt.subplots(figsize=(8, 5))
    axes.plot(x, table.scores, color="black", linewidth=2, label=f"true ({score_name}, higher = better)")
    axes.scatter(x[marked], table.scores[marked], color="black", zorder=3, label="training motifs")
    for name, values in curves.items():
        axes.plot(x, _on_true_scale(values, table.scores), linestyle="--", label=f"{name} (rescaled)")
    axes.set_xscale("log")
    axes.set_xlabel(next(iter(table.motifs[0].encode())))
    axes.set_ylabel("score")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
