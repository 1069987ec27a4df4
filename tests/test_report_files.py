"""Result files: strict JSON (null for a missing number), written whole, mode 0644 whatever the umask."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from dish.core.files import finite_or_none, write_atomic, write_json_atomic


def test_non_finite_numbers_become_null_anywhere_in_the_content(tmp_path):
    content = {"a": math.nan, "b": [1.5, -math.inf, {"c": math.inf}], "d": (np.float64("nan"), 2), "e": "nan"}
    assert finite_or_none(content) == {"a": None, "b": [1.5, None, {"c": None}], "d": [None, 2], "e": "nan"}
    path = tmp_path / "result.json"
    write_json_atomic(path, content)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    strict = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert strict == finite_or_none(content)


@pytest.fixture
def private_umask():
    previous = os.umask(0o077)
    yield
    os.umask(previous)


def test_result_files_are_mode_0644_and_leave_no_temporary_file(tmp_path, private_umask):
    write_json_atomic(tmp_path / "a" / "result.json", {"x": 1})
    write_atomic(tmp_path / "a" / "figure.png", b"\x89PNG")
    write_atomic(tmp_path / "a" / "figure.png", b"\x89PNG again")  # replaced whole
    assert sorted(path.name for path in (tmp_path / "a").iterdir()) == ["figure.png", "result.json"]
    for path in (tmp_path / "a").iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert (tmp_path / "a" / "figure.png").read_bytes() == b"\x89PNG again"
