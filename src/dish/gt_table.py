"""Ground-truth tables (motifs and their scores, higher = better) and their train/held-out splits."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dish.errors import ConfigError, StoreError
from dish.motifs import Motif
from dish.store import GroundTruthStore

SCORE_ORIENTATION = {"val_loss": -1.0, "val_acc": 1.0, "val_ppl": -1.0, "best_val_loss": -1.0, "best_val_acc": 1.0}
"""Sign that turns each stored column into a score where higher = better."""
SPLIT_PROTOCOLS = ("random", "range", "flag")
MIN_TRAIN = 3


@dataclass(frozen=True, eq=False)  # eq=False: array fields make the generated __eq__ ambiguous
class GroundTruthTable:
    """Motifs with their scores (float64, higher = better) and any other numeric columns of their rows."""

    motifs: list[Motif]
    scores: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float64))
        object.__setattr__(self, "extra", {name: np.asarray(values, dtype=np.float64)
                                           for name, values in self.extra.items()})
        lengths = {len(self.scores), *(len(values) for values in self.extra.values())}
        if lengths != {len(self.motifs)}:
            raise ValueError(f"{len(self.motifs)} motifs but score/extra columns of lengths {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.motifs)

    def subset(self, indices: Sequence[int] | np.ndarray) -> GroundTruthTable:
        """The rows at `indices` (integer positions), in that order."""
        index = np.asarray(indices, dtype=np.intp)
        return GroundTruthTable([self.motifs[i] for i in index], self.scores[index],
                                {name: values[index] for name, values in self.extra.items()})


def load_table(path: str | os.PathLike[str], motif_type: type[Motif], score: str) -> GroundTruthTable:
    """The successful rows (``status`` absent, empty or ``ok``) of a ground-truth CSV, sorted by first feature.

    `score` names the column to rank by; it is oriented so that higher = better. Every other column whose
    kept values all parse as numbers (besides the motif's own fields) is kept in `extra`, e.g. a 0/1 flag for
    `split_table`. A motif stored twice (e.g. under several config hashes) is an error unless the scores agree.
    """
    if score not in SCORE_ORIENTATION:
        raise ConfigError("gt.score", f"unknown score column {score!r}", accepted=list(SCORE_ORIENTATION))
    store = GroundTruthStore(path, motif_type)
    if not store.path.exists():
        raise StoreError(f"store {store.path}: does not exist")
    all_rows = store.read()
    rows = [row for row in all_rows if row.get("status") in (None, "", "ok")]
    if not rows:
        raise StoreError(f"store {store.path}: has no successful rows ({len(all_rows)} rows, none with status ok)")
    columns = [name for name in rows[0] if name is not None]  # None holds the cells of over-long rows
    if score not in columns:
        raise ConfigError("gt.score", f"column {score!r} is not in {store.path}", accepted=columns)
    motifs = [_motif(store.path, motif_type, row) for row in rows]
    scores = [SCORE_ORIENTATION[score] * _score(store.path, row, score, motif.key)
              for row, motif in zip(rows, motifs, strict=True)]
    skipped = {score, *motif_type.field_names()}
    extra = {name: values for name in columns if name not in skipped
             and (values := _numeric([row[name] for row in rows])) is not None}
    keep = _unique(store.path, motifs, scores)
    keep.sort(key=lambda i: (motifs[i].features()[0], motifs[i].key))
    return GroundTruthTable(motifs, np.array(scores, dtype=np.float64), extra).subset(keep)


def _motif(path: Path, motif_type: type[Motif], row: Mapping[str, str]) -> Motif:
    try:
        return motif_type.decode(row)
    except ConfigError as exc:
        raise StoreError(f"store {path}: bad motif in row {dict(row)}: {exc}") from None


def _score(path: Path, row: Mapping[str, str | None], column: str, key: str) -> float:
    try:
        value = float(row[column] or "")
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise StoreError(f"store {path}: row of {key} has no finite numeric {column} (got {row[column]!r})")
    return value


def _numeric(cells: list[str | None]) -> np.ndarray | None:
    """The cells as floats, or None when any of them is not a number."""
    try:
        return np.array([float(cell or "") for cell in cells], dtype=np.float64)
    except ValueError:
        return None


def _unique(path: Path, motifs: list[Motif], scores: list[float]) -> list[int]:
    """Positions of the first row of each motif; a motif stored twice must have the same score each time."""
    first: dict[str, int] = {}
    clashes = []
    for i, motif in enumerate(motifs):
        j = first.setdefault(motif.key, i)
        if scores[j] != scores[i]:
            clashes.append(motif.key)
    if clashes:
        raise ConfigError("gt.path", f"{path} holds {len(set(clashes))} motif(s) more than once with different "
                          f"scores (e.g. {clashes[0]}, one row per config hash); filter it to one run per motif")
    return list(first.values())


def split_table(table: GroundTruthTable, protocol: str, *, n: int | None = None,
                slope_min: float | None = None, slope_max: float | None = None, column: str | None = None,
                seed: int = 0) -> tuple[GroundTruthTable, GroundTruthTable]:
    """(train, held-out) by `protocol`; every motif lands in exactly one of them.

    - ``random``: `n` motifs drawn without replacement with ``numpy.random.default_rng(seed)``;
    - ``range``: the motifs with ``slope_min <= slope <= slope_max``, slope being the motif's first feature (a
      None bound is open);
    - ``flag``: the rows whose numeric column `column` (see `GroundTruthTable.extra`) is 1.

    A split with fewer than 3 training motifs or no held-out motif is a `ConfigError`.
    """
    if protocol not in SPLIT_PROTOCOLS:
        raise ConfigError("split", f"unknown protocol {protocol!r}", accepted=SPLIT_PROTOCOLS)
    if protocol == "random":
        if n is None or not 0 <= n < len(table):
            raise ConfigError("split.n", f"must be a number of training motifs below the table's {len(table)} (at "
                              f"least one is held out), got {n}")
        train = np.zeros(len(table), dtype=bool)
        train[np.random.default_rng(seed).choice(len(table), size=n, replace=False)] = True
    elif protocol == "range":
        first = np.array([motif.features()[0] for motif in table.motifs], dtype=np.float64)
        low = -np.inf if slope_min is None else slope_min
        high = np.inf if slope_max is None else slope_max
        train = (low <= first) & (first <= high)
    else:
        if column not in table.extra:
            raise ConfigError("split.column", f"{column!r} is not a numeric column of the table",
                              accepted=sorted(table.extra))
        train = table.extra[column] == 1
    if train.sum() < MIN_TRAIN:
        raise ConfigError("split", f"protocol {protocol!r} selects {train.sum()} training motifs; at least "
                          f"{MIN_TRAIN} are needed to fit and rank")
    if train.all():
        raise ConfigError("split", f"protocol {protocol!r} selects all {len(table)} motifs for training and "
                          "leaves none held out")
    return table.subset(np.flatnonzero(train)), table.subset(np.flatnonzero(~train))
