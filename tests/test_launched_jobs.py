"""Ground truth a search launches or reads: jobs get every value of the parent's ground-truth config (also the
keys it added with ``+``), and a store without the searched score column is an error, not a row of failures."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_module
from test_store_tasks import composed_hash, last_line

from dish.core.errors import ConfigError
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.search.oracles import LiveOracle
from dish.store.csv_store import GroundTruthStore


def test_a_launched_job_keeps_the_keys_the_search_added(tmp_path, run_search):
    """Before, `+trainer.max_time=...` stayed in the search and the launched jobs trained without it, under
    another config hash: the search found none of their rows and counted every pick as failed."""
    added = "+trainer.max_time=00:01:00:00"
    store = tmp_path / "gt.csv"
    done = run_search("ground_truth.launcher=basic", "search.predictor=random", "search.start.random=1",
                      "search.budget=1", "trainer.max_epochs=1", added, f"store.path={store}", f"store.dir={tmp_path}",
                      "logger=none", f"hydra.run.dir={tmp_path / 'run'}", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "run" / "search.json").read_text())
    assert [e["score"] is not None for e in result["evaluations"]] == [True, True]
    rows = GroundTruthStore(store, SigmoidSlope).read()
    assert {row["config_hash"] for row in rows} == {composed_hash("search", ["trainer.max_epochs=1", added])}
    assert json.loads(rows[0]["settings"])["trainer"]["max_time"] == "00:01:00:00"


def test_a_score_the_ground_truth_does_not_write_is_refused_before_training(tmp_path, run_search):
    done = run_search("ground_truth.score=val_ppl", f"store.path={tmp_path / 'gt.csv'}", "logger=none",
                      f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2
    assert last_line(done) == ("error: ground_truth.score: the sigmoid_slope ground truth writes no 'val_ppl' "
                               "column (accepted: val_loss, val_acc, best_val_loss, best_val_acc)")
    assert not (tmp_path / "gt.csv").exists()


def test_stored_rows_without_the_score_column_are_an_error_not_failures(tmp_path):
    """Before, every stored motif without the column read as a failed training (NaN)."""
    with initialize_config_module("dish.conf", version_base=None):
        cfg = compose("search", [f"store.path={tmp_path / 'gt.csv'}", "ground_truth.score=val_acc"])
    oracle = LiveOracle(cfg, SigmoidSlope, "val_acc")
    GroundTruthStore(tmp_path / "gt.csv", SigmoidSlope).append([
        {"motif_kind": "sigmoid_slope", "motif_key": SigmoidSlope(2.0).key, "slope": 2.0, "status": "ok",
         "val_loss": 0.5, "config_hash": oracle.spec}])
    with pytest.raises(ConfigError, match=r"ground_truth.score: the rows of .*gt.csv have no 'val_acc' "
                                          r"\(accepted: val_loss\)"):
        oracle.known()
