"""Soak test (not a unit test): a ground-truth sweep on SLURM with random kills, then one rerun.

Submits a multirun of N motifs through ``hydra/launcher=submitit_slurm`` and SIGKILLs a random share of the jobs
(``scancel --signal=KILL``): half of them at start-up (a random moment in their first seconds), the other half
mid-training, once their first checkpoint (``checkpoints/.../last.ckpt`` beside the store) exists. It lets the
sweep end, reruns the same sweep once, and reports rows expected vs rows stored after each pass and how many
jobs of the rerun resumed from a checkpoint. Nothing may be lost: after the rerun rows stored must equal rows
expected, and every job killed mid-training should resume.

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

from omegaconf import OmegaConf

from dish.ground_truth.checkpoints import checkpoint_dir
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.store.csv_store import GroundTruthStore

REPO = Path(__file__).resolve().parents[1]
JOB_NAME = "dish-soak"


def sweep_command(slopes: list[str], store: Path, sweep_dir: Path, epochs: int) -> list[str]:
    return [sys.executable, str(REPO / "tasks" / "ground_truth.py"), "-m", "hydra/launcher=submitit_slurm",
            f"hydra.launcher.name={JOB_NAME}", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
            "hydra.launcher.timeout_min=30", "logger=none", "threads=1", f"trainer.max_epochs={epochs}",
            "checkpoint.every_n_epochs=1", "checkpoint.every_minutes=null", f"store.path={store}",
            f"hydra.sweep.dir={sweep_dir}", "motif.slope=" + ",".join(slopes)]


def queued_jobs(*states: str) -> list[str]:
    """Ids (``<array>_<task>``) of this soak's jobs in SLURM's queue (in `states`, if given)."""
    command = ["squeue", "-h", "-r", "-n", JOB_NAME, "-o", "%i"] + (["-t", ",".join(states)] if states else [])
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout.split()


def stored_rows(store: Path) -> int:
    if not store.exists():
        return 0
    with store.open(newline="") as handle:
        return len(list(csv.DictReader(handle)))


def checkpoint_of(store: Path, slope: str) -> str:
    """The glob of the checkpoint a job training `slope` into `store` saves (any config hash)."""
    folder = checkpoint_dir(OmegaConf.create({"checkpoint": {"dir": None}}), GroundTruthStore(store, SigmoidSlope),
                            "*", [SigmoidSlope(float(slope))])
    return str(folder.relative_to(store.parent) / "last.ckpt")


def pick_kills(jobs: int, kills: int, rng: random.Random) -> dict[int, str]:
    """`kills` random task indices, each killed at ``start-up`` or ``mid-training`` (half each, start-up first)."""
    targets = rng.sample(range(jobs), kills)
    return {task: "start-up" if i < (kills + 1) // 2 else "mid-training" for i, task in enumerate(targets)}


def run_pass(command: list[str], log: Path, slopes: list[str], store: Path, kills: dict[int, str],
             rng: random.Random) -> tuple[int, dict[str, list[str]], float]:
    """Run one sweep and SIGKILL the jobs of `kills` (task index -> moment): a start-up one a random moment
    within 3 s of it starting to run, a mid-training one as soon as its checkpoint exists.

    The launcher gives up at the first killed job, but the other jobs of the array run on: the pass ends when
    the last of them has left the queue. Returns (launcher exit code, jobs killed by moment, seconds).
    """
    start = time.monotonic()
    due: dict[str, float] = {}  # start-up targets: when to kill them
    killed: dict[str, list[str]] = {"start-up": [], "mid-training": []}
    with log.open("w") as handle:
        sweep = subprocess.Popen(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
        while sweep.poll() is None or queued_jobs():
            for job in queued_jobs("RUNNING"):
                task = int(job.rpartition("_")[2])
                moment = kills.get(task)
                if moment is None or any(job in jobs for jobs in killed.values()):
                    continue
                if moment == "start-up":
                    ready = time.monotonic() >= due.setdefault(job, time.monotonic() + rng.uniform(0.0, 3.0))
                else:
                    ready = any(store.parent.glob(checkpoint_of(store, slopes[task])))
                if ready:
                    subprocess.run(["scancel", "--signal=KILL", job], check=True, timeout=30)
                    killed[moment].append(job)
                    print(f"  killed {job} ({moment})", flush=True)
            time.sleep(0.1)
    return sweep.returncode, killed, time.monotonic() - start


def resumed_jobs(sweep_dir: Path) -> int:
    """Jobs of a sweep whose submitit log says they resumed from a checkpoint."""
    return sum(any("resuming from checkpoint" in log.read_text(errors="replace")
                   for log in [*folder.glob("*.err"), *folder.glob("*.out")])
               for folder in (sweep_dir / ".submitit").glob("*") if folder.is_dir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--kill-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=300)  # long enough (seconds) to be killed mid-training
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("outputs/soak") / time.strftime("%Y-%m-%d_%H-%M-%S"))
    args = parser.parse_args()
    if not os.environ.get("SLURM_CONF"):
        sys.exit("error: SLURM_CONF is not set; start a cluster (scripts/slurm_local.sh start) or point at yours")
    rng = random.Random(args.seed)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "gt.csv"
    slopes = [f"{10 ** (-1 + 2.5 * i / max(args.jobs - 1, 1)):.6g}" for i in range(args.jobs)]  # distinct, 0.1..31.6
    kills = pick_kills(args.jobs, round(args.jobs * args.kill_fraction), rng)
    passes = []
    for index, targets in enumerate((kills, {}), start=1):
        print(f"pass {index}: {args.jobs} jobs, killing {len(targets)}", flush=True)
        sweep_dir = workdir / f"sweep{index}"
        command = sweep_command(slopes, store, sweep_dir, args.epochs)
        code, killed, seconds = run_pass(command, workdir / f"sweep{index}.log", slopes, store, targets, rng)
        rows = stored_rows(store)
        passes.append({"pass": index, "exit_code": code, "killed_at_start_up": killed["start-up"],
                       "killed_mid_training": killed["mid-training"], "rows_stored": rows,
                       "rows_expected": args.jobs, "resumed": resumed_jobs(sweep_dir), "seconds": round(seconds, 1)})
        print(f"  exit code {code}, {rows}/{args.jobs} rows stored, {passes[-1]['resumed']} job(s) resumed from a "
              f"checkpoint, {seconds:.0f} s", flush=True)
    mid_training = len(passes[0]["killed_mid_training"])
    report = {"jobs": args.jobs, "passes": passes, "lossless": passes[-1]["rows_stored"] == args.jobs,
              "resumed_of_killed_mid_training": f"{passes[-1]['resumed']}/{mid_training}"}
    (workdir / "soak.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    sys.exit(0 if report["lossless"] else 1)


if __name__ == "__main__":
    main()
