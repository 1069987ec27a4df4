"""The ground-truth task as users run it: `python tasks/ground_truth.py [overrides]` in a subprocess."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from wandb_records import summarize

SLOPES = {0.5, 2.0, 8.0}
CONTRACT_COLUMNS = {"slope", "val_loss", "val_acc", "status", "config_hash", "git_commit", "dish_version",
                    "seed", "wall_seconds", "train_steps"}
# Put the process id into every job log line, so the logs show which process ran each job.
PID_LOG_FORMAT = "hydra.job_logging.formatters.simple.format='pid=%(process)d %(name)s %(message)s'"


def ok(proc) -> None:
    tails = f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"exit {proc.returncode}\n{tails}"


def by_slope(rows: list[dict[str, str]]) -> dict[float, dict[str, str]]:
    return {float(row["slope"]): row for row in rows}


def joblib_command(store: Path, sweep_dir: Path) -> list[str]:
    return ["-m", "hydra/launcher=joblib", "data=digits", "motif.slope=0.5,2,8", f"store.path={store}",
            f"hydra.sweep.dir={sweep_dir}", "logger=csv", "trainer.max_epochs=10", PID_LOG_FORMAT]


# --- one job per motif with the joblib launcher, and the same motifs as one population ----------------------

@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory, run_task):
    root = tmp_path_factory.mktemp("joblib")
    store, sweep_dir = root / "joblib.csv", root / "sweep"
    proc = run_task(*joblib_command(store, sweep_dir))
    ok(proc)
    return {"proc": proc, "root": root, "store": store, "sweep": sweep_dir}


@pytest.fixture(scope="module")
def population_run(tmp_path_factory, run_task, read_store):
    root = tmp_path_factory.mktemp("population")
    store, run_dir = root / "population.csv", root / "run"
    proc = run_task("data=digits", "population.slopes=[0.5,2,8]", f"store.path={store}",
                    f"hydra.run.dir={run_dir}", "logger=csv", "trainer.max_epochs=10")
    ok(proc)
    return {"proc": proc, "store": store, "run": run_dir, "rows": read_store(store)}


def test_joblib_sweep_stores_one_row_per_motif(joblib_sweep, read_store):
    rows = read_store(joblib_sweep["store"])
    assert len(rows) == 3
    assert set(rows[0]) >= CONTRACT_COLUMNS
    assert {float(row["slope"]) for row in rows} == SLOPES
    assert {row["motif_key"] for row in rows} == {f"sigmoid_slope(slope={s})" for s in SLOPES}
    for row in rows:
        assert row["status"] == "ok"
        assert row["reason"] == ""
        assert row["data"] == "digits"
        assert row["seed"] == "0"
        assert row["population_size"] == "1"
        assert row["epochs"] == "10"
        assert row["train_steps"] == "150"  # 10 epochs x 15 minibatches of 100 digits
        assert row["git_commit"]
        assert re.fullmatch(r"\d+\.\d+\.\d+.*", row["dish_version"])
        assert float(row["wall_seconds"]) > 0
        assert 0 <= float(row["val_acc"]) <= 1
        assert float(row["best_val_loss"]) <= float(row["val_loss"])
    assert len({row["config_hash"] for row in rows}) == 1
    assert re.fullmatch(r"[0-9a-f]{12}", rows[0]["config_hash"])
    # the steep slope learns within 10 epochs, the flat one does not
    scores = by_slope(rows)
    assert float(scores[8.0]["val_acc"]) > 0.8 > float(scores[0.5]["val_acc"])


def test_joblib_jobs_ran_in_several_processes(joblib_sweep, read_store):
    sweep = joblib_sweep["sweep"]
    pids, slopes = set(), set()
    for job in range(3):
        job_dir = sweep / str(job)
        # each job wrote its own Lightning CSV log: 10 validation epochs
        (metrics,) = job_dir.glob("csv/version_*/metrics.csv")
        val_rows = [row for row in read_store(metrics) if row.get("val/loss")]
        assert [int(row["epoch"]) for row in val_rows] == list(range(10))
        log = (job_dir / "ground_truth.log").read_text()
        pids |= {int(pid) for pid in re.findall(r"^pid=(\d+) dish\.ground_truth\.job wrote 1 row", log, re.M)}
        slopes |= {float(s) for s in re.findall(r"sigmoid_slope\(slope=([\d.]+)\)", log)}
    assert not (sweep / "3").exists()
    assert slopes == SLOPES
    assert len(pids) >= 2, pids  # a pool of worker processes, not one process after another


def test_joblib_rerun_skips_stored_motifs(joblib_sweep, run_task):
    store = joblib_sweep["store"]
    before = store.read_bytes()
    rerun_dir = joblib_sweep["root"] / "sweep-again"
    proc = run_task(*joblib_command(store, rerun_dir))
    ok(proc)
    assert store.read_bytes() == before  # no row added, none rewritten
    for job in range(3):
        log = (rerun_dir / str(job) / "ground_truth.log").read_text()
        skipped = r"skipping 1 motif\(s\) already in .*joblib\.csv under config [0-9a-f]{12}"
        assert re.search(skipped, log), log
        assert "wrote" not in log
        assert not (rerun_dir / str(job) / "csv").exists()  # nothing was trained or logged


def test_submitit_local_sweep_pickles_the_task_and_stores_rows(tmp_path, run_task, read_store, joblib_sweep):
    """submitit pickles the task function into each job (as on SLURM); the rows match the joblib sweep's."""
    store, sweep = tmp_path / "gt.csv", tmp_path / "sweep"
    proc = run_task("-m", "hydra/launcher=slurm_local", "data=digits", "motif.slope=0.5,8", f"store.path={store}",
                    f"hydra.sweep.dir={sweep}", "logger=none", "trainer.max_epochs=10")
    ok(proc)
    assert len(list((sweep / ".submitit").glob("*/*_submitted.pkl"))) == 2
    reference = by_slope(read_store(joblib_sweep["store"]))
    for slope, row in by_slope(read_store(store)).items():
        assert row["status"] == "ok"
        assert abs(float(row["val_loss"]) - float(reference[slope]["val_loss"])) <= 1e-4, slope


def test_population_writes_one_row_per_motif_from_one_process(population_run, read_store):
    rows = population_run["rows"]
    assert len(rows) == 3
    assert {float(row["slope"]) for row in rows} == SLOPES
    assert {row["population_size"] for row in rows} == {"3"}
    assert len({row["wall_seconds"] for row in rows}) == 1  # one training of all three
    assert {row["status"] for row in rows} == {"ok"}
    assert {row["train_steps"] for row in rows} == {"150"}
    log = (population_run["run"] / "ground_truth.log").read_text()
    assert len(re.findall(r"wrote 3 row\(s\)", log)) == 1
    # one CSV log for the whole population, with one column per member
    (metrics,) = population_run["run"].glob("csv/version_*/metrics.csv")
    header = set(read_store(metrics)[0])
    assert {f"val/loss/sigmoid_slope(slope={s})" for s in SLOPES} <= header


def test_population_agrees_with_single_jobs(joblib_sweep, population_run, read_store):
    singles = by_slope(read_store(joblib_sweep["store"]))
    together = by_slope(population_run["rows"])
    hashes = {row["config_hash"] for row in together.values()}
    assert hashes == {row["config_hash"] for row in singles.values()}
    assert len(hashes) == 1
    for slope in SLOPES:
        assert abs(float(together[slope]["val_loss"]) - float(singles[slope]["val_loss"])) <= 1e-4, slope
        acc_difference = abs(float(together[slope]["val_acc"]) - float(singles[slope]["val_acc"]))
        assert acc_difference <= 1 / 360 + 1e-6, slope


def test_force_retrains_and_replaces_rows(population_run, run_task, read_store):
    store = population_run["store"]
    run_dir = population_run["run"].parent / "forced"
    proc = run_task("data=digits", "population.slopes=[0.5,2,8]", f"store.path={store}",
                    f"hydra.run.dir={run_dir}", "logger=none", "trainer.max_epochs=10", "force=true")
    ok(proc)
    rows = read_store(store)
    assert len(rows) == 3
    assert len({(row["motif_key"], row["config_hash"]) for row in rows}) == 3
    log = (run_dir / "ground_truth.log").read_text()
    assert "wrote 3 row(s)" in log
    assert "skipping" not in log
    first, again = by_slope(population_run["rows"]), by_slope(rows)
    for slope in SLOPES:
        assert again[slope]["val_loss"] == first[slope]["val_loss"]  # same config, same numbers


# --- Weights & Biases, offline ------------------------------------------------------------------------------

def offline_runs(directory: Path) -> list[Path]:
    return sorted(directory.glob("wandb/offline-run-*/run-*.wandb"))


def test_wandb_offline_run(tmp_path, run_task, read_store):
    store, run_dir = tmp_path / "wandb.csv", tmp_path / "run"
    proc = run_task(f"store.path={store}", f"hydra.run.dir={run_dir}", "trainer.max_epochs=3")
    ok(proc)
    (run_file,) = offline_runs(run_dir)
    record = summarize(run_file)
    config = record["config"]
    assert {"data", "motif", "optimizer", "trainer", "model", "store", "seed"} <= set(config)
    assert config["data"]["_target_"] == "dish.data.DigitsDataModule"
    assert config["motif"]["slope"] == 1.0
    assert config["optimizer"]["lr"] == 0.1
    assert config["trainer"]["max_epochs"] == 3
    assert config["store"]["path"] == str(store)
    validation = [row for row in record["history"] if "val/loss" in row]
    assert [row["epoch"] for row in validation] == [0, 1, 2]
    assert all(0 <= row["val/acc"] <= 1 and math.isfinite(row["val/loss"]) for row in validation)
    assert len([row for row in record["history"] if "train/loss" in row]) == 3
    assert record["run"]["job_type"] == "ground_truth"
    assert record["run"]["run_id"] in run_file.name
    # the run also has the stored result
    (row,) = read_store(store)
    (final,) = [r for r in record["history"] if "final/val_loss" in r]
    assert final["final/val_loss"] == pytest.approx(float(row["val_loss"]), rel=1e-6)
    assert validation[-1]["val/loss"] == pytest.approx(float(row["val_loss"]), rel=1e-6)
    assert any("ground_truth/nrows" in r and r["ground_truth/nrows"] == 1 for r in record["history"])


def test_wandb_multirun_in_one_process_gives_one_run_per_job(tmp_path, run_task, read_store):
    store, sweep = tmp_path / "wandb-sweep.csv", tmp_path / "sweep"
    proc = run_task("-m", "motif.slope=1,4", "trainer.max_epochs=2", f"store.path={store}",
                    f"hydra.sweep.dir={sweep}")
    ok(proc)
    runs = []
    for job, slope in ((0, 1.0), (1, 4.0)):
        (run_file,) = offline_runs(sweep / str(job))
        record = summarize(run_file)
        assert record["config"]["motif"]["slope"] == slope  # each job's own config ...
        assert len([row for row in record["history"] if "val/loss" in row]) == 2  # ... and its own history
        runs.append(record["run"])
    assert runs[0]["run_id"] != runs[1]["run_id"]
    assert runs[0]["run_group"] == runs[1]["run_group"] == f"ground_truth-{sweep.name}"
    assert {run["job_type"] for run in runs} == {"ground_truth"}
    assert {float(row["slope"]) for row in read_store(store)} == {1.0, 4.0}


# --- bad input: one line on stderr, exit code 2, nothing trained --------------------------------------------

GARBAGE = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd\x80\x81\x00garbage"

BAD_INPUTS = {
    "unknown-data": (["data=foo"],
                     "data: unknown option 'foo' (accepted: digits, fashion_mnist, mnist, ptb, python_docs, "
                     "wikitext2)"),
    "unknown-motif": (["motif=bar"], "motif: unknown option 'bar' (accepted: activation, nb_nlp_cell, rnn_cell, "
                      "sigmoid_slope)"),
    "unknown-launcher": (["hydra/launcher=nope"], "hydra/launcher: unknown option 'nope' (accepted: basic, "
                         "joblib, slurm, slurm_local, submitit_local, submitit_slurm)"),
    "bad-slope": (["motif.slope=-1"],
                  "motif.slope: must be a positive number in [1e-30, 1e+30] (float32 networks), got -1"),
    "bad-population": (["population.slopes=[1,-2]"],
                       "population.slopes: must be a positive number in [1e-30, 1e+30] (float32 networks), got -2"),
    "missing-mnist": (["data=mnist", "data.data_dir={empty}"], "data.data_dir: no mnist IDX file(s) "),
    "garbage-store": (["store.path={garbage}"], "store {garbage}: cannot be read as CSV"),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, start_task):
    """Every bad-input case, started at once (they fail while loading, so they overlap cheaply)."""
    root = tmp_path_factory.mktemp("bad")
    (root / "empty").mkdir()
    garbage = root / "garbage.csv"
    garbage.write_bytes(GARBAGE)
    paths = {"empty": root / "empty", "garbage": garbage}
    started = {}
    for name, (overrides, _) in BAD_INPUTS.items():
        args = [arg.format(**paths) for arg in overrides]
        if not any(arg.startswith("store.path=") for arg in args):
            args.append(f"store.path={root / name}.csv")
        args += [f"hydra.run.dir={root / name}", "trainer.max_epochs=1"]
        started[name] = start_task(*args)
    results = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        results[name] = (process.returncode, stdout, stderr)
    return {"root": root, "paths": paths, "results": results}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_error(bad_runs, case):
    returncode, stdout, stderr = bad_runs["results"][case]
    expected = BAD_INPUTS[case][1].format(**bad_runs["paths"])
    assert returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"error: {expected}"), errors[0]
    assert "Traceback" not in stderr + stdout
    if case == "missing-mnist":
        assert str(bad_runs["paths"]["empty"] / "mnist") in errors[0]
        assert "download=true" in errors[0]
    # nothing was trained: no store was written and no logger run was started
    assert not (bad_runs["root"] / f"{case}.csv").exists()
    assert not (bad_runs["root"] / case / "wandb").exists()


def test_bad_store_file_is_left_unchanged(bad_runs):
    assert bad_runs["results"]["garbage-store"][0] == 2
    assert bad_runs["paths"]["garbage"].read_bytes() == GARBAGE


@pytest.mark.parametrize("case", ["unknown-data", "unknown-motif", "unknown-launcher"])
def test_unknown_option_prints_nothing_but_the_error(bad_runs, case):
    _, _, stderr = bad_runs["results"][case]
    assert stderr.splitlines() == [f"error: {BAD_INPUTS[case][1]}"]


def test_bad_value_in_a_single_run_prints_nothing_but_the_error(bad_runs):
    _, _, stderr = bad_runs["results"]["bad-slope"]
    assert stderr.splitlines() == [f"error: {BAD_INPUTS['bad-slope'][1]}"]
