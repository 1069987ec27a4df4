"""Every predictor in one comparison: one entry each with its ranking and its cost, early stopping at the whole
budget reproducing the ground truth, and the cost frontier of a sweep."""

from __future__ import annotations

import json

import numpy as np
import pytest

SLOPES = [0.05, 0.2, 0.5, 1, 2, 4, 8, 16, 64, 256]
FITTED = ("dish", "random_forest", "gbt", "dish_stacked")
PROXIES = ("grad_norm", "snip", "synflow", "jacob_cov")


@pytest.fixture(scope="module")
def every_predictor(tmp_path_factory, run_compare, read_store):
    """A comparison of every predictor that applies to slopes, on a small digits table it builds first."""
    root = tmp_path_factory.mktemp("predictors")
    store = root / "gt.csv"
    build = f"['data=digits','population.slopes={SLOPES}','trainer.max_epochs=4','model.hidden=[16]','logger=none']"
    predictors = ",".join([*FITTED, "early_stop", *PROXIES])
    done = run_compare(f"gt.path={store}", f"gt.build={build.replace(' ', '')}", "split=random", "split.n=6",
                       f"predictors=[{predictors}]", "early_stop.fraction=1", "dish.steps=5",
                       "dish_stacked.folds=3", "logger=none", f"hydra.run.dir={root / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((root / "run" / "comparison.json").read_text()), read_store(store), root / "run"


def test_every_named_predictor_has_an_entry_with_its_ranking_and_cost(every_predictor):
    report, rows, _ = every_predictor
    assert list(report["predictors"]) == [*FITTED, "early_stop", *PROXIES]
    gt_seconds = np.mean([float(row["wall_seconds"]) / float(row["population_size"]) for row in rows])
    for name, entry in report["predictors"].items():
        assert {"spearman", "kendall", "regret"} <= set(entry), name
        cost = entry["cost"]
        assert cost["gt_seconds"] == pytest.approx(gt_seconds)
        assert cost["seconds_per_motif"] > 0 and cost["fit_seconds"] >= 0, name
        assert cost["gt_equivalents_per_motif"] == pytest.approx(cost["seconds_per_motif"] / gt_seconds), name
        assert cost["fit_gt_equivalents"] == pytest.approx(cost["fit_seconds"] / gt_seconds), name
    for name in FITTED:  # they learn from the 6 training slopes' ground truth
        assert report["predictors"][name]["cost"]["gt_evaluations"] == 6
    for name in PROXIES:  # training-free: no ground truth at all
        assert report["predictors"][name]["cost"]["gt_evaluations"] == 0
    # early stopping trains each of the 4 held-out slopes for its fraction of the budget
    assert report["predictors"]["early_stop"]["cost"]["gt_evaluations"] == pytest.approx(1.0 * 4)
    stacked = report["predictors"]["dish_stacked"]["cost"]["fit_seconds"]
    assert stacked > report["predictors"]["dish"]["cost"]["fit_seconds"]  # 3 fold fits and a full one


def test_early_stopping_at_the_whole_budget_is_the_ground_truth(every_predictor):
    report, _, run_dir = every_predictor
    early = report["predictors"]["early_stop"]
    assert early["spearman"] == pytest.approx(1.0) and early["regret"] == pytest.approx(0.0)
    assert (run_dir / "early_stop.csv").exists()  # its own store: a rerun trains nothing again
