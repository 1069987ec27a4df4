"""Language-model ground truth of recurrent cells: it learns, and a population equals its cells run alone."""

from __future__ import annotations

import math
import random

import pytest
import torch

from dish.cells import RecurrentCell
from dish.corpus import batchify, embedded_corpus
from dish.language_model import LanguageModelGroundTruth, fit_language_models


@pytest.fixture(scope="module")
def corpus():
    return embedded_corpus()


@pytest.fixture(scope="module")
def streams(corpus):
    return batchify(corpus.train, 16), batchify(corpus.valid[:2000], 8)


def test_loss_falls_within_a_few_dozen_steps(corpus, streams):
    cells = [RecurrentCell("darts_v2"), RecurrentCell("tanh0_tanh1_tanh2_tanh3_tanh4_tanh5_tanh6_tanh7")]
    untrained = LanguageModelGroundTruth(cells, len(corpus.vocab), hidden=16, bptt=20)
    before = untrained.evaluate(streams[1])
    assert torch.allclose(before, torch.full((2,), math.log(len(corpus.vocab))), atol=0.05)  # uniform guess
    module = fit_language_models(cells, *streams, len(corpus.vocab), max_epochs=5, hidden=16, bptt=20,
                                 max_steps=40)
    assert module.steps_done == 40
    for row in module.results():
        assert row["status"] == "ok" and row["train_steps"] == 40
        assert row["val_ppl"] < len(corpus.vocab) / 3  # from ~1660 (uniform) to under a third of it


def test_population_equals_each_cell_trained_alone(corpus, streams):
    cells = [RecurrentCell("darts_v1"), *(RecurrentCell.sample(random.Random(seed)) for seed in range(2))]
    options = {"max_epochs": 2, "hidden": 8, "bptt": 10, "max_steps": 12}
    together = fit_language_models(cells, *streams, len(corpus.vocab), **options).results()
    for cell, row in zip(cells, together, strict=True):
        (alone,) = fit_language_models([cell], *streams, len(corpus.vocab), **options).results()
        assert row["val_loss"] == pytest.approx(alone["val_loss"], abs=1e-5)
    assert len({round(row["val_loss"], 4) for row in together}) == 3  # different cells, different numbers


def test_ground_truth_task_trains_cells_into_the_store(tmp_path, run_task, read_store):
    store, other = tmp_path / "cells.csv", "tanh0_relu1_sigmoid2_identity0_tanh4_relu0_relu6_sigmoid3"
    args = ["task=rnn_cell", f"population.cells=[darts_v2,{other}]", "model.max_steps=6", "model.hidden=8",
            "data.batch_size=16", "logger=none", f"store.path={store}"]
    proc = run_task(*args, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {row["genotype"]: row for row in read_store(store)}
    assert set(rows) == {RecurrentCell("darts_v2").genotype, other}
    for row in rows.values():
        assert row["motif_kind"] == "rnn_cell" and row["status"] == "ok" and row["data"] == "python_docs"
        assert row["train_steps"] == "6" and row["population_size"] == "2"
        assert float(row["val_ppl"]) == pytest.approx(math.exp(float(row["val_loss"])), rel=1e-6)
    rerun = run_task(*args, f"hydra.run.dir={tmp_path / 'rerun'}")
    assert rerun.returncode == 0 and "skipping 2 motif(s)" in rerun.stdout + rerun.stderr


def test_bad_genotype_on_the_command_line_is_one_line_error(tmp_path, run_task):
    proc = run_task("task=rnn_cell", "motif.genotype=tanh0_foo1", "logger=none", f"store.path={tmp_path / 'x.csv'}",
                    f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: motif.genotype: node 2: unknown op 'foo' (accepted: tanh, relu, sigmoid, identity)"]
