"""Aggregate the searches of a multirun: per strategy, the evaluations needed and the best-so-far curves."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dish.core.files import write_json_atomic
from dish.report.plots import plot_search

REACHED = ("evals_to_best", "evals_to_top_fraction", "gt_equivalents_to_top_fraction", "seconds_to_top_fraction")


def collect_searches(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """The search.json files under `directory`, grouped by strategy (the surrogate strategy by its model)."""
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(directory.rglob("search.json")):
        result = json.loads(path.read_text())
        runs[result["label"]].append(result)
    return dict(runs)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and range of the evaluations each run needed (a run that never got there counts as needing more
    than its budget: the median is then reported as None when over half of the runs never got there), and the
    median best score over the ``best_score_runs`` runs that found one (``best_score_excluded``: the others by
    reason)."""
    scores = [r["best_score"] for r in runs if r["best_score"] is not None and math.isfinite(r["best_score"])]
    summary: dict[str, Any] = {"runs": len(runs), "budget": runs[0]["budget"],
                               "best_score_median": float(np.median(scores)) if scores else None,
                               "best_score_runs": len(scores),
                               "best_score_excluded": {"no successful evaluation": len(runs) - len(scores)}
                               if len(scores) < len(runs) else {}}
    for name in REACHED:
        if name not in runs[0] or (name == "seconds_to_top_fraction" and runs[0].get("gt_seconds") is None):
            continue
        needed = sorted(r[name] if r[name] is not None else np.inf for r in runs)
        median = float(np.median(needed))
        summary[f"{name}_median"] = median if np.isfinite(median) else None
        summary[f"{name}_never"] = int(sum(np.isinf(n) for n in needed))
        summary[f"{name}_all"] = [None if np.isinf(n) else (int(n) if float(n).is_integer() else round(float(n), 3))
                                  for n in needed]
    return summary


def write_search_report(directory: Path) -> dict[str, dict[str, Any]]:
    """Write search_report.json and search_report.png (every strategy's curve over its runs) in `directory`."""
    runs = dict(sorted(collect_searches(directory).items()))
    if not runs:
        return {}
    report = {label: summarize(members) for label, members in runs.items()}
    write_json_atomic(directory / "search_report.json", report)
    plot_search(runs, directory / "search_report.png")
    return report


def format_search_report(report: dict[str, dict[str, Any]]) -> str:
    """One line per strategy: runs, median best score (``-`` without one; ``(k/n)`` when only k runs found
    one), median evaluations to the best and to the top fraction (``>budget`` when over half of the runs never
    got there), how many runs never got there, and the runs left out of the median best with their reasons."""
    label_width = max([len("strategy"), *map(len, report)]) + 2
    lines = [f"{'strategy':<{label_width}}{'runs':>5}{'median best':>20}{'evals to best':>15}{'never':>7}"
             f"{'evals to top':>14}{'never':>7}  excluded"]
    for label, row in report.items():
        cells = []
        for name, width in (("evals_to_best", 15), ("evals_to_top_fraction", 14)):
            value = row.get(f"{name}_median", "")
            shown = f">{row['budget']}" if value is None else str(value)
            cells.append(f"{shown:>{width}}{row.get(f'{name}_never', ''):>7}")
        lines.append(f"{label:<{label_width}}{row['runs']:>5}{_best(row):>20}{''.join(cells)}  "
                     f"{excluded_note(row['best_score_excluded'])}".rstrip())
    return "\n".join(lines)


def _best(row: dict[str, Any]) -> str:
    """The median best score, with how many runs it is over when not all of them."""
    if row["best_score_median"] is None:
        return "-"
    counted = f" ({row['best_score_runs']}/{row['runs']})" if row["best_score_runs"] < row["runs"] else ""
    return f"{row['best_score_median']:.4f}{counted}"


def excluded_note(excluded: dict[str, int]) -> str:
    """The runs left out, e.g. ``1 constant prediction, 2 diverged``."""
    return ", ".join(f"{count} {reason}" for reason, count in sorted(excluded.items()))
