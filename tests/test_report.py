"""Aggregating comparisons, and the pipeline that builds its ground truth before comparing."""

from __future__ import annotations

import json
import math

import pytest

from dish.report import aggregate, collect, format_table, write_report
from dish.search_report import format_search_report


def comparison(seed: int, spearman: float, gp_spearman: float) -> dict:
    entry = {"spearman": spearman, "kendall": spearman / 2, "zmse": 0.1, "precision_at_k": 0.4, "regret": 0.01,
             "fit_seconds": 1.0}
    return {"n_train": 10, "n_heldout": 14, "seed": seed, "split": {"protocol": "random", "n": 10},
            "predictors": {"dish": entry, "gp": {**entry, "spearman": gp_spearman}}}


def test_report_gives_mean_and_spread_per_predictor(tmp_path):
    for seed, (dish, gp) in enumerate([(0.5, float("nan")), (0.7, 0.9)]):
        run = tmp_path / str(seed)
        run.mkdir()
        (run / "comparison.json").write_text(json.dumps(comparison(seed, dish, gp)))
    assert len(collect(tmp_path)) == 4
    table = {row["predictor"]: row for row in write_report(tmp_path)}
    assert table["dish"]["runs"] == 2
    assert table["dish"]["spearman_mean"] == pytest.approx(0.6)
    assert table["dish"]["spearman_std"] == pytest.approx(0.1)
    assert table["dish"]["spearman_min"] == pytest.approx(0.5)
    assert table["gp"]["spearman_mean"] == pytest.approx(0.9)  # a constant prediction (nan) is left out
    assert json.loads((tmp_path / "report.json").read_text())[0]["predictor"] == "dish"
    assert "n=10" in format_table(aggregate(collect(tmp_path)))


def test_report_keeps_dish_settings_apart(tmp_path):
    options = {"sizes": [2, 1, 1, 1], "inner_steps": 30, "inner_lr": 0.5, "ensemble": 1}
    for seed, ensemble in enumerate([1, 1, 8]):
        run = tmp_path / str(seed)
        run.mkdir()
        report = {**comparison(seed, 0.5 + 0.1 * seed, 0.9), "dish": {**options, "ensemble": ensemble}}
        (run / "comparison.json").write_text(json.dumps(report))
    runs = {row["predictor"]: row["runs"] for row in write_report(tmp_path)}
    assert runs == {"dish[2, 1, 1, 1]x30@0.5": 2, "dish[2, 1, 1, 1]x30@0.5 ensemble=8": 1, "gp": 3}


def test_search_report_columns_line_up_under_long_strategy_labels():
    row = {"runs": 10, "budget": 20, "best_score_median": 0.97, "evals_to_best_median": 4, "evals_to_best_never": 0,
           "evals_to_top_fraction_median": None, "evals_to_top_fraction_never": 6}
    long_label = "dish[2, 1, 1, 1]x30@0.5 ensemble=8 input_scale=6.0 chance_penalty=30.0"
    lines = format_search_report({long_label: row, "random": row}).splitlines()
    assert [line.split()[-6:] for line in lines[1:]] == [["10", "0.9700", "4", "0", ">20", "6"]] * 2
    runs_end = lines[0].index("runs") + len("runs")
    assert all(line[:runs_end].endswith(" 10") for line in lines[1:])  # every row's runs under the header's
    assert len({len(line) for line in lines}) == 1


def test_compare_builds_missing_ground_truth_first(tmp_path, run_compare, read_store):
    store = tmp_path / "gt.csv"
    build = "['data=digits','population.slopes=[0.5,1,2,4,8,16]','trainer.max_epochs=3','logger=none']"
    done = run_compare(f"gt.path={store}", f"gt.build={build}", "split=random", "split.n=3",
                       "predictors=[quadratic,gp]", "logger=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_store(store)
    assert sorted(float(row["slope"]) for row in rows) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert {row["epochs"] for row in rows} == {"3"}
    report = json.loads((tmp_path / "run" / "comparison.json").read_text())
    assert (report["n_train"], report["n_heldout"]) == (3, 3)
    assert math.isfinite(report["predictors"]["quadratic"]["regret"])
