"""Aggregate a multirun of tasks/compare.py into one table (mean and spread per predictor, split, size), or one
of tasks/search.py into the strategies' curves over seeds (search_report.json and .png).

    python tasks/report.py outputs/compare/multiruns/2026-11-29_10-00-00
    python tasks/report.py outputs/search/multiruns/2026-11-29_11-00-00
"""

import argparse
from pathlib import Path

from dish.report import format_table, write_report
from dish.search_report import format_search_report, write_search_report


def main() -> None:
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
    main()
