"""Language-model ground truth of recurrent cells: it learns, and a population equals its cells run alone."""

from __future__ import annotations

import math
import random

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

import dish.hosts.language_model
from dish.core.epochs import OncePerEpoch
from dish.data.corpus import batchify, embedded_corpus
from dish.data.text import TokenStreams
from dish.hosts.language_model import LanguageModelGroundTruth, PopulationLanguageModel, fit_language_models
from dish.motifs.rnn_cell import RecurrentCell


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


def test_decoder_blocks_change_no_loss_or_gradient(corpus, streams, monkeypatch):
    cells = [RecurrentCell.sample(random.Random(seed)) for seed in range(5)]
    inputs, targets = streams[0][:, :10], streams[0][:, 1:11]
    blocks = []
    one_block = dish.hosts.language_model.decoder_losses
    monkeypatch.setattr(dish.hosts.language_model, "decoder_losses",
                        lambda *a: blocks.append(len(a[0])) or one_block(*a))

    def losses_and_grads(block_bytes: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        monkeypatch.setattr(dish.hosts.language_model, "DECODER_BLOCK_BYTES", block_bytes)
        net = PopulationLanguageModel(RecurrentCell.population(cells), len(cells), len(corpus.vocab), hidden=8)
        losses, _ = net(inputs, targets, net.initial_state(len(inputs)))
        losses.sum().backward()
        return losses.detach(), [p.grad for p in net.parameters()]

    logits_bytes = inputs.numel() * len(corpus.vocab) * 4  # one member's logits block
    whole, whole_grads = losses_and_grads(10 * logits_bytes)
    pairs, pair_grads = losses_and_grads(2 * logits_bytes)
    assert blocks == [5, 2, 2, 1]
    assert torch.allclose(pairs, whole, atol=1e-6, rtol=0)
    for pair, one in zip(pair_grads, whole_grads, strict=True):
        assert torch.allclose(pair, one, atol=1e-6, rtol=0)


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")  # we resume from it
def test_resuming_gives_the_numbers_of_an_uninterrupted_run(corpus, streams, tmp_path):
    cells = [RecurrentCell("darts_v2"), RecurrentCell.sample(random.Random(0))]
    epochs = OncePerEpoch(TokenStreams(streams[0][:, :41], streams[1]))  # 4 windows of 10 steps per epoch

    def train(max_epochs: int, ckpt_path: str | None = None) -> LanguageModelGroundTruth:
        module = LanguageModelGroundTruth(cells, len(corpus.vocab), hidden=8, bptt=10, max_steps=12)
        saver = ModelCheckpoint(dirpath=tmp_path, filename="last", every_n_epochs=1, enable_version_counter=False)
        trainer = pl.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, callbacks=[saver],
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        trainer.fit(module, train_dataloaders=epochs, ckpt_path=ckpt_path)
        return module

    uninterrupted = train(max_epochs=10)
    assert uninterrupted.steps_done == 12 and uninterrupted.current_epoch == 3  # 3 epochs: stopped by the step budget
    interrupted = train(max_epochs=1)  # "killed" after its first epoch
    assert interrupted.steps_done == 4
    resumed = train(max_epochs=10, ckpt_path=str(tmp_path / "last.ckpt"))
    assert resumed.results() == uninterrupted.results()


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


def test_paper_scale_preset_runs_on_the_embedded_corpus(tmp_path, run_task, read_store):
    store, run = tmp_path / "cells.csv", tmp_path / "run"
    proc = run_task("experiment=paper_rnn_gpu", "data=python_docs", "trainer.accelerator=cpu", "model.max_steps=2",
                    "data.eval_batch_size=100", "logger=none", f"store.path={store}", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert (config.model.hidden, config.model.bptt, config.data.batch_size) == (850, 35, 64)
    (row,) = read_store(store)
    assert row["motif_kind"] == "rnn_cell" and row["status"] == "ok" and row["train_steps"] == "2"
    assert row["genotype"] == RecurrentCell("darts_v2").genotype  # the motif group's default cell
