"""Searches that explore: acquisitions on a posterior, batches without near-duplicates, Optuna's TPE and the
cascade's cost accounting, run in this process on small table oracles."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from dish.core.errors import ConfigError
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.predictors.context import Posterior
from dish.predictors.stacked import StackedPredictor
from dish.predictors.surrogates import GaussianProcessSurrogate, QuadraticSurrogate, RandomForestSurrogate
from dish.report.search import write_search_report
from dish.search.acquisition import ExpectedImprovement, Greedy, Thompson, pick
from dish.search.loop import run_search

SLOPES = np.logspace(-2, 3, 60)
SCORES = (np.log10(SLOPES) - math.log10(3.0)) ** 2 + 0.1  # a bowl in log-slope, lowest near slope 3
OPTIMUM = float(f"{SLOPES[np.argmin(SCORES)]:.6g}")


def write_table(path: Path, losses: np.ndarray) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slope", "val_loss"])
        writer.writerows([float(f"{slope:.6g}"), loss] for slope, loss in zip(SLOPES, losses, strict=True))
    return path


@pytest.fixture(scope="module")
def bowl(tmp_path_factory) -> Path:
    return write_table(tmp_path_factory.mktemp("bowl") / "bowl.csv", SCORES)


def search(root: Path, table: Path, *overrides: str) -> dict:
    """One table search in this process, as `python tasks/search.py` composes it."""
    with initialize_config_module(config_module="dish.conf", version_base="1.3"):
        cfg = compose("search", ["ground_truth.oracle=table", f"ground_truth.table={table}", "logger=none",
                                 "search.start.store=false", "search.start.random=3", "search.budget=8",
                                 "search.top_k=2", "search.explore=0", f"store.dir={root}",
                                 f"paths.output_dir={root / 'run'}", *overrides])
    run_search(cfg)
    return json.loads((root / "run" / "search.json").read_text())


@pytest.mark.parametrize("overrides", [
    ["search.predictor=gp", "search.acquisition=greedy"],
    ["search.predictor=gp", "search.acquisition=thompson"],
    ["search.predictor=gp", "search.acquisition=ucb"],
    ["search.predictor=gp", "search.acquisition=ei"],
    ["search.predictor=random_forest", "search.acquisition=thompson", "search.budget=12"],
    ["strategy=dish_thompson", "dish.steps=30", "dish.ensemble=3"],
], ids=["gp-greedy", "gp-thompson", "gp-ucb", "gp-ei", "forest-thompson", "dish-thompson"])
def test_each_acquisition_finds_the_optimum_within_its_budget(tmp_path, bowl, overrides):
    result = search(tmp_path, bowl, *overrides)
    budget = 12 if "search.budget=12" in overrides else 8
    keys = [e["key"] for e in result["evaluations"]]
    assert result["spent"] == budget and len(keys) == len(set(keys)) == 3 + budget  # the budget, nothing twice
    assert [e["round"] for e in result["evaluations"]] == [0] * 3 + [r for r in range(1, budget // 2 + 1)
                                                                     for _ in range(2)]
    assert {e["why"] for e in result["evaluations"][3:]} == {"predicted"}
    if "dish.steps=30" not in overrides:  # a 30-step dish is for the mechanics, not for finding the bowl
        assert result["best_motif"] == {"slope": pytest.approx(OPTIMUM, rel=1e-5)}
    assert result["acquisition"] == (overrides[1].partition("=")[2] if "strategy" not in overrides[0]
                                     else "thompson")


class Bumps:
    """A predictor that likes slopes near 3 (a smooth bump, so neighbours score nearly as well) with a spread
    that grows with the distance from 3, and draws that each favour another slope."""

    name = "bumps"

    def __init__(self, favourites: list[float]) -> None:
        self.favourites = favourites

    def posterior(self, motifs):
        x = np.log10([m.slope for m in motifs])
        mean = -np.abs(x - math.log10(3.0))
        draws = np.stack([-np.abs(x - math.log10(f)) for f in self.favourites])
        return Posterior(mean, np.abs(x - math.log10(3.0)), draws)

    def predict(self, motifs):
        return self.posterior(motifs).mean


POOL = [SigmoidSlope(float(f"{s:.6g}")) for s in SLOPES]


def test_a_batch_holds_no_near_duplicates():
    near = pick(Greedy(), Bumps([3.0]), POOL, [], 3, 0.0, random.Random(0))[:3]
    apart = pick(Greedy(), Bumps([3.0]), POOL, [], 3, 0.5, random.Random(0))[:3]
    logs = np.log10(SLOPES)
    assert sorted(near) == sorted(np.argsort(np.abs(np.log10(SLOPES) - math.log10(3.0)))[:3])  # the 3 nearest 3
    assert apart[0] == near[0] and len(set(apart)) == 3
    z = (logs - logs.mean()) / logs.std()  # the pool's standardised features (slope and log-slope)
    raw = (SLOPES - SLOPES.mean()) / SLOPES.std()
    distance = lambda i, j: math.hypot(z[i] - z[j], raw[i] - raw[j])  # noqa: E731
    assert min(distance(i, j) for i in apart for j in apart if i < j) >= 0.5


def test_thompson_takes_each_pick_from_another_draw():
    favourites = [0.01, 30.0, 300.0]
    picks = pick(Thompson(), Bumps(favourites), POOL, [], 3, 0.0, random.Random(1))[:3]
    chosen = sorted(float(POOL[i].slope) for i in picks)
    assert chosen == pytest.approx(sorted(SLOPES[np.argmin(np.abs(np.log10(SLOPES)[:, None] - np.log10(favourites)),
                                                           axis=0)]), rel=1e-5)


def test_expected_improvement_prefers_the_uncertain_of_two_equal_means():
    posterior = Posterior(np.array([1.0, 1.0, 0.5]), np.array([0.01, 1.0, 0.0]), np.zeros((1, 3)))
    values = ExpectedImprovement().values(posterior, incumbent=1.2, pick=0, order=np.array([0]))
    assert values[1] > values[0] > values[2] == 0.0
    assert values[1] == pytest.approx(-0.2 * 0.4207403 + 0.3910427, rel=1e-5)  # (mu - best) Phi(z) + sd phi(z)


def test_the_stacked_predictors_posterior_draws_from_its_uncertain_inputs():
    train, scores = POOL[::6], -SCORES[::6]  # 10 slopes of the bowl
    inputs = {"gp": lambda: GaussianProcessSurrogate(seed=0), "forest": lambda: RandomForestSurrogate(seed=0),
              "quadratic": QuadraticSurrogate}
    stacked = StackedPredictor(inputs, folds=3)
    stacked.fit(train, scores)
    stacked.choice = "stack"  # the level-1 combination, whatever the cross-validation chose
    posterior = stacked.posterior(POOL)
    assert posterior.mean == pytest.approx(stacked.predict(POOL))
    assert posterior.draws.shape == (200, len(POOL))  # the forest's 200 trees; the GP's 32 samples cycle
    assert (posterior.std > 0).all() and np.allclose(posterior.std, posterior.draws.std(0))  # the draws differ
    gp = stacked.fitted["gp"].posterior([*train, *POOL])
    reference = gp.draws[5, :len(train)]
    stacked.choice = "gp"  # one input ranks: its draws, standardised by its own scores of the training motifs
    expected = (gp.draws[5, len(train):] - reference.mean()) / reference.std()
    assert stacked.posterior(POOL).draws[5] == pytest.approx(expected)
    certain = StackedPredictor({"quadratic": QuadraticSurrogate}, folds=3)
    certain.fit(train, scores)
    with pytest.raises(ConfigError, match=r"^dish_stacked: no input has uncertainty \(quadratic\)"):
        certain.posterior(POOL)


def test_an_acquisition_without_uncertainty_is_refused_before_anything_runs(tmp_path, bowl):
    with pytest.raises(ConfigError, match=r"^search.acquisition: 'ei' needs a predictor with uncertainty, and "
                                          r"search.predictor=nn_surrogate has none \(accepted: "):
        search(tmp_path, bowl, "search.predictor=nn_surrogate", "search.acquisition=ei")
    with pytest.raises(ConfigError, match=r"dish.ensemble=1 has none"):
        search(tmp_path, bowl, "search.predictor=dish", "search.acquisition=thompson")
    with pytest.raises(ConfigError, match=r"none of dish_stacked's inputs \(quadratic, a dish with dish.ensemble=1\)"):
        search(tmp_path, bowl, "search.predictor=dish_stacked", "search.acquisition=ucb",
               "+dish_stacked.encodings=[quadratic]")
    assert not (tmp_path / "run").exists()


def test_optuna_tpe_searches_the_slope_kind_reproducibly(tmp_path, bowl):
    first = search(tmp_path / "a", bowl, "strategy=tpe", "search.budget=14")
    again = search(tmp_path / "b", bowl, "strategy=tpe", "search.budget=14")
    keys = [e["key"] for e in first["evaluations"]]
    assert first["spent"] == 14 and len(set(keys)) == 17 and {e["why"] for e in first["evaluations"][3:]} == {"tpe"}
    assert keys == [e["key"] for e in again["evaluations"]]
    assert first["strategy"] == first["label"] == "tpe"
    # after its 10 random start-up trials, TPE samples near the good slopes it has seen
    late = [math.log10(e["motif"]["slope"]) for e in first["evaluations"][13:]]
    assert np.mean(np.abs(np.array(late) - math.log10(3.0))) < 1.25  # a random slope: 1.25 on average


def test_the_cascades_cost_adds_up(tmp_path, bowl):
    early = write_table(tmp_path / "early.csv", SCORES[::-1])  # early scores that point the wrong way
    result = search(tmp_path, bowl, "search.predictor=gp", "search.acquisition=ei", "search.top_k=1",
                    "search.cascade.screen=4", f"search.cascade.table={early}", "search.cascade.fraction=0.25")
    assert result["spent"] == 8 and result["label"] == "surrogate:gp+ei+cascade4"
    ledger = json.loads(Path(result["ledger"]).read_text())
    screened = ledger["screened"]
    assert 4 <= len(screened) <= 4 * 8 and result["screened"] == len(screened)
    assert result["gt_equivalents"] == pytest.approx(8 + 0.25 * len(screened))
    for point in result["curve"][1:]:  # each point: its evaluations plus the screens of its round and before
        round_ = result["evaluations"][3 + point["spent"] - 1]["round"]
        screens = sum(entry["round"] <= round_ for entry in screened.values())
        assert point["gt_equivalents"] == pytest.approx(point["spent"] + 0.25 * screens)
    early_scores = dict(zip([f"sigmoid_slope(slope={float(f'{s:.6g}')})" for s in SLOPES], -SCORES[::-1],
                            strict=True))
    for e in result["evaluations"][3:]:  # each full evaluation beats every motif its round screened afresh
        fresh = [key for key, entry in screened.items() if entry["round"] == e["round"]]
        assert all(early_scores[e["key"]] >= early_scores[key] for key in fresh)
        assert screened[e["key"]]["score"] == pytest.approx(early_scores[e["key"]])


def test_the_report_gives_the_compute_each_strategy_needed(tmp_path, bowl):
    early = write_table(tmp_path / "early.csv", SCORES)  # early scores that agree with the full ones
    for seed in (0, 1, 2):
        search(tmp_path / f"cascade{seed}", bowl, "search.predictor=gp", "search.acquisition=ei", "search.top_k=1",
               "search.cascade.screen=4", f"search.cascade.table={early}", "search.cascade.fraction=0.25",
               f"search.seed={seed}", "search.stop_at=top_fraction", "search.budget=20")
    report = write_search_report(tmp_path)
    runs = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("cascade*/run/search.json"))]
    (row,) = report.values()
    needed = sorted(run["gt_equivalents_to_top_fraction"] for run in runs)
    assert row["gt_equivalents_to_top_fraction_all"] == pytest.approx(needed, abs=1e-3)
    assert row["gt_equivalents_to_top_fraction_median"] == pytest.approx(needed[1])
    assert all(run["gt_equivalents_to_top_fraction"] == pytest.approx(run["evals_to_top_fraction"]
                                                                       + 0.25 * run["screened"]) for run in runs)
    assert (tmp_path / "search_report.png").read_bytes()[:4] == b"\x89PNG"
