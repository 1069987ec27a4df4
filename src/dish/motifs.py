"""Motifs: the candidate building blocks a search ranks, with a canonical, stable encoding.

A motif is a small frozen dataclass. `encode()` gives its JSON-able dict (the store's columns), `key` a short
canonical string (the store key) and `features()` the numbers a black-box surrogate sees. Each motif kind also
says how a whole population of its motifs acts inside a network, so ground truth and the dish can batch over
motifs. New kinds (e.g. recurrent cells) subclass `Motif` and register themselves by `kind`.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from torch import nn

from dish.activations import SlopedSigmoid
from dish.errors import ConfigError

MOTIF_KINDS: dict[str, type[Motif]] = {}
SLOPE_RANGE = (1e-30, 1e30)
"""Slopes a float32 network can hold (NaN and inf fail the range check too)."""


class Motif(ABC):
    """Base class of every motif kind; subclasses are frozen dataclasses."""

    kind: ClassVar[str]
    population_field: ClassVar[str]
    """Name of the config list (under `population.`) that enumerates many motifs of this kind."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MOTIF_KINDS[cls.kind] = cls

    def encode(self) -> dict[str, Any]:
        """The motif's fields as a flat, JSON-able dict (without the kind)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @property
    def key(self) -> str:
        """Canonical string identifying the motif, e.g. ``sigmoid_slope(slope=0.5)``."""
        fields = ",".join(f"{name}={value}" for name, value in self.encode().items())
        return f"{self.kind}({fields})"

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def decode(cls, fields: Mapping[str, Any]) -> Motif:
        """Rebuild a motif from its encoded fields (extra keys are ignored)."""
        missing = [name for name in cls.field_names() if name not in fields]
        if missing:
            raise ConfigError(cls.kind, f"missing field(s) {missing}", accepted=cls.field_names())
        return cls(**{name: fields[name] for name in cls.field_names()})

    @abstractmethod
    def features(self) -> list[float]:
        """Numeric encoding for black-box surrogates."""

    @classmethod
    @abstractmethod
    def population(cls, motifs: Sequence[Motif]) -> nn.Module:
        """A module applying each motif of `motifs` to its own slice of a (population, ...) tensor."""

    @classmethod
    def from_population_config(cls, values: Sequence[Any]) -> list[Motif]:
        """Motifs from the config list `population.<population_field>`, duplicates dropped, order kept."""
        motifs: dict[str, Motif] = {}
        for value in values:
            try:
                motif = cls(value)  # type: ignore[call-arg]
            except ConfigError as exc:
                raise ConfigError(cls.population_field, exc.problem) from None
            motifs.setdefault(motif.key, motif)
        return list(motifs.values())


def motif_class(kind: str) -> type[Motif]:
    """The motif class registered under `kind`."""
    import dish.cells  # noqa: F401  (defines, and so registers, the recurrent-cell kind)

    if kind not in MOTIF_KINDS:
        raise ConfigError("motif.kind", f"unknown motif kind {kind!r}", accepted=sorted(MOTIF_KINDS))
    return MOTIF_KINDS[kind]


def decode_motif(encoded: Mapping[str, Any]) -> Motif:
    """Rebuild a motif from ``{"kind": ..., **fields}``."""
    return motif_class(str(encoded.get("kind"))).decode(encoded)


@dataclasses.dataclass(frozen=True)
class SigmoidSlope(Motif):
    """The activation ``sigmoid(slope * x)`` of the Petri dish paper's first experiment."""

    kind: ClassVar[str] = "sigmoid_slope"
    population_field: ClassVar[str] = "slopes"
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
