"""The store as the tasks read it: one config hash per comparison, and a damaged store stops every job."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO
from hydra import compose, initialize_config_dir

from dish.core.provenance import ground_truth_hash
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.store.csv_store import GroundTruthStore

COMPARE = ["predictors=[quadratic]", "split=random", "split.n=3", "logger=none"]
BUILD = ["data=digits", "population.slopes=[0.5,1,2,4,8,16]", "trainer.max_epochs=3", "logger=none"]


def composed_hash(config: str, overrides: list[str]) -> str:
    """The config hash of ground truth under `config` (a config name of conf/) with `overrides`."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return ground_truth_hash(compose(config_name=config, overrides=overrides))


def store_rows(path: Path, digest: str, slopes: list[float], epochs: int) -> Path:
    """Rows of this project's store format under `digest` (a U in log-slope), as a ground-truth job writes them."""
    settings = json.dumps({"trainer": {"max_epochs": epochs}, "seed": 0})
    GroundTruthStore(path, SigmoidSlope).append([
        {"motif_kind": "sigmoid_slope", "motif_key": SigmoidSlope(slope).key, "slope": slope, "data": "digits",
         "status": "ok", "val_loss": (slope - 4) ** 2 / epochs + 0.1, "epochs": epochs, "seed": 0,
         "config_hash": digest, "settings": settings}
        for slope in slopes])
    return path


def last_line(done) -> str:
    return done.stderr.strip().splitlines()[-1]


def held(run_dir: Path) -> int:
    report = json.loads((run_dir / "comparison.json").read_text())
    return report["n_train"] + report["n_heldout"]


def test_compare_reads_one_config_hash(tmp_path, run_compare):
    store = store_rows(tmp_path / "gt.csv", "a5", [0.5, 1, 2, 4, 8, 16, 32, 64], 5)
    store_rows(store, "b50", [0.5, 1, 2, 4, 8, 16], 50)
    done = run_compare(f"gt.path={store}", *COMPARE, f"hydra.run.dir={tmp_path / 'refused'}")
    assert done.returncode == 2
    current = composed_hash("ground_truth", [])  # gt.build is null: the defaults of tasks/ground_truth.py
    assert last_line(done) == (
        f"error: gt.config_hash: {store} holds rows of 2 ground-truth configs, none of them this run's ({current}); "
        "choose one (accepted: a5 (8 rows: trainer.max_epochs=5), b50 (6 rows: trainer.max_epochs=50))")
    assert not (tmp_path / "refused" / "comparison.json").exists()
    for digest, rows in (("a5", 8), ("b50", 6)):
        done = run_compare(f"gt.path={store}", f"gt.config_hash={digest}", *COMPARE,
                           f"hydra.run.dir={tmp_path / digest}")
        assert done.returncode == 0, done.stderr[-3000:]
        assert held(tmp_path / digest) == rows


def test_compare_prefers_the_rows_of_its_gt_build_config_and_trains_nothing_stored(tmp_path, run_compare):
    current = composed_hash("ground_truth", BUILD)
    store = store_rows(tmp_path / "gt.csv", current, [0.5, 1, 2, 4, 8, 16], 3)
    store_rows(store, "other", [0.5, 1, 2, 4, 8, 16, 32, 64], 50)
    before = store.read_bytes()
    build = "[" + ",".join(f"'{override}'" for override in BUILD) + "]"
    done = run_compare(f"gt.path={store}", f"gt.build={build}", *COMPARE, f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert held(tmp_path / "run") == 6  # the 6 rows of the build's config, not the other 8
    assert "skipping 6 motif(s)" in done.stdout + done.stderr
    assert store.read_bytes() == before


def test_a_cut_off_store_stops_reading_and_writing_jobs_before_training(tmp_path, run_task, run_compare, read_store):
    store = tmp_path / "gt.csv"
    job = ["data=digits", "logger=none", "trainer.max_epochs=1", "checkpoint.every_n_epochs=1",
           "checkpoint.every_minutes=null", f"store.path={store}"]
    done = run_task(*job, "motif.slope=1.0", f"hydra.run.dir={tmp_path / 'first'}")
    assert done.returncode == 0, done.stderr[-3000:]
    (stored,) = read_store(store)
    assert json.loads(stored["settings"])["trainer"]["max_epochs"] == 1  # a row carries what its hash hashes
    assert json.loads(stored["settings"])["optimizer"]["lr"] == 0.1
    with store.open("ab") as handle:
        handle.write(b"sigmoid_slope,abc")  # a cut-off last line
    damaged = store.read_bytes()
    header = len(stored)
    expected = (f"error: store {store}: line 3 has 2 fields, the header has {header}; the file is damaged: repair or "
                "delete that line (nothing was written to it)")
    done = run_compare(f"gt.path={store}", *COMPARE, f"hydra.run.dir={tmp_path / 'compare'}")
    assert (done.returncode, last_line(done)) == (2, expected)
    for extra in (["motif.slope=2.0"], ["motif.slope=1.0", "force=true"]):
        done = run_task(*job, *extra, f"hydra.run.dir={tmp_path / 'again'}")
        assert (done.returncode, last_line(done)) == (2, expected)
        assert "wrote" not in done.stdout + done.stderr
    assert not list((tmp_path / "checkpoints").glob("*/last.ckpt"))  # not one epoch was trained
    assert store.read_bytes() == damaged
