"""A multirun of each task with no ``hydra.sweep.dir`` writes where the README says:
``outputs/<task>/multiruns/<time>/<job>/``, relative to the directory the command runs in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TASKS, task_env

SLOPES = np.logspace(-1, 1.5, 8)


def _run(task: str, cwd: Path, home: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TASKS / f"{task}.py"), "-m", *overrides], cwd=cwd,
                          env=task_env(home), capture_output=True, text=True, timeout=300, check=False)


def _table(path: Path) -> Path:
    """A user's own table: slopes and a U-shaped val_loss, no config hash."""
    lines = ["slope,val_loss", *(f"{slope:.4g},{(np.log(slope) - 1) ** 2 + 0.1:.4f}" for slope in SLOPES)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("task", "overrides", "written"), [
    ("ground_truth", ["motif.slope=0.5,2", "trainer.max_epochs=1", "logger=none", "store.dir=store"],
     ".hydra/config.yaml"),
    ("compare", ["gt.path=TABLE", "split.n=4", "seed=0,1", "predictors=[quadratic]", "logger=none"],
     "comparison.json"),
    ("search", ["ground_truth.oracle=table", "ground_truth.table=TABLE", "search.predictor=random,quadratic",
                "search.budget=2", "search.start.store=false", "search.start.random=3", "logger=none",
                "store.dir=store"], "search.json"),
])
def test_multirun_without_sweep_dir_writes_under_outputs_task_multiruns(tmp_path: Path, task_home: Path, task: str,
                                                                        overrides: list[str], written: str) -> None:
    table = _table(tmp_path / "table.csv")
    done = _run(task, tmp_path, task_home, *(o.replace("TABLE", str(table)) for o in overrides))
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / task / "multiruns").iterdir()
    jobs = sorted(path.name for path in sweep.iterdir() if path.is_dir() and not path.name.startswith("."))
    assert jobs == ["0", "1"]
    assert all((sweep / job / written).is_file() for job in jobs)
    assert (sweep / "multirun.yaml").is_file()
