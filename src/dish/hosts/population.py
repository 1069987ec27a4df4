"""An MLP whose weights are stacked over a population of members that differ only in their activation."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dish.core.init import linear_bound, uniform


class PopulationLinear(nn.Module):
    """P independent linear layers, weight (P, in, out) and bias (P, 1, out), run as one batched matmul.

    Input is (P, batch, in), or (batch, in) shared by every member. A population of one keeps 2-D weights and
    2-D activations: on a tiny layer, batched matmuls and the views around them cost a quarter more per step.
    """

    def __init__(self, weight: Tensor, bias: Tensor, population_size: int) -> None:
        super().__init__()
        if population_size > 1:
            weight = weight.expand(population_size, -1, -1).clone()
            bias = bias.view(1, 1, -1).expand(population_size, -1, -1).clone()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.weight.dim() == 2:
            return torch.addmm(self.bias, x, self.weight)
        if x.dim() == 2:
            x = x.expand(len(self.weight), -1, -1)
        return torch.baddbmm(self.bias, x, self.weight)


class PopulationMLP(nn.Sequential):
    """``in -> hidden... -> out`` with `activation` after each hidden layer, for P members at once.

    All members start from the same weights, drawn from `seed` with PyTorch's default `nn.Linear` scheme
    (uniform in +-1/sqrt(fan_in)) independently of P: a member's run does not depend on which population it was
    trained in. The forward pass maps inputs (batch, in) to logits (P, batch, out).
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, activation: nn.Module,
                 population_size: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise([in_features, *hidden, out_features]):
            bound = linear_bound(fan_in)
            weight = uniform(fan_in, fan_out, bound=bound, generator=generator)
            bias = uniform(fan_out, bound=bound, generator=generator)
            layers += [PopulationLinear(weight, bias, population_size), activation]
        super().__init__(*layers[:-1])

    def forward(self, x: Tensor) -> Tensor:
        logits = super().forward(x)
        return logits if logits.dim() == 3 else logits.unsqueeze(0)
