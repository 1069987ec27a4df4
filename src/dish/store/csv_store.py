"""The ground-truth store: one CSV table per task, appended atomically by any number of processes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from filelock import FileLock

from dish.core.errors import ConfigError, StoreError
from dish.core.files import RESULT_MODE, atomic_target
from dish.motifs.kind import Motif

OWN_COLUMNS = ("motif_key", "config_hash")
"""Columns that mark a table as this project's own store, whose every row must parse."""
NUMERIC_COLUMNS = ("val_loss", "val_acc", "val_ppl", "best_val_loss", "best_val_acc", "best_epoch", "train_loss",
                   "epochs", "train_steps", "wall_seconds", "population_size", "seed")
"""Result columns of the project's store: each cell is a number, or empty (a failed row, an older row)."""


class GroundTruthStore:
    """A CSV table of ground-truth results keyed by (motif key, config hash).

    Writers take an exclusive file lock, re-read the table, and replace it through a temporary file and an
    atomic rename: readers always see a complete table, concurrent writers lose no row, and a killed writer
    leaves no partial row (at most a stray temporary file, which the next writer removes). A table the user
    brings (e.g. just ``slope,val_acc``) is read as well; its rows carry no config hash, so they never stand in
    for a run of this project.
    """

    def __init__(self, path: str | os.PathLike[str], motif_type: type[Motif]) -> None:
        self.path = Path(path)
        self.motif_type = motif_type

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the table's exclusive lock; any OS error on the way becomes a `StoreError` naming the file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(f"{self.path}.lock"):
                yield
        except OSError as exc:
            raise StoreError(f"store {self.path}: cannot be written ({exc})") from None

    def read(self) -> list[dict[str, str]]:
        """All rows, as strings; an absent file is an empty table. Every row of this project's own format (with
        `OWN_COLUMNS`) must parse: a damaged one is a `StoreError` naming its line, and nothing is written."""
        if self.path.is_dir():
            raise StoreError(f"store {self.path}: is a directory, expected a CSV file")
        if not self.path.exists():
            return []
        try:
            with self.path.open(newline="", encoding="utf-8") as handle:
                text = handle.read()
            reader = csv.DictReader(io.StringIO(text, newline=""))
            rows = [(reader.line_num, row) for row in reader]
            columns = reader.fieldnames or []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise StoreError(f"store {self.path}: cannot be read as CSV ({exc})") from None
        self._check_columns(columns)
        if all(name in columns for name in OWN_COLUMNS):
            for line, row in rows:
                self._check_row(line, row, columns)
            if not text.endswith(("\n", "\r")):
                self._damaged(text.count("\n") + 1, "is cut off (the file ends inside it)")
        return [row for _, row in rows]

    def _check_row(self, line: int, row: Mapping[str | None, Any], columns: list[str]) -> None:
        """Raise if the row at `line` of this project's store does not parse."""
        if None in row or None in row.values():  # csv.DictReader's marks of too many and too few fields
            fields = len(columns) + len(row[None]) if None in row else sum(value is not None for value in row.values())
            self._damaged(line, f"has {fields} fields, the header has {len(columns)}")
        try:
            self.motif_type.decode(row)
        except ConfigError as exc:
            self._damaged(line, f"holds no valid {self.motif_type.kind} motif ({exc})")
        for column in NUMERIC_COLUMNS:
            if row.get(column) and not _is_number(row[column]):
                self._damaged(line, f"has {column}={row[column]!r}, not a number")
        if row.get("settings") and not _is_json(row["settings"]):
            self._damaged(line, "has a settings cell that is not JSON")

    def _damaged(self, line: int, problem: str) -> NoReturn:
        raise StoreError(f"store {self.path}: line {line} {problem}; the file is damaged: repair or delete that "
                         "line (nothing was written to it)")

    def _check_columns(self, columns: list[str]) -> None:
        """The motif's fields must be columns; which column is the score is the reader's business (any numeric
        column of a table from outside can be)."""
        missing = [name for name in self.motif_type.field_names() if name not in columns]
        if missing:
            raise StoreError(f"store {self.path}: columns {columns} lack {missing}; a {self.motif_type.kind} table "
                             f"needs {self.motif_type.field_names()} and a score column")

    def check_writable(self) -> None:
        """Fail now, not after training, if the table cannot be created or replaced, or is damaged."""
        with self._locked():
            self.read()
        if not os.access(self.path.parent, os.W_OK):
            raise StoreError(f"store {self.path}: directory {self.path.parent} is not writable")

    def motif_key(self, row: Mapping[str, str]) -> str:
        """The motif key of a stored row (rebuilt from the motif's columns where the key column is absent)."""
        if row.get("motif_key"):
            return row["motif_key"]
        try:
            return self.motif_type.decode(row).key
        except ConfigError as exc:
            raise StoreError(f"store {self.path}: bad motif in row {dict(row)}: {exc}") from None

    def finished_keys(self, config_hash: str) -> set[str]:
        """Keys of the motifs that already have a row made under `config_hash`."""
        return {self.motif_key(row) for row in self.read() if row.get("config_hash") == config_hash}

    def append(self, rows: Iterable[Mapping[str, Any]], replace: bool = False) -> int:
        """Add `rows` (each with ``motif_key`` and ``config_hash``); returns how many were written.

        A row whose (motif_key, config_hash) is already stored is dropped, or replaces the stored one when
        `replace` is set: a motif is never stored twice under one config.
        """
        unique = {(row["motif_key"], row["config_hash"]): row for row in rows}  # the last of duplicates wins
        new_rows = [{key: _cell(value) for key, value in row.items()} for row in unique.values()]
        with self._locked():
            existing = self.read()
            stored = {(self.motif_key(row), row.get("config_hash", "")) for row in existing}
            incoming = {(row["motif_key"], row["config_hash"]) for row in new_rows}
            if replace:
                existing = [row for row in existing
                            if (self.motif_key(row), row.get("config_hash", "")) not in incoming]
            else:
                new_rows = [row for row in new_rows if (row["motif_key"], row["config_hash"]) not in stored]
            if new_rows:
                self._remove_stale_temporaries()
                self._write(existing + new_rows)
        return len(new_rows)

    def _remove_stale_temporaries(self) -> None:
        """Temporary tables of writers killed before their rename. Only a writer holding the lock has one, so
        under the lock every one found is stale."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)

    def _write(self, rows: list[dict[str, str]]) -> None:
        columns = list(dict.fromkeys(column for row in rows for column in row))
        mode = self.path.stat().st_mode & 0o7777 if self.path.exists() else RESULT_MODE
        with atomic_target(self.path, mode) as temporary, temporary.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
