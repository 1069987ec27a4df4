"""Search results and their report as strict JSON: a missing score is null, the report counts what it takes the
median of, and every file is readable by everyone."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dish.core.files import write_json_atomic
from dish.report.search import format_search_report, write_search_report
from dish.search.loop import Evaluation, Ledger, _reach_line, _result


def strict_json(path: Path):
    """The JSON in `path`, refusing NaN and Infinity as strict parsers do."""
    return json.loads(path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def search_json(directory: Path, label: str, seed: int, bests: list[float | None], budget: int = 3) -> None:
    """A search.json as tasks/search.py writes it (only what the report reads)."""
    directory.mkdir(parents=True)
    finite = [best for best in bests if best is not None]
    result = {"label": label, "seed": seed, "budget": budget, "best_score": finite[-1] if finite else None,
              "curve": [{"spent": spent, "best_score": best} for spent, best in enumerate(bests)],
              "pool_best": -0.1, "evals_to_best": None, "evals_to_top_fraction": None,
              "ground_truth": {"oracle": "table", "source": "u.csv", "score": "val_loss"}}
    (directory / "search.json").write_text(json.dumps(result))


def test_search_report_takes_the_median_best_over_runs_that_found_one(tmp_path):
    search_json(tmp_path / "0", "random", 0, [-1.0, -0.5, -0.5, -0.2])
    search_json(tmp_path / "1", "random", 1, [None, None, None, None])  # every evaluation failed
    search_json(tmp_path / "2", "random", 2, [-1.0, -0.4, -0.3, -0.3])
    search_json(tmp_path / "3", "surrogate:gp", 0, [-1.0, -0.1])
    report = write_search_report(tmp_path)
    assert strict_json(tmp_path / "search_report.json") == report
    random = report["random"]
    assert (random["runs"], random["best_score_runs"]) == (3, 2)
    assert random["best_score_excluded"] == {"no successful evaluation": 1}
    assert random["best_score_median"] == pytest.approx(-0.25)  # of -0.2 and -0.3, not of the failed run
    assert report["surrogate:gp"]["best_score_excluded"] == {}
    lines = format_search_report(report).splitlines()
    assert "-0.2500 (2/3)" in lines[1] and lines[1].endswith("1 no successful evaluation")
    assert "nan" not in "\n".join(lines)
    for name in ("search_report.json", "search_report.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_a_search_that_found_nothing_writes_nulls(tmp_path):
    cfg = OmegaConf.create({"search": {"predictor": "random", "seed": 4, "budget": 2, "acquisition": "greedy",
                                       "cascade": {"screen": None}},
                            "ground_truth": {"oracle": "live", "table": None, "score": "val_loss"},
                            "store": {"path": str(tmp_path / "sigmoid_slope_digits.csv")}})
    ledger = Ledger(tmp_path / "ledger.json")
    ledger.evaluations = [Evaluation("a", {"slope": 1.0}, math.nan, 0, "start"),
                          Evaluation("b", {"slope": 2.0}, math.nan, 1, "random")]

    class Live:
        pool = None

    result = _result(cfg, Live(), ledger, 1.0)  # type: ignore[arg-type]
    assert result["ground_truth"] == {"oracle": "live", "source": "sigmoid_slope_digits.csv", "score": "val_loss"}
    write_json_atomic(tmp_path / "search.json", result)
    written = strict_json(tmp_path / "search.json")
    assert written["best_score"] is None and written["best_motif"] is None
    assert [point["best_score"] for point in written["curve"]] == [None, None]  # -inf: nothing found yet
    assert [e["score"] for e in written["evaluations"]] == [None, None]
    table_result = {**result, "pool_best": -0.1, "evals_to_best": None, "evals_to_top_fraction": None,
                    "top_fraction": 0.05}
    assert _reach_line(table_result) == ("; no score found; the best reached not within the budget, the top 5% "
                                         "not within the budget")


def test_search_writes_strict_json_and_figure_readable_by_everyone(tmp_path, run_search):
    table = tmp_path / "u.csv"
    table.write_text("slope,val_loss\n" + "".join(f"{s},{abs(s - 3) + 0.1}\n" for s in (0.5, 1, 2, 3, 4, 8, 16)))
    run = tmp_path / "run"
    done = run_search("ground_truth.oracle=table", f"ground_truth.table={table}", "search.predictor=random",
                      "search.start.store=false", "search.start.random=2", "search.budget=2", f"store.dir={tmp_path}",
                      f"hydra.run.dir={run}", "logger=none")
    assert done.returncode == 0, done.stderr[-3000:]
    result = strict_json(run / "search.json")
    assert result["ground_truth"] == {"oracle": "table", "source": "u.csv", "score": "val_loss"}
    assert result["spent"] == 2 and math.isfinite(result["best_score"])
    for path in (run / "search.json", run / "search.png", *(tmp_path / "searches").glob("*.json")):
        assert path.stat().st_mode & 0o777 == 0o644, path
