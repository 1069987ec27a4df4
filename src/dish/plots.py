"""Figures: predictors against the true score over the motif axis, and search curves."""

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
    """Write a PNG: y = score (higher = better) over x = the motif's own number where it has one (the slope,
    log axis), else the motifs ranked by true score (e.g. cells, best first)."""
    field, _ = next(iter(table.motifs[0].encode().items()))
    values = [next(iter(motif.encode().values())) for motif in table.motifs]
    numeric = all(isinstance(value, int | float) for value in values)
    order = np.argsort(values) if numeric else np.argsort(-table.scores, kind="stable")
    x = np.asarray(values, dtype=float)[order] if numeric else np.arange(len(order), dtype=float)
    true = table.scores[order]
    trained = {motif.key for motif in train.motifs}
    marked = np.array([table.motifs[i].key in trained for i in order])
    figure, axes = plt.subplots(figsize=(8, 5))
    axes.plot(x, true, color="black", linewidth=2, label=f"true ({score_name}, higher = better)")
    axes.scatter(x[marked], true[marked], color="black", zorder=3, label="training motifs")
    for name, predicted in curves.items():
        axes.plot(x, _on_true_scale(predicted[order], true), linestyle="--", marker="" if numeric else ".",
                  label=f"{name} (rescaled)")
    if numeric:
        axes.set_xscale("log")
    axes.set_xlabel(field if numeric else "motifs, best first by true score")
    axes.set_ylabel("score")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_search(curves: dict[str, list[list[dict]]], path: Path, optimum: float | None = None) -> None:
    """Write a PNG: the best true score found vs ground-truth evaluations spent, one line per strategy (the
    median over its runs, the band from the lowest to the highest run), the known optimum dashed. A run that
    stopped early (its target found) keeps its last best to the end."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, runs in curves.items():
        length = max(len(run) for run in runs)
        values = np.array([[point["best_score"] for point in run] + [run[-1]["best_score"]] * (length - len(run))
                           for run in runs], dtype=float)
        spent = np.arange(length)
        axes.plot(spent, np.median(values, axis=0), marker=".", label=f"{name} (median of {len(runs)})")
        if len(runs) > 1:
            axes.fill_between(spent, values.min(axis=0), values.max(axis=0), alpha=0.2)
    if optimum is not None:
        axes.axhline(optimum, color="black", linestyle="--", linewidth=1, label="best in the table")
    axes.set_xlabel("ground-truth evaluations spent (after the starting motifs)")
    axes.set_ylabel("best true score found (higher = better)")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
