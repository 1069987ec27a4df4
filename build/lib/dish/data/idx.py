"""Reading the IDX files of MNIST-format datasets, and fetching them when the user asks."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dish.core.errors import ConfigError
from dish.data.download import download

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
SPLIT_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path, gzipped: bool | None = None) -> np.ndarray:
    """The array stored in an IDX file (gzipped if `gzipped`, by default when its name ends in .gz)."""
    opener = gzip.open if (path.suffix == ".gz" if gzipped is None else gzipped) else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise ConfigError("data_dir", f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ConfigError("data_dir", f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError("data_dir", f"{path} is truncated inside its header")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">i4"))
    if len(raw) - header != int(np.prod(shape)) * dtype.itemsize:
        raise ConfigError("data_dir", f"{path} is truncated: header says shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def find_idx_file(name: str, directories: Sequence[Path]) -> Path | None:
    """The first of ``dir/name`` or ``dir/name.gz`` that exists."""
    for directory in directories:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def download_idx_files(destination: Path, mirrors: Sequence[str]) -> None:
    """Fetch the four standard ``.gz`` files into `destination`, trying `mirrors` in order (see `download`)."""
    for name in SPLIT_FILES.values():
        target = destination / f"{name}.gz"
        if not target.is_file():
            download(f"{name}.gz", target, mirrors, check=lambda path: read_idx(path, gzipped=True))
