"""Aggregate a multirun of tasks/compare.py into one table (mean and spread per predictor, split, size).

    python tasks/report.py outputs/compare/multiruns/2026-11-29_10-00-00
"""

import argparse
from pathlib import Path

from dish.report import format_table, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="a multirun directory holding comparison.json files")
    args = parser.parse_args()
    table = write_report(args.directory)
    if not table:
        parser.error(f"no comparison.json under {args.directory}")
    print(format_table(table))


if __name__ == "__main__":
    main()
