"""Aggregate the comparisons of a multirun: mean and spread per ground-truth table, split protocol, training size
and predictor, over the runs that are results (the others counted with their reasons), with what each predictor
cost; and the cost frontier of every table."""

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
from dish.report.frontier import write_frontiers
from dish.report.plots import split_setting
from dish.report.search import excluded_note, format_search_report, write_search_report

log = logging.getLogger(__name__)
METRICS = ("spearman", "kendall", "zmse", "precision_at_k", "regret", "fit_seconds")
COSTS = ("seconds_per_motif", "gt_equivalents_per_motif", "gt_evaluations", "fit_gt_equivalents")
"""A predictor's costs as a comparison records them (its entry's ``cost``; null in files written before)."""
COLUMNS = {"fit_seconds": "fit s", "seconds_per_motif": "s/motif", "gt_equivalents_per_motif": "GT-eq/motif",
           "gt_evaluations": "GT evals"}
"""The costs the printed table shows (means over the runs), by column header."""


def collect(directory: Path) -> list[dict[str, Any]]:
    """One row per (comparison.json under `directory`, predictor): its table and score column, split, metrics,
    costs (null without them) and why a report leaves it out (or None)."""
    rows = []
    for path in sorted(directory.rglob("comparison.json")):
        report = json.loads(path.read_text())
        split = report["split"]
        for name, entry in report["predictors"].items():
            if name == "dish" and "dish" in report:  # tell dish settings apart
                name = dish_label(report["dish"])
            cost = entry.get("cost") or {}
            rows.append({"table": report["gt"]["path"], "score": report["gt"]["score"], "predictor": name,
                         "protocol": split["protocol"], "setting": split_setting(split), "n_train": report["n_train"],
                         "seed": report["seed"], "excluded": exclusion(entry),
                         **{metric: entry[metric] for metric in METRICS},
                         **{field: cost.get(field) for field in COSTS}})
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
    """Mean, standard deviation and minimum of every metric and cost per (table, score, protocol, setting,
    n_train, predictor) over the runs that are results: ``runs`` of ``runs_total``, the others counted per reason
    in ``excluded``. A statistic is null where a group has no result or a result lacks the value (e.g. the costs
    of files written before comparisons recorded them)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["table"], row["score"], row["protocol"], row["setting"], row["n_train"],
                row["predictor"])].append(row)
    table = []
    for (source, score, protocol, setting, n_train, predictor), members in sorted(groups.items()):
        results = [m for m in members if m["excluded"] is None]
        summary: dict[str, Any] = {"table": source, "score": score, "protocol": protocol, "setting": setting,
                                   "n_train": n_train, "predictor": predictor, "runs": len(results),
                                   "runs_total": len(members),
                                   "excluded": dict(Counter(m["excluded"] for m in members if m["excluded"]))}
        for metric in (*METRICS, *COSTS):
            values = np.array([m[metric] for m in results], dtype=float)  # a missing value (None) is nan
            known = len(values) and np.isfinite(values).all()
            for stat in (np.mean, np.std, np.min):
                summary[f"{metric}_{stat.__name__}"] = float(stat(values)) if known else None
        table.append(summary)
    return table


def format_table(table: list[dict[str, Any]]) -> str:
    """A block per table and score column, one line per row: runs averaged of all runs, mean ± sd of Spearman,
    Kendall and regret, the mean costs (fit seconds, seconds and ground-truth evaluations' worth of time per
    scored motif, ground-truth evaluations consumed; ``-`` where a row has none) and the runs left out with their
    reasons."""
    width = max(len(row["predictor"]) for row in table) + 2
    header = (f"{'protocol':<9}{'setting':<26}{'n':>4} {'predictor':<{width}}{'runs':>6}"
              + "".join(f"{metric:>20}" for metric in ("spearman", "kendall", "regret"))
              + "".join(f"{column:>12}" for column in COLUMNS.values()) + "  excluded")
    blocks: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in table:
        cells = "".join(_mean_std(row[f"{m}_mean"], row[f"{m}_std"]) for m in ("spearman", "kendall", "regret"))
        costs = "".join(f"{'-':>12}" if row[f"{m}_mean"] is None else f"{row[f'{m}_mean']:>12.3g}" for m in COLUMNS)
        runs = f"{row['runs']}/{row['runs_total']}"
        blocks[row["table"], row["score"]].append(
            f"{row['protocol']:<9}{row['setting'][:25]:<26}{row['n_train']:>4} {row['predictor']:<{width}}"
            f"{runs:>6}{cells}{costs}  {excluded_note(row['excluded'])}".rstrip())
    return "\n\n".join("\n".join([f"{Path(source).name}, {score}:", header, *lines])
                        for (source, score), lines in blocks.items())


def _mean_std(mean: float | None, std: float | None) -> str:
    """A 20-character cell ``mean ±sd``, or ``-`` without a value."""
    if mean is None:
        return f"{'-':>12}{'':8}"
    return f"{mean:>12.3f} ±{std:<6.3f}"


def write_report(directory: Path) -> list[dict[str, Any]]:
    """Aggregate `directory` and, when it holds comparisons, write report.json and the cost frontier of every
    table (`write_frontiers`) beside the runs; return the table."""
    table = aggregate(collect(directory))
    if table:
        write_json_atomic(directory / "report.json", table)
        write_frontiers(directory, table)
    return table


class ReportCallback(Callback):
    """Hydra callback: when a multirun ends, aggregate its comparisons into report.json and cost frontiers (and
    its searches into search_report.json) and print the tables."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        directory = Path(config.hydra.sweep.dir)
        table = write_report(directory)
        if table:
            log.info("report of %s\n%s", directory, format_table(table))
        searches = write_search_report(directory)
        if searches:
            log.info("searches of %s\n%s", directory, format_search_report(searches))
