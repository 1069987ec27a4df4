"""The search as a Hydra sweeper over the ground-truth task (``hydra/sweeper=dish``), run as users run it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, TASKS, kill_after_round_one, run_task_process, start_task_process, task_env

PID_FORMAT = "hydra.job_logging.formatters.simple.format='pid=%(process)d %(name)s %(message)s'"
SWEEPER_PID_FORMAT = "hydra.hydra_logging.formatters.simple.format='pid=%(process)d %(name)s %(message)s'"
SEARCH = '["search.budget=4","search.start.random=2","search.candidates.slopes=12"]'
SWEEP = ["-m", "hydra/sweeper=dish", "hydra.sweeper.strategy=random", f"hydra.sweeper.search={SEARCH}",
         "data=digits", "trainer.max_epochs=2", "logger=none", "threads=1"]


def test_the_sweeper_is_a_hydra_plugin(task_home):
    info = subprocess.run([sys.executable, str(TASKS / "ground_truth.py"), "--info", "plugins"], cwd=REPO,
                          env=task_env(task_home), capture_output=True, text=True, timeout=120, check=True)
    assert re.search(r"Sweeper:\n\t-+\n(\t\t\w+\n)*\t\tDishSweeper\n", info.stdout), info.stdout[:2000]


def test_joblib_runs_each_pick_in_another_process_and_returns_its_row(tmp_path, task_home, read_store):
    done = run_task_process([*SWEEP, "hydra/launcher=joblib", PID_FORMAT, SWEEPER_PID_FORMAT, f"store.dir={tmp_path}",
                             f"hydra.sweep.dir={tmp_path / 'sweep'}"], task_home, 400)
    assert done.returncode == 0, done.stderr[-3000:]
    sweeper_pid = int(re.search(r"pid=(\d+) dish.search.loop", done.stdout + done.stderr).group(1))
    job_logs = sorted((tmp_path / "sweep").glob("*/ground_truth.log"))
    assert len(job_logs) == 6  # 2 starting motifs, then 2 rounds of 2: one job each
    job_pids = {int(re.search(r"pid=(\d+) dish.ground_truth.job", log.read_text()).group(1)) for log in job_logs}
    assert sweeper_pid not in job_pids
    result = json.loads((tmp_path / "sweep" / "search.json").read_text())
    assert result["spent"] == 4 and [e["round"] for e in result["evaluations"]] == [0, 0, 1, 1, 2, 2]
    stored = {float(row["slope"]): -float(row["val_loss"]) for row in read_store(tmp_path / "sigmoid_slope_digits.csv")}
    assert {e["motif"]["slope"]: e["score"] for e in result["evaluations"]} == stored


def test_a_killed_sweep_resumes_from_its_ledger_and_retrains_nothing(tmp_path, task_home, read_store):
    overrides = [*SWEEP, f"store.dir={tmp_path}"]
    first = start_task_process([*overrides, f"hydra.sweep.dir={tmp_path / 'first'}"], task_home)
    first_log = kill_after_round_one(first, tmp_path / "searches")
    assert first.returncode == -signal.SIGKILL, "the sweep ended before it could be interrupted"
    done = run_task_process([*overrides, f"hydra.sweep.dir={tmp_path / 'second'}"], task_home, 300)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "continuing the search" in log
    result = json.loads((tmp_path / "second" / "search.json").read_text())
    assert result["spent"] == 4 and len({e["key"] for e in result["evaluations"]}) == 6
    rows = read_store(tmp_path / "sigmoid_slope_digits.csv")
    assert len(rows) == len({row["motif_key"] for row in rows}) == 6
    trained = sum(int(n) for n in re.findall(r"wrote (\d+) row", first_log + log))
    assert trained == 6  # every motif trained once over both runs


def test_optuna_sweeper_minimises_the_stored_val_loss_of_the_slope_kind(tmp_path, task_home, read_store):
    done = run_task_process(["experiment=optuna_slope", "hydra.sweeper.n_trials=3", "trainer.max_epochs=1",
                             "threads=1", f"store.dir={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                            task_home, 300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_store(tmp_path / "sigmoid_slope_digits.csv")
    slopes = [float(row["slope"]) for row in rows]
    assert len(rows) == 3 and len(set(slopes)) == 3 and all(0.01 <= s <= 1000 for s in slopes)
    best = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    losses = {float(row["slope"]): float(row["val_loss"]) for row in rows}
    assert best["best_value"] == pytest.approx(min(losses.values()))  # the job returned its stored val_loss
    assert float(f"{best['best_params']['motif.slope']:.10g}") == min(losses, key=losses.get)
