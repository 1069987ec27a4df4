"""Bad input as users type it: one line on stderr naming the field and the accepted values, exit code 2, before
any training or W&B run; HYDRA_FULL_ERROR only when the user sets it, and never seen by the jobs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TASKS, task_env
from hydra.errors import ConfigCompositionException

from dish.cli import user_error
from dish.core.errors import ConfigError, JobError

# case: (task, overrides, the error line or its start, words the line must hold)
BAD_INPUTS = {
    "typo-group": ("ground_truth", ["dat=digits"], "error: dat: no such config key or group (accepted: ",
                   ["data", "motif", "trainer"]),
    "typo-key": ("ground_truth", ["moitf.slope=2"], "error: moitf: no such config key or group (accepted: ",
                 ["motif"]),
    "added-typo": ("ground_truth", ["+moitf.slope=2"],
                   "error: moitf.slope: no config file defines this key and nothing reads it (accepted: ",
                   ["motif", "population"]),
    "added-trainer-key": ("ground_truth", ["+trainer.foo=1"],
                          "error: trainer.foo: pytorch_lightning.Trainer takes no argument 'foo' (accepted: ",
                          ["max_epochs", "precision"]),
    "epochs-not-a-number": ("ground_truth", ["trainer.max_epochs=ten"],
                            "error: trainer.max_epochs: got 'ten' (accepted: an integer >= 1)", []),
    "negative-epochs": ("ground_truth", ["trainer.max_epochs=-3"],
                        "error: trainer.max_epochs: got -3 (accepted: an integer >= 1)", []),
    "negative-lr": ("ground_truth", ["optimizer.lr=-1"], "error: optimizer.lr: got -1; torch.optim.SGD says: "
                    "Invalid learning rate: -1 (accepted: a number >= 0)", []),
    "population-of-another-kind": ("ground_truth", ["task=rnn_cell", "population.slopes=[1,2]"],
                                   "error: population.slopes: no such config key or group (accepted: cells, motifs)",
                                   []),
    "split-n-not-a-number": ("compare", ["gt.path={table}", "split.n=abc"],
                             "error: split.n: got 'abc' (accepted: an integer >= 0)", []),
    "no-gt-path": ("compare", [], "error: gt.path: is required: the ground-truth CSV to compare the predictors on "
                   "(accepted: a CSV file, e.g. gt.path=store/sigmoid_slope_digits.csv)", []),
    "missing-gt-file": ("compare", ["gt.path=nonexistent.csv"], "error: gt.path: no such file nonexistent.csv "
                        "(accepted: an existing ground-truth CSV, gt.build=[...] to train it first)", []),
    "negative-dish-steps": ("compare", ["gt.path={table}", "dish.steps=-5"],
                            "error: dish.steps: got -5 (accepted: an integer >= 1)", []),
    "proxy-not-for-the-kind": ("compare", ["gt.path={table}", "predictors=[dish,hidden_cov]"],
                               "error: predictors: hidden_cov does not apply to motif kind 'sigmoid_slope' "
                               "(accepted: ", ["dish", "gbt", "dish_stacked", "early_stop", "synflow"]),
    "unknown-predictor": ("compare", ["gt.path={table}", "predictors=[xgboost]"],
                          "error: predictors: unknown predictor 'xgboost' (accepted: ",
                          ["random_forest", "hidden_cov", "jacob_cov"]),
    "early-stop-on-a-table-from-outside": ("compare", ["gt.path={table}", "predictors=[early_stop]"],
                                           "error: early_stop.fraction: re-training at a fraction of the budget "
                                           "needs a table this project trained (gt.build)",
                                           ["gt.build=<the ground-truth overrides that train the table>"]),
    "sigmoid-readout-with-logits": ("compare", ["gt.path={table}", "dish.readout=sigmoid", "dish.loss=bce"],
                                    "error: dish.readout: got 'sigmoid' with dish.loss=bce, which reads the outputs "
                                    "as logits (accepted: linear (with dish.loss=bce), sigmoid (with dish.loss=mse))",
                                    []),
    "bad-readout": ("compare", ["gt.path={table}", "dish.readout=tanh"],
                    "error: dish.readout: got 'tanh' (accepted: linear, sigmoid)", []),
    "stacked-encoding": ("compare", ["gt.path={table}", "predictors=[dish_stacked]",
                                     "dish_stacked.encodings=[dish]"],
                         "error: dish_stacked.encodings: got 'dish' (accepted: ", ["gp", "quadratic", "gbt"]),
}


def write_table(path: Path) -> Path:
    """A ground-truth CSV of 8 slopes whose loss is a U in log-slope."""
    slopes = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20]
    path.write_text("slope,val_loss\n" + "".join(f"{s},{abs(s - 2) / 10}\n" for s in slopes))
    return path


def run(task: str, overrides: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TASKS / f"{task}.py"), *overrides], cwd=REPO,
                          env={**task_env(home), **env}, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, task_home):
    """Every case, started at once (they fail before training, so they overlap cheaply)."""
    root = tmp_path_factory.mktemp("bad-input")
    table = write_table(root / "table.csv")
    started = {}
    for case, (task, overrides, _, _) in BAD_INPUTS.items():
        args = [arg.format(table=table) for arg in overrides]
        args += [f"hydra.run.dir={root / case}", f"store.path={root / case}.csv"] if task == "ground_truth" \
            else [f"hydra.run.dir={root / case}"]
        started[case] = subprocess.Popen([sys.executable, str(TASKS / f"{task}.py"), *args], cwd=REPO,
                                         env=task_env(task_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
    results = {case: (process.wait(timeout=300), *process.communicate()) for case, process in started.items()}
    return root, results


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_before_anything_runs(bad_runs, case):
    root, results = bad_runs
    returncode, stdout, stderr = results[case]
    _, _, expected, words = BAD_INPUTS[case]
    assert returncode == 2, stderr
    (line,) = stderr.splitlines()
    assert line.startswith(expected) if words else line == expected, line
    accepted = line.rpartition("(accepted: ")[2].rstrip(")").split(", ")
    assert set(words) <= set(accepted), accepted
    assert "Traceback" not in stdout + stderr
    assert not (root / case / "wandb").exists()  # no W&B run was opened
    assert not (root / f"{case}.csv").exists()  # nothing was trained


def test_a_real_trainer_argument_can_be_added(tmp_path, task_home):
    done = run("ground_truth", ["+trainer.precision=32", "trainer.max_epochs=1", "logger=none",
                                f"store.path={tmp_path / 'gt.csv'}", f"hydra.run.dir={tmp_path / 'run'}"], task_home)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "gt.csv").exists()


def test_bad_job_ends_the_multirun_with_one_line_naming_it(tmp_path, task_home):
    sweep = tmp_path / "sweep"
    done = run("ground_truth", ["-m", "motif.slope=-1,2", "trainer.max_epochs=1", "logger=none",
                                f"store.path={tmp_path / 'gt.csv'}", f"hydra.sweep.dir={sweep}"], task_home)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: job 0 (motif.slope=-1 trainer.max_epochs=1 logger=none store.path={tmp_path / 'gt.csv'}): "
        "motif.slope: must be a positive number in [1e-30, 1e+30] (float32 networks), got -1"]
    assert not (sweep / "1").exists()  # the sweep ended there


@pytest.mark.parametrize("multirun", [[], ["-m", "hydra/launcher=joblib", "motif.slope=1,2"]],
                         ids=["single-run", "joblib-workers"])
def test_jobs_never_see_the_hydra_full_error_that_dish_sets(tmp_path, task_home, multirun):
    """The CSV logger's name is resolved inside the job, from the job's environment."""
    done = run("ground_truth", [*multirun, "logger=csv", "logger.name=${oc.env:HYDRA_FULL_ERROR,unset}",
                                "trainer.max_epochs=1", f"store.path={tmp_path / 'gt.csv'}",
                                f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'run'}"],
               task_home)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {path.parent.name for path in (tmp_path / "run").glob("**/version_0")} == {"unset"}


def test_hydra_full_error_set_by_the_user_gives_the_traceback_and_reaches_the_job(tmp_path, task_home):
    done = run("ground_truth", ["trainer.max_epochs=ten", f"hydra.run.dir={tmp_path / 'run'}"], task_home,
               HYDRA_FULL_ERROR="1")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == ("dish.core.errors.ConfigError: trainer.max_epochs: got 'ten' "
                                                    "(accepted: an integer >= 1)")


def test_user_error_reads_through_the_exceptions_it_was_raised_from():
    wrapped = RuntimeError("while launching")
    wrapped.__cause__ = ConfigError("split.n", "got 'abc'", accepted=["an integer >= 0"])
    assert user_error(wrapped) == "split.n: got 'abc' (accepted: an integer >= 0)"
    assert user_error(JobError("job 1 (seed=x): seed: got 'x'")) == "job 1 (seed=x): seed: got 'x'"
    assert user_error(ConfigCompositionException("Could not override 'x'.\nTo append use +x=1")) == (
        "Could not override 'x'. To append use +x=1")
    assert user_error(RuntimeError("a bug")) is None  # a bug keeps its traceback
