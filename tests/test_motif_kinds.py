"""A motif kind defined outside dish, through the public interface only: one class, one config file and an entry
point. Ground truth, the comparison (dish, NN surrogate, GP) and a table search run on it unchanged."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from conftest import REPO, read_csv_rows, run_task_process
from torch import Tensor, nn

from dish.core.errors import ConfigError
from dish.hosts.classifier import ClassifierGroundTruth
from dish.hosts.dish_networks import MLPDishNetwork
from dish.motifs.kind import Motif, motif_class, register

KIND = "toy_scaled_tanh"


@register
@dataclasses.dataclass(frozen=True)
class ScaledTanh(Motif):
    """``tanh(scale * x) ** power`` (power odd): a two-field kind with a float and an int field, no scalar axis."""

    kind: ClassVar[str] = KIND
    ground_truth: ClassVar = ClassifierGroundTruth
    dish_network: ClassVar = MLPDishNetwork
    scale: float
    power: int

    def features(self) -> list[float]:
        return [self.scale, float(self.power)]

    @classmethod
    def population(cls, motifs: Sequence[Motif]) -> nn.Module:
        return ScaledTanhPopulation([m.scale for m in motifs], [m.power for m in motifs])  # type: ignore[attr-defined]

    @classmethod
    def sample(cls, rng: random.Random) -> ScaledTanh:
        return cls(round(rng.uniform(0.1, 4.0), 2), rng.choice([1, 3]))

    def mutate(self, rng: random.Random) -> ScaledTanh:
        return ScaledTanh(round(self.scale * 2 ** rng.gauss(0, 1), 2), self.power)


class ScaledTanhPopulation(nn.Module):
    def __init__(self, scales: Sequence[float], powers: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("scales", torch.tensor(scales, dtype=torch.float32))
        self.register_buffer("powers", torch.tensor(powers, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        return torch.tanh(self.scales.view(shape) * x).pow(self.powers.view(shape))


MOTIFS = [(scale, power) for scale in (0.25, 0.5, 1.0, 2.0, 4.0) for power in (1, 3)]


@pytest.fixture(scope="module")
def user_package(tmp_path_factory) -> dict[str, str]:
    """What a user's package provides: this module importable, a ``dish.motifs`` entry point naming its kind,
    and a config folder with the kind's motif file and a population."""
    root = tmp_path_factory.mktemp("user_package")
    info = root / "site" / "toy_kind-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-kind\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[dish.motifs]\n{KIND} = test_motif_kinds:ScaledTanh\n")
    conf = root / "conf"
    (conf / "motif").mkdir(parents=True)
    (conf / "population").mkdir()
    (conf / "motif" / "toy.yaml").write_text(
        "# @package _global_\nmotif:\n  _target_: test_motif_kinds.ScaledTanh\n  scale: 1.0\n  power: 1\n"
        "search:\n  candidates: {random: 6, mutations: 4, parents: 2}\n")
    entries = ", ".join(f"{{scale: {scale}, power: {power}}}" for scale, power in MOTIFS)
    (conf / "population" / "toy_grid.yaml").write_text(f"motifs: [{entries}]\n")
    return {"conf": str(conf), "pythonpath": f"{root / 'site'}:{REPO / 'tests'}"}


def run(task: str, overrides: list[str], package: dict[str, str], home: Path):
    import os

    os.environ["PYTHONPATH"] = package["pythonpath"]  # task_env copies the environment
    try:
        return run_task_process(["--config-dir", package["conf"], *overrides], home, task=task)
    finally:
        del os.environ["PYTHONPATH"]


def test_fields_are_coerced_to_their_types_and_keys_round_trip():
    motif = ScaledTanh.decode({"scale": "0.5", "power": "3", "other": "ignored"})
    assert (motif.scale, motif.power) == (0.5, 3) and type(motif.power) is int
    assert motif == ScaledTanh(0.5, 3) and motif.key == "toy_scaled_tanh(scale=0.5,power=3)"
    assert ScaledTanh.from_key(motif.key) == motif
    assert ScaledTanh.parse({"scale": 0.5, "power": 3}) == ScaledTanh.parse(motif.key) == motif
    with pytest.raises(ConfigError, match=r"toy_scaled_tanh.power: 'three' is not a int"):
        ScaledTanh.decode({"scale": "0.5", "power": "three"})
    assert motif_class(KIND) is ScaledTanh


def test_population_config_reads_motifs_and_refuses_other_keys():
    motifs = ScaledTanh.from_population_config({"motifs": ["toy_scaled_tanh(scale=2,power=1)", {"scale": 2.0,
                                                                                                  "power": 1}]})
    assert motifs == [ScaledTanh(2.0, 1)]  # the same motif twice, kept once
    with pytest.raises(ConfigError, match=r"population.slopes: is not read by motif kind 'toy_scaled_tanh'"):
        ScaledTanh.from_population_config({"slopes": [1.0]})


def test_ground_truth_comparison_and_table_search_on_a_kind_from_another_package(tmp_path, user_package):
    store = tmp_path / "toy.csv"
    done = run("ground_truth", ["motif=toy", "population=toy_grid", "trainer.max_epochs=3", f"store.path={store}",
                                "logger=none", f"hydra.run.dir={tmp_path / 'gt'}"], user_package, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_csv_rows(store)
    assert sorted((float(r["scale"]), int(r["power"])) for r in rows) == sorted(MOTIFS)
    assert {r["motif_kind"] for r in rows} == {KIND} and all(r["status"] == "ok" for r in rows)
    assert len({r["val_loss"] for r in rows}) == len(MOTIFS)  # every member trained its own motif

    compare = ["gt.path=" + str(store), f"gt.motif={KIND}", "dish.steps=3", "logger=none"]
    random_split = ["split=random", "split.n=6"]
    done = run("compare", [*compare, *random_split, "predictors=[dish,nn_surrogate,gp]",
                           f"hydra.run.dir={tmp_path / 'compare'}"], user_package, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "compare" / "comparison.json").read_text())
    assert set(report["predictors"]) == {"dish", "nn_surrogate", "gp"} and report["n_heldout"] == 4
    assert (tmp_path / "compare" / "comparison.png").stat().st_size > 0  # plotted in rank order: no motif axis

    for refused, message in ((["split=range", "predictors=[dish]"],
                              "split: protocol 'range' needs a motif kind with a scalar field"),
                             ([*random_split, "predictors=[quadratic]"],
                              "predictors: quadratic needs a motif kind with a scalar field")):
        done = run("compare", [*compare, *refused, f"hydra.run.dir={tmp_path / 'refused'}"], user_package, tmp_path)
        assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(f"error: {message}")

    search = ["motif=toy", "ground_truth.oracle=table", f"ground_truth.table={store}", "search.predictor=dish",
              "search.budget=3", "search.start.store=false", "search.start.random=3", "dish.steps=3",
              f"store.dir={tmp_path}", "logger=none", f"hydra.run.dir={tmp_path / 'search'}"]
    done = run("search", search, user_package, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "search" / "search.json").read_text())
    assert result["spent"] == 3 and result["pool_size"] == len(MOTIFS)
    assert {e["key"] for e in result["evaluations"]} <= {ScaledTanh(s, p).key for s, p in MOTIFS}
