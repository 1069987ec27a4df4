"""The CSV ground-truth store: keyed appends, replacement, user tables, bad files, concurrent writers."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from dish.core.errors import StoreError
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.store.csv_store import GroundTruthStore


def row(slope: float, val_loss: float, config_hash: str = "h1", **extra) -> dict:
    motif = SigmoidSlope(slope)
    return {"motif_key": motif.key, "config_hash": config_hash, **motif.encode(), "val_loss": val_loss,
            **extra}


def store_at(path: Path) -> GroundTruthStore:
    return GroundTruthStore(path, SigmoidSlope)


def test_absent_file_is_an_empty_table(tmp_path):
    store = store_at(tmp_path / "none.csv")
    assert store.read() == []
    assert store.finished_keys("h1") == set()


def test_append_and_read_back(tmp_path, read_store):
    path = tmp_path / "sub" / "gt.csv"  # the parent folder is created
    store = store_at(path)
    assert store.append([row(0.5, 2.25, status="ok"), row(2.0, 0.125, status="failed")]) == 2
    rows = store.read()
    assert [(r["motif_key"], r["slope"], r["val_loss"], r["status"]) for r in rows] == [
        ("sigmoid_slope(slope=0.5)", "0.5", "2.25", "ok"),
        ("sigmoid_slope(slope=2.0)", "2.0", "0.125", "failed"),
    ]
    assert read_store(path) == rows
    assert list(rows[0]) == ["motif_key", "config_hash", "slope", "val_loss", "status"]


def test_append_skips_rows_already_stored(tmp_path):
    store = store_at(tmp_path / "gt.csv")
    store.append([row(0.5, 2.25), row(2.0, 0.125)])
    before = (tmp_path / "gt.csv").read_bytes()
    assert store.append([row(0.5, 9.0), row(2.0, 9.0)]) == 0
    assert (tmp_path / "gt.csv").read_bytes() == before
    # only the new motif of a mixed batch is written
    assert store.append([row(0.5, 9.0), row(8.0, 0.5)]) == 1
    assert [(r["slope"], r["val_loss"]) for r in store.read()] == [("0.5", "2.25"), ("2.0", "0.125"),
                                                                  ("8.0", "0.5")]


def test_append_replace(tmp_path):
    store = store_at(tmp_path / "gt.csv")
    store.append([row(0.5, 2.25), row(2.0, 0.125), row(0.5, 7.0, config_hash="h2")])
    assert store.append([row(0.5, 1.5, finished_at="later")], replace=True) == 1
    rows = store.read()
    by_key = {(r["motif_key"], r["config_hash"]): r for r in rows}
    assert len(rows) == len(by_key) == 3  # still one row per (motif, config hash)
    assert by_key[(SigmoidSlope(0.5).key, "h1")]["val_loss"] == "1.5"
    assert by_key[(SigmoidSlope(0.5).key, "h1")]["finished_at"] == "later"
    assert by_key[(SigmoidSlope(0.5).key, "h2")]["val_loss"] == "7.0"  # other hash untouched
    assert by_key[(SigmoidSlope(2.0).key, "h1")]["val_loss"] == "0.125"
    assert by_key[(SigmoidSlope(2.0).key, "h1")]["finished_at"] == ""  # new column, empty for old rows


def test_same_motif_under_another_hash_is_a_new_row(tmp_path):
    store = store_at(tmp_path / "gt.csv")
    store.append([row(0.5, 2.25, "h1")])
    assert store.append([row(0.5, 1.0, "h2")]) == 1
    assert len(store.read()) == 2


def test_finished_keys_by_hash(tmp_path):
    store = store_at(tmp_path / "gt.csv")
    store.append([row(0.5, 1.0, "h1"), row(2.0, 1.0, "h1"), row(8.0, 1.0, "h2")])
    assert store.finished_keys("h1") == {SigmoidSlope(0.5).key, SigmoidSlope(2.0).key}
    assert store.finished_keys("h2") == {SigmoidSlope(8.0).key}
    assert store.finished_keys("other") == set()


@pytest.mark.parametrize("score", ["val_acc", "val_loss"])
def test_user_table_without_hash(tmp_path, score):
    path = tmp_path / "mine.csv"
    path.write_text(f"slope,{score}\n0.5,0.9\n2,0.95\n", encoding="utf-8")
    store = store_at(path)
    rows = store.read()
    assert rows == [{"slope": "0.5", score: "0.9"}, {"slope": "2", score: "0.95"}]
    assert all(not r.get("config_hash") for r in rows)
    assert [store.motif_key(r) for r in rows] == [SigmoidSlope(0.5).key, SigmoidSlope(2.0).key]
    assert store.finished_keys("") == set()
    assert store.finished_keys("h1") == set()
    # a run of this project does not count as done by the user's row of the same motif
    assert store.append([row(0.5, 0.3, "h1")]) == 1
    rows = store.read()
    assert len(rows) == 3
    assert rows[0]["slope"] == "0.5"
    assert rows[0][score] == "0.9"
    assert store.finished_keys("h1") == {SigmoidSlope(0.5).key}


def test_user_table_with_bad_motif(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("slope,val_acc\n-1,0.9\n", encoding="utf-8")
    with pytest.raises(StoreError) as info:
        store_at(path).append([row(0.5, 0.3)])
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [
    b"a,b\n1,2\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd\x80\x81",
    b"",
], ids=["wrong-columns", "binary", "empty"])
def test_unreadable_files_raise_store_error_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    store = store_at(path)
    with pytest.raises(StoreError) as info:
        store.read()
    assert str(path) in str(info.value)
    with pytest.raises(StoreError):
        store.finished_keys("h1")
    with pytest.raises(StoreError):
        store.append([row(0.5, 1.0)])
    assert path.read_bytes() == content  # never overwritten


SETTINGS = '{"trainer":{"max_epochs":3}}'


def own_store(path: Path) -> bytes:
    """A store of this project's format (header, one ok row, one failed row with empty metrics); its bytes."""
    store_at(path).append([row(0.5, 2.25, status="ok", settings=SETTINGS),
                           row(2.0, "", status="failed", settings=SETTINGS)])
    return path.read_bytes()


def test_own_store_with_a_failed_row_reads(tmp_path):
    path = tmp_path / "gt.csv"
    own_store(path)
    assert [(r["slope"], r["val_loss"], r["status"]) for r in store_at(path).read()] == [
        ("0.5", "2.25", "ok"), ("2.0", "", "failed")]


@pytest.mark.parametrize(("damage", "line", "problem"), [
    (lambda good: good + b"sigmoid_slope,abc", 4, "has 2 fields, the header has 6"),
    (lambda good: good + b"k,h1,1.0,0.5,ok,{},surplus\r\n", 4, "has 7 fields, the header has 6"),
    (lambda good: good.replace(b"2.25", b"2.2x5"), 2, "has val_loss='2.2x5', not a number"),
    (lambda good: good + b"k,h1,-1,0.5,ok,{}\r\n", 4, "holds no valid sigmoid_slope motif (slope: must be a positive"),
    (lambda good: good + b"k,h1,1.0,0.5,ok,{bad\r\n", 4, "has a settings cell that is not JSON"),
    (lambda good: good + b"k,h1,1.0,0.5,ok,{}", 4, "is cut off (the file ends inside it)"),  # every field parses
], ids=["cut-off-line", "surplus-field", "metric-not-a-number", "bad-motif", "settings-not-json", "cut-off-field"])
def test_a_damaged_row_is_an_error_naming_file_and_line_and_nothing_is_written(tmp_path, damage, line, problem):
    path = tmp_path / "gt.csv"
    damaged = damage(own_store(path))
    path.write_bytes(damaged)
    store = store_at(path)
    with pytest.raises(StoreError) as info:
        store.read()
    assert str(info.value).startswith(f"store {path}: line {line} {problem}")
    assert "\n" not in str(info.value)
    for use in (lambda: store.finished_keys("h1"), store.check_writable, lambda: store.append([row(8.0, 1.0)]),
                lambda: store.append([row(0.5, 1.0)], replace=True)):
        with pytest.raises(StoreError, match=f"line {line} "):
            use()
    assert path.read_bytes() == damaged  # byte-identical: never rewritten


def test_a_users_table_is_not_held_to_the_stores_format(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("slope,val_acc,note\n0.5,0.9,first\n2,high\n4,0.5", encoding="utf-8")  # short row, no line end
    assert [(r["slope"], r["val_acc"]) for r in store_at(path).read()] == [("0.5", "0.9"), ("2", "high"),
                                                                          ("4", "0.5")]


def test_directory_path_raises_store_error(tmp_path):
    path = tmp_path / "adir.csv"
    path.mkdir()
    with pytest.raises(StoreError) as info:
        store_at(path).read()
    assert str(path) in str(info.value)
    assert "directory" in str(info.value)


# --- concurrent writers -------------------------------------------------------------------------------------

def _append_one_at_a_time(path: str, worker: int, count: int) -> None:
    store = GroundTruthStore(path, SigmoidSlope)
    for i in range(count):
        written = store.append([row(worker * 1000 + i + 1, float(i), "h1", worker=worker)])
        if written != 1:
            raise AssertionError(f"worker {worker} row {i}: wrote {written}")


def test_concurrent_writers_lose_no_row(tmp_path):
    path = tmp_path / "shared.csv"
    store = store_at(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_one_at_a_time, args=(str(path), w, 15)) for w in range(4)]
    for process in workers:
        process.start()
    # readers see a complete table at any moment, and it only grows
    sizes = []
    deadline = time.monotonic() + 120
    while any(p.is_alive() for p in workers) and time.monotonic() < deadline:
        sizes.append(len(store.read()))
        time.sleep(0.01)
    for process in workers:
        process.join(timeout=60)
    assert [p.exitcode for p in workers] == [0] * 4
    assert len(sizes) > 10 and sizes == sorted(sizes)
    rows = store.read()
    assert len(rows) == 60
    expected = {SigmoidSlope(w * 1000 + i + 1).key for w in range(4) for i in range(15)}
    assert {r["motif_key"] for r in rows} == expected
    assert len({(r["motif_key"], r["config_hash"]) for r in rows}) == 60
    assert all(r["worker"] in {str(w) for w in range(4)} and r["val_loss"] for r in rows)
    assert not list(tmp_path.glob(".shared.csv.*.tmp"))  # no temporary file left behind


def test_next_writer_removes_the_temporary_table_of_a_killed_one(tmp_path):
    store = store_at(tmp_path / "gt.csv")
    store.append([row(1.0, 1.0)])
    stale = tmp_path / ".gt.csv.k1ll3d.tmp"  # what a writer killed before its rename leaves
    stale.write_text("slope,val_loss\n2.0,0.")
    store.append([row(2.0, 1.0)])
    assert not stale.exists()
    assert [float(r["slope"]) for r in store.read()] == [1.0, 2.0]


def test_one_call_never_stores_a_motif_twice(tmp_path):
    store = store_at(tmp_path / "gt.csv")
    store.append([row(1.0, 1.0), row(1.0, 2.0)])
    assert len(store.read()) == 1


def test_unwritable_store_raises_store_error(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    path = tmp_path / "afile" / "gt.csv"
    with pytest.raises(StoreError) as info:
        store_at(path).append([row(1.0, 1.0)])
    assert str(path) in str(info.value)
