"""The cost frontier of a sweep: each predictor's held-out Kendall against what scoring one motif costs, per
ground-truth table and score column, as ``frontier_<table stem>_<score>.png`` beside report.json and, when the
sweep logged to W&B, in a W&B run of the report's own (a scatter plot over a table of the points, and the PNG)."""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from omegaconf import OmegaConf

from dish.report.plots import OUTSIDE, save

log = logging.getLogger(__name__)
COST_AXES = {"gt_equivalents_per_motif": "ground-truth evaluation equivalents per scored motif",
             "seconds_per_motif": "seconds per scored motif"}
"""The cost a frontier is drawn over, by preference, and its axis label."""


def pareto_front(cost: np.ndarray, kendall: np.ndarray) -> np.ndarray:
    """Which points lie on the Pareto frontier: the highest Kendall of all points costing at most as much (of
    points equal in both, the first)."""
    cost, kendall = np.asarray(cost, dtype=float), np.asarray(kendall, dtype=float)
    order = np.lexsort((-kendall, cost))
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(kendall[order])[:-1]))
    front = np.zeros(len(cost), dtype=bool)
    front[order] = kendall[order] > best_before
    return front


def cost_axis(rows: list[dict[str, Any]]) -> str | None:
    """The cost to draw a table's report rows over: ground-truth equivalents when every row with a Kendall has
    them, else seconds (None when no such row has either)."""
    ranked = [row for row in rows if row["kendall_mean"] is not None]
    if ranked and all(row["gt_equivalents_per_motif_mean"] is not None for row in ranked):
        return "gt_equivalents_per_motif"
    return "seconds_per_motif" if any(row["seconds_per_motif_mean"] is not None for row in ranked) else None


def frontier_points(rows: list[dict[str, Any]], column: str) -> tuple[list[dict[str, Any]], float | None]:
    """The report rows drawn over cost `column`, each with its ``split``, ``cost`` (zero raised to the floor, as
    a log axis cannot show zero), ``clipped`` and ``pareto`` (on its split's frontier: splits rank different
    held-out motifs, so each has its own); and the floor, when a cost was zero."""
    points = [{**row, "split": split_label(row), "cost": row[f"{column}_mean"]} for row in rows
              if row["kendall_mean"] is not None and row[f"{column}_mean"] is not None]
    positive = [point["cost"] for point in points if point["cost"] > 0]
    floor = (min(positive) / 10 if positive else 1.0) if len(positive) < len(points) else None
    for point in points:
        point["clipped"] = point["cost"] <= 0
        point["cost"] = max(point["cost"], floor or 0.0)
    by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        by_split[point["split"]].append(point)
    for members in by_split.values():
        front = pareto_front(np.array([p["cost"] for p in members]), np.array([p["kendall_mean"] for p in members]))
        for point, on in zip(members, front, strict=True):
            point["pareto"] = bool(on)
    return points, floor


def split_label(row: dict[str, Any]) -> str:
    """A report row's split, e.g. ``random (n=10)``."""
    return f"{row['protocol']}{f' ({setting})' if (setting := row['setting']) else ''}"


def frontier_figure(rows: list[dict[str, Any]], column: str) -> Figure:
    """Held-out Kendall (mean over seeds, bars ± sd) over cost `column` per scored motif (mean over seeds, log
    axis) of one table's report rows: a panel per split, a colour per predictor (``n=`` beside points when a
    panel has several training sizes) and each split's Pareto frontier as a step line. A zero cost is drawn
    hollow at a floor, a tenth of the lowest non-zero cost, which the title gives; rows without a Kendall or
    the cost are left out, and named."""
    points, floor = frontier_points(rows, column)
    splits = list(dict.fromkeys(point["split"] for point in points))
    predictors = sorted({point["predictor"] for point in points})
    colours = plt.get_cmap("tab10" if len(predictors) <= 10 else "tab20").colors
    colour = {name: colours[i % len(colours)] for i, name in enumerate(predictors)}
    columns = min(3, len(splits))
    rows_of_panels = math.ceil(len(splits) / columns)
    figure, grid = plt.subplots(rows_of_panels, columns, figsize=(4.5 * columns + 1, 4 * rows_of_panels + 1),
                                sharex=True, sharey=True, squeeze=False, layout="constrained")
    for axes, split in zip(grid.flat, splits, strict=False):
        members = [point for point in points if point["split"] == split]
        sizes = len({point["n_train"] for point in members}) > 1
        for point in members:
            x, y, tint = point["cost"], point["kendall_mean"], colour[point["predictor"]]
            axes.errorbar(x, y, yerr=point["kendall_std"], fmt="none", ecolor=tint, capsize=3, zorder=2)
            axes.scatter(x, y, color=tint, facecolor="white" if point["clipped"] else tint, zorder=3)
            if sizes:
                axes.annotate(f"n={point['n_train']}", (x, y), xytext=(4, 4), textcoords="offset points",
                              fontsize="x-small")
        front = sorted((point["cost"], point["kendall_mean"]) for point in members if point["pareto"])
        cost, kendall = np.array(front).T  # held on to the panel's costliest point
        axes.step(np.append(cost, max(point["cost"] for point in members)), np.append(kendall, kendall[-1]),
                  where="post", color="black", linewidth=1, zorder=1)
        axes.set_xscale("log")
        axes.set_title(f"split {split}", fontsize="medium")
    for axes in grid.flat[len(splits):]:
        axes.set_visible(False)
    figure.supxlabel(f"{COST_AXES[column]} (log)", fontsize="medium")
    figure.supylabel("held-out Kendall", fontsize="medium")
    handles = [Line2D([], [], marker="o", linestyle="", color=colour[name]) for name in predictors]
    handles.append(Line2D([], [], color="black", linewidth=1))
    grid[0, -1].legend(handles, [*predictors, "Pareto frontier"], **OUTSIDE)
    figure.suptitle("\n".join([f"cost frontier on {Path(rows[0]['table']).name}, {rows[0]['score']}: held-out "
                               "Kendall (mean ± sd over seeds) vs cost per scored motif (mean)",
                               *_notes(rows, column, floor)]), fontsize="medium")
    return figure


def _notes(rows: list[dict[str, Any]], column: str, floor: float | None) -> list[str]:
    """What the figure does not show as measured: zero costs raised to the floor, and the rows left out."""
    notes = [f"hollow: cost 0 measured, drawn at {floor:.2g}"] if floor is not None else []
    left_out = sorted({row["predictor"] for row in rows
                       if row["kendall_mean"] is None or row[f"{column}_mean"] is None})
    if left_out:
        notes.append(f"left out (no Kendall or no cost): {', '.join(left_out)}")
    return notes


def frontier_name(table: str, score: str) -> str:
    """The frontier figure's file name, e.g. ``frontier_sigmoid_slope_digits_val_loss.png``."""
    return f"frontier_{Path(table).stem}_{score}.png"


def write_frontiers(directory: Path, report: list[dict[str, Any]]) -> list[Path]:
    """Write the frontier figure of every table and score column of the report rows that has a cost in
    `directory`, and log them to W&B when the sweep did (`sweep_wandb`); return the figures' paths."""
    tables: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in report:
        tables[row["table"], row["score"]].append(row)
    drawn = []
    for (table, score), rows in tables.items():
        if (column := cost_axis(rows)) is not None:
            path = directory / frontier_name(table, score)
            save(frontier_figure(rows, column), path)
            drawn.append((path, rows, column))
    if drawn and (init := sweep_wandb(directory)) is not None:
        log_frontiers(init, drawn)
    return [path for path, _, _ in drawn]


def sweep_wandb(directory: Path) -> dict[str, Any] | None:
    """``wandb.init`` arguments for the report's run when the multirun in `directory` logged to W&B (its
    multirun.yaml names a WandbLogger): the sweep's project, entity, mode and group, job type ``report``."""
    path = directory / "multirun.yaml"
    config = OmegaConf.load(path) if path.is_file() else None
    logger = config.get("logger") if config is not None else None
    if logger is None or not str(logger.get("_target_")).endswith("WandbLogger"):
        return None
    return {"project": logger.project, "entity": logger.entity, "mode": logger.mode, "dir": str(directory),
            "group": logger.get("group") or f"{config.get('task_name', 'compare')}-{directory.name}",
            "job_type": "report", "name": "report"}


def log_frontiers(init: dict[str, Any], drawn: list[tuple[Path, list[dict[str, Any]], str]]) -> None:
    """Log each frontier (its PNG, and the report rows it drew over their cost column) to a W&B run started
    with `init`: a table of the points with log10 of their cost, a scatter plot of Kendall over that (W&B's has
    no log axis) and the figure, under ``frontier/<table stem>_<score>/``."""
    import wandb

    from dish.core.runtime import WANDB_VERBOSITY

    silent = not any(name in os.environ for name in WANDB_VERBOSITY)
    run = wandb.init(**init, settings=wandb.Settings(silent=True) if silent else None)
    if run.offline:
        log.info("wandb: offline report run, upload it with: wandb sync %s", run.settings.sync_dir)
    else:
        log.info("wandb: report run %s", run.url)
    try:
        for path, rows, column in drawn:
            points, _ = frontier_points(rows, column)
            data = wandb.Table(columns=["predictor", "split", "n_train", column, f"log10_{column}", "kendall",
                                        "kendall_sd", "pareto"],
                               data=[[p["predictor"], p["split"], p["n_train"], p[f"{column}_mean"],
                                      math.log10(p["cost"]), p["kendall_mean"], p["kendall_std"], p["pareto"]]
                                     for p in points])
            key = f"frontier/{path.stem.removeprefix('frontier_')}"
            run.log({f"{key}/points": data, f"{key}/figure": wandb.Image(str(path)),
                     f"{key}/scatter": wandb.plot.scatter(data, f"log10_{column}", "kendall",
                                                          title=f"held-out Kendall vs log10 {column}")})
    finally:
        run.finish()
