"""Activation functions applied to a whole population of motif-networks at once."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class SlopedSigmoid(nn.Module):
    """``sigmoid(slope_p * x)`` for member p of a population; x has the population as its first dim."""

    slopes: Tensor

    def __init__(self, slopes: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("slopes", torch.tensor(list(slopes), dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        return torch.sigmoid(self.slopes.view(shape) * x)
