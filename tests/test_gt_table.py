"""Ground-truth tables: loading stores and user CSVs, score orientation, splits and their errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from dish.core.errors import ConfigError, StoreError
from dish.core.provenance import ground_truth_hash
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.store.csv_store import GroundTruthStore
from dish.store.tables import SCORE_ORIENTATION, SEARCH_FIELDS, GroundTruthTable, load_table, split_table


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def slopes(table: GroundTruthTable) -> list[float]:
    return [motif.slope for motif in table.motifs]


def table_of(values: list[float], **extra: list[float]) -> GroundTruthTable:
    """A table of these slopes scored by -log(slope)^2, with `extra` columns."""
    motifs = [SigmoidSlope(value) for value in values]
    return GroundTruthTable(motifs, -np.log(values) ** 2, {name: np.array(v) for name, v in extra.items()})


GRID = [0.05, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 50.0]


def test_load_drops_failed_rows_sorts_by_slope_and_negates_losses(tmp_path):
    path = write_csv(tmp_path / "gt.csv", ["slope", "val_loss", "status"],
                     [[2.0, 0.5, "ok"], [0.5, 1.0, "ok"], [8.0, "", "failed"], [1.0, 0.25, ""]])
    table = load_table(path, SigmoidSlope, "val_loss")
    assert slopes(table) == [0.5, 1.0, 2.0]
    assert table.scores.dtype == np.float64
    np.testing.assert_array_equal(table.scores, [-1.0, -0.25, -0.5])
    assert len(table) == 3


@pytest.mark.parametrize("score", sorted(SCORE_ORIENTATION))
def test_score_orientation(tmp_path, score):
    path = write_csv(tmp_path / "gt.csv", ["slope", "val_loss", "val_acc", "val_ppl", "best_val_loss", "best_val_acc"],
                     [[1.0, 0.3, 0.9, 1.35, 0.2, 0.95], [4.0, 0.1, 0.97, 1.11, 0.05, 0.98]])
    table = load_table(path, SigmoidSlope, score)
    raw = {"val_loss": [0.3, 0.1], "val_acc": [0.9, 0.97], "val_ppl": [1.35, 1.11], "best_val_loss": [0.2, 0.05],
           "best_val_acc": [0.95, 0.98]}
    np.testing.assert_array_equal(table.scores, SCORE_ORIENTATION[score] * np.array(raw[score]))
    assert table.scores.argmax() == 1  # slope 4 is better by every column


def test_user_csv_with_slope_and_val_acc(tmp_path):
    path = write_csv(tmp_path / "mine.csv", ["slope", "val_acc"], [[10, 0.9], [0.1, 0.1], [1, 0.5]])
    table = load_table(path, SigmoidSlope, "val_acc")
    assert slopes(table) == [0.1, 1.0, 10.0]
    np.testing.assert_array_equal(table.scores, [0.1, 0.5, 0.9])
    assert table.extra == {}


def test_extra_keeps_numeric_columns_and_subset_follows(tmp_path):
    path = write_csv(tmp_path / "gt.csv", ["motif_key", "slope", "val_loss", "train", "config_hash", "seed"],
                     [["k", 2.0, 0.5, 1, "abc", 0], ["k", 0.5, 1.0, 0, "abc", 0], ["k", 1.0, 0.7, 1.0, "abc", 3]])
    table = load_table(path, SigmoidSlope, "val_loss")
    assert sorted(table.extra) == ["seed", "train"]  # not the motif, the score or text columns
    np.testing.assert_array_equal(table.extra["train"], [0, 1, 1])  # in slope order
    part = table.subset([2, 0])
    assert slopes(part) == [2.0, 0.5]
    np.testing.assert_array_equal(part.scores, [-0.5, -1.0])
    np.testing.assert_array_equal(part.extra["seed"], [0, 0])
    np.testing.assert_array_equal(part.extra["train"], [1, 0])


def test_duplicates_with_equal_scores_are_merged(tmp_path):
    path = write_csv(tmp_path / "gt.csv", ["slope", "val_loss"], [[1.0, 0.5], [2.0, 0.25], [1.0, 0.5]])
    table = load_table(path, SigmoidSlope, "val_loss")
    assert slopes(table) == [1.0, 2.0]


# --- one config hash per comparison or search ------------------------------------------------------------------

GROUND_TRUTH = OmegaConf.create({"data": {"batch_size": 100, "data_dir": "/anywhere"}, "model": {"hidden": [100]},
                                 "optimizer": {"lr": 0.1}, "trainer": {"max_epochs": 5}, "seed": 0,
                                 "motif": {"_target_": "dish.motifs.sigmoid_slope.SigmoidSlope", "slope": 1.0}})


def store_rows(path: Path, digest: str, values: list[float], epochs: int, settings: bool = True) -> Path:
    """Rows of this project's store format under `digest`, each motif's loss ``epochs * slope``."""
    recorded = {"settings": json.dumps({"trainer": {"max_epochs": epochs}, "seed": 0})} if settings else {}
    GroundTruthStore(path, SigmoidSlope).append([
        {"motif_kind": "sigmoid_slope", "motif_key": SigmoidSlope(value).key, "slope": value, "data": "digits",
         "status": "ok", "val_loss": epochs * value, "epochs": epochs, "seed": 0, "config_hash": digest, **recorded}
        for value in values])
    return path


def test_two_hashes_without_a_choice_list_each_hash_its_rows_and_what_differs(tmp_path):
    path = store_rows(tmp_path / "gt.csv", "h5", [1.0, 2.0, 4.0], 5)
    store_rows(path, "h50", [1.0, 8.0], 50)
    with pytest.raises(ConfigError) as error:
        load_table(path, SigmoidSlope, "val_loss", current=GROUND_TRUTH)
    assert error.value.field == "gt.config_hash"
    assert error.value.problem == (f"{path} holds rows of 2 ground-truth configs, none of them this run's "
                                   f"({ground_truth_hash(GROUND_TRUTH)}); choose one")
    assert error.value.accepted == ["h5 (3 rows: trainer.max_epochs=5)", "h50 (2 rows: trainer.max_epochs=50)"]
    assert "\n" not in error.value.message
    with pytest.raises(ConfigError) as error:
        load_table(path, SigmoidSlope, "val_loss", fields=SEARCH_FIELDS)
    assert error.value.field == "ground_truth.config_hash"


def test_an_explicit_hash_picks_its_rows_and_an_unknown_one_lists_the_hashes(tmp_path):
    path = store_rows(tmp_path / "gt.csv", "h5", [1.0, 2.0, 4.0], 5)
    store_rows(path, "h50", [1.0, 8.0], 50)
    table = load_table(path, SigmoidSlope, "val_loss", config_hash="h50", current=GROUND_TRUTH)
    assert slopes(table) == [1.0, 8.0]
    np.testing.assert_array_equal(table.scores, [-50.0, -400.0])
    with pytest.raises(ConfigError) as error:
        load_table(path, SigmoidSlope, "val_loss", config_hash="nope")
    assert error.value.field == "gt.config_hash"
    assert error.value.problem == f"'nope' is not a config hash of {path}"
    assert error.value.accepted == ["h5 (3 rows: trainer.max_epochs=5)", "h50 (2 rows: trainer.max_epochs=50)"]


def test_a_hash_of_digits_only_that_hydra_read_as_a_number_is_found(tmp_path):
    path = store_rows(tmp_path / "gt.csv", "123456789012", [1.0, 2.0], 5)
    store_rows(path, "h50", [4.0], 50)
    assert slopes(load_table(path, SigmoidSlope, "val_loss", config_hash=123456789012)) == [1.0, 2.0]


def test_the_current_configs_hash_is_chosen_where_the_table_has_it(tmp_path):
    current = ground_truth_hash(GROUND_TRUTH)
    path = store_rows(tmp_path / "gt.csv", "other", [1.0, 2.0, 4.0], 50)
    store_rows(path, current, [0.5, 1.0], 5)
    assert slopes(load_table(path, SigmoidSlope, "val_loss", current=GROUND_TRUTH)) == [0.5, 1.0]
    assert slopes(load_table(path, SigmoidSlope, "val_loss", current=GROUND_TRUTH, config_hash="other")) == [
        1.0, 2.0, 4.0]


def test_the_only_hash_is_used_whatever_the_current_config(tmp_path):
    path = store_rows(tmp_path / "gt.csv", "other", [1.0, 2.0, 4.0], 50)
    assert slopes(load_table(path, SigmoidSlope, "val_loss", current=GROUND_TRUTH)) == [1.0, 2.0, 4.0]


def test_older_rows_without_settings_are_told_apart_by_their_columns(tmp_path):
    path = store_rows(tmp_path / "gt.csv", "h5", [1.0, 2.0], 5, settings=False)
    store_rows(path, "h50", [1.0], 50)  # a newer row: the older hash has no settings, so columns are compared
    with pytest.raises(ConfigError) as error:
        load_table(path, SigmoidSlope, "val_loss")
    assert error.value.accepted == ["h5 (2 rows: epochs=5)", "h50 (1 row: epochs=50)"]


def test_a_csv_without_hashes_is_used_whole(tmp_path):
    path = write_csv(tmp_path / "mine.csv", ["slope", "val_acc"], [[10, 0.9], [0.1, 0.1], [1, 0.5]])
    table = load_table(path, SigmoidSlope, "val_acc", current=GROUND_TRUTH)
    assert slopes(table) == [0.1, 1.0, 10.0]
    with pytest.raises(ConfigError) as error:
        load_table(path, SigmoidSlope, "val_acc", config_hash="abc")
    assert error.value.accepted == ["(no hash) (3 rows)"]


def test_a_score_column_whose_name_gives_no_direction_is_refused(tmp_path):
    path = write_csv(tmp_path / "gt.csv", ["slope", "val_loss", "widgets"], [[1.0, 0.5, 3]])
    with pytest.raises(ConfigError) as error:
        load_table(path, SigmoidSlope, "widgets")
    assert error.value.field == "gt.score" and "'widgets'" in error.value.problem
    assert error.value.accepted[:len(SCORE_ORIENTATION)] == list(SCORE_ORIENTATION)


@pytest.mark.parametrize(("column", "sign"), [("ptb_loss", -1.0), ("val_loss_epoch1", -1.0), ("test_ppl", -1.0),
                                              ("top1_accuracy", 1.0), ("zc_naswot", 1.0)])
def test_any_numeric_column_is_a_score_oriented_by_its_name(tmp_path, column, sign):
    path = write_csv(tmp_path / "gt.csv", ["slope", column], [[1.0, 0.5], [2.0, 0.25]])
    np.testing.assert_array_equal(load_table(path, SigmoidSlope, column).scores, [sign * 0.5, sign * 0.25])


def test_rows_with_an_empty_score_are_skipped_and_counted(tmp_path, caplog):
    path = write_csv(tmp_path / "gt.csv", ["slope", "ptb_loss"], [[1.0, 0.5], [2.0, ""], [4.0, 0.25]])
    with caplog.at_level("INFO", logger="dish.store.tables"):
        table = load_table(path, SigmoidSlope, "ptb_loss")
    assert slopes(table) == [1.0, 4.0]
    assert "skipped 1 of 3 rows with an empty ptb_loss" in caplog.text


def test_a_motif_trained_twice_gets_the_mean_of_its_rows(tmp_path, caplog):
    path = write_csv(tmp_path / "gt.csv", ["slope", "val_loss", "epochs"],
                     [[1.0, 0.5, 10], [2.0, 0.2, 10], [1.0, 0.3, 20]])
    with caplog.at_level("INFO", logger="dish.store.tables"):
        table = load_table(path, SigmoidSlope, "val_loss")
    assert slopes(table) == [1.0, 2.0]
    np.testing.assert_allclose(table.scores, [-0.4, -0.2])
    np.testing.assert_allclose(table.extra["epochs"], [15, 10])
    assert "1 motif(s) appear more than once (2 rows)" in caplog.text


def test_score_column_missing_from_file(tmp_path):
    path = write_csv(tmp_path / "gt.csv", ["slope", "val_loss", "status"], [[1.0, 0.5, "ok"]])
    with pytest.raises(ConfigError) as error:
        load_table(path, SigmoidSlope, "val_acc")
    assert error.value.field == "gt.score"
    assert str(path) in error.value.problem
    assert error.value.accepted == ["slope", "val_loss", "status"]


@pytest.mark.parametrize("cell", ["n/a", "nan"])
def test_row_without_numeric_score(tmp_path, cell):
    path = write_csv(tmp_path / "gt.csv", ["slope", "val_loss"], [[1.0, 0.5], [2.0, cell]])
    with pytest.raises(StoreError, match="val_loss") as error:
        load_table(path, SigmoidSlope, "val_loss")
    assert str(path) in str(error.value) and "sigmoid_slope(slope=2.0)" in str(error.value)


def test_unreadable_stores(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        load_table(tmp_path / "none.csv", SigmoidSlope, "val_loss")
    no_slope = write_csv(tmp_path / "bad.csv", ["rate", "val_loss"], [[1.0, 0.5]])
    with pytest.raises(StoreError, match=str(no_slope)):
        load_table(no_slope, SigmoidSlope, "val_loss")
    all_failed = write_csv(tmp_path / "failed.csv", ["slope", "val_loss", "status"], [[1.0, "", "failed"]])
    with pytest.raises(StoreError, match="no successful rows"):
        load_table(all_failed, SigmoidSlope, "val_loss")
    bad_motif = write_csv(tmp_path / "negative.csv", ["slope", "val_loss"], [[-1.0, 0.5]])
    with pytest.raises(StoreError, match="bad motif"):
        load_table(bad_motif, SigmoidSlope, "val_loss")


def test_table_lengths_must_agree():
    with pytest.raises(ValueError, match="lengths"):
        GroundTruthTable([SigmoidSlope(1.0)], np.array([1.0, 2.0]))


def test_split_random():
    table = table_of(GRID)
    train, heldout = split_table(table, "random", n=5, seed=3)
    expected = sorted(np.random.default_rng(3).choice(len(GRID), size=5, replace=False))
    assert slopes(train) == [GRID[i] for i in expected]
    assert sorted(slopes(train) + slopes(heldout)) == GRID
    np.testing.assert_array_equal(train.scores, table.scores[expected])
    assert slopes(split_table(table, "random", n=5, seed=3)[0]) == slopes(train)


def test_cross_validation_folds_partition_the_training_motifs_and_never_see_the_held_out_ones():
    table = table_of(GRID, seed=list(range(8)))
    outer_train, outer_heldout = split_table(table, "random", n=7, seed=3)
    folds = [split_table(table, "random", n=7, folds=3, fold=fold, seed=3) for fold in range(3)]
    held = [slopes(heldout) for _, heldout in folds]
    assert sorted(s for part in held for s in part) == sorted(slopes(outer_train))
    assert sorted(len(part) for part in held) == [2, 2, 3]
    for train, heldout in folds:
        assert sorted(slopes(train) + slopes(heldout)) == sorted(slopes(outer_train))
        assert not set(slopes(outer_heldout)) & set(slopes(train) + slopes(heldout))
    assert slopes(split_table(table, "random", n=7, folds=3, fold=1, seed=3)[1]) == held[1]
    joined = folds[0][0].join(folds[0][1])
    assert slopes(joined) == slopes(folds[0][0]) + slopes(folds[0][1])
    np.testing.assert_array_equal(joined.extra["seed"], np.concatenate([folds[0][0].extra["seed"],
                                                                        folds[0][1].extra["seed"]]))


def test_split_range():
    train, heldout = split_table(table_of(GRID), "range", slope_min=0.5, slope_max=4.0)
    assert slopes(train) == [0.5, 1.0, 2.0, 4.0]
    assert slopes(heldout) == [0.05, 0.1, 8.0, 50.0]
    train, heldout = split_table(table_of(GRID), "range", slope_max=1.0)
    assert slopes(train) == [0.05, 0.1, 0.5, 1.0]
    train, heldout = split_table(table_of(GRID), "range", slope_min=2.0)
    assert slopes(heldout) == [0.05, 0.1, 0.5, 1.0]


def test_split_flag():
    table = table_of(GRID, train=[0, 1, 0, 1, 1, 0, 2, 1])
    train, heldout = split_table(table, "flag", column="train")
    assert slopes(train) == [0.1, 1.0, 2.0, 50.0]
    assert slopes(heldout) == [0.05, 0.5, 4.0, 8.0]
    np.testing.assert_array_equal(heldout.extra["train"], [0, 0, 0, 2])


def test_split_flag_from_a_loaded_file(tmp_path):
    path = write_csv(tmp_path / "gt.csv", ["slope", "val_acc", "known"],
                     [[s, 0.5, int(i % 2 == 0)] for i, s in enumerate(GRID)])
    train, _ = split_table(load_table(path, SigmoidSlope, "val_acc"), "flag", column="known")
    assert slopes(train) == GRID[::2]


@pytest.mark.parametrize(("protocol", "options", "field", "words"), [
    ("leave_one_out", {}, "split", "unknown protocol"),
    ("random", {"n": 2}, "split", "selects 2 training motifs; at least 3"),
    ("random", {"n": 8}, "split.n", "got 8"),
    ("random", {}, "split.n", "got None"),
    ("range", {"slope_min": 2.0, "slope_max": 4.0}, "split", "selects 2 training motifs"),
    ("range", {"slope_min": 0.01}, "split", "leaves none held out"),
    ("range", {"slope_min": 5.0, "slope_max": 1.0}, "split", "selects 0 training motifs"),
    ("flag", {"column": "missing"}, "split.column", "'missing' is not a numeric column"),
    ("flag", {}, "split.column", "None is not a numeric column"),
    ("flag", {"column": "train"}, "split", "selects 1 training motifs"),
])
def test_split_errors(protocol, options, field, words):
    table = table_of(GRID, train=[0, 0, 0, 1, 0, 0, 0, 0], seed=[0] * 8)
    with pytest.raises(ConfigError) as error:
        split_table(table, protocol, **options)
    assert error.value.field == field
    assert words in error.value.problem
    if protocol == "leave_one_out":
        assert error.value.accepted == ["random", "range", "flag"]
    if field == "split.column":
        assert error.value.accepted == ["seed", "train"]
