"""Ground truth through a real SLURM cluster (Hydra's submitit launcher), requeue included.

Uses the cluster that ``SLURM_CONF`` points at, else starts a single-node one with ``scripts/slurm_local.sh``
(needs root and Debian's slurm-wlm and munge). Where neither works the tests skip with the reason, except
under CI, where they must run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, TASKS, read_csv_rows, task_env

SCRIPT = REPO / "scripts" / "slurm_local.sh"
SWEEP = ["data=digits", "logger=none", "threads=1", "hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=10",
         "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]


def _cluster_up(env: dict[str, str]) -> bool:
    if not shutil.which("scontrol"):
        return False
    ping = subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True, timeout=30, check=False)
    return "UP" in ping.stdout


@pytest.fixture(scope="module")
def slurm_env():
    """The environment of a SLURM client: the caller's cluster, or one this module starts and stops."""
    env = dict(os.environ)
    if env.get("SLURM_CONF") and _cluster_up(env):
        yield env
        return
    # munged wants every directory above its socket searchable by all (pytest's temporary dirs are not)
    state = Path(tempfile.mkdtemp(prefix="dish-slurm-"))
    state.chmod(0o755)
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state)], capture_output=True, text=True,
                             timeout=300, check=False)
    env["SLURM_CONF"] = str(state / "etc" / "slurm.conf")
    if started.returncode != 0 or not _cluster_up(env):
        reason = f"no SLURM cluster could be started here: {(started.stderr or started.stdout).strip()[-500:]}"
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True, timeout=120, check=False)
        shutil.rmtree(state, ignore_errors=True)
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield env
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True, timeout=120, check=False)
        shutil.rmtree(state, ignore_errors=True)


def _sweep(env: dict[str, str], home: Path, overrides: list[str]) -> subprocess.Popen[str]:
    """Start ``tasks/ground_truth.py -m`` with the SLURM client environment."""
    run_env = {**task_env(home), "SLURM_CONF": env["SLURM_CONF"]}
    return subprocess.Popen([sys.executable, str(TASKS / "ground_truth.py"), "-m", *SWEEP, *overrides], cwd=REPO,
                            env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _sacct_states(env: dict[str, str], job: str, settle_seconds: float = 60) -> set[str]:
    """The job's states in SLURM's accounting, once they are final: slurmdbd records a job's end a moment after
    the job (and submitit, which reads squeue) has seen it."""
    deadline = time.monotonic() + settle_seconds
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job], env=env, capture_output=True,
                             text=True, timeout=30, check=True).stdout
        states = {line.strip() for line in out.splitlines() if line.strip()}
        if not states & {"PENDING", "RUNNING", "COMPLETING"} or time.monotonic() > deadline:
            return states
        time.sleep(1)


def test_sweep_runs_as_slurm_jobs_and_fills_the_store(slurm_env, tmp_path, task_home):
    store = tmp_path / "gt.csv"
    sweep = _sweep(slurm_env, task_home, ["motif.slope=0.5,2,8", "trainer.max_epochs=5", f"store.path={store}",
                                          f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    output, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, output[-3000:]
    rows = read_csv_rows(store)
    assert sorted(float(row["slope"]) for row in rows) == [0.5, 2.0, 8.0]
    assert all(row["status"] == "ok" for row in rows)
    jobs = {row["slurm_job"] for row in rows}
    assert len(jobs) == 3 and all(jobs), jobs  # each row was made inside its own SLURM job
    for job in jobs:
        assert _sacct_states(slurm_env, job) == {"COMPLETED"}, job
    # submitit kept each job's log under the sweep, named by its SLURM job id
    logs = {path.name for path in (tmp_path / "sweep" / ".submitit").glob("*/*_log.out")}
    assert {f"{job}_0_log.out" for job in jobs} <= logs


def test_requeued_job_resumes_from_its_last_checkpoint(slurm_env, tmp_path, task_home, run_task, read_store):
    epochs = ["motif.slope=2", "trainer.max_epochs=300", "checkpoint.every_n_epochs=5", "checkpoint.every_minutes=null"]
    store = tmp_path / "gt.csv"
    sweep = _sweep(slurm_env, task_home, [*epochs, f"store.path={store}", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    checkpoint = tmp_path / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(checkpoint.glob("*/last.ckpt")):
        assert sweep.poll() is None and time.monotonic() < deadline, "no checkpoint before the job ended"
        time.sleep(0.05)
    job = next(path.name for path in (tmp_path / "sweep" / ".submitit").iterdir() if path.name[0].isdigit())
    requeue = subprocess.run(["scontrol", "requeue", job], env=slurm_env, capture_output=True, text=True, timeout=30,
                             check=False)
    assert requeue.returncode == 0, requeue.stderr
    output, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, output[-3000:]
    log = next((tmp_path / "sweep" / ".submitit").glob(f"{job}/*_log.out")).read_text()
    assert log.count("resuming from checkpoint") == 1, log[-3000:]
    rows = read_store(store)
    assert len(rows) == 1 and rows[0]["slurm_job"].startswith(job.split("_")[0])

    # the same numbers as a run that was never interrupted
    reference = tmp_path / "reference.csv"
    proc = run_task(*epochs, "data=digits", "logger=none", "threads=1", f"store.path={reference}",
                    f"hydra.run.dir={tmp_path / 'reference'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for column in ("val_loss", "val_acc", "best_val_loss", "best_epoch", "train_steps"):
        assert rows[0][column] == read_store(reference)[0][column], column


def test_the_dish_sweeper_sends_every_ground_truth_evaluation_as_a_slurm_job(slurm_env, tmp_path, task_home):
    search = '["search.budget=4","search.start.random=2","search.candidates.slopes=12"]'
    sweep = _sweep(slurm_env, task_home, ["hydra/sweeper=dish", "hydra.sweeper.strategy=random",
                                          f"hydra.sweeper.search={search}", "trainer.max_epochs=3",
                                          f"store.dir={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    output, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, output[-3000:]
    result = json.loads((tmp_path / "sweep" / "search.json").read_text())
    assert [e["round"] for e in result["evaluations"]] == [0, 0, 1, 1, 2, 2]  # 2 starting motifs, 2 rounds of 2
    rows = read_csv_rows(tmp_path / "sigmoid_slope_digits.csv")
    jobs = {row["slurm_job"] for row in rows}
    assert len(rows) == 6 and len(jobs) == 6 and "" not in jobs  # every evaluation its own SLURM job
    assert {e["motif"]["slope"]: e["score"] for e in result["evaluations"]} == {
        float(row["slope"]): -float(row["val_loss"]) for row in rows}
    for job in jobs:
        assert _sacct_states(slurm_env, job) == {"COMPLETED"}
