"""Progress reports: log lines for training when stderr is no terminal (a bar when it is), one line per search
round, and one line of wandb output per run."""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TASKS, task_env
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar

from dish.core.runtime import ProgressLog, progress_callback


def run(task: str, overrides: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TASKS / f"{task}.py"), *overrides], cwd=REPO,
                          env={**task_env(home), **env}, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize(("seconds", "epochs"), [("0", list(range(1, 11))), ("1000", [])],
                         ids=["every-tenth", "short-fit-says-nothing"])
def test_training_logs_a_line_per_tenth_when_not_on_a_terminal(tmp_path, task_home, seconds, epochs):
    done = run("ground_truth", ["trainer.max_epochs=10", "logger=none", f"store.path={tmp_path / 'gt.csv'}",
                                f"hydra.run.dir={tmp_path / 'run'}"], task_home, DISH_PROGRESS_SECONDS=seconds)
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    line = r"ground truth of 1 motif\(s\): epoch (\d+)/10, val_loss [\d.]+ \(\d+ s\)$"
    assert [int(epoch) for epoch in re.findall(line, output, re.M)] == epochs
    assert "\r" not in output  # no progress bar in a log
    assert len(re.findall(line, (tmp_path / "run" / "ground_truth.log").read_text(), re.M)) == len(epochs)


def test_a_terminal_gets_a_progress_bar(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(progress_callback("fit"), ProgressLog)  # pytest captures stderr: no terminal
    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = RichProgressBar if importlib.util.find_spec("rich") else TQDMProgressBar  # rich: e.g. through optuna's cliff
    assert isinstance(progress_callback("fit"), bar)


def test_wandb_says_one_line_per_run(tmp_path, task_home):
    run_dir = tmp_path / "run"
    done = run("ground_truth", ["trainer.max_epochs=1", f"store.path={tmp_path / 'gt.csv'}",
                                f"hydra.run.dir={run_dir}"], task_home)
    assert done.returncode == 0, done.stderr[-2000:]
    (offline,) = run_dir.glob("wandb/offline-run-*")
    lines = [line for line in (done.stdout + done.stderr).splitlines() if re.search(r"(^|- )wandb: ", line)]
    assert len(lines) == 1, lines
    assert lines[0].endswith(f"wandb: offline run, upload it with: wandb sync {offline}")


def test_search_logs_one_line_per_round(tmp_path, task_home):
    table = tmp_path / "table.csv"
    slopes = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
    table.write_text("slope,val_loss\n" + "".join(f"{s},{abs(s - 5) / 10}\n" for s in slopes))
    done = run("search", ["ground_truth.oracle=table", f"ground_truth.table={table}", "search.predictor=quadratic",
                          "search.start.store=false", "search.start.random=3", "search.budget=4",
                          f"store.dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", "logger=none"], task_home)
    assert done.returncode == 0, done.stderr[-2000:]
    rounds = re.findall(r"round (\d+): (.*); best so far (-?[\d.]+) \(sigmoid_slope\(slope=[\d.]+\)\); [\d.]+ s$",
                        done.stdout + done.stderr, re.M)
    assert [int(number) for number, _, _ in rounds] == [0, 1, 2]  # 3 starting motifs, then 2 picks a round
    assert [picks.count("sigmoid_slope") for _, picks, _ in rounds] == [3, 2, 2]
    assert "(predicted)" in rounds[1][1] and "(explore)" in rounds[1][1]
    best = [float(score) for _, _, score in rounds]
    assert best == sorted(best)  # the best so far never gets worse
