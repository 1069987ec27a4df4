"""The kind ``activation``: activation functions built from operations (Ramachandran, Zoph, Le 2017, "Searching for
Activation Functions"): the core unit ``binary(unary1(x), unary2(x))``, optionally a second unit
``binary2(unary3(y1), unary4(x))`` on the first one's output, or a named function (relu, silu, gelu, ...).

``beta`` is a fixed constant of the motif, not a learned scalar: a motif is then a pure function of its key, the
ground-truth host and the dish's motif-network train exactly the same function, and a population needs no extra
per-member parameters. The ops, the grammar and the batched population module are in `activation_ops`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from torch import nn

from dish.core.errors import ConfigError
from dish.hosts.classifier import ClassifierGroundTruth
from dish.hosts.dish_networks import MLPDishNetwork
from dish.motifs import activation_ops as ops
from dish.motifs.kind import Motif, register


@register
@dataclasses.dataclass(frozen=True)
class Activation(Motif):
    """An activation function of the grammar, or a named one; fields are canonicalised (a grammar expression that
    writes a named function gets its name, so each function has one key)."""

    kind: ClassVar[str] = "activation"
    ground_truth: ClassVar = ClassifierGroundTruth
    dish_network: ClassVar = MLPDishNetwork
    population_keys: ClassVar[tuple[str, ...]] = ("n", "seed", "named")
    name: str = ""
    unary1: str = ops.NONE
    unary2: str = ops.NONE
    binary: str = ops.NONE
    unary3: str = ops.NONE
    unary4: str = ops.NONE
    binary2: str = ops.NONE
    beta: float = 1.0

    def __post_init__(self) -> None:
        given = {name: ("" if value is None and name == "name" else value) for name, value in self.encode().items()
                 if value is not None or name == "name"}
        try:
            fields = ops.canonical(given)
        except (TypeError, ValueError) as exc:
            field, _, problem = str(exc).partition(": ")
            raise ConfigError(field, problem) from None
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def features(self) -> list[float]:
        """One-hot op per slot, one-hot named extra, beta."""
        return ops.features(self.encode())

    @classmethod
    def population(cls, motifs: Sequence[Motif]) -> nn.Module:
        return ops.ActivationPopulation([motif.encode() for motif in motifs])

    @classmethod
    def from_shorthand(cls, value: Any) -> Activation:
        """A named function by its name (``population.motifs='[relu,silu]'``)."""
        return cls(name=str(value))

    @classmethod
    def expand_population(cls, population: Mapping[str, Any]) -> list[Motif]:
        """``named``: every named function; ``n`` distinct random expressions drawn with ``seed``."""
        motifs: dict[str, Motif] = {}
        if population.get("named"):
            for name in (*ops.NAMED_EXPRESSIONS, *ops.NAMED_EXTRAS):
                motif = cls(name=name)
                motifs[motif.key] = motif
        count = int(population.get("n") or 0)
        rng = random.Random(int(population.get("seed") or 0))
        drawn: dict[str, Motif] = {}
        while len(drawn) < count:
            motif = cls.sample(rng)
            if motif.key not in motifs:
                drawn.setdefault(motif.key, motif)
        return [*motifs.values(), *drawn.values()]

    @classmethod
    def sample(cls, rng: random.Random) -> Activation:
        """Every op uniform; the second unit with probability 1/2."""
        return cls.decode(ops.sample(rng))

    def mutate(self, rng: random.Random) -> Activation:
        """One op slot changed, or the second unit added or removed."""
        return Activation.decode(ops.mutate(self.encode(), rng))
