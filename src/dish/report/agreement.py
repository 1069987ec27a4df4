"""Is a table ground truth? How two of its configs (e.g. two training seeds) rank the motifs both trained, and
where given motifs rank in each.

    python -m dish.report.agreement store/activation_fashion_mnist.csv --rank-of name=relu name=silu name=gelu

With ``--reference FILE --reference-score COLUMN`` it also says how each config ranks the motifs against another
table of the same kind, e.g. a benchmark's losses of the same cells trained for real.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from collections import defaultdict
from pathlib import Path

import torch
from torchmetrics.functional import kendall_rank_corrcoef, spearman_corrcoef

from dish.core.errors import StoreError
from dish.motifs.kind import Motif, motif_class
from dish.store.csv_store import GroundTruthStore
from dish.store.tables import load_table, score_sign


def scores_by_config(path: Path, score: str) -> tuple[type[Motif], dict[str, dict[str, float]]]:
    """The table's motif kind and, per config hash, the oriented score (higher = better) of every successful row,
    by motif key."""
    with path.open(newline="", encoding="utf-8") as handle:
        first = next(csv.DictReader(handle), None)
    if first is None or not first.get("motif_kind"):
        raise StoreError(f"store {path}: has no rows of this project's format (with motif_kind)")
    kind = motif_class(first["motif_kind"])
    tables: dict[str, dict[str, float]] = defaultdict(dict)
    for row in GroundTruthStore(path, kind).read():
        if row.get("status") in (None, "", "ok") and row.get(score):
            tables[row.get("config_hash", "")][row["motif_key"]] = score_sign(score, "--score") * float(row[score])
    return kind, dict(tables)


def agreement(a: dict[str, float], b: dict[str, float]) -> tuple[int, float, float]:
    """Motifs in both, and the Spearman and Kendall correlation of their scores."""
    common = sorted(set(a) & set(b))
    x = torch.tensor([a[key] for key in common], dtype=torch.float64)
    y = torch.tensor([b[key] for key in common], dtype=torch.float64)
    return len(common), float(spearman_corrcoef(x, y)), float(kendall_rank_corrcoef(x, y))


def rank_of(ranked: list[dict[str, object]], field: str, value: str) -> str:
    """The 1-based rank of the first motif whose `field` reads `value`, or ``-``."""
    return str(next((i + 1 for i, fields in enumerate(ranked) if str(fields.get(field)) == value), "-"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path)
    parser.add_argument("--score", default="val_loss", help="the score column (orientation from its name)")
    parser.add_argument("--rank-of", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="report the rank of the motifs whose key holds FIELD=VALUE")
    parser.add_argument("--reference", type=Path, help="another table of the same motifs (any CSV load_table reads)")
    parser.add_argument("--reference-score", default="val_loss", help="the reference's score column")
    args = parser.parse_args()
    kind, tables = scores_by_config(args.store, args.score)
    fields = {kind.decode(row).key: kind.decode(row).encode() for row in GroundTruthStore(args.store, kind).read()}
    wanted = [text.partition("=")[::2] for text in args.rank_of]
    for digest, table in tables.items():
        ranked = [fields[key] for key in sorted(table, key=lambda key: -table[key])]
        places = [f"{field}={value} {rank_of(ranked, field, value)}" for field, value in wanted]
        print(f"config {digest}: {len(table)} motifs" + (f"; rank of {', '.join(places)}" if places else ""))
    for (first, a), (second, b) in itertools.combinations(tables.items(), 2):
        common, spearman, kendall = agreement(a, b)
        print(f"{first} vs {second}: {common} motifs in both, Spearman {spearman:.3f}, Kendall {kendall:.3f}")
    if args.reference is not None:
        reference = load_table(args.reference, kind, args.reference_score)
        truth = {motif.key: float(score) for motif, score in zip(reference.motifs, reference.scores, strict=True)}
        for digest, table in tables.items():
            common, spearman, kendall = agreement(table, truth)
            print(f"{digest} vs {args.reference} ({args.reference_score}): {common} motifs in both, "
                  f"Spearman {spearman:.3f}, Kendall {kendall:.3f}")


if __name__ == "__main__":
    main()
