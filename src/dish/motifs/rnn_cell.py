"""Recurrent-cell motifs: the DARTS recurrent search space, and a whole population of cells run at once.

A cell has N nodes after node 0. Node 0 mixes the input x and the previous hidden state h:
``[c, g] = [x, h] @ W_0``, ``s_0 = h + sigmoid(c) * (tanh(g) - h)``. Node i (1..N) reads one earlier node
``s_j`` (j < i) and applies one activation f from `OPS` in a highway step: ``[c, g] = s_j @ W_i``,
``s_i = s_j + sigmoid(c) * (f(g) - s_j)``. The new hidden state is the mean of nodes 1..N (DARTS' ``concat``).

A genotype is written ``<op><input>`` per node, joined by ``_``, e.g. ``tanh0_relu1_sigmoid1``: no character
that Hydra's override grammar treats specially, so it can be given on the command line.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dish.core.errors import ConfigError
from dish.core.init import uniform
from dish.hosts.dish_networks import CellDishNetwork
from dish.hosts.language_model import LanguageModelGroundTruth
from dish.motifs.kind import Motif, register

OPS = ("tanh", "relu", "sigmoid", "identity")
NODE = re.compile(r"([a-z]+)(\d+)")
PUBLISHED = {
    # Liu, Simonyan, Yang (2019), DARTS: first- and second-order search on Penn Treebank
    "darts_v1": "relu0_relu1_tanh2_relu3_relu4_identity1_relu5_relu1",
    "darts_v2": "sigmoid0_relu1_relu1_identity1_tanh2_sigmoid5_tanh3_relu5",
}
"""Published genotypes, usable by name wherever a genotype is expected."""
INIT_RANGE = 0.04
"""The bound of the cell's uniform initial weights (DARTS' init range)."""


@register
@dataclasses.dataclass(frozen=True)
class RecurrentCell(Motif):
    """A DARTS recurrent cell, given by its genotype string (or the name of a published one)."""

    kind: ClassVar[str] = "rnn_cell"
    ground_truth: ClassVar = LanguageModelGroundTruth
    dish_network: ClassVar = CellDishNetwork
    population_keys: ClassVar[tuple[str, ...]] = ("cells",)
    genotype: str

    def __post_init__(self) -> None:
        text = PUBLISHED.get(str(self.genotype).strip().lower(), str(self.genotype).strip())
        object.__setattr__(self, "genotype", "_".join(f"{op}{i}" for op, i in parse_genotype(text)))

    @property
    def nodes(self) -> tuple[tuple[str, int], ...]:
        """``(op, input node)`` of nodes 1..N."""
        return parse_genotype(self.genotype)

    def features(self) -> list[float]:
        """One-hot op (N x 4) and one-hot input node (N x N) of every node, flattened."""
        n = len(self.nodes)
        ops = [float(op == name) for op, _ in self.nodes for name in OPS]
        inputs = [float(source == j) for _, source in self.nodes for j in range(n)]
        return ops + inputs

    def search_params(self) -> dict[str, float | str]:
        """One category per node: its op and input node (``tanh0``)."""
        return {f"node{i}": f"{op}{source}" for i, (op, source) in enumerate(self.nodes, start=1)}

    @classmethod
    def population(cls, motifs: Sequence[Motif]) -> CellPopulation:
        return CellPopulation([m.nodes for m in motifs])  # type: ignore[attr-defined]

    @classmethod
    def expand_population(cls, population: Mapping[str, Any]) -> list[Motif]:
        """``cells``: genotypes or published names, and ``{random: N, seed: S}`` entries that draw N cells
        uniformly."""
        cells: list[Motif] = []
        for value in population.get("cells") or []:
            if isinstance(value, Mapping):
                if set(value) != {"random", "seed"}:
                    raise ConfigError("cells", f"entry {dict(value)} is not {{random: N, seed: S}}")
                rng = random.Random(int(value["seed"]))
                cells += [cls.sample(rng) for _ in range(int(value["random"]))]
            else:
                cells.append(cls(value))
        return cells

    @classmethod
    def sample(cls, rng: random.Random, nodes: int = 8) -> RecurrentCell:
        """A cell drawn uniformly: each node picks any earlier node and any op."""
        return cls("_".join(f"{rng.choice(OPS)}{rng.randrange(i)}" for i in range(1, nodes + 1)))

    def mutate(self, rng: random.Random) -> RecurrentCell:
        """The same cell with one node's op or input changed to another allowed value."""
        nodes = list(self.nodes)
        index = rng.randrange(len(nodes))
        op, source = nodes[index]
        if index == 0 or rng.random() < 0.5:  # node 1 has a single possible input: change its op
            op = rng.choice([other for other in OPS if other != op])
        else:
            source = rng.choice([j for j in range(index + 1) if j != source])
        nodes[index] = (op, source)
        return RecurrentCell("_".join(f"{o}{s}" for o, s in nodes))


def parse_genotype(text: str) -> tuple[tuple[str, int], ...]:
    """``(op, input)`` per node of a genotype string; a malformed one raises `ConfigError` saying why."""
    parts = text.split("_") if text else []
    if not parts:
        raise ConfigError("genotype", "is empty; write <op><input> per node joined by '_', e.g. tanh0_relu1",
                          accepted=[*PUBLISHED, "<op><input>_..."])
    nodes = []
    for number, part in enumerate(parts, start=1):
        match = NODE.fullmatch(part)
        if match is None:
            raise ConfigError("genotype", f"node {number} is {part!r}, expected <op><input> like relu0",
                              accepted=list(OPS))
        op, source = match.group(1), int(match.group(2))
        if op not in OPS:
            raise ConfigError("genotype", f"node {number}: unknown op {op!r}", accepted=list(OPS))
        if source >= number:
            raise ConfigError("genotype", f"node {number} reads node {source}; node i reads one of nodes 0..i-1")
        nodes.append((op, source))
    return tuple(nodes)


class CellPopulation(nn.Module):
    """One step of many different cells at once; member p runs genotype p with its own weights.

    Each node computes only the ops some member uses there and reads only the earlier states some member reads
    there; each member's op and input are picked by one-hot masks. So P cells cost a few batched matmuls per node,
    never a Python loop over cells, and a lone cell pays for nothing it does not run.
    """

    op_mask: Tensor
    source_mask: Tensor
    dropped = ("w0", "ws")
    """The weights a language model's weight drop masks."""

    def __init__(self, genotypes: Sequence[Sequence[tuple[str, int]]]) -> None:
        super().__init__()
        lengths = {len(genotype) for genotype in genotypes}
        if len(lengths) != 1:
            raise ConfigError("cells", f"all cells of a population need the same node count, got {sorted(lengths)}")
        self.num_nodes = lengths.pop()
        ops = torch.tensor([[OPS.index(op) for op, _ in genotype] for genotype in genotypes])  # (P, N)
        sources = torch.tensor([[source for _, source in g] for g in genotypes])  # (P, N)
        self.node_ops = [sorted(set(ops[:, node].tolist())) for node in range(self.num_nodes)]
        self.node_sources = [sorted(set(sources[:, node].tolist())) for node in range(self.num_nodes)]
        self.register_buffer("op_mask", F.one_hot(ops, len(OPS)).float())  # (P, N, ops)
        self.register_buffer("source_mask", F.one_hot(sources, self.num_nodes).float())  # (P, N, sources)

    def initial_weights(self, hidden: int, generator: torch.Generator, inputs: int | None = None) -> dict[str, Tensor]:
        """Node 0's weights (E + H, 2H) for inputs of width E (`inputs`, default H) and nodes 1..N's (N, H, 2H),
        uniform in +-`INIT_RANGE` (DARTS' scheme)."""
        return {"w0": uniform((inputs or hidden) + hidden, 2 * hidden, bound=INIT_RANGE, generator=generator),
                "ws": uniform(self.num_nodes, hidden, 2 * hidden, bound=INIT_RANGE, generator=generator)}

    @staticmethod
    def prepare(w0: Tensor, ws: Tensor) -> tuple[Tensor, Sequence[Tensor]]:
        """The weights as a step reads them, split once per sequence: indexing ws per step would make autograd
        build a zero gradient of the whole tensor for every node of every step."""
        return w0, ws.unbind(1)

    def initial_state(self, batch: int, hidden: int, like: Tensor) -> Tensor:
        return like.new_zeros(len(self.op_mask), batch, hidden)

    @staticmethod
    def output(state: Tensor) -> Tensor:
        return state

    def forward(self, x: Tensor, h: Tensor, prepared: tuple[Tensor, Sequence[Tensor]]) -> Tensor:
        """The next hidden state (P, B, H) from inputs x (P, B, E), states h (P, B, H) and the `prepare`d
        node-0 weights (P, E + H, 2H) and node i's weights ws[i - 1] (P, H, 2H)."""
        w0, ws = prepared
        c, g = torch.bmm(torch.cat([x, h], -1), w0).chunk(2, -1)
        states = [torch.lerp(h, torch.tanh(g), torch.sigmoid(c))]
        for node in range(self.num_nodes):
            present = self.node_sources[node]
            previous = pick({source: states[source] for source in present}, self.source_mask[:, node])
            c, g = torch.bmm(previous, ws[node]).chunk(2, -1)
            activated = pick({op: ACTIVATIONS[op](g) for op in self.node_ops[node]}, self.op_mask[:, node])
            states.append(torch.lerp(previous, activated, torch.sigmoid(c)))
        return torch.stack(states[1:]).mean(0)


def pick(candidates: dict[int, Tensor], mask: Tensor) -> Tensor:
    """Each member's own candidate: candidates (P, B, H) by column of the 0/1 one-hot mask (P, columns); a lone
    candidate is returned as it is. Masked sums, not gathers: their backward fills no zero tensors."""
    (first, values), *others = candidates.items()
    if not others:
        return values
    columns = mask[:, :, None, None]
    picked = values * columns[:, first]
    for column, other in others:
        picked = torch.addcmul(picked, other, columns[:, column])
    return picked


ACTIVATIONS = (torch.tanh, torch.relu, torch.sigmoid, lambda g: g)
"""The functions of `OPS`, in its order."""
