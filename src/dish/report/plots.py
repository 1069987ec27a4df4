"""Figures that stand alone: predictors against the true score over the motif axis, and search curves. Each
names its data, split or seeds and metric in its title and plots the stored column (val_loss, val_acc, ...)
with its orientation on the axis."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display here or on a cluster node
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dish.core.files import write_atomic
from dish.core.stats import zscore_array
from dish.store.tables import GroundTruthTable, score_sign

OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1), "borderaxespad": 0, "fontsize": "small"}
"""Legend placement: right of the axes, never over the data."""


def split_setting(split: dict[str, Any]) -> str:
    """A split's settings besides its protocol and its cross-validation fold (a replicate, like the seed), e.g.
    ``slope_max=11.1`` or ``n=20, folds=4`` (unset values left out)."""
    return ", ".join(f"{key}={value}" for key, value in split.items()
                     if key not in ("protocol", "fold") and value is not None)


def oriented(score: str | None) -> tuple[float, str, str]:
    """The sign that turns a score (higher = better) back into the stored column `score`, the column's name
    and its orientation; without a column name (older search.json files) the score itself is plotted."""
    sign = 1.0 if score is None else score_sign(score)
    return sign, score or "true score", "higher = better" if sign > 0 else "lower = better"


def comparison_title(report: dict[str, Any]) -> str:
    """The comparison's data, metric, split and seed, e.g. ``digits.csv, val_loss: split range (slope_max=11.1),
    15 training / 9 held-out motifs, seed 1``."""
    split = report["split"]
    setting = split_setting(split)
    fold = f", fold {split['fold']}" if split.get("folds") is not None else ""
    return (f"{Path(report['gt']['path']).name}, {report['gt']['score']}: split {split['protocol']}"
            f"{f' ({setting}{fold})' if setting else ''}, {report['n_train']} training / {report['n_heldout']} "
            f"held-out motifs, seed {report['seed']}")


def predictor_label(name: str, entry: dict[str, Any]) -> str:
    """A predictor's legend entry: its held-out Spearman, and why a report leaves it out, if it does."""
    spearman = entry.get("spearman")
    shown = "no Spearman" if spearman is None else f"held-out Spearman {spearman:.2f}"
    return f"{name}: {shown}{f' ({excluded})' if (excluded := entry.get('excluded')) else ''}"


def searched(runs: dict[str, list[dict[str, Any]]]) -> tuple[str, str | None]:
    """The data and score column the search.json results `runs` searched (``ground_truth`` in each; a
    file written before it was recorded names neither)."""
    described = [run.get("ground_truth", {}) for members in runs.values() for run in members]
    sources = sorted({entry.get("source", "unnamed data") for entry in described})
    scores = {entry.get("score") for entry in described}
    return ", ".join(sources), scores.pop() if len(scores) == 1 else None


def search_title(runs: dict[str, list[dict[str, Any]]]) -> str:
    """The searched data and score, and the runs behind the curves: a single run's seed, else the number of
    seeds per strategy."""
    source, score = searched(runs)
    counts = sorted({len(members) for members in runs.values()})
    if counts == [1] and len(runs) == 1:
        seeds = f"1 run (seed {next(iter(runs.values()))[0]['seed']})"
    else:
        number = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        seeds = f"{number} seed{'s' * (counts[-1] > 1)} per strategy"
    return f"search on {source}{f' by {score}' if score else ''}: {seeds}"


def _on_true_scale(values: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Predictor scores mapped to the true scores' mean and spread, so all curves share one axis (non-finite
    predictions stay gaps)."""
    finite = np.isfinite(values)
    if not finite.any():
        return values
    if np.ptp(values[finite]) == 0:  # a constant: its std is rounding noise, not a spread
        return np.where(finite, true.mean(), np.nan)
    standard = np.full_like(values, np.nan)
    standard[finite] = zscore_array(values[finite])
    return standard * true.std() + true.mean()


def comparison_figure(table: GroundTruthTable, train: GroundTruthTable, curves: dict[str, np.ndarray],
                      report: dict[str, Any]) -> Figure:
    """y = the stored score column over x = the motifs' scalar field where their kind has one (the slope, log
    axis), else the motifs ranked by true score (e.g. cells, best first); training and held-out motifs marked
    apart."""
    sign, score, direction = oriented(report["gt"]["score"])
    axis = type(table.motifs[0]).scalar_field
    numeric = axis is not None
    values = [getattr(motif, axis) for motif in table.motifs] if numeric else []
    order = np.argsort(values) if numeric else np.argsort(-table.scores, kind="stable")
    x = np.asarray(values, dtype=float)[order] if numeric else np.arange(len(order), dtype=float)
    true = table.scores[order]
    trained = {motif.key for motif in train.motifs}
    marked = np.array([table.motifs[i].key in trained for i in order])
    figure, axes = plt.subplots(figsize=(8, 5))
    axes.plot(x, sign * true, color="black", linewidth=2, label=f"true {score}")
    axes.scatter(x[marked], sign * true[marked], color="black", zorder=3, label=f"training motifs ({marked.sum()})")
    axes.scatter(x[~marked], sign * true[~marked], facecolor="white", edgecolor="black", zorder=3,
                 label=f"held-out motifs ({(~marked).sum()})")
    for name, predicted in curves.items():
        axes.plot(x, sign * _on_true_scale(predicted[order], true), linestyle="--", marker="" if numeric else ".",
                  label=predictor_label(name, report["predictors"][name]))
    if numeric:
        axes.set_xscale("log")
    axes.set_xlabel(axis if numeric else "motifs, best first by true score")
    axes.set_ylabel(f"{score} ({direction})")
    figure.suptitle(comparison_title(report), fontsize="medium")
    axes.set_title("dashed: each predictor's scores mapped to the true scores' mean and spread (only their shape "
                   "counts)", fontsize="small")
    axes.legend(**OUTSIDE)
    return figure


def plot_comparison(table: GroundTruthTable, train: GroundTruthTable, curves: dict[str, np.ndarray],
                    report: dict[str, Any], path: Path) -> None:
    """Write `comparison_figure` of the comparison `report` (comparison.json's content) as a PNG."""
    save(comparison_figure(table, train, curves, report), path)


def search_figure(runs: dict[str, list[dict[str, Any]]]) -> Figure:
    """The best true score found vs ground-truth evaluations spent of the search.json results `runs` (by
    strategy), one colour per strategy: the median over its runs and the band from the lowest to the highest
    run, the table's optimum dashed. A run that stopped early (its target found) keeps its last best to the end;
    nothing found yet (null) is a gap."""
    sign, column, direction = oriented(searched(runs)[1])
    figure, (axes, compute) = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    longest, found = 1, False
    for index, (name, members) in enumerate(runs.items()):
        colour = f"C{index % 10}"
        values = sign * _padded([run["curve"] for run in members])
        spent = np.arange(values.shape[1])
        longest, found = max(longest, len(spent)), found or bool(np.isfinite(values).any())
        label = f"{name} (1 run)" if len(members) == 1 else f"{name} (median of {len(members)} runs)"
        axes.plot(spent, np.median(values, axis=0), marker=".", color=colour, label=label)
        if len(members) > 1:
            axes.fill_between(spent, values.min(axis=0), values.max(axis=0), facecolor=to_rgba(colour, 0.12),
                              edgecolor=to_rgba(colour, 0.6), linewidth=0.8)
        work, by_work = _on_compute([run["curve"] for run in members])
        compute.step(work, sign * _median_where_found(by_work), where="post", color=colour)
    optimum = next((run["pool_best"] for members in runs.values() for run in members if "pool_best" in run), None)
    if optimum is not None:
        axes.axhline(sign * optimum, color="black", linestyle="--", linewidth=1, label="best in the table")
        compute.axhline(sign * optimum, color="black", linestyle="--", linewidth=1)
    if not found:
        axes.text(0.5, 0.5, "no evaluation succeeded: nothing found", transform=axes.transAxes, ha="center")
    axes.set_xlim(-0.5, longest - 0.5)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("ground-truth evaluations spent (after the starting motifs)")
    axes.set_ylabel(f"best {column} found ({direction})")
    figure.suptitle(search_title(runs), fontsize="medium")
    if any(len(members) > 1 for members in runs.values()):
        axes.set_title("line: median over a strategy's runs; band: its lowest to highest run", fontsize="small")
    compute.set_xlabel("compute spent, in full ground-truth evaluations (a cascade's screening included)")
    compute.set_title("median over runs", fontsize="small")
    left, right = axes.get_position(), compute.get_position()  # one legend, right of both panels
    axes.legend(**{**OUTSIDE, "bbox_to_anchor": ((right.x1 - left.x0) / left.width + 0.02, 1)})
    return figure


def _median_where_found(values: np.ndarray) -> np.ndarray:
    """The median over runs (rows) of each column that any run has a value in; nan elsewhere."""
    median = np.full(values.shape[1], np.nan)
    found = np.isfinite(values).any(axis=0)
    median[found] = np.nanmedian(values[:, found], axis=0)
    return median


def _on_compute(curves: list[list[dict[str, Any]]]) -> tuple[np.ndarray, np.ndarray]:
    """The curves' best scores on a common grid of ground-truth equivalents spent (runs x grid points): each
    run's last best at or before the point, nan before its first evaluation (older results: evaluations)."""
    work = [np.array([point.get("gt_equivalents", point["spent"]) for point in curve], dtype=float)
            for curve in curves]
    grid = np.unique(np.concatenate(work))
    values = np.full((len(curves), len(grid)), np.nan)
    for row, (spent, curve) in enumerate(zip(work, curves, strict=True)):
        best = np.array([point["best_score"] for point in curve], dtype=float)
        best[~np.isfinite(best)] = np.nan
        index = np.searchsorted(spent, grid, side="right") - 1
        values[row] = np.where(index >= 0, best[np.clip(index, 0, None)], np.nan)
    return grid, values


def _padded(curves: list[list[dict[str, Any]]]) -> np.ndarray:
    """The curves' best scores as one array (runs x evaluations spent), each run held at its last best to the
    longest run's end; a missing or non-finite score is nan."""
    length = max(len(curve) for curve in curves)
    values = np.array([[point["best_score"] for point in curve] + [curve[-1]["best_score"]] * (length - len(curve))
                       for curve in curves], dtype=float)
    values[~np.isfinite(values)] = np.nan
    return values


def plot_search(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Write `search_figure` of the search.json results `runs` (by strategy) as a PNG."""
    save(search_figure(runs), path)


def save(figure: Figure, path: Path) -> None:
    """Write `figure` as a PNG (legend outside included) atomically, mode 0644, and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    write_atomic(path, buffer.getvalue())
