"""Errors that describe bad user input in one line."""

from __future__ import annotations

from collections.abc import Iterable


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
