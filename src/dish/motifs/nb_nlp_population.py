"""Many different NAS-Bench-NLP recipes stepped at once: `RecipePopulation`.

Every node of every member is a row of one buffer of (rows, batch, hidden) values: a zero row, the members' inputs
x (zero-padded to the hidden size), their previous hidden tuples (padded to the largest tuple), then the nodes,
level by level in topological depth. A level gathers all its inputs with one ``index_select`` and computes each
op for the contiguous run of its rows that have that op (linear nodes as one batched matmul per input count), so
the work per step grows with the number of levels and ops, not with the number of members.

Linear weights live in a per-member bank indexed by (depth, slot among the level's linear nodes, input position):
the same position gets the same initial weights in every cell, whatever its shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dish.motifs.nb_nlp_recipes import MAX_BODY, MAX_TUPLE, Recipe, topological_order, tuple_size

MAX_ARITY = 3
"""The most inputs a node has (a linear of 3, a blend)."""
BANK_SHAPE = (MAX_BODY, MAX_BODY)
"""(depths, linear slots per depth) of a bank that fits every recipe the features encode."""


@dataclass(frozen=True)
class OpRun:
    """Rows ``start:stop`` of a level, all with op `op` on `arity` inputs; for a linear, where each row's weights
    sit in the bank (member, depth, slot)."""

    op: str
    arity: int
    start: int
    stop: int
    bank_index: tuple[Tensor, Tensor, Tensor] | None


class RecipePopulation(nn.Module):
    """One step of P different recipes: ``forward(x, state, prepared)`` maps inputs x (P, batch, E) with E <= H and
    hidden tuples state (P, K, batch, H) to the new tuples (P, K, batch, H); K is the population's largest tuple
    and a smaller cell's extra states stay zero. Weights come from `prepare` of a bank (P, depths, slots, 3, H, H)
    and its biases (P, depths, slots, H)."""

    full_bank = BANK_SHAPE
    """The bank shape that fits every recipe (a dish's bank must fit motifs it has not seen)."""

    def __init__(self, recipes: Sequence[Recipe]) -> None:
        super().__init__()
        self.recipes = list(recipes)
        self.members = len(self.recipes)
        self.tuple_size = max(tuple_size(recipe) for recipe in self.recipes)
        placed = [_place(recipe) for recipe in self.recipes]
        self.bank_needs = (max(max(p.depth.values()) for p in placed),
                           max([slot + 1 for p in placed for _, slot in p.linear_slot.values()] or [1]))
        first_node = 1 + self.members * (1 + self.tuple_size)
        row = {(m, "x"): 1 + m for m in range(self.members)}
        row |= {(m, f"h_prev_{k}"): 1 + self.members + m * self.tuple_size + k
                for m in range(self.members) for k in range(self.tuple_size)}
        self.levels: list[list[OpRun]] = []
        gathers = []
        for depth in range(1, self.bank_needs[0] + 1):
            nodes = sorted(((recipe[name]["op"], len(recipe[name]["input"]), m, name)
                            for m, (recipe, p) in enumerate(zip(self.recipes, placed, strict=True))
                            for name in p.order if p.depth[name] == depth))
            for offset, (_, _, m, name) in enumerate(nodes):
                row[m, name] = first_node + offset
            first_node += len(nodes)
            inputs = [[row[m, item] for item in self.recipes[m][name]["input"]] for _, _, m, name in nodes]
            gathers.append(torch.tensor([items + [0] * (MAX_ARITY - len(items)) for items in inputs]).flatten())
            self.levels.append(self._runs(nodes, placed))
        self._check_inputs()
        outputs = [row.get((m, f"h_new_{k}"), 0) for m in range(self.members) for k in range(self.tuple_size)]
        self.register_buffer("output_rows", torch.tensor(outputs), persistent=False)
        for index, gather in enumerate(gathers):
            self.register_buffer(f"gather_{index}", gather, persistent=False)

    @staticmethod
    def _runs(nodes: list[tuple[str, int, int, str]], placed: list[_Placement]) -> list[OpRun]:
        runs, start = [], 0
        while start < len(nodes):
            op, arity = nodes[start][:2]
            stop = start
            while stop < len(nodes) and nodes[stop][:2] == (op, arity):
                stop += 1
            index = None
            if op == "linear":
                spots = [(m, *placed[m].linear_slot[name]) for _, _, m, name in nodes[start:stop]]
                index = tuple(torch.tensor(column) for column in zip(*spots, strict=True))
            runs.append(OpRun(op, arity, start, stop, index))  # type: ignore[arg-type]
            start = stop
        return runs

    def _check_inputs(self) -> None:
        for recipe in self.recipes:
            for name, spec in recipe.items():
                if "x" in spec["input"] and spec["op"] != "linear":
                    raise ValueError(f"{name}: a population feeds x only to linear nodes, not to {spec['op']}")

    def initial_weights(self, hidden: int, generator: torch.Generator,
                        bank: tuple[int, int] | None = None) -> dict[str, Tensor]:
        """A bank of linear weights and biases, uniform in +-1/sqrt(hidden), the same for every member: (depths,
        slots) of `bank`, or just what this population needs. Each (depth, slot) is drawn from its own seed
        (derived from one draw of `generator`), so a cell's weights do not depend on its population."""
        depths, slots = bank or self.bank_needs
        base = int(torch.randint(2**31 - 1, (1,), generator=generator))
        bound = hidden ** -0.5
        weights = torch.empty(depths, slots, MAX_ARITY, hidden, hidden)
        biases = torch.empty(depths, slots, hidden)
        for depth in range(depths):
            for slot in range(slots):
                own = torch.Generator().manual_seed(base + depth * MAX_BODY + slot)
                weights[depth, slot] = (torch.rand(MAX_ARITY, hidden, hidden, generator=own) * 2 - 1) * bound
                biases[depth, slot] = (torch.rand(hidden, generator=own) * 2 - 1) * bound
        return {"w_cell": weights, "b_cell": biases}

    def prepare(self, w_cell: Tensor, b_cell: Tensor) -> list[list[tuple[Tensor, Tensor] | None]]:
        """Each linear run's (weights (rows, arity * H, H), biases (rows, 1, H)) from a bank with a member dim;
        once per sequence, not per step."""
        weights, biases = w_cell, b_cell
        if weights.shape[1] < self.bank_needs[0] or weights.shape[2] < self.bank_needs[1]:
            raise ValueError(f"bank: (depths, slots) {tuple(weights.shape[1:3])} hold less than the population's "
                             f"{self.bank_needs}")
        prepared = []
        for runs in self.levels:
            level = []
            for run in runs:
                if run.bank_index is None:
                    level.append(None)
                    continue
                index = tuple(i.to(weights.device) for i in run.bank_index)
                chosen = weights[index][:, :run.arity]
                level.append((chosen.flatten(1, 2), biases[index].unsqueeze(1)))
            prepared.append(level)
        return prepared

    def initial_state(self, batch: int, hidden: int, like: Tensor) -> Tensor:
        return like.new_zeros(self.members, self.tuple_size, batch, hidden)

    @staticmethod
    def output(state: Tensor) -> Tensor:
        """Each member's output h_new_0 (P, batch, H)."""
        return state[:, 0]

    def forward(self, x: Tensor, state: Tensor, prepared: list[list[tuple[Tensor, Tensor] | None]]) -> Tensor:
        _, _, batch, hidden = state.shape
        x = F.pad(x, (0, hidden - x.shape[-1])) if x.shape[-1] < hidden else x
        buffer = torch.cat([state.new_zeros(1, batch, hidden), x, state.flatten(0, 1)])
        for level, (runs, weights) in enumerate(zip(self.levels, prepared, strict=True)):
            gathered = buffer.index_select(0, getattr(self, f"gather_{level}"))
            gathered = gathered.view(-1, MAX_ARITY, batch, hidden)
            values = [_apply(run, gathered[run.start:run.stop], weight) for run, weight in zip(runs, weights,
                                                                                               strict=True)]
            buffer = torch.cat([buffer, *values])
        return buffer.index_select(0, self.output_rows).view(self.members, self.tuple_size, batch, hidden)


def _apply(run: OpRun, inputs: Tensor, weights: tuple[Tensor, Tensor] | None) -> Tensor:
    """The values (rows, batch, H) of one run of rows with the same op, from their inputs (rows, 3, batch, H)."""
    if weights is not None:
        rows, _, batch, hidden = inputs.shape
        stacked = inputs[:, :run.arity].transpose(1, 2).reshape(rows, batch, run.arity * hidden)
        return torch.baddbmm(weights[1], stacked, weights[0])
    first, second, third = inputs.unbind(1)
    if run.op == "blend":
        return torch.lerp(third, second, first)  # z * a + (1 - z) * b
    return ELEMENTWISE[run.op](first, second) if run.arity == 2 else UNARY[run.op](first)


ELEMENTWISE = {"elementwise_prod": torch.mul, "elementwise_sum": torch.add}
UNARY = {"activation_tanh": torch.tanh, "activation_sigm": torch.sigmoid, "activation_leaky_relu": F.leaky_relu}


@dataclass(frozen=True)
class _Placement:
    """A recipe's nodes in topological order, each node's depth, and each linear node's (depth, slot)."""

    order: list[str]
    depth: dict[str, int]
    linear_slot: dict[str, tuple[int, int]]


def _place(recipe: Recipe) -> _Placement:
    order = topological_order(recipe)
    depth = {"x": 0, **{f"h_prev_{k}": 0 for k in range(MAX_TUPLE)}}
    for name in order:
        depth[name] = 1 + max(depth[item] for item in recipe[name]["input"])
    linear_slot: dict[str, tuple[int, int]] = {}
    for name in sorted(order, key=lambda name: (depth[name], name)):
        if recipe[name]["op"] == "linear":
            taken = sum(1 for other in linear_slot if depth[other] == depth[name])
            linear_slot[name] = (depth[name] - 1, taken)
    return _Placement(order, {name: depth[name] for name in order}, linear_slot)
