"""The one atomic-write helper: result files, tables and checkpoints are written under a temporary name beside
their path and renamed into place, so a reader never sees half of one; readable by everyone (mode 0644); and
JSON that strict parsers accept (a missing value is null, never NaN or Infinity)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULT_MODE = 0o644


@contextlib.contextmanager
def atomic_target(path: Path, mode: int = RESULT_MODE) -> Iterator[Path]:
    """A temporary path beside `path` (``.<name>.*.tmp``) to write to; once the block ends without error it is
    flushed to disk, given `mode` and renamed to `path`, and on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)  # mkstemp makes it 0600
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through `atomic_target`."""
    with atomic_target(path) as temporary:
        temporary.write_bytes(data)


def finite_or_none(content: Any) -> Any:
    """`content` with every non-finite float (NaN, +-inf) inside dicts, lists and tuples replaced by None."""
    if isinstance(content, float):
        return content if math.isfinite(content) else None
    if isinstance(content, dict):
        return {key: finite_or_none(value) for key, value in content.items()}
    if isinstance(content, list | tuple):
        return [finite_or_none(value) for value in content]
    return content


def write_json_atomic(path: Path, content: Any) -> None:
    """Write `content` as strict JSON (non-finite floats as null) with `write_atomic`."""
    text = json.dumps(finite_or_none(content), indent=2, allow_nan=False)
    write_atomic(path, f"{text}\n".encode())
