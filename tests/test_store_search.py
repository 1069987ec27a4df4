"""The search's ground-truth settings: one config hash of a table, and only settings that apply to its oracle."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf
from test_store_tasks import composed_hash, last_line, store_rows

from dish.core.errors import ConfigError
from dish.search.oracles import check_settings, launcher_options

SEARCH = ["ground_truth.oracle=table", "search.predictor=random", "search.start.store=false", "search.start.random=2",
          "search.budget=2", "logger=none"]


def test_table_search_reads_one_config_hash(tmp_path, run_search):
    current = composed_hash("search", [])
    table = store_rows(tmp_path / "gt.csv", current, [0.5, 1, 2, 4, 8, 16], 50)
    store_rows(table, "other", [0.5, 1, 2, 4, 8, 16, 32, 64], 5)
    for overrides, pool in (([], 6), (["ground_truth.config_hash=other"], 8)):
        run = tmp_path / f"run{pool}"
        done = run_search(*SEARCH, f"ground_truth.table={table}", *overrides, f"store.dir={tmp_path}",
                          f"hydra.run.dir={run}")
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads((run / "search.json").read_text())["pool_size"] == pool

    store_rows(table, "third", [0.5, 1, 2], 10)
    done = run_search(*SEARCH, f"ground_truth.table={table}", "trainer.max_epochs=7", f"store.dir={tmp_path}",
                      f"hydra.run.dir={tmp_path / 'refused'}")
    assert done.returncode == 2
    assert last_line(done) == (
        f"error: ground_truth.config_hash: {table} holds rows of 3 ground-truth configs, none of them this run's "
        f"({composed_hash('search', ['trainer.max_epochs=7'])}); choose one (accepted: other (8 rows: "
        f"trainer.max_epochs=5), {current} (6 rows: trainer.max_epochs=50), third (3 rows: trainer.max_epochs=10))")


@pytest.mark.parametrize("oracle", ["live", "table"])
def test_unknown_launcher_is_a_one_line_error(tmp_path, run_search, oracle):
    table = store_rows(tmp_path / "gt.csv", "h", [0.5, 1, 2, 4], 5)
    table_setting = [f"ground_truth.table={table}"] if oracle == "table" else []
    done = run_search(f"ground_truth.oracle={oracle}", *table_setting, "ground_truth.launcher=foo", "logger=none",
                      f"store.dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2
    line = last_line(done)  # the live oracle's settings are also checked with the search's (dish.cli.validation)
    assert line.startswith("error: ground_truth.launcher: ") and "'foo'" in line
    assert line.endswith(f"(accepted: {', '.join(launcher_options())})")
    assert not (tmp_path / "searches").exists()  # stopped before the search began


def test_launcher_options_are_population_the_presets_and_hydras_plugins():
    options = launcher_options()
    assert options[0] == "population"
    assert {"basic", "joblib", "submitit_local", "submitit_slurm", "slurm", "slurm_local"} <= set(options)


def settings(**changes) -> OmegaConf:
    defaults = {"oracle": "live", "table": None, "config_hash": None, "score": "val_loss", "launcher": "population",
                "launcher_overrides": []}
    return OmegaConf.create({**defaults, **changes})


@pytest.mark.parametrize(("changes", "field", "problem"), [
    ({"oracle": "lookup"}, "ground_truth.oracle", "unknown oracle 'lookup'"),
    ({"oracle": "table"}, "ground_truth.table", "the table oracle needs the path of a ground-truth CSV"),
    ({"oracle": "table", "table": "t.csv", "launcher": "joblib"}, "ground_truth.launcher",
     "'joblib' does not apply to the table oracle, which trains nothing"),
    ({"oracle": "table", "table": "t.csv", "launcher_overrides": ["hydra.launcher.n_jobs=2"]},
     "ground_truth.launcher_overrides", "apply only to a hydra launcher"),
    ({"table": "t.csv"}, "ground_truth.table", "'t.csv' does not apply to the live oracle"),
    ({"config_hash": "abc"}, "ground_truth.config_hash", "'abc' does not apply to the live oracle"),
    ({"launcher_overrides": ["hydra.launcher.n_jobs=2"]}, "ground_truth.launcher_overrides",
     "apply only to a hydra launcher"),
], ids=["oracle", "table-without-path", "table-launcher", "table-overrides", "live-table", "live-hash",
        "population-overrides"])
def test_settings_that_do_not_apply_to_the_oracle_are_errors(changes, field, problem):
    with pytest.raises(ConfigError) as error:
        check_settings(settings(**changes))
    assert error.value.field == field
    assert error.value.problem.startswith(problem)


@pytest.mark.parametrize("changes", [
    {}, {"launcher": "joblib", "launcher_overrides": ["hydra.launcher.n_jobs=2"]}, {"launcher": "slurm"},
    {"oracle": "table", "table": "t.csv", "config_hash": "abc"},
])
def test_settings_that_apply_pass(changes):
    check_settings(settings(**changes))
