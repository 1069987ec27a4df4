"""Aggregate the comparisons of a multirun: mean and spread per predictor, split protocol and training size, over
the runs that are results (the others counted with their reasons)."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dish.core.files import write_json_atomic
from dish.predictors.petri_dish.options import dish_label
from dish.report.plots import split_setting
from dish.report.search import excluded_note, format_search_report, write_search_report

log = logging.getLogger(__name__)
METRICS = ("spearman", "kendall", "zmse", "precision_at_k", "regret", "fit_seconds")


def collect(directory: Path) -> list[dict[str, Any]]:
    """One row per (comparison.json under `directory`, predictor), with why a report leaves it out (or None)."""
    rows = []
    for path in sorted(directory.rglob("comparison.json")):
        report = json.loads(path.read_text())
        split = report["split"]
        for name, entry in report["predictors"].items():
            if name == "dish" and "dish" in report:  # tell dish settings apart
                name = dish_label(report["dish"])
            rows.append({"predictor": name, "protocol": split["protocol"], "setting": split_setting(split),
                         "n_train": report["n_train"], "seed": report["seed"], "excluded": exclusion(entry),
                         **{metric: entry[metric] for metric in METRICS}})
    return rows


def exclusion(entry: dict[str, Any]) -> str | None:
    """Why a comparison's entry is no result: as the comparison recorded it, else (files written before it did)
    a diverged dish or missing metrics."""
    if "excluded" in entry:
        return entry["excluded"]
    if entry.get("diverged"):
        return "diverged"
    return None if entry["spearman"] is not None and math.isfinite(entry["spearman"]) else "no metrics"


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, standard deviation and minimum of every metric per (protocol, setting, n_train, predictor) over the
    runs that are results: ``runs`` of ``runs_total``, the others counted per reason in ``excluded``. A group
    without any result has null statistics."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["protocol"], row["setting"], row["n_train"], row["predictor"])].append(row)
    table = []
    for (protocol, setting, n_train, predictor), members in sorted(groups.items()):
        results = [m for m in members if m["excluded"] is None]
        summary: dict[str, Any] = {"protocol": protocol, "setting": setting, "n_train": n_train,
                                   "predictor": predictor, "runs": len(results), "runs_total": len(members),
                                   "excluded": dict(Counter(m["excluded"] for m in members if m["excluded"]))}
        for metric in METRICS:
            values = np.array([m[metric] for m in results], dtype=float)  # a missing value (None) is nan
            for stat in (np.mean, np.std, np.min):
                summary[f"{metric}_{stat.__name__}"] = float(stat(values)) if len(values) else None
        table.append(summary)
    return table


def format_table(table: list[dict[str, Any]]) -> str:
    """One line per row: runs averaged of all runs, mean ± sd of Spearman, Kendall and regret (``-`` where a
    row has none) and the runs left out with their reasons."""
    width = max(len(row["predictor"]) for row in table) + 2
    header = f"{'protocol':<9}{'setting':<26}{'n':>4} {'predictor':<{width}}{'runs':>6}" + "".join(
        f"{metric:>20}" for metric in ("spearman", "kendall", "regret")) + "  excluded"
    lines = [header]
    for row in table:
        cells = "".join(_mean_std(row[f"{m}_mean"], row[f"{m}_std"]) for m in ("spearman", "kendall", "regret"))
        runs = f"{row['runs']}/{row['runs_total']}"
        lines.append(f"{row['protocol']:<9}{row['setting'][:25]:<26}{row['n_train']:>4} {row['predictor']:<{width}}"
                     f"{runs:>6}{cells}  {excluded_note(row['excluded'])}".rstrip())
    return "\n".join(lines)


def _mean_std(mean: float | None, std: float | None) -> str:
    """A 20-character cell ``mean ±sd``, or ``-`` without a value."""
    if mean is None or not math.isfinite(mean):
        return f"{'-':>12}{'':8}"
    return f"{mean:>12.3f} ±{std:<6.3f}"


def write_report(directory: Path) -> list[dict[str, Any]]:
    """Aggregate `directory` and, when it holds comparisons, write report.json beside the runs; return the
    table."""
    table = aggregate(collect(directory))
    if table:
        write_json_atomic(directory / "report.json", table)
    return table


class ReportCallback(Callback):
    """Hydra callback: when a multirun ends, aggregate its comparisons into report.json (and its searches into
    search_report.json) and print the tables."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        directory = Path(config.hydra.sweep.dir)
        table = write_report(directory)
        if table:
            log.info("report of %s\n%s", directory, format_table(table))
        searches = write_search_report(directory)
        if searches:
            log.info("searches of %s\n%s", directory, format_search_report(searches))
