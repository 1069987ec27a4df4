"""The kind ``nb_nlp_cell``: recurrent cells of NAS-Bench-NLP given by their recipes (see `nb_nlp_recipes`).

A motif holds its canonical recipe JSON, so a store row or any table with a ``recipe`` column round-trips; its key
is a digest of that JSON (``nb_nlp_cell(digest=3f2a...)``), short enough for file names and logs. A motif comes
from ``motif.recipe`` (JSON or a named cell: rnn, lstm, gru), ``motif.recipe_file`` (a JSON file), a
``population.table`` (every recipe of a CSV) or ``population.n`` random cells.
"""

from __future__ import annotations

import csv
import dataclasses
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from dish.core.errors import ConfigError
from dish.hosts.dish_networks import TupleCellDishNetwork
from dish.hosts.language_model import LanguageModelGroundTruth
from dish.motifs import nb_nlp_recipes as recipes
from dish.motifs.kind import Motif, register
from dish.motifs.nb_nlp_population import RecipePopulation

TUPLE_SIZE_WEIGHTS = (3, 3, 1)
"""How often `sample` draws hidden tuples of 1, 2 and 3 states: about the dev table's 43 / 44 / 13 %."""


@register
@dataclasses.dataclass(frozen=True)
class NbNlpCell(Motif):
    """A NAS-Bench-NLP cell; `recipe` is its canonical JSON whatever form it was given in (JSON with any node
    names, a mapping, or a named cell), `recipe_file` a JSON file to read it from instead."""

    kind: ClassVar[str] = "nb_nlp_cell"
    ground_truth: ClassVar = LanguageModelGroundTruth
    dish_network: ClassVar = TupleCellDishNetwork
    population_keys: ClassVar[tuple[str, ...]] = ("table", "n", "seed")
    recipe: Any = ""
    recipe_file: str | None = None

    def __post_init__(self) -> None:
        given: Any = self.recipe
        if self.recipe_file:
            path = Path(self.recipe_file)
            if not path.is_file():
                raise ConfigError("motif.recipe_file", f"{self.recipe_file!r} is not a file",
                                  accepted=["a JSON file of a recipe"])
            given = path.read_text()
        elif given in ("", None):
            raise ConfigError("motif.recipe", "is empty", accepted=[*recipes.NAMED, "a recipe as JSON"])
        try:
            text = recipes.to_json(dict(given) if isinstance(given, Mapping) else str(given))
        except ValueError as exc:
            raise ConfigError("motif.recipe", str(exc)) from None
        object.__setattr__(self, "recipe", text)
        object.__setattr__(self, "recipe_file", None)

    @classmethod
    def field_types(cls) -> dict[str, type]:
        """Only `recipe` is stored: `recipe_file` is read into it."""
        return {"recipe": str}

    @property
    def key(self) -> str:
        return f"{self.kind}(digest={recipes.digest(self.recipe)})"

    @classmethod
    def from_key(cls, key: str) -> Motif:
        raise ConfigError(cls.kind, f"{key!r}: a digest cannot be turned back into a recipe",
                          accepted=["the recipe as JSON", *recipes.NAMED, "{recipe: ...}"])

    def search_params(self) -> dict[str, float | str]:
        """One category per entry of `features` (an op count, a slot's op or output, an edge of the DAG)."""
        return {f"feature{i}": f"{value:g}" for i, value in enumerate(self.features())}

    def features(self) -> list[float]:
        """Op counts, tuple size and node count, then per-slot op and output one-hots and the upper-triangle
        adjacency of the DAG (see `nb_nlp_recipes.features`)."""
        return recipes.features(self.nodes)

    @property
    def nodes(self) -> recipes.Recipe:
        return recipes.validate(self.recipe)

    @classmethod
    def population(cls, motifs: Sequence[Motif]) -> RecipePopulation:
        return RecipePopulation([motif.nodes for motif in motifs])  # type: ignore[attr-defined]

    @classmethod
    def expand_population(cls, population: Mapping[str, Any]) -> list[Motif]:
        """``table``: every recipe of a CSV with a ``recipe`` column; ``n`` random cells drawn with ``seed``."""
        motifs: list[Motif] = []
        if population.get("table"):
            motifs += [cls(recipe) for recipe in read_recipes(population["table"])]
        rng = random.Random(int(population.get("seed") or 0))
        motifs += [cls.sample(rng) for _ in range(int(population.get("n") or 0))]
        return motifs

    @classmethod
    def sample(cls, rng: random.Random) -> NbNlpCell:
        """A cell by the benchmark's generator rules, with 1-3 hidden states (`TUPLE_SIZE_WEIGHTS`)."""
        size = rng.choices((1, 2, 3), weights=TUPLE_SIZE_WEIGHTS)[0]
        return cls(recipes.sample(rng, size))

    def mutate(self, rng: random.Random) -> NbNlpCell:
        """One op changed or one input rewired (see `nb_nlp_recipes.mutate`)."""
        return NbNlpCell(recipes.mutate(self.nodes, rng))


def read_recipes(path: str) -> list[str]:
    """The ``recipe`` cells of a CSV, in its order."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError("table", f"{path!r} is not a file", accepted=["a CSV with a recipe column"])
    with file.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if "recipe" not in (reader.fieldnames or []):
            raise ConfigError("table", f"{path} has no recipe column", accepted=list(reader.fieldnames or []))
        return [row["recipe"] for row in reader if row["recipe"]]
