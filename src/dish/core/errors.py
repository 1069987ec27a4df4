"""Errors that describe bad user input in one line, and the value rules config fields are checked by."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass


class ConfigError(ValueError):
    """A config field holds a value dish cannot use.

    `field` is the dotted config path (prefixed by callers that know the group), `problem` says what is wrong
    and `accepted` lists the values that would work.
    """

    def __init__(self, field: str, problem: str, accepted: Iterable[object] | None = None) -> None:
        self.field = field
        self.problem = problem
        self.accepted = None if accepted is None else [str(a) for a in accepted]
        super().__init__(self.message)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, list[str] | None]]:
        return ConfigError, (self.field, self.problem, self.accepted)

    @property
    def message(self) -> str:
        text = f"{self.field}: {self.problem}"
        if self.accepted is not None:
            text += f" (accepted: {', '.join(self.accepted)})"
        return text

    def within(self, group: str) -> ConfigError:
        """The same error with its field placed under config group `group`."""
        return ConfigError(f"{group}.{self.field}", self.problem, self.accepted)


class StoreError(RuntimeError):
    """A ground-truth store file cannot be read or written; the message names the file."""


class JobError(Exception):
    """Bad input in one job of a multirun, carried back to the launching process: the job's one-line error,
    naming the job and its overrides."""


@dataclass(frozen=True)
class Rule:
    """What a config field accepts: the accepted values in words, and the test of a value."""

    accepted: tuple[str, ...]
    test: Callable[[object], bool]

    def check(self, field: str, value: object) -> None:
        """Raise a `ConfigError` for `field` unless `value` passes."""
        if not self.test(value):
            raise ConfigError(field, f"got {value!r}", accepted=self.accepted)

    def or_null(self) -> Rule:
        """The same rule that also accepts None (``null`` in the config)."""
        return Rule((*self.accepted, "null"), lambda value: value is None or self.test(value))


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def one_of(*choices: str) -> Rule:
    """A field that takes one of `choices`."""
    return Rule(choices, lambda value: value in choices)


POSITIVE_INT = Rule(("an integer >= 1",), lambda value: _integer(value) and value >= 1)  # type: ignore[operator]
NON_NEGATIVE_INT = Rule(("an integer >= 0",), lambda value: _integer(value) and value >= 0)  # type: ignore[operator]
INTEGER = Rule(("an integer",), _integer)
POSITIVE = Rule(("a number > 0",), lambda value: _number(value) and value > 0)  # type: ignore[operator]
NON_NEGATIVE = Rule(("a number >= 0",), lambda value: _number(value) and value >= 0)  # type: ignore[operator]
NUMBER = Rule(("a number",), _number)
BOOLEAN = Rule(("true", "false"), lambda value: isinstance(value, bool))
TEXT = Rule(("a string",), lambda value: isinstance(value, str))
