"""Recurrent-cell motifs: genotype encoding, validation, sampling, mutation, and the vectorised cell."""

from __future__ import annotations

import random

import pytest
import torch

from dish.core.errors import ConfigError
from dish.motifs.kind import decode_motif, motif_class
from dish.motifs.rnn_cell import OPS, PUBLISHED, CellPopulation, RecurrentCell, parse_genotype


def test_published_genotypes_by_name_and_their_encoding():
    v2 = RecurrentCell("DARTS_V2")
    assert v2.genotype == PUBLISHED["darts_v2"] == "sigmoid0_relu1_relu1_identity1_tanh2_sigmoid5_tanh3_relu5"
    assert v2.nodes[5] == ("sigmoid", 5)
    assert v2.key == "rnn_cell(genotype=sigmoid0_relu1_relu1_identity1_tanh2_sigmoid5_tanh3_relu5)"
    assert v2 == RecurrentCell(v2.genotype) == decode_motif({"kind": "rnn_cell", **v2.encode()})
    assert motif_class("rnn_cell") is RecurrentCell
    assert RecurrentCell("darts_v1").nodes[:3] == (("relu", 0), ("relu", 1), ("tanh", 2))


def test_features_are_one_hot_ops_and_inputs():
    cell = RecurrentCell("tanh0_identity0_relu1")
    features = cell.features()
    assert len(features) == 3 * len(OPS) + 3 * 3
    assert features[:12] == [1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0]
    assert features[12:] == [1, 0, 0, 1, 0, 0, 0, 1, 0]


@pytest.mark.parametrize(("genotype", "words"), [
    ("", "is empty"),
    ("tanh0_swish1", "node 2: unknown op 'swish'"),
    ("tanh0_relu2", "node 2 reads node 2; node i reads one of nodes 0..i-1"),
    ("tanh0_relu", "node 2 is 'relu', expected <op><input>"),
    ("tanh0,relu1", "node 1 is 'tanh0,relu1'"),
], ids=["empty", "unknown-op", "future-input", "no-input", "wrong-separator"])
def test_malformed_genotype_is_a_clear_error(genotype, words):
    with pytest.raises(ConfigError) as error:
        RecurrentCell(genotype)
    assert error.value.field == "genotype"
    assert words in error.value.problem


def test_sampling_is_seeded_valid_and_covers_the_space():
    first = [RecurrentCell.sample(random.Random(7)) for _ in range(3)]
    assert first == [RecurrentCell.sample(random.Random(7)) for _ in range(3)]
    cells = [RecurrentCell.sample(random.Random(seed)) for seed in range(200)]
    assert all(len(cell.nodes) == 8 for cell in cells)
    assert {op for cell in cells for op, _ in cell.nodes} == set(OPS)
    assert {cell.nodes[7][1] for cell in cells} == set(range(8))  # node 8 reads any of nodes 0..7
    assert len({cell.key for cell in cells}) == 200
    assert len(RecurrentCell.sample(random.Random(0), nodes=3).nodes) == 3


def test_mutation_changes_exactly_one_node():
    rng = random.Random(0)
    cell = RecurrentCell("darts_v2")
    for _ in range(100):
        child = cell.mutate(rng)
        changed = [i for i, (a, b) in enumerate(zip(cell.nodes, child.nodes, strict=True)) if a != b]
        assert len(changed) == 1
        assert parse_genotype(child.genotype) == child.nodes  # still valid


def reference_step(nodes, x, h, w0, ws):
    """One cell, written out node by node as DARTS describes it."""
    functions = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda v: v}
    hidden = h.shape[-1]
    xh = torch.cat([x, h], -1) @ w0
    states = [h + torch.sigmoid(xh[:, :hidden]) * (torch.tanh(xh[:, hidden:]) - h)]
    for index, (op, source) in enumerate(nodes):
        s = states[source]
        ch = s @ ws[index]
        states.append(s + torch.sigmoid(ch[:, :hidden]) * (functions[op](ch[:, hidden:]) - s))
    return torch.stack(states[1:]).mean(0)


@pytest.mark.parametrize("genotypes", [
    ["darts_v1", "darts_v2", *(RecurrentCell.sample(random.Random(seed)).genotype for seed in range(4))],
    ["darts_v2"],  # one cell: every node reads its input directly and runs its one op
    ["tanh0_relu1_sigmoid2", "relu0_relu1_identity2"],  # shared inputs, some shared ops
], ids=["mixed", "alone", "shared-inputs"])
def test_vectorised_cells_equal_each_cell_run_on_its_own(genotypes):
    torch.manual_seed(0)
    cells = [RecurrentCell(g) for g in genotypes]
    population, batch, inputs, hidden = len(cells), 5, 3, 4
    x, h = torch.randn(population, batch, inputs), torch.randn(population, batch, hidden)
    w0 = torch.randn(population, inputs + hidden, 2 * hidden)
    ws = torch.randn(population, len(cells[0].nodes), hidden, 2 * hidden)
    together = RecurrentCell.population(cells)(x, h, (w0, ws.unbind(1)))
    assert together.shape == (population, batch, hidden)
    for p, cell in enumerate(cells):
        alone = reference_step(cell.nodes, x[p], h[p], w0[p], ws[p])
        torch.testing.assert_close(together[p], alone, rtol=1e-5, atol=1e-6)


def test_gradient_reaches_every_node_weight():
    cells = [RecurrentCell("darts_v2"), RecurrentCell("tanh0_tanh1_tanh2_tanh3_tanh4_tanh5_tanh6_tanh7")]
    w0 = torch.randn(2, 6, 6, requires_grad=True)
    ws = torch.randn(2, 8, 3, 6, requires_grad=True)
    out = CellPopulation([c.nodes for c in cells])(torch.randn(2, 4, 3), torch.randn(2, 4, 3), (w0, ws.unbind(1)))
    out.sum().backward()
    assert torch.isfinite(ws.grad).all() and (ws.grad.abs().sum((2, 3)) > 0).all()


def test_population_refuses_mixed_node_counts():
    with pytest.raises(ConfigError, match="same node count"):
        RecurrentCell.population([RecurrentCell("tanh0"), RecurrentCell("tanh0_relu1")])
