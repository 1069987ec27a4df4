"""Ground-truth tables (motifs and their scores, higher = better) and their train/held-out splits."""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from dish.core.errors import ConfigError, StoreError
from dish.core.provenance import ground_truth_hash
from dish.motifs.kind import Motif
from dish.store.csv_store import GroundTruthStore

SCORE_ORIENTATION = {"val_loss": -1.0, "val_acc": 1.0, "val_ppl": -1.0, "best_val_loss": -1.0, "best_val_acc": 1.0}
"""Sign that turns each column the ground-truth jobs write into a score where higher = better."""
LOWER_IS_BETTER = ("loss", "ppl", "perplexity", "error")
HIGHER_IS_BETTER = ("acc", "zc_")
"""Words in any other column's name that say its direction (``ptb_loss``, ``val_loss_epoch1``, ``zc_naswot``:
training-free scores are meant to be larger for better cells)."""
SPLIT_PROTOCOLS = ("random", "range", "flag")
SETTING_COLUMNS = ("data", "epochs", "train_steps", "seed")
"""Columns that tell the rows of two configs apart where the rows do not carry their ``settings``."""
MIN_TRAIN = 3
log = logging.getLogger(__name__)


def score_sign(column: str, field: str = "gt.score") -> float:
    """The sign that makes `column` a score where higher = better, from `SCORE_ORIENTATION` or its name; a
    `ConfigError` on `field` when the name does not say."""
    if column in SCORE_ORIENTATION:
        return SCORE_ORIENTATION[column]
    name = str(column).lower()
    if any(word in name for word in LOWER_IS_BETTER):
        return -1.0
    if any(word in name for word in HIGHER_IS_BETTER):
        return 1.0
    raise ConfigError(field, f"cannot tell whether a higher {column!r} is better or worse", accepted=[
        *SCORE_ORIENTATION, f"a column whose name holds {' / '.join(LOWER_IS_BETTER)} (lower is better)",
        f"or {' / '.join(HIGHER_IS_BETTER)} (higher is better)"])


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

    def join(self, other: GroundTruthTable) -> GroundTruthTable:
        """This table's rows, then `other`'s (the columns both have)."""
        return GroundTruthTable([*self.motifs, *other.motifs], np.concatenate([self.scores, other.scores]),
                                {name: np.concatenate([values, other.extra[name]])
                                 for name, values in self.extra.items() if name in other.extra})


@dataclass(frozen=True)
class TableFields:
    """The config fields a table's errors name: the comparison's (``gt.*``) or the search's (``ground_truth.*``)."""

    path: str
    score: str
    config_hash: str


COMPARE_FIELDS = TableFields("gt.path", "gt.score", "gt.config_hash")
SEARCH_FIELDS = TableFields("ground_truth.table", "ground_truth.score", "ground_truth.config_hash")


def load_table(path: str | os.PathLike[str], motif_type: type[Motif], score: str, *,
               config_hash: str | int | None = None, current: DictConfig | None = None,
               fields: TableFields = COMPARE_FIELDS) -> GroundTruthTable:
    """The successful rows (``status`` absent, empty or ``ok``) of one config hash of a ground-truth CSV (see
    `choose_hash`; a CSV without hashes is used whole), in a canonical order that does not depend on the
    CSV's: by first feature, then key.

    `score` names the column to rank by, any numeric one (`score_sign` orients it so that higher = better);
    rows where it is empty are skipped, with their count in the log. Every other column whose kept values all
    parse as numbers or are empty (NaN; besides the motif's own fields) is kept in `extra`, e.g. a 0/1 flag for
    `split_table`. A motif listed more than once (a cell trained twice) gets the mean of its rows, also logged.
    """
    sign = score_sign(score, fields.score)
    store = GroundTruthStore(path, motif_type)
    if not store.path.exists():
        raise StoreError(f"store {store.path}: does not exist")
    stored = store.read()
    chosen = choose_hash(store.path, stored, config_hash, current, fields.config_hash)
    all_rows = [row for row in stored if _hash_of(row) == chosen]
    rows = [row for row in all_rows if row.get("status") in (None, "", "ok")]
    if not rows:
        raise StoreError(f"store {store.path}: has no successful rows ({len(all_rows)} rows, none with status ok)")
    columns = [name for name in rows[0] if name is not None]  # None holds the cells of over-long rows
    if score not in columns:
        raise ConfigError(fields.score, f"column {score!r} is not in {store.path}", accepted=columns)
    scored = [row for row in rows if (row[score] or "").strip()]
    if len(scored) < len(rows):
        log.info("%s: skipped %d of %d rows with an empty %s", store.path, len(rows) - len(scored), len(rows), score)
    if not scored:
        raise StoreError(f"store {store.path}: no row has a {score}")
    motifs = [_motif(store.path, motif_type, row) for row in scored]
    scores = np.array([sign * _score(store.path, row, score, motif.key) for row, motif in zip(scored, motifs,
                                                                                              strict=True)])
    skipped = {score, *motif_type.field_names()}
    extra = {name: values for name in columns if name not in skipped
             and (values := _numeric([row[name] for row in scored])) is not None}
    return _merge_repeats(store.path, GroundTruthTable(motifs, scores, extra))


def choose_hash(path: Path, rows: Sequence[Mapping[str, str]], explicit: str | int | None, current: DictConfig | None,
                field: str) -> str:
    """The config hash whose rows a comparison or search reads, never a mix: `explicit` if given (it must be in
    the table), else the hash of the ground-truth config `current` where the table has it, else the table's
    only hash (empty for a table without hashes). Anything else is a `ConfigError` on `field` listing each hash
    with its row count and the settings that tell them apart."""
    counts = Counter(_hash_of(row) for row in rows)
    if explicit is not None:
        wanted = str(explicit)  # Hydra reads a hash of digits only as a number
        if wanted not in counts:
            raise ConfigError(field, f"{wanted!r} is not a config hash of {path}", accepted=_listing(rows, counts))
        return wanted
    if len(counts) <= 1:
        return next(iter(counts), "")
    current_hash = None if current is None else ground_truth_hash(current)
    if current_hash in counts:
        return current_hash
    current_text = f", none of them this run's ({current_hash})" if current_hash else ""
    raise ConfigError(field, f"{path} holds rows of {len(counts)} ground-truth configs{current_text}; choose one",
                      accepted=_listing(rows, counts))


def _hash_of(row: Mapping[str, str | None]) -> str:
    return row.get("config_hash") or ""


def _listing(rows: Sequence[Mapping[str, str]], counts: Counter[str]) -> list[str]:
    """Each hash with its row count and its values of the settings that differ between the hashes."""
    groups = {digest: [row for row in rows if _hash_of(row) == digest] for digest in counts}
    recorded = all(any(row.get("settings") for row in group) for group in groups.values())
    settings = {digest: _settings(group, recorded) for digest, group in groups.items()}
    shared = set.intersection(*(set(values) for values in settings.values()))
    differ = sorted(name for name in shared if len({settings[digest][name] for digest in counts}) > 1)
    entries = []
    for digest, count in counts.most_common():
        values = "; ".join(f"{name}={settings[digest][name]}" for name in differ)
        entries.append(f"{digest or '(no hash)'} ({count} row{'s' * (count != 1)}{': ' + values if values else ''})")
    return entries


def _settings(rows: Sequence[Mapping[str, str]], recorded: bool) -> dict[str, str]:
    """The settings of one hash's rows: what it hashes, flattened, where the rows carry it (`recorded`: the
    ``settings`` column of newer rows), else the values of the `SETTING_COLUMNS` the rows have."""
    if recorded:
        return dict(_flat(json.loads(next(row["settings"] for row in rows if row.get("settings"))), ""))
    return {name: "|".join(sorted({row[name] or "" for row in rows})) for name in SETTING_COLUMNS if name in rows[0]}


def _flat(node: Any, prefix: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _flat(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, json.dumps(node)


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
    """The cells as floats (an empty cell as NaN), or None when any of them is text or all are empty."""
    try:
        values = np.array([float(cell) if (cell or "").strip() else math.nan for cell in cells], dtype=np.float64)
    except ValueError:
        return None
    return None if np.isnan(values).all() else values


def _merge_repeats(path: Path, table: GroundTruthTable) -> GroundTruthTable:
    """One row per motif, in a canonical order that does not depend on the CSV's (by first feature, then key):
    a motif's repeats get the mean of their scores and extra columns."""
    groups: dict[str, list[int]] = {}
    for i, motif in enumerate(table.motifs):
        groups.setdefault(motif.key, []).append(i)
    repeated = [rows for rows in groups.values() if len(rows) > 1]
    if repeated:
        spread = max(np.ptp(table.scores[rows]) for rows in repeated)
        log.info("%s: %d motif(s) appear more than once (%d rows); each gets the mean of its scores (largest "
                 "spread %.4g)", path, len(repeated), sum(map(len, repeated)), spread)
    order = sorted(groups.values(), key=lambda rows: (table.motifs[rows[0]].features()[0], table.motifs[rows[0]].key))
    return GroundTruthTable([table.motifs[rows[0]] for rows in order],
                            np.array([table.scores[rows].mean() for rows in order]),
                            {name: np.array([values[rows].mean() for rows in order])
                             for name, values in table.extra.items()})


def split_table(table: GroundTruthTable, protocol: str, *, n: int | None = None,
                slope_min: float | None = None, slope_max: float | None = None, column: str | None = None,
                folds: int | None = None, fold: int = 0, seed: int = 0) -> tuple[GroundTruthTable, GroundTruthTable]:
    """(train, held-out) by `protocol`; every motif lands in exactly one of them.

    - ``random``: `n` motifs drawn without replacement with ``numpy.random.default_rng(seed)``;
    - ``range``: the motifs with ``slope_min <= value <= slope_max`` of their kind's `scalar_field` (the slope; a
      None bound is open);
    - ``flag``: the rows whose numeric column `column` (see `GroundTruthTable.extra`) is 1.

    With `folds`, cross-validation inside the training motifs: they are dealt (seeded) into `folds` parts, part
    `fold` is held out and the others train; the split's own held-out motifs are left out of both.

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
        field = type(table.motifs[0]).scalar_field
        if field is None:
            raise ConfigError("split", f"protocol 'range' needs a motif kind with a scalar field; "
                              f"{table.motifs[0].kind} has none", accepted=["random", "flag"])
        axis = np.array([getattr(motif, field) for motif in table.motifs], dtype=np.float64)
        low = -np.inf if slope_min is None else slope_min
        high = np.inf if slope_max is None else slope_max
        train = (low <= axis) & (axis <= high)
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
    if folds is None:
        return table.subset(np.flatnonzero(train)), table.subset(np.flatnonzero(~train))
    return cross_validation_fold(table.subset(np.flatnonzero(train)), folds, fold, seed)


def cross_validation_fold(table: GroundTruthTable, folds: int, fold: int,
                          seed: int) -> tuple[GroundTruthTable, GroundTruthTable]:
    """(train, held-out) of fold `fold` of `folds`: the motifs dealt in a seeded random order into parts of
    sizes that differ by at most one; part `fold` is held out."""
    if folds > len(table) or len(table) - math.ceil(len(table) / folds) < MIN_TRAIN:
        raise ConfigError("split.folds", f"{folds} folds of {len(table)} training motifs leave fewer than "
                          f"{MIN_TRAIN} to train a fold", accepted=[f"at most {len(table)} folds that leave "
                                                                    f"{MIN_TRAIN} or more motifs to train each"])
    order = np.random.default_rng([seed, folds]).permutation(len(table))
    held = np.array_split(order, folds)[fold]
    return table.subset(np.setdiff1d(order, held)), table.subset(np.sort(held))
