"""The search task as users run it (`python tasks/search.py ...` in a subprocess), and its pieces."""

from __future__ import annotations

import csv
import json
import math
import random
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import kill_after_round_one, start_task_process
from wandb_records import summarize

from dish.motifs.rnn_cell import RecurrentCell
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.search.acquisition import Greedy
from dish.search.loop import Evaluation, Ledger, best_curve, choose, reached
from dish.search.oracles import override_value
from dish.search.strategies import PredictorSearch, RandomSearch

SLOPES = np.logspace(-1, 2, 30)
OPTIMUM = SLOPES[np.argmin(np.abs(np.log10(SLOPES) - math.log10(3.0)))]
PID_FORMAT = "hydra.job_logging.formatters.simple.format='pid=%(process)d %(name)s %(message)s'"


@pytest.fixture(scope="module")
def parabola_table(tmp_path_factory) -> Path:
    """30 slopes whose loss is a parabola in log-slope with its minimum at slope 3."""
    path = tmp_path_factory.mktemp("table") / "parabola.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slope", "val_loss"])
        for slope in SLOPES:
            writer.writerow([float(f"{slope:.6g}"), (math.log10(slope) - math.log10(3.0)) ** 2 + 0.1])
    return path


def table_search(run_search, table: Path, root: Path, *overrides: str) -> dict:
    done = run_search("ground_truth.oracle=table", f"ground_truth.table={table}", "search.start.store=false",
                      "search.start.random=3", "search.budget=6", f"store.dir={root}", f"hydra.run.dir={root / 'run'}",
                      "logger=none", *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((root / "run" / "search.json").read_text())


@pytest.mark.parametrize("overrides", [
    ["search.predictor=dish", "dish.steps=10"],
    ["search.predictor=nn_surrogate"],
    ["search.predictor=random"],
], ids=["dish", "surrogate", "random"])
def test_every_strategy_spends_exactly_its_budget(tmp_path, run_search, parabola_table, overrides):
    result = table_search(run_search, parabola_table, tmp_path, *overrides)
    keys = [e["key"] for e in result["evaluations"]]
    assert len(keys) == len(set(keys)) == 3 + 6  # 3 starting motifs, then the budget, never a motif twice
    assert result["spent"] == 6 and [e["round"] for e in result["evaluations"]] == [0, 0, 0, 1, 1, 2, 2, 3, 3]
    best = [point["best_score"] for point in result["curve"]]
    assert [point["spent"] for point in result["curve"]] == list(range(7))
    assert best == sorted(best) and best[-1] == result["best_score"] == max(e["score"] for e in result["evaluations"])
    assert result["pool_size"] == 30
    assert result["pool_best"] == pytest.approx(-((math.log10(OPTIMUM) - math.log10(3.0)) ** 2 + 0.1), rel=1e-5)
    assert (tmp_path / "run" / "search.png").read_bytes()[:4] == b"\x89PNG"


def test_quadratic_surrogate_finds_the_optimum_of_a_parabola_at_once(tmp_path, run_search, parabola_table):
    result = table_search(run_search, parabola_table, tmp_path, "search.predictor=quadratic", "search.explore=0",
                          "search.stop_at=best")
    assert result["best_motif"] == {"slope": pytest.approx(OPTIMUM, rel=1e-5)}
    assert result["evals_to_best"] == 1 and result["spent"] == 1  # found with its first pick, then stopped
    assert result["strategy"] == "surrogate" and result["label"] == "surrogate:quadratic"


def test_random_search_covers_the_table_and_stops_when_it_is_exhausted(tmp_path, run_search, parabola_table):
    result = table_search(run_search, parabola_table, tmp_path, "search.predictor=random", "search.budget=100",
                          "search.top_k=4")
    assert result["spent"] == 27 and len(result["evaluations"]) == 30
    assert result["best_motif"] == {"slope": pytest.approx(OPTIMUM, rel=1e-5)}
    assert result["evals_to_best"] is not None and result["evals_to_top_fraction"] <= result["evals_to_best"]


def test_search_logs_its_curve_to_wandb_offline(tmp_path, run_search, parabola_table):
    result = table_search(run_search, parabola_table, tmp_path, "search.predictor=random", "logger=wandb",
                          f"logger.save_dir={tmp_path / 'run'}")
    (run_file,) = (tmp_path / "run").glob("wandb/offline-run-*/run-*.wandb")
    logged = summarize(run_file)
    curve = [row["search/best_score"] for row in logged["history"] if "search/best_score" in row]
    assert curve == pytest.approx([point["best_score"] for point in result["curve"]])
    tables = next(row for row in logged["history"] if "evaluations/_type" in row)
    assert tables["evaluations/_type"] == "table-file" and tables["evaluations/nrows"] == 9
    assert any(key.startswith("best_vs_spent") for key in tables)
    assert logged["run"]["job_type"] == "search"


def test_bad_predictor_is_a_one_line_error(tmp_path, run_search, parabola_table):
    done = run_search("ground_truth.oracle=table", f"ground_truth.table={parabola_table}", "search.predictor=greedy",
                      f"store.dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", "logger=none")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: search.predictor: unknown predictor 'greedy' (accepted: dish, nn_surrogate, gp, quadratic, "
        "random_forest, gbt, dish_stacked, tpe, random)")


# --- live ground truth ---------------------------------------------------------------------------------------

LIVE = ["data=digits", "trainer.max_epochs=2", "search.candidates.slopes=12", "search.start.random=2",
        "search.budget=4", "search.predictor=random", "logger=none"]


def test_interrupted_search_continues_and_repeats_no_ground_truth_job(tmp_path, run_search, task_home, read_store):
    reference = tmp_path / "reference"
    done = run_search(*LIVE, f"store.dir={reference}", f"hydra.run.dir={reference / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    expected = json.loads((reference / "run" / "search.json").read_text())["evaluations"]

    root = tmp_path / "interrupted"
    first = start_task_process([*LIVE, f"store.dir={root}", f"hydra.run.dir={root / 'first'}"], task_home, "search")
    first_log = kill_after_round_one(first, root / "searches")
    assert first.returncode == -signal.SIGKILL, "the search ended before it could be interrupted"
    done = run_search(*LIVE, f"store.dir={root}", f"hydra.run.dir={root / 'second'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "continuing the search" in done.stdout + done.stderr
    assert json.loads((root / "second" / "search.json").read_text())["evaluations"] == expected
    rows = read_store(root / "sigmoid_slope_digits.csv")
    assert len(rows) == len({row["motif_key"] for row in rows}) == 2 + 4
    trained = sum(int(n) for n in re.findall(r"wrote (\d+) row", first_log + done.stdout + done.stderr))
    assert trained == 6  # every motif trained once over both runs


def test_joblib_launcher_trains_each_pick_in_another_process(tmp_path, run_search, read_store):
    overrides = json.dumps([PID_FORMAT])
    done = run_search(*LIVE, "search.budget=2", "search.start.store=false",
                      "ground_truth.launcher=joblib", f"ground_truth.launcher_overrides=[{overrides[1:-1]}]",
                      PID_FORMAT, f"store.dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    search_pid = int(re.search(r"pid=(\d+) dish.search.loop", (tmp_path / "run" / "search.log").read_text()).group(1))
    job_logs = sorted((tmp_path / "run" / "ground_truth").glob("*/ground_truth.log"))
    assert len(job_logs) == 4  # 2 starting motifs, then 2 picks
    job_pids = {int(re.search(r"pid=(\d+) dish.ground_truth.job", log.read_text()).group(1)) for log in job_logs}
    assert search_pid not in job_pids
    result = json.loads((tmp_path / "run" / "search.json").read_text())
    stored = {float(row["slope"]): -float(row["val_loss"]) for row in read_store(tmp_path / "sigmoid_slope_digits.csv")}
    assert {e["motif"]["slope"]: e["score"] for e in result["evaluations"]} == stored


# --- pieces ----------------------------------------------------------------------------------------------------

def evaluation(slope: float, score: float, round_: int) -> Evaluation:
    motif = SigmoidSlope(slope)
    return Evaluation(motif.key, motif.encode(), score, round_, "start" if round_ == 0 else "random")


def test_best_curve_counts_only_budgeted_evaluations():
    evaluations = [evaluation(1, -3.0, 0), evaluation(2, -2.0, 0), evaluation(3, -2.5, 1),
                   evaluation(4, math.nan, 1), evaluation(5, -1.0, 2)]
    curve = best_curve(evaluations)
    assert [(p["spent"], p["best_score"]) for p in curve] == [(0, -2.0), (1, -2.0), (2, -2.0), (3, -1.0)]
    assert curve[-1]["best_motif"] == {"slope": 5.0}
    assert reached(curve, -1.5) == 3 and reached(curve, 0.0) is None


class Ranker:
    """A predictor that scores slopes by closeness to 10 and remembers what it was fitted on."""

    name = "ranker"

    def fit(self, motifs, scores):
        self.fitted = [m.slope for m in motifs]

    def predict(self, motifs):
        return np.array([-abs(math.log(m.slope / 10)) for m in motifs])


def test_choose_takes_the_predicted_best_and_explores_among_the_rest(tmp_path):
    ledger = Ledger(tmp_path / "ledger.json")
    ledger.evaluations = [evaluation(1, -1.0, 0), evaluation(2, math.nan, 0)]
    pool = [SigmoidSlope(s) for s in (0.1, 5, 9, 11, 100)]
    ranker = Ranker()
    greedy = PredictorSearch(ranker, Greedy(), min_distance=0.0, seed=0)
    picks = choose(greedy, ledger, pool, top_k=2, explore=1, left=10, rng=random.Random(0))
    assert ranker.fitted == [1.0]  # failed evaluations are not learned from
    assert [(m.slope, why) for m, why in picks[:2]] == [(11.0, "predicted"), (9.0, "predicted")]
    assert picks[2][1] == "explore" and picks[2][0].slope in (0.1, 5.0, 100.0)
    assert len(choose(greedy, ledger, pool, top_k=2, explore=1, left=1, rng=random.Random(0))) == 1
    assert {why for _, why in choose(RandomSearch(), ledger, pool, 2, 1, 10, random.Random(0))} == {"random"}


def test_cell_candidates_are_new_random_cells_and_mutations_of_the_best(tmp_path):
    from omegaconf import OmegaConf

    from dish.search.loop import candidates

    best, other = RecurrentCell("darts_v2"), RecurrentCell("darts_v1")
    ledger = Ledger(tmp_path / "ledger.json")
    ledger.evaluations = [Evaluation(best.key, best.encode(), -4.0, 0, "start"),
                          Evaluation(other.key, other.encode(), -5.0, 0, "start")]
    cfg = OmegaConf.create({"search": {"candidates": {"random": 5, "mutations": 20, "parents": 1}}})

    class NoPool:
        pool = None

    pool = candidates(cfg, RecurrentCell, NoPool(), ledger, random.Random(0))  # type: ignore[arg-type]
    keys = {cell.key for cell in pool}
    assert best.key not in keys and other.key not in keys and len(keys) == len(pool)
    mutants = [cell for cell in pool if sum(a != b for a, b in zip(cell.nodes, best.nodes, strict=True)) == 1]
    assert len(mutants) >= 10  # 20 single-node mutations of the best cell, less the repeats


@pytest.mark.parametrize(("value", "written"), [
    (None, "null"), (True, "true"), (0.1, "0.1"), ([100, 100], "[100,100]"), ("it's", "'it\\'s'"),
    ({"a": [1, None]}, "{a:[1,null]}"),
])
def test_override_values_are_written_in_hydra_grammar(value, written):
    assert override_value(value) == written



def test_warm_started_dish_begins_where_the_previous_fit_ended():
    from dish.predictors.petri_dish.harness import DishPredictor

    motifs = [SigmoidSlope(s) for s in (0.5, 2.0, 8.0, 30.0)]
    scores = np.array([-2.0, -0.5, -0.2, -1.0])
    for warm in (True, False):
        predictor = DishPredictor(SigmoidSlope, steps=5, warm_start=warm, num_samples=4, inner_steps=3)
        predictor.fit(motifs, scores)
        learned = predictor.dish.synthetic_data()
        predictor.steps = 0  # the next fit trains nothing: it keeps the data it starts from
        predictor.fit(motifs[:3], scores[:3])
        start = predictor.dish.synthetic_data()
        same = all(torch.equal(start[name], learned[name]) for name in learned)
        assert same is warm
