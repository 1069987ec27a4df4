"""What each predictor cost, in the sweep report and its cost frontier figures (and their W&B plots)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import TASKS, task_env
from matplotlib.collections import PathCollection
from test_report import write_runs
from wandb_records import summarize

from dish.report.frontier import cost_axis, frontier_figure, pareto_front
from dish.report.sweep import aggregate, collect, format_table, write_report

TABLE = "store/sigmoid_slope_digits.csv"


def entry(kendall: float, seconds: float, gt_seconds: float | None = 2.0, evaluations: float = 10.0) -> dict:
    """A comparison entry whose predictor cost `seconds` per scored motif (its GT-equivalents with `gt_seconds`)."""
    cost = {"fit_seconds": 3.0, "seconds_per_motif": seconds, "gt_evaluations": evaluations, "gt_seconds": gt_seconds,
            "gt_equivalents_per_motif": None if gt_seconds is None else seconds / gt_seconds,
            "fit_gt_equivalents": None if gt_seconds is None else 3.0 / gt_seconds}
    return {"spearman": kendall * 1.4, "kendall": kendall, "zmse": 0.5, "precision_at_k": 0.4, "regret": 0.1,
            "fit_seconds": 3.0, "predict_seconds_per_motif": seconds, "excluded": None, "cost": cost}


def comparison(seed: int, predictors: dict[str, dict], table: str = TABLE, score: str = "val_loss",
               protocol: str = "random") -> dict:
    return {"n_train": 10, "n_heldout": 14, "seed": seed, "split": {"protocol": protocol, "n": 10},
            "gt": {"path": table, "score": score}, "predictors": predictors}


def costed_sweep(directory: Path, table: str = TABLE) -> None:
    """Two seeds of five predictors on `table`: a column read that costs nothing measured, and early stopping
    that spends half the motifs' ground-truth evaluations."""
    write_runs(directory, [comparison(seed, {
        "synflow": entry(0.2 + 0.02 * seed, 0.0),
        "gp": entry(0.3, 0.001 * (seed + 1)),
        "random_forest": entry(0.1, 0.01),
        "early_stop": entry(0.6, 1.0, evaluations=10 + 0.5 * 14),
        "gbt": entry(0.5 - 0.2 * seed, 0.05)}, table=table) for seed in range(2)])


def test_pareto_front_is_the_best_kendall_for_at_most_its_cost():
    front = pareto_front(np.array([1, 10, 5, 100]), np.array([0.2, 0.5, 0.1, 0.4]))
    assert front.tolist() == [True, True, False, False]
    # of equal costs the better only, of identical points the first; a cheaper worse point stays on it
    assert pareto_front(np.array([2, 2, 2, 1]), np.array([0.3, 0.5, 0.5, 0.1])).tolist() == [False, True, False, True]


def test_report_rows_and_table_carry_the_mean_costs(tmp_path):
    costed_sweep(tmp_path)
    report = {row["predictor"]: row for row in write_report(tmp_path)}
    assert sorted(report) == ["early_stop", "gbt", "gp", "random_forest", "synflow"]  # none hard-coded
    gp = report["gp"]
    assert gp["seconds_per_motif_mean"] == pytest.approx(0.0015)
    assert gp["gt_equivalents_per_motif_mean"] == pytest.approx(0.00075)
    assert gp["gt_evaluations_mean"] == pytest.approx(10.0) and gp["fit_seconds_mean"] == pytest.approx(3.0)
    assert report["early_stop"]["gt_evaluations_mean"] == pytest.approx(17.0)
    assert json.loads((tmp_path / "report.json").read_text())[0]["fit_gt_equivalents_mean"] == pytest.approx(1.5)
    title, header, *lines = format_table(list(report.values())).splitlines()
    assert title == "sigmoid_slope_digits.csv, val_loss:"
    assert header.split()[-5:] == ["s/motif", "GT-eq/motif", "GT", "evals", "excluded"]
    cells = {line.split()[3]: line.split()[-4:] for line in lines}  # fit s, s/motif, GT-eq/motif, GT evals
    assert cells["gp"] == ["3", "0.0015", "0.00075", "10"]
    assert cells["early_stop"] == ["3", "1", "0.5", "17"]


def test_a_frontier_per_table_named_by_table_and_score(tmp_path):
    costed_sweep(tmp_path / "a")
    costed_sweep(tmp_path / "b", table="/data/nb_nlp_dev.csv")
    report = write_report(tmp_path)
    assert {(row["table"], row["score"]) for row in report} == {(TABLE, "val_loss"), ("/data/nb_nlp_dev.csv",
                                                                                      "val_loss")}
    assert len(format_table(report).split("\n\n")) == 2  # a block per table
    for name in ("frontier_sigmoid_slope_digits_val_loss.png", "frontier_nb_nlp_dev_val_loss.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.glob("wandb"))  # the sweep did not log to W&B (no multirun.yaml naming it)


def test_frontier_figure_steps_through_the_pareto_set_on_a_log_axis(tmp_path):
    costed_sweep(tmp_path)
    rows = aggregate(collect(tmp_path))
    assert cost_axis(rows) == "gt_equivalents_per_motif"
    figure = frontier_figure(rows, "gt_equivalents_per_motif")
    try:
        (axes,) = figure.get_axes()
        assert axes.get_xscale() == "log" and axes.get_title() == "split random (n=10)"
        assert "ground-truth evaluation equivalents per scored motif" in figure.get_supxlabel()
        # the column read costs 0: drawn hollow at a tenth of the cheapest measured cost, and said so
        floor = 0.00075 / 10
        assert f"hollow: cost 0 measured, drawn at {floor:.2g}" in figure.get_suptitle()
        (step,) = [line for line in axes.get_lines() if line.get_drawstyle() == "steps-post"]
        assert step.get_xdata().tolist() == pytest.approx([floor, 0.00075, 0.025, 0.5, 0.5])
        assert step.get_ydata().tolist() == pytest.approx([0.21, 0.3, 0.4, 0.6, 0.6])  # random_forest below
        means = np.concatenate([markers.get_offsets() for markers in axes.collections
                                if isinstance(markers, PathCollection)])
        assert sorted(means[:, 0]) == pytest.approx(sorted([floor, 0.00075, 0.005, 0.5, 0.025]))
        legend = [text.get_text() for text in axes.get_legend().get_texts()]
        assert legend == ["early_stop", "gbt", "gp", "random_forest", "synflow", "Pareto frontier"]
    finally:
        plt.close(figure)


def test_seconds_when_the_table_has_no_timing_and_old_files_without_cost(tmp_path):
    untimed = {"gp": entry(0.3, 0.002, gt_seconds=None), "quadratic": entry(0.4, 0.0001, gt_seconds=None)}
    old = {key: value for key, value in entry(0.5, 0.01).items() if key != "cost"}  # before costs were recorded
    write_runs(tmp_path, [comparison(0, {**untimed, "dish": old})])
    rows = {row["predictor"]: row for row in write_report(tmp_path)}
    assert rows["dish"]["kendall_mean"] == pytest.approx(0.5) and rows["dish"]["seconds_per_motif_mean"] is None
    assert rows["gp"]["gt_equivalents_per_motif_mean"] is None
    assert cost_axis(list(rows.values())) == "seconds_per_motif"
    figure = frontier_figure(list(rows.values()), "seconds_per_motif")
    try:
        assert figure.get_supxlabel() == "seconds per scored motif (log)"
        assert "left out (no Kendall or no cost): dish" in figure.get_suptitle()
    finally:
        plt.close(figure)
    assert (tmp_path / "frontier_sigmoid_slope_digits_val_loss.png").exists()


def test_a_sweep_of_old_files_reports_without_costs_or_frontier(tmp_path):
    old = {key: value for key, value in entry(0.5, 0.01).items() if key != "cost"}
    write_runs(tmp_path, [comparison(seed, {"dish": old, "gp": old}) for seed in range(2)])
    report = write_report(tmp_path)
    assert all(row["kendall_mean"] == pytest.approx(0.5) and row["gt_evaluations_mean"] is None for row in report)
    assert all(line.split()[-4:] == ["3", "-", "-", "-"] for line in format_table(report).splitlines()[2:])
    assert not list(tmp_path.glob("frontier_*"))


def test_report_of_a_wandb_sweep_logs_its_frontier(tmp_path):
    sweep = tmp_path / "sweep"
    costed_sweep(sweep)
    (sweep / "multirun.yaml").write_text("task_name: compare\nlogger:\n  _target_: pytorch_lightning.loggers."
                                         "WandbLogger\n  project: dish\n  entity: null\n  mode: offline\n"
                                         "  group: null\n")
    done = subprocess.run([sys.executable, str(TASKS / "report.py"), str(sweep)], env=task_env(tmp_path / "home"),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GT-eq/motif" in done.stdout
    (run_file,) = sweep.glob("wandb/offline-run-*/run-*.wandb")
    logged = summarize(run_file)
    assert logged["run"]["job_type"] == "report" and logged["run"]["run_group"] == "compare-sweep"
    (row,) = logged["history"]
    key = "frontier/sigmoid_slope_digits_val_loss"
    assert row[f"{key}/figure/_type"] == "image-file" and row[f"{key}/points/nrows"] == 5
    assert any(name.startswith(f"{key}/scatter") for name in row)
    table = json.loads((run_file.parent / "files" / row[f"{key}/points/path"]).read_text())
    points = {line[0]: dict(zip(table["columns"], line, strict=True)) for line in table["data"]}
    assert {name for name, point in points.items() if point["pareto"]} == {"synflow", "gp", "gbt", "early_stop"}
    assert points["gp"]["log10_gt_equivalents_per_motif"] == pytest.approx(math.log10(0.00075))
    assert points["synflow"]["gt_equivalents_per_motif"] == 0  # the measured cost, drawn at the floor
