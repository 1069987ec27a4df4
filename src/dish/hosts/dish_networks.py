"""The Petri dish's motif-networks: tiny networks with a leading member dim, one per host family."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dish.core.errors import ConfigError
from dish.core.init import linear_bound, uniform
from dish.hosts.base import DishNetwork, Params


class MLPDishNetwork(DishNetwork):
    """``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with the motif's activation after every hidden layer, and
    after the output layer too with `output_activation` (the authors' ``[10, 1, 1, 10]``)."""

    @staticmethod
    def sample_shape(sizes: Sequence[int], sequence_length: int) -> tuple[int, ...]:
        return (sizes[0],)

    @staticmethod
    def init_weights(sizes: Sequence[int], init_scale: float | None, generator: torch.Generator,
                     population: nn.Module) -> dict[str, Tensor]:
        """nn.Linear's scheme, or with `init_scale` the authors' small Gaussian weights."""
        weights = {}
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            if init_scale is None:
                bound = linear_bound(fan_in)
                weight = uniform(fan_in, fan_out, bound=bound, generator=generator)
                bias = uniform(1, fan_out, bound=bound, generator=generator)
            else:
                weight = torch.randn(fan_in, fan_out, generator=generator) * init_scale
                bias = torch.randn(1, fan_out, generator=generator) * init_scale
            weights[f"w{index}"], weights[f"b{index}"] = weight, bias
        return weights

    @staticmethod
    def forward(params: Params, x: Tensor, population: nn.Module, output_activation: bool) -> Tensor:
        h = x
        layers = len(params) // 2
        for index in range(layers):
            h = torch.baddbmm(params[2 * index + 1], h, params[2 * index])
            if index < layers - 1 or output_activation:
                h = population(h)
        return h


class CellDishNetwork(DishNetwork):
    """The cell (hidden state ``sizes[1]``) unrolled over synthetic sequences of ``sizes[0]`` inputs per step
    from a zero state, then a linear read-out of its last state to ``sizes[2]`` outputs."""

    @staticmethod
    def sample_shape(sizes: Sequence[int], sequence_length: int) -> tuple[int, ...]:
        return (sequence_length, sizes[0])

    @staticmethod
    def init_weights(sizes: Sequence[int], init_scale: float | None, generator: torch.Generator,
                     population: nn.Module) -> dict[str, Tensor]:
        """Node 0 and nodes 1..N of the cell (`population.num_nodes`) and the read-out, uniform in
        +-1/sqrt(hidden) (or +-`init_scale`)."""
        if len(sizes) != 3:
            raise ConfigError("dish.sizes", f"a cell dish takes [inputs, hidden, outputs], got {list(sizes)}")
        inputs, hidden, outputs = sizes
        scale = init_scale if init_scale is not None else linear_bound(hidden)
        shapes = {"w0": (inputs + hidden, 2 * hidden), "ws": (population.num_nodes, hidden, 2 * hidden),
                  "w_out": (hidden, outputs), "b_out": (1, outputs)}
        return {name: uniform(*shape, bound=scale, generator=generator) for name, shape in shapes.items()}

    @staticmethod
    def forward(params: Params, x: Tensor, population: nn.Module, output_activation: bool) -> Tensor:
        w0, ws, w_out, b_out = params
        state, prepared = x.new_zeros(*x.shape[:2], w_out.shape[1]), population.prepare(w0, ws)
        for inputs in x.unbind(2):
            state = population(inputs, state, prepared)
        return torch.baddbmm(b_out, state, w_out)


class TupleCellDishNetwork(DishNetwork):
    """A cell with a hidden tuple (hidden size ``sizes[1]``) unrolled over synthetic sequences of ``sizes[0]``
    inputs per step from zero states, then a linear read-out of its last output to ``sizes[2]`` outputs. The
    population module draws a weight bank that fits any of its kind's cells (`initial_weights`), so cells of
    different shapes start from the same weights at the same positions."""

    @staticmethod
    def sample_shape(sizes: Sequence[int], sequence_length: int) -> tuple[int, ...]:
        return (sequence_length, sizes[0])

    @staticmethod
    def init_weights(sizes: Sequence[int], init_scale: float | None, generator: torch.Generator,
                     population: nn.Module) -> dict[str, Tensor]:
        """The population's full-size bank and the read-out, uniform in +-1/sqrt(hidden) (or +-`init_scale`)."""
        if len(sizes) != 3 or sizes[0] > sizes[1]:
            raise ConfigError("dish.sizes", f"a tuple-cell dish takes [inputs, hidden, outputs] with inputs <= "
                              f"hidden, got {list(sizes)}")
        _, hidden, outputs = sizes
        cell = population.initial_weights(hidden, generator, bank=population.full_bank)
        scale = init_scale if init_scale is not None else linear_bound(hidden)
        if init_scale is not None:
            cell = {name: value * init_scale * hidden ** 0.5 for name, value in cell.items()}
        return {**cell, "w_out": uniform(hidden, outputs, bound=scale, generator=generator),
                "b_out": uniform(1, outputs, bound=scale, generator=generator)}

    @staticmethod
    def forward(params: Params, x: Tensor, population: nn.Module, output_activation: bool) -> Tensor:
        *cell, w_out, b_out = params
        prepared = population.prepare(*cell)
        state = population.initial_state(x.shape[1], w_out.shape[1], x)
        for inputs in x.unbind(2):
            state = population(inputs, state, prepared)
        return torch.baddbmm(b_out, population.output(state), w_out)
