"""Soak test (not a unit test): a ground-truth sweep on SLURM with random kills, then one rerun.

Submits a multirun of N motifs through ``hydra/launcher=submitit_slurm``, SIGKILLs a random share of the jobs
while they run (``scancel --signal=KILL``), lets the sweep end, reruns the same sweep once, and reports rows
expected vs rows stored after each pass. Nothing may be lost: after the rerun both must be equal.

    bash scripts/slurm_local.sh start && eval "$(bash scripts/slurm_local.sh env)"
    python scripts/soak_slurm.py --jobs 50 --kill-fraction 0.1
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOB_NAME = "dish-soak"


def sweep_command(slopes: list[float], store: Path, sweep_dir: Path, epochs: int) -> list[str]:
    return [sys.executable, str(REPO / "tasks" / "ground_truth.py"), "-m", "hydra/launcher=submitit_slurm",
            f"hydra.launcher.name={JOB_NAME}", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
            "hydra.launcher.timeout_min=30", "logger=none", "threads=1", f"trainer.max_epochs={epochs}",
            "checkpoint.every_n_epochs=1", "checkpoint.every_minutes=null", f"store.path={store}",
            f"hydra.sweep.dir={sweep_dir}", "motif.slope=" + ",".join(f"{s:.6g}" for s in slopes)]


def queued_jobs(*states: str) -> list[str]:
    """Ids (``<array>_<task>``) of this soak's jobs in SLURM's queue (in `states`, if given)."""
    command = ["squeue", "-h", "-r", "-n", JOB_NAME, "-o", "%i"] + (["-t", ",".join(states)] if states else [])
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout.split()


def stored_rows(store: Path) -> int:
    if not store.exists():
        return 0
    with store.open(newline="") as handle:
        return len(list(csv.DictReader(handle)))


def run_pass(command: list[str], log: Path, jobs: int, kills: int, rng: random.Random) -> tuple[int, list[str], float]:
    """Run one sweep and SIGKILL `kills` of its jobs, picked at random, each a random moment after it starts.

    The launcher gives up at the first killed job, but the other jobs of the array run on: the pass ends when
    the last of them has left the queue. Returns (launcher exit code, jobs killed, seconds).
    """
    start = time.monotonic()
    targets = set(rng.sample(range(jobs), kills))
    killed: list[str] = []
    with log.open("w") as handle:
        sweep = subprocess.Popen(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
        while sweep.poll() is None or queued_jobs():
            for job in queued_jobs("RUNNING"):
                if int(job.rpartition("_")[2]) in targets and job not in killed:
                    time.sleep(rng.uniform(0.0, 3.0))  # mid-way: a job spends ~5 s starting, ~1 s training
                    subprocess.run(["scancel", "--signal=KILL", job], check=True, timeout=30)
                    killed.append(job)
                    print(f"  killed {job}", flush=True)
            time.sleep(0.2)
    return sweep.returncode, killed, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--kill-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("outputs/soak") / time.strftime("%Y-%m-%d_%H-%M-%S"))
    args = parser.parse_args()
    if not os.environ.get("SLURM_CONF"):
        sys.exit("error: SLURM_CONF is not set; start a cluster (scripts/slurm_local.sh start) or point at yours")
    rng = random.Random(args.seed)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "gt.csv"
    slopes = [10 ** (-1 + 2.5 * i / max(args.jobs - 1, 1)) for i in range(args.jobs)]  # distinct, 0.1..31.6
    kills = round(args.jobs * args.kill_fraction)
    passes = []
    for index, kill in enumerate((kills, 0), start=1):
        print(f"pass {index}: {args.jobs} jobs, killing {kill}", flush=True)
        command = sweep_command(slopes, store, workdir / f"sweep{index}", args.epochs)
        code, killed, seconds = run_pass(command, workdir / f"sweep{index}.log", args.jobs, kill, rng)
        rows = stored_rows(store)
        passes.append({"pass": index, "exit_code": code, "killed": killed, "rows_stored": rows,
                       "rows_expected": args.jobs, "seconds": round(seconds, 1)})
        print(f"  exit code {code}, {rows}/{args.jobs} rows stored, {seconds:.0f} s", flush=True)
    report = {"jobs": args.jobs, "passes": passes, "lossless": passes[-1]["rows_stored"] == args.jobs}
    (workdir / "soak.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    sys.exit(0 if report["lossless"] else 1)


if __name__ == "__main__":
    main()
