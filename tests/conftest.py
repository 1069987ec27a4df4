"""Shared helpers: running the Hydra task as a subprocess, reading CSV stores, writing IDX files."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# One torch thread per process, here and in every task a test starts: pytest runs a test file per core, and
# processes of two threads each side by side oversubscribe the cores (measured: 3x slower). Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "tasks"

# Environment variables that would let the caller's shell (or a .env) redirect what a task reads or writes.
_SCRUBBED_PREFIXES = ("WANDB_", "HYDRA_")
_SCRUBBED = {"DATA_DIR", "DISH_STORE"}


def task_env(home: Path) -> dict[str, str]:
    """The environment of a task subprocess: W&B offline, its caches under `home`, nothing else redirected."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(_SCRUBBED_PREFIXES) and key not in _SCRUBBED}
    for name in ("cache", "config", "data", "artifacts"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env.update(
        WANDB_MODE="offline",
        WANDB_CACHE_DIR=str(home / "cache"),
        WANDB_CONFIG_DIR=str(home / "config"),
        WANDB_DATA_DIR=str(home / "data"),
        WANDB_ARTIFACT_DIR=str(home / "artifacts"),
        PYTHONUNBUFFERED="1",
    )
    return env


def run_task_process(overrides: list[str], home: Path, timeout: float = 300,
                     task: str = "ground_truth") -> subprocess.CompletedProcess[str]:
    """Run ``python tasks/<task>.py *overrides`` from the repository root and wait for it."""
    return subprocess.run([sys.executable, str(TASKS / f"{task}.py"), *overrides], cwd=REPO, env=task_env(home),
                          capture_output=True, text=True, timeout=timeout, check=False)


def start_task_process(overrides: list[str], home: Path, task: str = "ground_truth") -> subprocess.Popen[str]:
    """Start the task like `run_task_process` without waiting (for cheap runs that may overlap)."""
    return subprocess.Popen([sys.executable, str(TASKS / f"{task}.py"), *overrides], cwd=REPO, env=task_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_after_round_one(process: subprocess.Popen[str], ledgers: Path, seconds: float = 240) -> str:
    """SIGKILL a search's `process` once round 1 is in its ledger (a JSON file under `ledgers`); return its
    output. The caller checks that it was killed (returncode ``-SIGKILL``), not finished first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        files = list(ledgers.glob("*.json"))
        if files and any(e["round"] == 1 for e in json.loads(files[0].read_text() or "{}").get("evaluations", [])):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.1)
    return "".join(process.communicate())


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a CSV store as dicts of strings."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_idx(path: Path, array: np.ndarray, gzipped: bool) -> Path:
    """Write a uint8 array as an IDX file (gzipped to ``path.gz`` when `gzipped`); returns its path."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    if gzipped:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist_like(folder: Path, gzipped: bool, n_train: int = 6, n_test: int = 4,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """The four standard IDX files of a tiny random MNIST-format dataset in `folder`; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(folder / name, array, gzipped)
    return arrays


@pytest.fixture(scope="session")
def task_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where task subprocesses keep W&B's caches and config (never the user's home)."""
    return tmp_path_factory.mktemp("task-home")


@pytest.fixture(scope="session")
def run_task(task_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_task(*overrides)`` runs the ground-truth task in a subprocess; returns the CompletedProcess."""

    def run(*overrides: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_task_process(list(overrides), task_home, timeout)

    return run


@pytest.fixture(scope="session")
def run_compare(task_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_compare(*overrides)`` runs the comparison task in a subprocess; returns the CompletedProcess."""

    def run(*overrides: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_task_process(list(overrides), task_home, timeout, task="compare")

    return run


@pytest.fixture(scope="session")
def run_search(task_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_search(*overrides)`` runs the search task in a subprocess; returns the CompletedProcess."""

    def run(*overrides: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_task_process(list(overrides), task_home, timeout, task="search")

    return run


@pytest.fixture
def flush_denormal():
    """Flush denormals during the test, as the task does (saturated sigmoids make many)."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope="session")
def read_store() -> Callable[[Path], list[dict[str, str]]]:
    """``read_store(path)``: the rows of a CSV store as dicts of strings."""
    return read_csv_rows


@pytest.fixture(scope="session")
def idx_file() -> Callable[..., Path]:
    """``idx_file(path, array, gzipped)``: write one IDX file."""
    return write_idx


@pytest.fixture(scope="session")
def mnist_files() -> Callable[..., dict[str, np.ndarray]]:
    """``mnist_files(folder, gzipped)``: write the four IDX files of a tiny MNIST-format dataset."""
    return write_mnist_like


@pytest.fixture(scope="session")
def start_task(task_home: Path) -> Callable[..., subprocess.Popen[str]]:
    """``start_task(*overrides)`` starts the ground-truth task in a subprocess without waiting for it."""

    def start(*overrides: str) -> subprocess.Popen[str]:
        return start_task_process(list(overrides), task_home)

    return start
