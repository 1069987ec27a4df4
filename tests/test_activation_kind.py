"""The kind `activation`: expressions of the grammar and named functions as motifs, trained in the MLP host as one
population, and the interface contract of its ground-truth job."""

from __future__ import annotations

import functools
import json
import math
import random

import pytest
import pytorch_lightning as pl
import torch
from conftest import read_csv_rows

from dish.core.errors import ConfigError
from dish.data import DigitsDataModule
from dish.hosts.classifier import ClassifierGroundTruth
from dish.motifs.activation import Activation

OVERFLOW = {"unary1": "exp", "unary2": "cube", "binary": "mul", "unary3": "exp", "unary4": "x", "binary2": "mul"}
"""exp(exp(x) * x^3) * x: inf within the first steps on the digits."""


def fit(motifs: list[Activation], epochs: int = 2) -> list[dict]:
    torch.manual_seed(0)
    datamodule = DigitsDataModule(seed=0, batch_size=100)
    module = ClassifierGroundTruth(motifs, datamodule.input_dim, 10, [32, 32],
                                   functools.partial(torch.optim.SGD, lr=0.1), seed=0)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, num_sanity_val_steps=0,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=datamodule)
    return module.results()


def test_named_functions_and_expressions_have_one_key_each():
    assert Activation(name="swish") == Activation(name="silu")
    assert Activation(unary1="x", unary2="x", binary="sigmoid_mul") == Activation(name="silu")
    assert Activation.decode({"name": "", "unary1": "tanh", "unary2": "x", "binary": "mul", "beta": "1"}).beta == 1.0
    silu = Activation(name="silu")
    assert Activation.from_key(silu.key) == silu and Activation.parse("gelu") == Activation(name="gelu")
    with pytest.raises(ConfigError, match=r"^unary1: unknown op 'foo' \(accepted: x, neg, "):
        Activation(unary1="foo", unary2="x", binary="add")


def test_random_populations_are_seeded_and_distinct():
    first = Activation.from_population_config({"n": 30, "seed": 3, "named": False})
    assert first == Activation.from_population_config({"n": 30, "seed": 3, "named": False})
    assert len({motif.key for motif in first}) == 30 and all(motif.name == "" for motif in first)
    named = Activation.from_population_config({"n": 0, "named": True})
    assert {motif.name for motif in named} == {"relu", "silu", "gelu", "tanh", "sigmoid", "softplus", "elu",
                                               "leaky_relu", "identity"}
    rng = random.Random(0)
    mutants = [motif.mutate(rng) for motif in first[:10]]
    assert all(mutant != motif for mutant, motif in zip(mutants, first, strict=False))
    assert len({len(motif.features()) for motif in [*first, *named]}) == 1


def test_a_population_trains_each_expression_as_it_trains_alone():
    """Tolerance: 1e-5 on validation loss and accuracy after 2 epochs (float32 reordering of batched matmuls)."""
    motifs = [Activation(name="relu"), Activation(name="gelu"), *Activation.from_population_config({"n": 4,
                                                                                                      "seed": 1})]
    together = fit(motifs)
    for motif, row in zip(motifs, together, strict=True):
        (alone,) = fit([motif])
        if math.isfinite(alone["val_loss"]):
            assert row["val_loss"] == pytest.approx(alone["val_loss"], abs=1e-5), motif.key
            assert row["val_acc"] == pytest.approx(alone["val_acc"], abs=1e-5), motif.key
        assert row["status"] == alone["status"], motif.key


def test_an_overflowing_expression_is_a_failed_row_and_the_others_train():
    rows = {row["motif"].key: row for row in fit([Activation(name="relu"), Activation(**OVERFLOW)], epochs=3)}
    relu, overflow = rows[Activation(name="relu").key], rows[Activation(**OVERFLOW).key]
    assert relu["status"] == "ok" and math.isfinite(relu["val_loss"])
    assert overflow["status"] == "failed" and overflow["reason"].startswith("non-finite training loss in epoch 0")


def test_the_ground_truth_job_writes_one_row_per_expression(tmp_path, run_task, run_compare):
    store = tmp_path / "gt.csv"
    done = run_task("motif=activation", "population=activation_random", "population.n=10", "population.seed=5",
                    "trainer.max_epochs=1", f"store.path={store}", "logger=none", f"hydra.run.dir={tmp_path / 'a'}")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_csv_rows(store)
    assert len(rows) == 10 and {row["motif_kind"] for row in rows} == {"activation"}
    assert {row["motif_key"] for row in rows} == {m.key for m in Activation.from_population_config(
        {"n": 10, "seed": 5})}
    done = run_task("motif=activation", "motif.name=silu", "trainer.max_epochs=1", f"store.path={store}",
                    "logger=none", f"hydra.run.dir={tmp_path / 'b'}")
    assert done.returncode == 0, done.stderr[-3000:]
    (silu,) = [row for row in read_csv_rows(store) if row["name"] == "silu"]
    assert silu["status"] == "ok" and silu["binary"] == "sigmoid_mul"

    done = run_compare(f"gt.path={store}", "gt.motif=activation", "split=random", "split.n=5", "seed=1",
                       "dish.steps=3", "logger=none", f"hydra.run.dir={tmp_path / 'c'}")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert list(report["predictors"]) == ["dish", "nn_surrogate", "gp"]  # no quadratic: no scalar field
    ok = sum(row["status"] == "ok" for row in read_csv_rows(store))
    assert report["n_train"] == 5 and report["n_heldout"] == ok - 5
