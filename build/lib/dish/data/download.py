"""Fetching data files when the user asks: the first mirror that serves a complete, valid file wins."""

from __future__ import annotations

import http.client
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from dish.core.errors import ConfigError
from dish.core.files import atomic_target

Check = Callable[[Path], None]
"""Raises (`ValueError` or `ConfigError`) when a downloaded file is not what was asked for."""


def download(name: str, target: Path, mirrors: Sequence[str], check: Check) -> None:
    """Fetch ``<mirror>/<name>`` into `target` from the first of `mirrors` whose answer passes `check`.

    The file is written under a temporary name beside `target` and renamed only when complete and checked, so
    an interrupted or refused download never leaves a partial file behind.
    """
    if not mirrors:
        raise ConfigError("mirrors", "needs at least one URL base to download from")
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{name}"
        try:
            _fetch(url, target, check)
            return
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError, ConfigError) as exc:
            errors.append(f"{url}: {exc}")
    raise ConfigError("download", f"could not download {name}; tried {'; '.join(errors)}")


def _fetch(url: str, target: Path, check: Check) -> None:
    with atomic_target(target) as partial:
        with partial.open("wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
            received, declared = out.tell(), response.headers.get("Content-Length")
        if declared is not None and received != int(declared):  # urllib ends a cut-off body silently
            raise ValueError(f"the connection closed after {received} of {declared} bytes")
        check(partial)
