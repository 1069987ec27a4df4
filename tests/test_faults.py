"""Faults that must lose nothing: killed sweeps, diverging jobs, resumed training."""

from __future__ import annotations

import json
import math
import signal
import time

import numpy as np
import pytest
import torch

from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.predictors.petri_dish.harness import DishPredictor

SLOPES = ("0.5", "1.0", "2.0")  # killed in the second: one stored, one resumed (or restarted), one not begun
KILL_SWEEP = ["data=digits", "logger=none", "trainer.max_epochs=30", "checkpoint.every_n_epochs=1",
              "checkpoint.every_minutes=null", f"motif.slope={','.join(SLOPES)}"]


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def reference_rows(tmp_path_factory, run_task, read_store):
    """The same sweep, never interrupted."""
    root = tmp_path_factory.mktemp("reference")
    proc = run_task("-m", *KILL_SWEEP, f"store.path={root / 'gt.csv'}", f"hydra.sweep.dir={root / 'sweep'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {row["motif_key"]: row for row in read_store(root / "gt.csv")}


@pytest.mark.parametrize(("kill", "cut_checkpoint"), [(signal.SIGTERM, False), (signal.SIGKILL, True)],
                         ids=["SIGTERM", "SIGKILL-cut-checkpoint"])
def test_killed_sweep_keeps_finished_rows_and_rerun_trains_only_the_rest(
        tmp_path, kill, cut_checkpoint, start_task, run_task, read_store, reference_rows):
    store = tmp_path / "gt.csv"
    checkpoints = tmp_path / "checkpoints"
    sweep = start_task("-m", *KILL_SWEEP, f"store.path={store}", f"hydra.sweep.dir={tmp_path / 'sweep1'}")
    # kill it in the middle of the second motif's training: one row stored, a checkpoint of the second saved
    def second_motif_saved() -> bool:
        return store.exists() and any(ckpt.stat().st_mtime > store.stat().st_mtime
                                      for ckpt in checkpoints.glob("*/last.ckpt"))

    _wait_for(second_motif_saved, 120, "a row and a later checkpoint")
    sweep.send_signal(kill)
    sweep.communicate(timeout=60)
    # SIGTERM during training: Lightning stops after the step and the task exits with 128 + 15
    assert sweep.returncode in (-kill, 128 + kill)

    rows = read_store(store)
    assert 1 <= len(rows) < len(SLOPES)
    assert all(row["status"] == "ok" and float(row["val_loss"]) > 0 for row in rows)  # complete rows only
    (checkpoint,) = [path for path in checkpoints.glob("*/last.ckpt") if path.stat().st_mtime > store.stat().st_mtime]
    if cut_checkpoint:  # as if the kill had landed while the checkpoint was being written
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    stored_before = {row["motif_key"] for row in rows}

    rerun = run_task("-m", *KILL_SWEEP, f"store.path={store}", f"hydra.sweep.dir={tmp_path / 'sweep2'}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = rerun.stdout + rerun.stderr
    assert log.count("skipping 1 motif(s)") == len(stored_before)  # finished motifs are not trained again
    if cut_checkpoint:  # an unreadable checkpoint is dropped and its motif trained from the start
        assert log.count("is unreadable") == 1 and "resuming from checkpoint" not in log
    else:  # the interrupted motif continues where it was
        assert log.count("resuming from checkpoint") == 1
    after = {row["motif_key"]: row for row in read_store(store)}
    assert len(after) == len(read_store(store)) == len(SLOPES)
    for key, row in after.items():
        for column in ("val_loss", "val_acc", "best_val_loss", "best_epoch", "train_steps"):
            assert row[column] == reference_rows[key][column], (key, column)
    assert not list(checkpoints.glob(f"*{rows[0]['config_hash']}*/last.ckpt"))  # finished work keeps none
    assert not list(tmp_path.glob(".gt.csv.*.tmp"))  # a temporary table of the killed writer is cleaned up


def test_diverging_job_is_recorded_and_the_sweep_goes_on(tmp_path, run_task, read_store):
    store = tmp_path / "gt.csv"
    proc = run_task("-m", "data=digits", "logger=none", "trainer.max_epochs=3", "motif.slope=1.0",
                    "optimizer.lr=0.1,1e37,0.2", f"store.path={store}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_store(store)
    assert len(rows) == 3 and len({row["config_hash"] for row in rows}) == 3
    status = sorted((row["status"], row["reason"].split(" in epoch")[0]) for row in rows)
    assert status == [("failed", "non-finite training loss"), ("ok", ""), ("ok", "")]


def test_diverging_dish_is_reported_and_the_comparison_sweep_goes_on(tmp_path, run_compare):
    table = tmp_path / "u.csv"
    slopes = np.logspace(-2, 2, 12)
    table.write_text("slope,val_loss\n" + "".join(f"{s},{np.log(s) ** 2 + 0.1}\n" for s in slopes.tolist()))
    sweep = tmp_path / "sweep"
    proc = run_compare("-m", f"gt.path={table}", "gt.score=val_loss", "split=random", "split.n=6", "logger=none",
                       "predictors=[dish,quadratic]", "dish.steps=5", "dish.inner_lr=0.5,1e6",
                       f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sane, blown = (json.loads((sweep / str(job) / "comparison.json").read_text())["predictors"] for job in (0, 1))
    assert sane["dish"]["diverged"] is False and math.isfinite(sane["dish"]["spearman"])
    assert blown["dish"]["diverged"] is True and blown["dish"]["diverged_outer_steps"] == 5
    assert blown["dish"]["max_dish_loss"] is None or blown["dish"]["max_dish_loss"] > 10 * 0.25  # null: inf
    assert blown["dish"]["spearman"] is None and blown["dish"]["best_motif"] is None  # no numbers from it (null)
    assert blown["quadratic"]["spearman"] == pytest.approx(1.0, abs=1e-6)  # the other predictors still ran
    assert "the dish diverged" in proc.stdout + proc.stderr


LIVE_SEARCH = ["data=digits", "trainer.max_epochs=1", "search.predictor=random", "search.start.store=false",
               "search.start.random=2", "search.budget=1", "search.explore=0", "search.candidates.slopes=12",
               "logger=none"]


def _ledger(root) -> dict:
    (ledger,) = (root / "searches").glob("*.json")
    return json.loads(ledger.read_text())


@pytest.mark.parametrize(("launcher", "overrides", "error"), [
    ("basic", '["data.normalize=foo"]', "the ground-truth job of sigmoid_slope(slope="),
    ("joblib", '["hydra.launcher.n_jobs=0"]', "the ground-truth jobs of round_0 (ground_truth.launcher=joblib) could "
     "not be launched: ValueError: n_jobs == 0 in Parallel has no meaning; "),
], ids=["job-error", "launcher-error"])
def test_a_failed_launch_stops_the_search_records_no_evaluation_and_a_rerun_retries(tmp_path, run_search, launcher,
                                                                                     overrides, error):
    ledger = f"search.ledger={tmp_path / 'searches' / 'ledger.json'}"  # the same ledger once the fault is gone
    done = run_search(*LIVE_SEARCH, ledger, f"ground_truth.launcher={launcher}",
                      f"ground_truth.launcher_overrides={overrides}", f"store.dir={tmp_path}",
                      f"hydra.run.dir={tmp_path / 'failed'}")
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: ground_truth.launcher: {error}"), line
    assert line.endswith("; the round's picks stay pending, and a rerun retries them")
    if launcher == "basic":  # the job's own one-line error is carried up, naming the job
        assert "(round_0, ground_truth.launcher=basic) failed: job 0 (" in line
        assert "data.normalize: unknown normalisation 'foo' (accepted: unit, standard, none); " in line
    failed = _ledger(tmp_path)
    assert failed["evaluations"] == [] and len(failed["pending"]) == 2
    assert not (tmp_path / "failed" / "search.json").exists()
    if launcher == "joblib":
        return
    done = run_search(*LIVE_SEARCH, ledger, f"store.dir={tmp_path}", f"hydra.run.dir={tmp_path / 'rerun'}")
    assert done.returncode == 0, done.stderr[-3000:]
    evaluations = _ledger(tmp_path)["evaluations"]
    assert [e["motif"] for e in evaluations[:2]] == [entry["motif"] for entry in failed["pending"]]
    assert [e["round"] for e in evaluations] == [0, 0, 1] and all(math.isfinite(e["score"]) for e in evaluations)


def test_a_launched_job_that_diverged_is_a_nan_evaluation(tmp_path, run_search, read_store):
    done = run_search(*LIVE_SEARCH, "search.start.random=1", "optimizer.lr=1e37", "ground_truth.launcher=basic",
                      f"store.dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    evaluations = json.loads((tmp_path / "run" / "search.json").read_text())["evaluations"]
    assert [e["round"] for e in evaluations] == [0, 1]
    assert [e["score"] for e in evaluations] == [None, None]  # NaN, which strict JSON writes as null
    assert {row["status"] for row in read_store(tmp_path / "sigmoid_slope_digits.csv")} == {"failed"}


def _fit_dish(steps: int, checkpoint_dir, resume: bool = True) -> DishPredictor:
    slopes = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    predictor = DishPredictor(SigmoidSlope, steps=steps, checkpoint_dir=str(checkpoint_dir), resume=resume, seed=0,
                              inner_steps=5)
    predictor.fit([SigmoidSlope(s) for s in slopes], -np.abs(np.log(slopes) - np.log(4.0)))
    return predictor


def test_dish_training_resumes_from_its_checkpoint_with_identical_results(tmp_path, flush_denormal):
    uninterrupted = _fit_dish(12, tmp_path / "a")
    _fit_dish(5, tmp_path / "b")  # "killed" after 5 outer steps
    assert torch.load(next((tmp_path / "b").glob("*/last.ckpt")), weights_only=False)["global_step"] == 5
    resumed = _fit_dish(12, tmp_path / "b")
    assert resumed.resumed_from == 5 and uninterrupted.resumed_from is None
    for name, value in uninterrupted.dish.state_dict().items():
        assert torch.equal(value, resumed.dish.state_dict()[name]), name
    motifs = [SigmoidSlope(s) for s in (0.3, 3.0, 30.0)]
    assert np.array_equal(uninterrupted.predict(motifs), resumed.predict(motifs))

