"""Aggregate a multirun of tasks/compare.py into one table (mean and spread per predictor, split, size), or one
of tasks/search.py into the strategies' curves over seeds (search_report.json and .png).

    python tasks/report.py outputs/compare/multiruns/2026-11-29_10-00-00
    python tasks/report.py outputs/search/multiruns/2026-11-29_11-00-00
"""

from dish.cli.report import entry

if __name__ == "__main__":
    entry()
