"""The README check (scripts/check_readme.py): which commands it finds, skips and appends to, and its verdicts.

CI runs the whole check after the tests; these tests pin down its parts in seconds.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dish.core.provenance import ground_truth_hash

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_readme", REPO / "scripts" / "check_readme.py")
check = importlib.util.module_from_spec(_spec)
sys.modules["check_readme"] = check
_spec.loader.exec_module(check)

SAMPLE = """# Title

```bash
pip install -e ".[dev]" && python tasks/compare.py experiment=paper_sigmoid
# a comment line
python tasks/ground_truth.py -m motif.slope=0.5,2   # one job per motif
python tasks/search.py ground_truth.launcher=submitit_slurm \\
    ground_truth.launcher_overrides='["hydra.launcher.partition=cpu"]'
```

```
python not_a_shell_block.py
```

Prose with `python tasks/ground_truth.py -m motif.slope=0.5,2` again and `python tasks/ground_truth.py
data=mnist data.download=true` across a line break.
"""


def test_extract_joins_continuations_drops_comments_and_splits_and_lists() -> None:
    commands = check.extract(SAMPLE)
    assert [c.text for c in commands] == [
        'pip install -e ".[dev]"',
        "python tasks/compare.py experiment=paper_sigmoid",
        "python tasks/ground_truth.py -m motif.slope=0.5,2",
        "python tasks/search.py ground_truth.launcher=submitit_slurm "
        "ground_truth.launcher_overrides='[\"hydra.launcher.partition=cpu\"]'",
        "python tasks/ground_truth.py data=mnist data.download=true",
    ]
    assert [c.line for c in commands] == [4, 4, 6, 7, 15]


def test_commands_that_need_what_ci_lacks_are_skipped_by_name() -> None:
    reasons = {c.text.split()[-1]: c.skip_reason for c in check.extract(SAMPLE)}
    assert "installs dish" in reasons['".[dev]"']
    assert "SLURM" in reasons["ground_truth.launcher_overrides='[\"hydra.launcher.partition=cpu\"]'"]
    assert "network" in reasons["data.download=true"]
    assert reasons["experiment=paper_sigmoid"] is None
    assert reasons["motif.slope=0.5,2"] is None


def test_small_budget_overrides_shrink_every_task_and_keep_the_build() -> None:
    def budget(text: str) -> list[str]:
        return check.small_budget(check.Command(text, 1))

    assert budget("python tasks/ground_truth.py -m motif.slope=0.5,2") == ["trainer.max_epochs=2"]
    assert budget("python tasks/ground_truth.py task=rnn_cell") == ["model.max_steps=3"]
    # the main job's build keeps the experiment's overrides and gets the small budget after them
    steps, seeds, build = budget("python tasks/compare.py experiment=paper_sigmoid")
    assert (steps, seeds) == ("dish.steps=2", "seed=0")  # the experiment's sweep over 3 seeds, cut to 1
    assert build.startswith('gt.build=["data=digits","population=slope_grid",')
    assert build.endswith(',"trainer.max_epochs=2"]')
    # a table of the store without a build: the rows of the default config at the small budget
    (pick,) = [o for o in budget("python tasks/compare.py gt.path=store/x.csv") if o.startswith("gt.config_hash=")]
    assert len(pick.partition("=")[2]) == 12
    assert budget("python tasks/compare.py gt.path=../shared/data/t.csv") == ["dish.steps=2"]
    # a sweep over cross-validation folds: two folds of one seed
    assert budget("python tasks/compare.py experiment=nb_nlp_dish_cv") == ["dish.steps=2", "seed=0", "split.fold=0,1"]
    # a sweep over training sizes: its first size
    assert budget("python tasks/compare.py experiment=nb_nlp_dev") == ["dish.steps=2", "seed=0", "split.n=10"]
    assert budget("python tasks/compare.py experiment=nb_nlp_dev seed=3 split.n=20") == ["dish.steps=2"]
    assert budget("python tasks/compare.py experiment=predictors_nb_nlp") == ["dish.steps=2", "seed=0",
                                                                                 "split.n=10"]
    # an experiment that builds a cell table: the small budget of cells
    assert budget("python tasks/compare.py experiment=predictors_cells")[-1].endswith(',"model.max_steps=3"]')
    # one run of a sweeping experiment: nothing to cut
    assert budget("python tasks/compare.py experiment=predictors_digits hydra.mode=RUN")[:1] == ["dish.steps=2"]
    assert not check._multirun(["python", "tasks/compare.py", "experiment=predictors_digits", "hydra.mode=RUN"])
    # a cell table: the hash of cells at the small budget of cells (windows, not epochs)
    cells = check._composed("ground_truth", ["task=rnn_cell", "model.max_steps=3"])
    assert budget("python tasks/compare.py gt.path=store/x.csv gt.motif=rnn_cell")[1] == (
        f"gt.config_hash={ground_truth_hash(cells)}")
    assert budget("python tasks/search.py -m search.seed=0,1") == [
        "trainer.max_epochs=2", "search.budget=2", "dish.steps=2"]
    assert "search.seed=0" in budget("python tasks/search.py -m experiment=search_table")
    # an experiment file that mentions cells in a comment is no cell experiment
    assert "trainer.max_epochs=2" in budget("python tasks/search.py -m experiment=search_table motif=activation")


def test_expected_outputs_follow_where_the_readme_says_runs_and_sweeps_write() -> None:
    def outputs(text: str) -> list[str]:
        return check.expected_outputs(check.Command(text, 1))

    assert outputs("python tasks/ground_truth.py -m motif.slope=1,2") == [
        "outputs/ground_truth/multiruns/*/*/.hydra/config.yaml", "?store/*.csv"]
    assert outputs("python tasks/compare.py gt.path=x.csv") == [
        "outputs/compare/runs/*/.hydra/config.yaml", "outputs/compare/runs/*/comparison.json"]
    # an experiment that sets hydra.mode=MULTIRUN sweeps without -m
    assert outputs("python tasks/search.py experiment=search_table")[1] == "outputs/search/multiruns/*/*/search.json"
    assert outputs("python -m dish.bench ground_truth --json bench.json") == ["bench.json"]


def test_missing_outputs_counts_only_files_written_since_the_command_started(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text("{}")
    since = time.time() + 5
    assert check.missing_outputs(tmp_path, ["old.json", "a.json|old.json"], since) == ["old.json", "a.json|old.json"]
    assert check.missing_outputs(tmp_path, ["old.json"], since - 60) == []
    assert check.missing_outputs(tmp_path, ["?old.json", "?new.json"], since) == ["?new.json"]


@pytest.mark.parametrize(("command", "failures"), [("python -c pass", 0), ("python -c 'raise SystemExit(3)'", 1),
                                                    ("python tasks/report.py outputs", 1)])
def test_run_fails_on_a_non_zero_exit(command: str, failures: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert check.run([check.Command(command, 7)], timeout=120) == failures
    assert ("FAIL" in capsys.readouterr().out) == bool(failures)


def test_every_readme_command_runs_or_is_skipped_with_a_reason() -> None:
    commands = check.extract((REPO / "README.md").read_text())
    ran = [c for c in commands if not c.skip_reason]
    assert any("experiment=paper_sigmoid" in c.text for c in ran)  # the main job is checked
    for command in ran:
        words = command.words
        assert words[0] in ("python", "ruff"), command
        if words[0] == "python" and words[1].startswith("tasks/") and words[1] != "tasks/report.py":
            assert check.expected_outputs(command), command


def test_lanes_split_at_their_headings_and_each_readme_heading_of_lanes_exists() -> None:
    readme = "# T\n```bash\npython a.py\n```\n## Later\n```bash\npython b.py\npython c.py\n```\n"
    commands = check.extract(readme)
    original = check.LANES
    try:
        check.LANES = ("## Later",)
        assert [[c.text for c in lane] for lane in check.lanes(readme, commands)] == [
            ["python a.py"], ["python b.py", "python c.py"]]
        check.LANES = ("## Missing",)
        with pytest.raises(SystemExit, match="Missing"):
            check.lanes(readme, commands)
    finally:
        check.LANES = original
    real = (REPO / "README.md").read_text()
    assert len(check.lanes(real, check.extract(real))) == len(check.LANES) + 1


def test_small_budgets_compose_from_several_lanes_at_once() -> None:
    command = check.Command("python tasks/ground_truth.py data=fashion_mnist", 1)
    with ThreadPoolExecutor(4) as pool:
        budgets = list(pool.map(lambda _: check.small_budget(command), range(8)))
    assert budgets == [["trainer.max_epochs=2", "data.subset=1000", "data.val_subset=1000"]] * 8
