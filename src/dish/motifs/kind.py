"""The motif-kind interface, and the registry that finds kinds.

A kind is one module: a frozen dataclass subclassing `Motif`, decorated with `register`, that declares its typed
fields, its features for surrogates, its population module (many different motifs run at once), its hosts (the
ground-truth LightningModule and the dish's motif-network it plugs into) and its search space (sample, mutate,
the candidates of a search round). Nothing else in dish knows a kind by name. The built-in kinds are the modules
of this package; another package adds a kind through the ``dish.motifs`` entry-point group, e.g. in its
pyproject.toml: ``[project.entry-points."dish.motifs"] my_kind = "my_package.my_kind:MyMotif"``.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import random
import re
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, ClassVar, TypeVar

from torch import nn

from dish.core.errors import NON_NEGATIVE_INT, ConfigError, Rule
from dish.hosts.base import DishNetwork, GroundTruthHost

MOTIF_KINDS: dict[str, type[Motif]] = {}
ENTRY_POINT_GROUP = "dish.motifs"
KEY = re.compile(r"(?P<kind>\w+)\((?P<fields>.*)\)")
SAFE_VALUE = re.compile(r"[A-Za-z0-9_.+\-]*")
"""What a field value may look like in a key: no character that a key or Hydra's override grammar treats
specially, so a key survives a CSV cell, a file name digest and a quoted override unchanged."""
Kind = TypeVar("Kind", bound=type)


def register(cls: Kind) -> Kind:
    """Class decorator: make the kind `cls` known under ``cls.kind``."""
    MOTIF_KINDS[cls.kind] = cls
    return cls


class Motif(ABC):
    """A candidate building block; subclasses are frozen dataclasses whose fields are the motif's encoding."""

    kind: ClassVar[str]
    ground_truth: ClassVar[type[GroundTruthHost]]
    """The LightningModule that trains the network repeating the motif (the ground truth)."""
    dish_network: ClassVar[type[DishNetwork]]
    """The Petri dish's tiny motif-network for this kind."""
    scalar_field: ClassVar[str | None] = None
    """The name of a positive float field the motifs are ordered along (a slope), or None: split=range, the
    quadratic baseline and plots over a motif axis need one."""
    population_keys: ClassVar[tuple[str, ...]] = ()
    """Keys of the ``population`` config this kind reads besides ``motifs`` (e.g. ``slopes``)."""
    candidate_settings: ClassVar[dict[str, Rule]] = dict.fromkeys(("random", "mutations", "parents"),
                                                                  NON_NEGATIVE_INT)
    """The ``search.candidates`` settings `candidates` reads (their values in the kind's config file)."""

    # --- encoding ----------------------------------------------------------------------------------------

    @classmethod
    def field_types(cls) -> dict[str, type]:
        """Each field's name and type, in declaration order."""
        hints = typing.get_type_hints(cls)
        return {field.name: hints[field.name] for field in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def field_names(cls) -> list[str]:
        return list(cls.field_types())

    def encode(self) -> dict[str, Any]:
        """The motif's fields as a flat, JSON-able dict (without the kind)."""
        return {name: getattr(self, name) for name in self.field_names()}

    @property
    def key(self) -> str:
        """Canonical string identifying the motif, e.g. ``sigmoid_slope(slope=0.5)``: the store key."""
        values = self.encode()
        for name, value in values.items():
            if not SAFE_VALUE.fullmatch(str(value)):
                raise ValueError(f"{self.kind}.{name}: {value!r} cannot be written in a key")
        return f"{self.kind}({','.join(f'{name}={value}' for name, value in values.items())})"

    @classmethod
    def decode(cls, fields: Mapping[str, Any]) -> Motif:
        """Rebuild a motif from its encoded fields (extra keys are ignored; a field with a default may be left
        out), coercing strings (CSV cells, Hydra overrides) to the field types."""
        types = cls.field_types()
        optional = {field.name for field in dataclasses.fields(cls)  # type: ignore[arg-type]
                    if field.default is not dataclasses.MISSING}
        missing = [name for name in types if name not in fields and name not in optional]
        if missing:
            raise ConfigError(cls.kind, f"missing field(s) {missing}", accepted=list(types))
        return cls(**{name: _coerce(cls.kind, name, fields[name], kind) for name, kind in types.items()
                      if name in fields})

    @classmethod
    def from_key(cls, key: str) -> Motif:
        """The motif whose `key` this is."""
        match = KEY.fullmatch(key.strip())
        if match is None or match["kind"] != cls.kind:
            raise ConfigError(cls.kind, f"{key!r} is not a key of this kind", accepted=[f"{cls.kind}(field=value,...)"])
        pairs = [item.partition("=") for item in match["fields"].split(",")] if match["fields"] else []
        return cls.decode({name: value for name, _, value in pairs})

    @classmethod
    def parse(cls, entry: Any) -> Motif:
        """A motif from a config entry: its key, a mapping of its fields, or the kind's own shorthand."""
        if isinstance(entry, Mapping):
            return cls.decode(entry)
        if isinstance(entry, str) and KEY.fullmatch(entry.strip()):
            return cls.from_key(entry)
        return cls.from_shorthand(entry)

    @classmethod
    def from_shorthand(cls, value: Any) -> Motif:
        """The motif a bare config value names (the kind's single field by default)."""
        names = cls.field_names()
        if len(names) != 1:
            fields = "{" + ", ".join(f"{name}: ..." for name in names) + "}"
            raise ConfigError(cls.kind, f"{value!r} is neither a key nor a mapping of fields",
                              accepted=[f"{cls.kind}(field=value,...)", fields])
        return cls.decode({names[0]: value})

    @abstractmethod
    def features(self) -> list[float]:
        """Numeric encoding for black-box surrogates."""

    def search_params(self) -> dict[str, float | str]:
        """The motif as the parameters of a black-box optimiser (Optuna): a float field as a number, any other
        field as a category."""
        return {name: value if isinstance(value, float) else str(value) for name, value in self.encode().items()}

    # --- populations -------------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def population(cls, motifs: Sequence[Motif]) -> nn.Module:
        """A module applying each motif of `motifs` to its own slice of a (population, ...) tensor, with no Python
        loop over the motifs."""

    @classmethod
    def from_population_config(cls, population: Mapping[str, Any]) -> list[Motif]:
        """The motifs a ``population`` config lists, duplicates dropped, order kept: ``motifs`` (keys, field
        mappings or shorthands), then whatever the kind's own `population_keys` add (`expand_population`)."""
        accepted = ("motifs", *cls.population_keys)
        for name, value in population.items():
            if name not in accepted and value is not None:
                raise ConfigError(f"population.{name}", f"is not read by motif kind {cls.kind!r}", accepted=accepted)
        motifs: dict[str, Motif] = {}
        try:
            listed = [cls.parse(entry) for entry in population.get("motifs") or []]
            for motif in [*listed, *cls.expand_population(population)]:
                motifs.setdefault(motif.key, motif)
        except ConfigError as exc:
            raise exc.within("population") from None
        return list(motifs.values())

    @classmethod
    def expand_population(cls, population: Mapping[str, Any]) -> list[Motif]:
        """The motifs the kind's own `population_keys` describe (none by default)."""
        return []

    # --- search space ------------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def sample(cls, rng: random.Random) -> Motif:
        """A motif drawn at random from the kind's space."""

    @abstractmethod
    def mutate(self, rng: random.Random) -> Motif:
        """A neighbour: the motif with one part changed."""

    @classmethod
    def candidates(cls, rng: random.Random, evaluated: Sequence[tuple[Motif, float]],
                   settings: Mapping[str, Any]) -> list[Motif]:
        """The motifs a search round may pick from (evaluated ones are dropped by the caller): ``random`` fresh
        samples and ``mutations`` mutations of the ``parents`` best motifs so far (settings from the kind's
        config, ``search.candidates``)."""
        ranked = sorted(evaluated, key=lambda pair: -pair[1])
        parents = [motif for motif, _ in ranked[:settings["parents"]]]
        pool = [cls.sample(rng) for _ in range(settings["random"])]
        return pool + [rng.choice(parents).mutate(rng) for _ in range(settings["mutations"] if parents else 0)]


def _coerce(kind: str, name: str, value: Any, target: type) -> Any:
    """`value` as a `target` (int, float, bool or str); a string that does not parse is a `ConfigError`."""
    if target is str or not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if target is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        return target(text)
    except ValueError:
        raise ConfigError(f"{kind}.{name}", f"{value!r} is not a {target.__name__}") from None


def motif_class(kind: str) -> type[Motif]:
    """The kind registered as `kind`: a built-in module of this package, or one an installed package declares
    in the ``dish.motifs`` entry-point group."""
    if kind not in MOTIF_KINDS:
        load_kinds()
    if kind not in MOTIF_KINDS:
        raise ConfigError("motif.kind", f"unknown motif kind {kind!r}", accepted=sorted(MOTIF_KINDS))
    return MOTIF_KINDS[kind]


def load_kinds() -> dict[str, type[Motif]]:
    """Import every built-in kind module and every ``dish.motifs`` entry point (each registers itself)."""
    package = importlib.import_module(__package__ or "dish.motifs")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in MOTIF_KINDS:
            register(point.load())
    return MOTIF_KINDS


def decode_motif(encoded: Mapping[str, Any]) -> Motif:
    """Rebuild a motif from ``{"kind": ..., **fields}``."""
    return motif_class(str(encoded.get("kind"))).decode(encoded)
