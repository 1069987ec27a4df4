"""Many different NAS-Bench-NLP recipes stepped at once: `RecipePopulation`.

Every node of every member is a row of (batch, hidden) values. The rows of one topological depth, over all
members, form one level tensor, sorted so that the rows with the same op and input count are contiguous. A level
takes its inputs from a zero row, the members' inputs x, their previous hidden tuples (padded to the largest
tuple) and the earlier levels, then computes each op once over its run of rows (linear nodes as one batched
matmul per input count), so the work per step grows with the number of levels and ops, not with the number of
members. Rows reach their readers through a `RowRouter`, never through one concatenated buffer.

An input x wider than the hidden size H enters as ceil(E / H) chunks of H (zero-padded), each with its own matrix:
a linear reading x reads each chunk, so a 600-wide layer output can feed a 400-wide cell, as in a stacked model.

Linear weights live in a per-member bank indexed by (depth, slot among the level's linear nodes, input position):
the same position gets the same initial weights in every cell, whatever its shape. Positions 0-2 are the node's
inputs in order (x's first chunk at x's position); x's further chunks take positions 3, 4, ...
"""

from __future__ import annotations

import math
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
ZERO, X, STATE = 0, 1, 2
"""The first sources of a step's rows: a zero row, the members' input chunks, their previous hidden states;
source ``STATE + d`` is level d (from 1)."""


@dataclass(frozen=True)
class OpRun:
    """`rows` consecutive rows of a level, all with op `op` on `arity` inputs (x's chunks counted); for a linear,
    where each row's weights sit in the bank: member, depth, slot (rows,) and input positions (rows, arity)."""

    op: str
    arity: int
    rows: int
    bank_index: tuple[Tensor, Tensor, Tensor, Tensor] | None


class RowRouter(nn.Module):
    """Routes rows from the sources of a step (a zero row, x, the states, each level's values) to their readers
    (each level's inputs, then the new states). A source is read once, as it is made: one ``index_select`` of
    every row any reader wants, split among the readers; a reader puts its pieces in order with one more. So
    back-propagation fills each source's gradient once, not once per reader."""

    def __init__(self, wants: Sequence[Sequence[tuple[int, int]]], sources: int) -> None:
        """`wants[r]`: the (source, row) of every row reader r takes, in its order; `sources` made in turn."""
        super().__init__()
        self.shares: list[list[int]] = []  # per source: how many of its rows go to each reader
        for source in range(sources):
            taken = [[row for of, row in addresses if of == source] for addresses in wants]
            self.register_buffer(f"rows_{source}", torch.tensor([row for rows in taken for row in rows],
                                                                  dtype=torch.long), persistent=False)
            self.shares.append([len(rows) for rows in taken])
        self.ordered: list[bool] = []
        for reader, addresses in enumerate(wants):  # pieces arrive by source, each in the reader's order
            arrival = sorted(range(len(addresses)), key=lambda position: addresses[position][0])
            order = torch.empty(len(addresses), dtype=torch.long)
            order[torch.tensor(arrival, dtype=torch.long)] = torch.arange(len(addresses))
            self.register_buffer(f"order_{reader}", order, persistent=False)
            self.ordered.append(arrival == sorted(arrival))

    def send(self, source: int, values: Tensor, inboxes: list[list[Tensor]]) -> None:
        """Put source `source`'s rows into the readers' inboxes."""
        rows = getattr(self, f"rows_{source}")
        if len(rows):
            for inbox, piece in zip(inboxes, values.index_select(0, rows).split(self.shares[source]), strict=True):
                if len(piece):
                    inbox.append(piece)

    def receive(self, reader: int, inbox: list[Tensor]) -> Tensor:
        """Reader `reader`'s rows, in its order, once every source it reads has been sent."""
        together = inbox[0] if len(inbox) == 1 else torch.cat(inbox)
        return together if self.ordered[reader] else together.index_select(0, getattr(self, f"order_{reader}"))


class LevelPlan(nn.Module):
    """How a population's rows are computed for inputs of `chunks` chunks: the op runs of every level and the
    router that feeds them."""

    def __init__(self, recipes: Sequence[Recipe], placed: Sequence[_Placement], tuple_size: int, depths: int,
                 chunks: int) -> None:
        super().__init__()
        members = len(recipes)
        address = {(m, "x"): [(X, m * chunks + j) for j in range(chunks)] for m in range(members)}
        address |= {(m, f"h_prev_{k}"): [(STATE, m * tuple_size + k)]
                    for m in range(members) for k in range(tuple_size)}

        def reads(m: int, name: str) -> list[tuple[int, int]]:
            return [row for item in recipes[m][name]["input"] for row in address[m, item]]

        self.levels: list[list[OpRun]] = []
        wants = []
        for depth in range(1, depths + 1):
            nodes = sorted((recipes[m][name]["op"], len(reads(m, name)), m, name)
                           for m, p in enumerate(placed) for name in p.order if p.depth[name] == depth)
            wants.append([row for _, _, m, name in nodes for row in reads(m, name)])
            address |= {(m, name): [(STATE + depth, row)] for row, (_, _, m, name) in enumerate(nodes)}
            self.levels.append(self._runs(nodes, recipes, placed, chunks))
        wants.append([address[m, f"h_new_{k}"][0] if (m, f"h_new_{k}") in address else (ZERO, 0)
                      for m in range(members) for k in range(tuple_size)])
        self.router = RowRouter(wants, STATE + 1 + depths)

    @staticmethod
    def _runs(nodes: list[tuple[str, int, int, str]], recipes: Sequence[Recipe], placed: Sequence[_Placement],
              chunks: int) -> list[OpRun]:
        runs, start = [], 0
        while start < len(nodes):
            op, arity = nodes[start][:2]
            stop = start
            while stop < len(nodes) and nodes[stop][:2] == (op, arity):
                stop += 1
            index = None
            if op == "linear":
                members, depths, slots = zip(*[(m, *placed[m].linear_slot[name])
                                               for _, _, m, name in nodes[start:stop]], strict=True)
                positions = [_positions(recipes[m][name]["input"], chunks) for _, _, m, name in nodes[start:stop]]
                index = (torch.tensor(members), torch.tensor(depths), torch.tensor(slots), torch.tensor(positions))
            runs.append(OpRun(op, arity, stop - start, index))
            start = stop
        return runs


def _positions(inputs: Sequence[str], chunks: int) -> list[int]:
    """The bank positions of a linear's inputs, x's chunks expanded (see the module docstring)."""
    return [at for position, item in enumerate(inputs)
            for at in ([position, *range(MAX_ARITY, MAX_ARITY + chunks - 1)] if item == "x" else [position])]


class RecipePopulation(nn.Module):
    """One step of P different recipes: ``forward(x, state, prepared)`` maps inputs x (P, batch, E) and hidden
    tuples state (P, K, batch, H) to the new tuples (P, K, batch, H); K is the population's largest tuple and a
    smaller cell's extra states stay zero. Weights come from `prepare` of a bank (P, depths, slots, positions, H,
    H) and its biases (P, depths, slots, H); positions is 3 + ceil(E / H) - 1."""

    full_bank = BANK_SHAPE
    """The bank shape that fits every recipe (a dish's bank must fit motifs it has not seen)."""
    dropped = ("w_cell",)
    """The weights a language model's weight drop masks: every linear's matrices, not the biases."""

    def __init__(self, recipes: Sequence[Recipe]) -> None:
        super().__init__()
        self.recipes = list(recipes)
        self._check_inputs()
        self.members = len(self.recipes)
        self.tuple_size = max(tuple_size(recipe) for recipe in self.recipes)
        self.placed = [_place(recipe) for recipe in self.recipes]
        self.bank_needs = (max(max(p.depth.values()) for p in self.placed),
                           max([slot + 1 for p in self.placed for _, slot in p.linear_slot.values()] or [1]))
        self.plans = nn.ModuleDict()
        self.plan(1)

    def plan(self, chunks: int) -> LevelPlan:
        """The plan for inputs of `chunks` chunks, made once (on this module's device)."""
        if str(chunks) not in self.plans:
            made = LevelPlan(self.recipes, self.placed, self.tuple_size, self.bank_needs[0], chunks)
            self.plans[str(chunks)] = made.to(self.plans["1"].router.rows_0.device) if self.plans else made
        return self.plans[str(chunks)]  # type: ignore[return-value]

    def _check_inputs(self) -> None:
        for recipe in self.recipes:
            for name, spec in recipe.items():
                if "x" in spec["input"] and spec["op"] != "linear":
                    raise ValueError(f"{name}: a population feeds x only to linear nodes, not to {spec['op']}")

    def initial_weights(self, hidden: int, generator: torch.Generator, bank: tuple[int, int] | None = None,
                        inputs: int | None = None) -> dict[str, Tensor]:
        """A bank of linear weights and biases, uniform in +-1/sqrt(hidden), the same for every member: (depths,
        slots) of `bank`, or just what this population needs, for inputs of width `inputs` (default `hidden`).
        Each (depth, slot) is drawn from its own seed (derived from one draw of `generator`), so a cell's weights
        do not depend on its population."""
        depths, slots = bank or self.bank_needs
        chunks = math.ceil((inputs or hidden) / hidden)
        self.plan(chunks)
        positions = MAX_ARITY + chunks - 1
        base = int(torch.randint(2**31 - 1, (1,), generator=generator))
        bound = hidden ** -0.5
        weights = torch.empty(depths, slots, positions, hidden, hidden)
        biases = torch.empty(depths, slots, hidden)
        for depth in range(depths):
            for slot in range(slots):
                own = torch.Generator().manual_seed(base + depth * MAX_BODY + slot)
                weights[depth, slot] = (torch.rand(positions, hidden, hidden, generator=own) * 2 - 1) * bound
                biases[depth, slot] = (torch.rand(hidden, generator=own) * 2 - 1) * bound
        return {"w_cell": weights, "b_cell": biases}

    def prepare(self, w_cell: Tensor, b_cell: Tensor) -> list[list[tuple[Tensor, Tensor] | None]]:
        """Each linear run's (weights (rows, arity * H, H), biases (rows, 1, H)) from a bank (P, depths, slots,
        positions, H, H) and its biases (P, depths, slots, H); once per sequence, not per step. All runs are
        picked with one ``index_select`` each of weights and biases, so back-propagation fills the bank's
        gradient once."""
        _, depths, slots, positions, hidden, _ = w_cell.shape
        if depths < self.bank_needs[0] or slots < self.bank_needs[1]:
            raise ValueError(f"bank: (depths, slots) {(depths, slots)} hold less than the population's "
                             f"{self.bank_needs}")
        levels = self.plan(positions - MAX_ARITY + 1).levels
        linear = [run for runs in levels for run in runs if run.bank_index is not None]
        if not linear:
            return [[None] * len(runs) for runs in levels]
        spots = [((member * depths + depth) * slots + slot).to(w_cell.device)
                 for member, depth, slot, _ in (run.bank_index for run in linear)]  # type: ignore[misc]
        weight_rows = torch.cat([(spot[:, None] * positions + run.bank_index[3].to(w_cell.device)).flatten()
                                 for spot, run in zip(spots, linear, strict=True)])  # type: ignore[index]
        weights = w_cell.reshape(-1, hidden, hidden).index_select(0, weight_rows)
        biases = b_cell.reshape(-1, hidden).index_select(0, torch.cat(spots))
        picked = iter(zip(weights.split([run.rows * run.arity for run in linear]),
                          biases.split([run.rows for run in linear]), strict=True))
        prepared = []
        for runs in levels:
            level: list[tuple[Tensor, Tensor] | None] = []
            for run in runs:
                if run.bank_index is None:
                    level.append(None)
                    continue
                weight, bias = next(picked)
                level.append((weight.view(run.rows, run.arity * hidden, hidden), bias.unsqueeze(1)))
            prepared.append(level)
        return prepared

    def initial_state(self, batch: int, hidden: int, like: Tensor) -> Tensor:
        return like.new_zeros(self.members, self.tuple_size, batch, hidden)

    @staticmethod
    def output(state: Tensor) -> Tensor:
        """Each member's output h_new_0 (P, batch, H)."""
        return state[:, 0]

    def forward(self, x: Tensor, state: Tensor, prepared: list[list[tuple[Tensor, Tensor] | None]]) -> Tensor:
        members, _, batch, hidden = state.shape
        chunks = math.ceil(x.shape[-1] / hidden)
        plan = self.plan(chunks)
        x = F.pad(x, (0, chunks * hidden - x.shape[-1])) if x.shape[-1] < chunks * hidden else x
        x = x.view(members, batch, chunks, hidden).transpose(1, 2).reshape(members * chunks, batch, hidden)
        inboxes: list[list[Tensor]] = [[] for _ in range(len(plan.levels) + 1)]
        for source, values in enumerate((state.new_zeros(1, batch, hidden), x, state.flatten(0, 1))):
            plan.router.send(source, values, inboxes)
        for level, (runs, weights) in enumerate(zip(plan.levels, prepared, strict=True)):
            inputs = plan.router.receive(level, inboxes[level]).split([run.rows * run.arity for run in runs])
            values = [_apply(run, part.view(run.rows, run.arity, batch, hidden), weight)
                      for run, part, weight in zip(runs, inputs, weights, strict=True)]
            plan.router.send(STATE + 1 + level, values[0] if len(values) == 1 else torch.cat(values), inboxes)
        return plan.router.receive(len(plan.levels), inboxes[-1]).view(members, self.tuple_size, batch, hidden)


def _apply(run: OpRun, inputs: Tensor, weights: tuple[Tensor, Tensor] | None) -> Tensor:
    """The values (rows, batch, H) of one run of rows with the same op, from their inputs (rows, arity, batch, H)."""
    if weights is not None:
        rows, arity, batch, hidden = inputs.shape
        stacked = inputs.transpose(1, 2).reshape(rows, batch, arity * hidden)
        return torch.baddbmm(weights[1], stacked, weights[0])
    if run.op == "blend":
        first, second, third = inputs.unbind(1)
        return torch.lerp(third, second, first)  # z * a + (1 - z) * b
    return ELEMENTWISE[run.op](*inputs.unbind(1)) if run.arity == 2 else UNARY[run.op](inputs[:, 0])


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
