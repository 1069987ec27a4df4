"""The one weight-initialisation scheme: uniform in +-bound from a seeded generator (PyTorch's nn.Linear default
with bound 1/sqrt(fan_in))."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def uniform(*shape: int, bound: float, generator: torch.Generator) -> Tensor:
    """Values drawn uniformly in [-bound, bound)."""
    return (torch.rand(*shape, generator=generator) * 2 - 1) * bound


def linear_bound(fan_in: int) -> float:
    """nn.Linear's bound for a layer with `fan_in` inputs."""
    return 1 / math.sqrt(fan_in)
