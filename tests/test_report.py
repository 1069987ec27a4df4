"""Aggregating comparisons, and the pipeline that builds its ground truth before comparing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from wandb_records import summarize

from dish.report.search import format_search_report
from dish.report.sweep import aggregate, collect, format_table, write_report


def strict_json(path: Path):
    """The JSON in `path`, refusing NaN and Infinity as strict parsers do."""
    return json.loads(path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def comparison(seed: int, spearman: float, gp_spearman: float) -> dict:
    entry = {"spearman": spearman, "kendall": spearman / 2, "zmse": 0.1, "precision_at_k": 0.4, "regret": 0.01,
             "fit_seconds": 1.0}
    return {"n_train": 10, "n_heldout": 14, "seed": seed, "split": {"protocol": "random", "n": 10},
            "gt": {"path": "store/sigmoid_slope_digits.csv", "score": "val_loss"},
            "predictors": {"dish": entry, "gp": {**entry, "spearman": gp_spearman}}}


def write_runs(directory: Path, reports: list[dict]) -> None:
    for index, report in enumerate(reports):
        run = directory / str(index)
        run.mkdir(parents=True)
        (run / "comparison.json").write_text(json.dumps(report))


NO_METRICS = dict.fromkeys(("spearman", "kendall", "zmse", "precision_at_k", "regret"))


def test_report_gives_mean_and_spread_per_predictor(tmp_path):
    write_runs(tmp_path, [comparison(seed, dish, gp) for seed, (dish, gp) in enumerate([(0.5, math.nan),
                                                                                          (0.7, 0.9)])])
    assert len(collect(tmp_path)) == 4
    table = {row["predictor"]: row for row in write_report(tmp_path)}
    assert (table["dish"]["runs"], table["dish"]["runs_total"], table["dish"]["excluded"]) == (2, 2, {})
    assert table["dish"]["spearman_mean"] == pytest.approx(0.6)
    assert table["dish"]["spearman_std"] == pytest.approx(0.1)
    assert table["dish"]["spearman_min"] == pytest.approx(0.5)
    # a file written before comparisons recorded why: its NaN correlation is left out, and said so
    assert (table["gp"]["runs"], table["gp"]["runs_total"], table["gp"]["excluded"]) == (1, 2, {"no metrics": 1})
    assert table["gp"]["spearman_mean"] == pytest.approx(0.9)
    assert strict_json(tmp_path / "report.json")[0]["predictor"] == "dish"
    assert "n=10" in format_table(aggregate(collect(tmp_path)))


def test_report_counts_what_it_averages(tmp_path):
    reports = [comparison(seed, 0.2 * (seed + 1), 0.5) for seed in range(3)]
    constant = {**NO_METRICS, "fit_seconds": 1.0, "excluded": "constant prediction"}
    reports[1]["predictors"]["dish"] = constant  # seed 1's dish predicted a constant
    for report in reports:
        report["predictors"]["gp"] = constant  # the GP did in every seed
    write_runs(tmp_path, reports)
    table = {row["predictor"]: row for row in write_report(tmp_path)}
    dish = table["dish"]
    assert (dish["runs"], dish["runs_total"], dish["excluded"]) == (2, 3, {"constant prediction": 1})
    assert dish["spearman_mean"] == pytest.approx((0.2 + 0.6) / 2)  # over seeds 0 and 2 only
    assert dish["fit_seconds_mean"] == pytest.approx(1.0)
    gp = table["gp"]
    assert (gp["runs"], gp["runs_total"], gp["excluded"]) == (0, 3, {"constant prediction": 3})
    assert gp["spearman_mean"] is None and gp["regret_mean"] is None  # no result: no number, not 0 or NaN
    assert strict_json(tmp_path / "report.json") == [dish, gp]
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o644
    title, _, *rows = format_table(list(table.values())).splitlines()
    assert title == "sigmoid_slope_digits.csv, val_loss:"
    lines = {line.split()[3]: line for line in rows}
    assert lines["dish"].split()[4] == "2/3" and lines["dish"].endswith("1 constant prediction")
    assert lines["gp"].split()[4:] == ["0/3", *["-"] * 7, "3", "constant", "prediction"]  # no metric, no cost
    assert "nan" not in format_table(list(table.values()))


def test_diverged_dish_is_counted_and_left_out(tmp_path):
    reports = [comparison(seed, 0.5, 0.5) for seed in range(2)]
    reports[0]["predictors"]["dish"].update(diverged=True, excluded="diverged", spearman=0.99)
    write_runs(tmp_path, reports)
    dish = next(row for row in write_report(tmp_path) if row["predictor"] == "dish")
    assert (dish["runs"], dish["runs_total"], dish["excluded"]) == (1, 2, {"diverged": 1})
    assert dish["spearman_mean"] == pytest.approx(0.5)


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
    row = {"runs": 10, "budget": 20, "best_score_median": 0.97, "best_score_runs": 10, "best_score_excluded": {},
           "evals_to_best_median": 4, "evals_to_best_never": 0, "evals_to_top_fraction_median": None,
           "evals_to_top_fraction_never": 6}
    long_label = "dish[2, 1, 1, 1]x30@0.5 ensemble=8 input_scale=6.0 chance_penalty=30.0"
    lines = format_search_report({long_label: row, "random": row}).splitlines()
    assert [line.split()[-6:] for line in lines[1:]] == [["10", "0.9700", "4", "0", ">20", "6"]] * 2
    runs_end = lines[0].index("runs") + len("runs")
    assert all(line[:runs_end].endswith(" 10") for line in lines[1:])  # every row's runs under the header's
    assert len({len(line) for line in lines[1:]}) == 1
    assert len(lines[0]) == len(lines[1]) + len("  excluded")  # rows without exclusions end before its column


def test_compare_builds_missing_ground_truth_first(tmp_path, run_compare, read_store):
    store = tmp_path / "gt.csv"
    build = "['data=digits','population.slopes=[0.5,1,2,4,8,16]','trainer.max_epochs=3']"  # W&B's default logger
    done = run_compare(f"gt.path={store}", f"gt.build={build}", "split=random", "split.n=3",
                       "predictors=[quadratic,gp]", "logger=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_store(store)
    assert sorted(float(row["slope"]) for row in rows) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert {row["epochs"] for row in rows} == {"3"}
    report = json.loads((tmp_path / "run" / "comparison.json").read_text())
    assert (report["n_train"], report["n_heldout"]) == (3, 3)
    assert math.isfinite(report["predictors"]["quadratic"]["regret"])
    # the build trained, so it logged its training curves to a W&B run of its own (the comparison logs none here)
    (run_file,) = (tmp_path / "run").glob("wandb/offline-run-*/run-*.wandb")
    history = summarize(run_file)["history"]
    assert len([row for row in history if "val/loss/sigmoid_slope(slope=0.5)" in row]) == 3  # one per epoch
    assert len([row for row in history if "train/loss/sigmoid_slope(slope=16.0)" in row]) == 3
