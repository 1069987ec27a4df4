"""The kind nb_nlp_cell: motifs from recipes, the batched population, its language model and its dish, and the
comparison on a slice of the NAS-Bench-NLP dev table."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from dish.core.errors import ConfigError
from dish.data.corpus import batchify, embedded_corpus
from dish.hosts.language_model import LanguageModelGroundTruth, fit_language_models
from dish.motifs import nb_nlp_recipes as recipes
from dish.motifs.nb_nlp_cell import NbNlpCell
from dish.motifs.nb_nlp_population import RecipePopulation, _place
from dish.predictors.petri_dish.model import PetriDish
from dish.store.tables import load_table

DEV_TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb_nlp_dev.csv"
needs_dev_table = pytest.mark.skipif(not DEV_TABLE.is_file(), reason=f"the reference table {DEV_TABLE} is absent")
WIKITEXT2_VOCAB = 33278
"""WikiText-2's vocabulary with the end-of-line token, as the benchmark's models have it."""
CELLS = [NbNlpCell(name) for name in recipes.NAMED] + [NbNlpCell.sample(random.Random(seed)) for seed in range(9)]


def test_a_cell_from_json_a_name_or_a_file_has_one_canonical_key(tmp_path):
    renamed = {"a": {"op": "linear", "input": ["h_prev_0", "x"]}, "h_new_0": {"op": "activation_tanh", "input": ["a"]}}
    path = tmp_path / "rnn.json"
    path.write_text(json.dumps(renamed))
    forms = [NbNlpCell("rnn"), NbNlpCell(json.dumps(renamed)), NbNlpCell(renamed), NbNlpCell(recipe_file=str(path))]
    assert len({cell.key for cell in forms}) == 1 and len(set(forms)) == 1
    cell = forms[0]
    assert cell.key == f"nb_nlp_cell(digest={recipes.digest('rnn')})"
    assert cell.encode() == {"recipe": recipes.to_json("rnn")}
    assert NbNlpCell.decode(cell.encode()) == cell  # a store row round-trips
    assert NbNlpCell.parse({"recipe": "rnn"}) == NbNlpCell.parse("rnn") == cell


def test_bad_recipes_are_one_line_errors_naming_the_node(tmp_path):
    cycle = {"a": {"op": "linear", "input": ["x", "b"]}, "b": {"op": "activation_tanh", "input": ["a"]},
             "h_new_0": {"op": "elementwise_sum", "input": ["b", "h_prev_0"]}}
    with pytest.raises(ConfigError) as error:
        NbNlpCell(cycle)
    assert error.value.field == "motif.recipe" and "in a cycle" in error.value.problem
    with pytest.raises(ConfigError, match=r"motif\.recipe_file"):
        NbNlpCell(recipe_file=str(tmp_path / "none.json"))
    with pytest.raises(ConfigError, match="cannot be turned back"):
        NbNlpCell.from_key(CELLS[0].key)


def test_sampled_and_mutated_cells_stay_valid_and_run_in_a_population():
    rng = random.Random(0)
    cells = [NbNlpCell.sample(rng) for _ in range(20)]
    mutants = [cell.mutate(rng) for cell in cells]
    assert all(mutant != cell for cell, mutant in zip(cells, mutants, strict=True))
    cells += mutants
    assert all(NbNlpCell(cell.recipe) == cell for cell in cells)
    assert len({cell.key for cell in cells}) >= 30  # pruning makes small cells, which repeat
    assert {recipes.tuple_size(cell.nodes) for cell in cells} == {1, 2, 3}
    population = NbNlpCell.population(cells)
    weights = population.initial_weights(4, torch.Generator().manual_seed(0))
    prepared = population.prepare(*(w.expand(len(cells), *w.shape) for w in weights.values()))
    state = population(torch.randn(len(cells), 3, 2), population.initial_state(3, 4, weights["w_cell"]), prepared)
    assert state.shape == (len(cells), 3, 3, 4) and torch.isfinite(state).all()


@pytest.mark.parametrize("inputs", [3, 12])  # x narrower than the hidden size; x wider, in three chunks
def test_population_equals_each_recipe_run_alone(inputs):
    hidden, batch = 5, 4
    chunks = math.ceil(inputs / hidden)
    population = NbNlpCell.population(CELLS)
    torch.manual_seed(0)
    bank = torch.randn(len(CELLS), *population.bank_needs, 3 + chunks - 1, hidden, hidden) * 0.5
    biases = torch.randn(len(CELLS), *population.bank_needs, hidden)
    x = torch.randn(len(CELLS), batch, inputs)
    state = torch.randn(len(CELLS), population.tuple_size, batch, hidden)
    together = population(x, state, population.prepare(bank, biases))
    for member, cell in enumerate(CELLS):
        alone = recipes.RecipeCell(cell.nodes, inputs, hidden)
        with torch.no_grad():
            for name, (depth, slot) in _place(cell.nodes).linear_slot.items():
                for position, item in enumerate(cell.nodes[name]["input"]):
                    spots = [position, *range(3, 3 + chunks - 1)] if item == "x" else [position]
                    rows = inputs if item == "x" else hidden
                    alone.weights[f"{name}__{position}"].copy_(bank[member, depth, slot, spots].flatten(0, 1)[:rows])
                alone.biases[name].copy_(biases[member, depth, slot])
        size = recipes.tuple_size(cell.nodes)
        expected = alone(x[member], list(state[member, :size]))
        torch.testing.assert_close(together[member, :size], torch.stack(expected), atol=1e-5, rtol=1e-5)
        assert (together[member, size:] == 0).all()  # a smaller tuple's extra states stay zero


def test_a_population_feeds_x_only_to_linear_nodes():
    odd = {"h_new_0": {"op": "elementwise_sum", "input": ["x", "a"]}, "a": {"op": "linear", "input": ["x", "h_prev_0"]}}
    with pytest.raises(ValueError, match="h_new_0: a population feeds x only to linear nodes"):
        RecipePopulation([recipes.validate(odd)])


def test_language_model_loss_falls_on_the_embedded_corpus():
    corpus = embedded_corpus()
    train, valid = batchify(corpus.train, 16), batchify(corpus.valid[:2000], 8)
    cells = [CELLS[i] for i in (0, 1, 2, 4)]  # rnn, lstm, gru and a sampled cell
    untrained = LanguageModelGroundTruth(cells, len(corpus.vocab), hidden=16, bptt=20)
    before = untrained.evaluate(valid)
    module = fit_language_models(cells, train, valid, len(corpus.vocab), max_epochs=5, hidden=16, bptt=20,
                                 max_steps=40, optimizer="adam", lr=0.02)
    after = torch.tensor([row["val_loss"] for row in module.results()])
    assert (after < before - 1.0).all(), (before, after)
    assert len(set(after.round(decimals=4).tolist())) == 4  # different cells, different numbers


@pytest.mark.usefixtures("flush_denormal")
@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)` but the `self.trainer`")
def test_dish_gradient_reaches_the_synthetic_sequences():
    dish = PetriDish(NbNlpCell, CELLS[:6], sizes=(2, 4, 1), num_samples=8, inner_steps=3, inner_clip=1.0, seed=0)
    assert dish.x_train.shape == (1, 8, 5, 2)
    outer = dish.training_step(torch.arange(6.0), 0)
    outer.backward()
    for data in (dish.x_train, dish.x_val):
        assert torch.isfinite(data.grad).all() and data.grad.abs().sum() > 0
    scored = dish.score(CELLS)  # cells it was not built for, with other shapes, in one call
    assert np.isfinite(scored.losses).all() and len(set(np.round(scored.losses, 6))) == len(CELLS)


def test_inner_clip_bounds_every_members_step():
    from dish.predictors.petri_dish.inner import clip_per_member

    grads = [torch.tensor([[3.0, 4.0], [0.3, 0.4]]), torch.tensor([[[0.0]], [[0.0]]])]
    clipped = clip_per_member(grads, 1.0)
    torch.testing.assert_close(clipped[0], torch.tensor([[0.6, 0.8], [0.3, 0.4]]), atol=1e-5, rtol=0)


@needs_dev_table
def test_dev_table_reads_with_repeats_merged_and_losses_negated():
    table = load_table(DEV_TABLE, NbNlpCell, "test_loss")
    with DEV_TABLE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 100 and len(table) == len({NbNlpCell(row["recipe"]).key for row in rows})
    best = min(rows, key=lambda row: float(row["test_loss"]))
    assert table.motifs[int(table.scores.argmax())] == NbNlpCell(best["recipe"])
    assert "val_loss_epoch1" in table.extra and np.isnan(table.extra["ptb_loss"]).any()  # ptb_loss is partly empty


@needs_dev_table
def test_comparison_runs_on_a_slice_of_the_dev_table(tmp_path, run_compare):
    with DEV_TABLE.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row, _ in zip(reader, range(12), strict=False)]
    sliced = tmp_path / "slice.csv"
    with sliced.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    run_dir = tmp_path / "run"
    proc = run_compare(f"gt.path={sliced}", "gt.motif=nb_nlp_cell", "gt.score=test_loss", "dish=nb_nlp_cell",
                       "dish.steps=4", "split=random", "split.n=6", "seed=1", "logger=none", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((run_dir / "comparison.json").read_text())
    assert set(report["predictors"]) == {"dish", "nn_surrogate", "gp"}
    assert report["n_train"] == 6 and report["n_train"] + report["n_heldout"] == len(load_table(sliced, NbNlpCell,
                                                                                                "test_loss"))
    for entry in report["predictors"].values():
        assert -1 <= entry["kendall"] <= 1 and -1 <= entry["spearman"] <= 1
    assert math.isfinite(report["predictors"]["dish"]["max_dish_loss"])


def test_a_table_of_recipes_trains_as_one_population_job(tmp_path, run_task, read_store):
    table = tmp_path / "cells.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["recipe", "test_loss"])
        writer.writerows([[cell.recipe, 5.0] for cell in (CELLS[0], CELLS[1], CELLS[0], CELLS[4])])
    store = tmp_path / "store.csv"
    overrides = ["motif=nb_nlp_cell", "population=nb_nlp_table", f"population.table={table}", f"store.path={store}",
                 "model.max_steps=3", "model.hidden=8", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = run_task(*overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_store(store)
    assert [NbNlpCell(row["recipe"]) for row in rows] == [CELLS[0], CELLS[1], CELLS[4]]  # the repeat trained once
    assert {row["population_size"] for row in rows} == {"3"} and all(row["status"] == "ok" for row in rows)
    assert len({row["val_loss"] for row in rows}) == 3
    again = run_task(*overrides)
    assert again.returncode == 0 and "skipping 3 motif(s) already in" in again.stderr + again.stdout


def test_an_unknown_language_model_optimizer_is_a_one_line_error():
    with pytest.raises(ConfigError) as error:
        LanguageModelGroundTruth(CELLS[:1], 10, hidden=4, optimizer="rmsprop")
    assert error.value.field == "model.optimizer" and error.value.accepted == ["sgd", "adam"]


@needs_dev_table
def test_the_paper_preset_has_the_benchmarks_parameter_count():
    """3 layers, embedding 400, hidden 600, the last layer 400 wide and tied: every parameter the model uses
    (those a backward pass reaches) adds up to the table's num_params, for each cell."""
    with initialize_config_module("dish.conf", version_base=None):
        cfg = compose("ground_truth", ["experiment=nb_nlp_paper_gpu"])
    assert cfg.data.corpus == "wikitext2" and cfg.trainer.accelerator == "gpu"
    with DEV_TABLE.open(newline="") as handle:
        rows = [row for row, _ in zip(csv.DictReader(handle), range(3), strict=False)]
    cells = [NbNlpCell(row["recipe"]) for row in rows]
    module = LanguageModelGroundTruth(cells, WIKITEXT2_VOCAB, seed=0, **cfg.model)
    net = module.net.double()  # in float32, one gradient entry in millions can underflow to exactly 0
    torch.manual_seed(0)
    tokens = torch.randint(WIKITEXT2_VOCAB, (2, 4))
    state = [torch.randn_like(layer) for layer in net.initial_state(2)]  # zero states: h_prev's matrices idle
    net(tokens, tokens.roll(1, 1), state)[0].sum().backward()
    used = sum((p.grad != 0).flatten(1).sum(1) for p in net.parameters())
    assert used.tolist() == [int(row["num_params"]) for row in rows]


def test_dropout_masks_are_shared_by_the_members_seeded_by_the_window_and_off_in_evaluation():
    corpus = embedded_corpus()
    tokens = batchify(corpus.train, 4)[:, :7]
    options = {"hidden": 16, "layers": 2, "embedding": 12, "dropout": {"input": 0.1, "between": 0.25,
                                                                        "output": 0.4, "weights": 0.1}}

    def losses(cells: list[NbNlpCell], window: int | None) -> torch.Tensor:
        net = LanguageModelGroundTruth(cells, len(corpus.vocab), seed=3, **options).net
        return net(tokens[:, :-1], tokens[:, 1:], net.initial_state(4), window=window)[0].detach()

    pair = losses([CELLS[1], CELLS[1]], window=5)
    assert pair[0] == pair[1] and torch.allclose(pair[:1], losses([CELLS[1]], window=5))
    assert torch.equal(pair, losses([CELLS[1], CELLS[1]], window=5))
    assert not torch.allclose(pair, losses([CELLS[1], CELLS[1]], window=6))
    assert not torch.allclose(pair, losses([CELLS[1], CELLS[1]], window=None))


@pytest.mark.parametrize(("option", "value", "field"), [("dropout", {"output": 1.0}, "model.dropout.output"),
                                                         ("schedule", "linear", "model.schedule"),
                                                         ("layers", 0, "model.layers")])
def test_bad_language_model_shapes_are_one_line_errors(option, value, field):
    with pytest.raises(ConfigError) as error:
        LanguageModelGroundTruth(CELLS[:1], 10, hidden=4, **{option: value})
    assert error.value.field == field


def test_the_paper_preset_trains_on_the_cpu_for_two_windows(tmp_path, run_task, read_store):
    """Its 3 layers, dropouts and constant rate, at small widths (the sizes are checked above)."""
    store, run = tmp_path / "cells.csv", tmp_path / "run"
    proc = run_task("experiment=nb_nlp_paper_gpu", "data=python_docs", "trainer.accelerator=cpu", "model.max_steps=2",
                    "model.hidden=24", "model.embedding=16", "logger=none", f"store.path={store}",
                    f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = read_store(store)
    assert row["motif_kind"] == "nb_nlp_cell" and row["status"] == "ok" and row["train_steps"] == "2"
    assert NbNlpCell(row["recipe"]) == NbNlpCell("lstm") and 5.0 < float(row["val_loss"]) < 8.0
