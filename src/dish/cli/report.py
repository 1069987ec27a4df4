"""Aggregate a multirun of comparisons into one table (mean and spread per predictor, split, size), or one of
searches into the strategies' curves over seeds (search_report.json and .png) (`dish-report`).

    dish-report outputs/compare/multiruns/2026-11-29_10-00-00
    dish-report outputs/search/multiruns/2026-11-29_11-00-00
"""

import argparse
from pathlib import Path

from dish.report.search import format_search_report, write_search_report
from dish.report.sweep import format_table, write_report


def entry() -> None:
    """The console script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="a multirun directory of comparison.json or search.json files")
    args = parser.parse_args()
    table = write_report(args.directory)
    searches = write_search_report(args.directory)
    if not table and not searches:
        parser.error(f"no comparison.json or search.json under {args.directory}")
    if table:
        print(format_table(table))
    if searches:
        print(format_search_report(searches))


if __name__ == "__main__":
    entry()
