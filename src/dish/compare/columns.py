"""How well a table's own columns rank its held-out motifs: the yardstick of estimators that come with a table
(early-stopped losses, training-free scores, parameter counts), on exactly the splits of the comparison.

    python -m dish.compare.columns ../shared/data/nb_nlp_dev.csv --motif nb_nlp_cell --score test_loss

For each random split (``split=random split.n=N seed=S`` of tasks/compare.py) and every other numeric column,
the column (oriented by its name: losses lower is better, ``zc_*`` and accuracies higher) is taken as a prediction
of the score on the held-out motifs that have it; Kendall and Spearman are printed as mean +- sd over the seeds,
with the fewest held-out motifs a partly empty column had. A column whose name gives no direction is listed.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from dish.compare.ranking import ranking_metrics
from dish.core.errors import ConfigError
from dish.motifs.kind import motif_class
from dish.store.tables import load_table, score_sign, split_table


def column_rankings(path: Path, kind: str, score: str, sizes: list[int], seeds: list[int]) -> dict:
    """{(column, N): [(kendall, spearman, held-out motifs with the column) per seed]} and the columns left out
    with why."""
    table = load_table(path, motif_class(kind), score)
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    left_out: dict[str, str] = {}
    for name in table.extra:
        try:
            sign = score_sign(name, "column")
        except ConfigError:
            left_out[name] = "its name gives no direction"
            continue
        for size in sizes:
            for seed in seeds:
                _, heldout = split_table(table, "random", n=size, seed=seed)
                present = np.isfinite(heldout.extra[name])
                metrics = ranking_metrics(sign * heldout.extra[name][present], heldout.scores[present])
                results.setdefault((name, size), []).append((metrics["kendall"], metrics["spearman"],
                                                             int(present.sum())))
    return {"results": results, "left_out": left_out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", type=Path)
    parser.add_argument("--motif", required=True, help="the motif kind of the table")
    parser.add_argument("--score", default="val_loss")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 40], help="training motifs per split")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    found = column_rankings(args.table, args.motif, args.score, args.sizes, args.seeds)
    print(f"{'column':<20}{'N':>4}{'kendall':>18}{'spearman':>18}{'held out':>10}")
    for (name, size), triples in found["results"].items():
        cells = []
        *correlations, counts = zip(*triples, strict=True)
        for values in correlations:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):>10.3f} ±{spread:.3f}")
        print(f"{name:<20}{size:>4}{''.join(cells)}{min(counts):>10}")
    for name, why in found["left_out"].items():
        print(f"left out {name}: {why}")


if __name__ == "__main__":
    main()
