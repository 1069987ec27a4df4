"""Aggregate the comparisons of a multirun: mean and spread per predictor, split protocol and training size."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dish.files import write_json_atomic
from dish.petri_dish import dish_label
from dish.search_report import format_search_report, write_search_report

log = logging.getLogger(__name__)
METRICS = ("spearman", "kendall", "zmse", "precision_at_k", "regret", "fit_seconds")


def collect(directory: Path) -> list[dict[str, Any]]:
    """One row per (comparison.json under `directory`, predictor)."""
    rows = []
    for path in sorted(directory.rglob("comparison.json")):
        report = json.loads(path.read_text())
        split = report["split"]
        setting = ", ".join(f"{key}={value}" for key, value in split.items() if key != "protocol" and value is not None)
        for name, entry in report["predictors"].items():
            if name == "dish" and "dish" in report:  # tell dish settings apart
                name = dish_label(report["dish"])
            rows.append({"predictor": name, "protocol": split["protocol"], "setting": setting,
                         "n_train": report["n_train"], "seed": report["seed"], "diverged": entry.get("diverged", False),
                         **{metric: entry[metric] for metric in METRICS}})
    return rows


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of every metric per (protocol, setting, n_train, predictor)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["protocol"], row["setting"], row["n_train"], row["predictor"])].append(row)
    table = []
    for (protocol, setting, n_train, predictor), members in sorted(groups.items()):
        summary: dict[str, Any] = {"protocol": protocol, "setting": setting, "n_train": n_train,
                                   "predictor": predictor, "runs": len(members),
                                   "diverged": sum(bool(m["diverged"]) for m in members)}
        for metric in METRICS:
            # a diverged dish's numbers are not results; a constant prediction has no correlation (nan)
            values = np.array([m[metric] for m in members if not m["diverged"]], dtype=float)
            values = values[np.isfinite(values)]
            for stat in (np.mean, np.std, np.min):
                summary[f"{metric}_{stat.__name__}"] = float(stat(values)) if len(values) else float("nan")
        table.append(summary)
    return table


def format_table(table: list[dict[str, Any]]) -> str:
    width = max(len(row["predictor"]) for row in table) + 2
    header = f"{'protocol':<9}{'setting':<26}{'n':>4} {'predictor':<{width}}{'runs':>5}" + "".join(
        f"{metric:>20}" for metric in ("spearman", "kendall", "regret"))
    lines = [header]
    for row in table:
        cells = "".join(f"{row[f'{m}_mean']:>12.3f} ±{row[f'{m}_std']:<6.3f}"
                        for m in ("spearman", "kendall", "regret"))
        lines.append(f"{row['protocol']:<9}{row['setting'][:25]:<26}{row['n_train']:>4} {row['predictor']:<{width}}"
                     f"{row['runs']:>5}{cells}")
    return "\n".join(lines)


def write_report(directory: Path) -> list[dict[str, Any]]:
    """Aggregate `directory`, write report.json beside the runs and return the table."""
    table = aggregate(collect(directory))
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
