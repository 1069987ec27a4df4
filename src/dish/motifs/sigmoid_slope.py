"""The kind ``sigmoid_slope``: the activation ``sigmoid(slope * x)`` of the Petri dish paper's first experiment."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from dish.core.errors import POSITIVE, POSITIVE_INT, ConfigError, Rule
from dish.hosts.classifier import ClassifierGroundTruth
from dish.hosts.dish_networks import MLPDishNetwork
from dish.motifs.kind import Motif, register

SLOPE_RANGE = (1e-30, 1e30)
"""Slopes a float32 network can hold (NaN and inf fail the range check too)."""


@register
@dataclasses.dataclass(frozen=True)
class SigmoidSlope(Motif):
    """``sigmoid(slope * x)`` after every hidden layer; features are the slope and its log (the scalar axis)."""

    kind: ClassVar[str] = "sigmoid_slope"
    ground_truth: ClassVar = ClassifierGroundTruth
    dish_network: ClassVar = MLPDishNetwork
    scalar_field: ClassVar[str | None] = "slope"
    population_keys: ClassVar[tuple[str, ...]] = ("slopes",)
    candidate_settings: ClassVar[dict[str, Rule]] = {"slope_min": POSITIVE, "slope_max": POSITIVE,
                                                     "slopes": POSITIVE_INT}
    slope: float

    def __post_init__(self) -> None:
        try:
            slope = float(self.slope)
        except (TypeError, ValueError):
            raise ConfigError("slope", f"must be a positive number, got {self.slope!r}") from None
        if not SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1]:
            raise ConfigError("slope", f"must be a positive number in [{SLOPE_RANGE[0]:g}, {SLOPE_RANGE[1]:g}] "
                              f"(float32 networks), got {self.slope!r}")
        # 10 significant digits: the same slope written or computed two ways gets the same key.
        object.__setattr__(self, "slope", float(f"{slope:.10g}"))

    def features(self) -> list[float]:
        return [self.slope, math.log(self.slope)]

    @classmethod
    def population(cls, motifs: Sequence[Motif]) -> nn.Module:
        return SlopedSigmoid([m.slope for m in motifs])  # type: ignore[attr-defined]

    @classmethod
    def expand_population(cls, population: Mapping[str, Any]) -> list[Motif]:
        """``slopes``: a list of slopes."""
        try:
            return [cls(value) for value in population.get("slopes") or []]
        except ConfigError as exc:
            raise ConfigError("slopes", exc.problem) from None

    @classmethod
    def sample(cls, rng: random.Random) -> SigmoidSlope:
        """A slope log-uniform in [0.01, 1000] (4 significant digits)."""
        return cls(float(f"{10 ** rng.uniform(-2, 3):.4g}"))

    def mutate(self, rng: random.Random) -> SigmoidSlope:
        """The slope times a log-normal factor (sd of a factor of 2)."""
        return SigmoidSlope(float(f"{self.slope * 2 ** rng.gauss(0, 1):.4g}"))

    @classmethod
    def candidates(cls, rng: random.Random, evaluated: Sequence[tuple[Motif, float]],
                   settings: Mapping[str, Any]) -> list[Motif]:
        """A log-spaced grid of ``slopes`` slopes from ``slope_min`` to ``slope_max`` (4 significant digits)."""
        grid = np.logspace(math.log10(settings["slope_min"]), math.log10(settings["slope_max"]), settings["slopes"])
        return [cls(float(f"{slope:.4g}")) for slope in grid]


class SlopedSigmoid(nn.Module):
    """``sigmoid(slope_p * x)`` for member p of a population; x has the population as its first dim."""

    slopes: Tensor

    def __init__(self, slopes: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("slopes", torch.tensor(list(slopes), dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        return torch.sigmoid(self.slopes.view(shape) * x)
