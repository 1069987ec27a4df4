"""Writing result files so that a reader never sees half of one, readable by everyone (mode 0644), and JSON that
strict parsers accept (a missing value is null, never NaN or Infinity)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

RESULT_MODE = 0o644


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` through a temporary file in the same folder and an atomic rename; the file is mode 0644."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), RESULT_MODE)  # mkstemp makes it 0600
            handle.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


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
