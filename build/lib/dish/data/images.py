"""Classification datasets held whole in memory as tensors, as LightningDataModules."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor

from dish.core.epochs import EpochBatches
from dish.core.errors import ConfigError
from dish.data.idx import SPLIT_FILES, download_idx_files, find_idx_file, read_idx

NORMALIZATIONS = ("unit", "standard", "none")
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class InMemoryDataModule(pl.LightningDataModule):
    """A dataset kept as (x_train, y_train, x_val, y_val) tensors on the training device.

    Each epoch comes as one item (see `EpochBatches`): its shuffled training samples and the validation split.
    `subset` keeps a seeded, class-stratified sample of the training split; `normalize` is `unit` (pixels in
    [0, 1]), `standard` (per-feature z-score with training statistics) or `none`.
    """

    name: ClassVar[str]
    input_dim: ClassVar[int]
    num_classes: ClassVar[int] = 10
    max_value: ClassVar[float]

    def __init__(self, batch_size: int = 100, seed: int = 0, subset: int | None = None,
                 normalize: str = "unit") -> None:
        super().__init__()
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ConfigError("batch_size", f"must be a positive integer, got {batch_size!r}")
        if subset is not None and not (isinstance(subset, int) and subset > 0):
            raise ConfigError("subset", f"must be a positive integer or null, got {subset!r}")
        if normalize not in NORMALIZATIONS:
            raise ConfigError("normalize", f"unknown normalisation {normalize!r}", accepted=NORMALIZATIONS)
        self.batch_size, self.seed, self.subset, self.normalize = batch_size, seed, subset, normalize
        self.x_train: Tensor | None = None
        self.y_train: Tensor | None = None
        self.x_val: Tensor | None = None
        self.y_val: Tensor | None = None

    def load_arrays(self) -> Arrays:
        """Raw (x_train, y_train, x_val, y_val) with x flattened to (n, input_dim)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.x_train is not None:
            return
        x_train, y_train, x_val, y_val = self.load_arrays()
        if self.subset is not None:
            x_train, y_train = self._sample(x_train, y_train, self.subset, "subset")
        x_train, x_val = self._normalized(x_train.astype(np.float32), x_val.astype(np.float32))
        self.x_train, self.x_val = torch.from_numpy(x_train), torch.from_numpy(x_val)
        self.y_train = torch.from_numpy(y_train.astype(np.int64))
        self.y_val = torch.from_numpy(y_val.astype(np.int64))

    def _sample(self, x: np.ndarray, y: np.ndarray, size: int, field: str) -> tuple[np.ndarray, np.ndarray]:
        if size >= len(x):
            if size > len(x):
                raise ConfigError(field, f"{size} is larger than the {len(x)} samples available")
            return x, y
        stratify = y if size >= self.num_classes else None
        x_kept, _, y_kept, _ = train_test_split(x, y, train_size=size, stratify=stratify,
                                                random_state=self.seed)
        return x_kept, y_kept

    def _normalized(self, x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.normalize == "unit":
            return x_train / self.max_value, x_val / self.max_value
        if self.normalize == "standard":
            mean, std = x_train.mean(0), x_train.std(0) + 1e-6
            return (x_train - mean) / std, (x_val - mean) / std
        return x_train, x_val

    def _on_device(self) -> None:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        for name in ("x_train", "y_train", "x_val", "y_val"):
            setattr(self, name, getattr(self, name).to(device))

    def train_dataloader(self) -> EpochBatches:
        self._on_device()
        return EpochBatches(self.x_train, self.y_train, self.batch_size, self.seed, (self.x_val, self.y_val))


class DigitsDataModule(InMemoryDataModule):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images): needs no file and no network."""

    name = "digits"
    input_dim = 64
    max_value = 16.0

    def __init__(self, val_fraction: float = 0.2, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if not 0 < val_fraction < 1:
            raise ConfigError("val_fraction", f"must lie strictly between 0 and 1, got {val_fraction!r}")
        self.val_fraction = val_fraction

    def load_arrays(self) -> Arrays:
        digits = load_digits()
        x_train, x_val, y_train, y_val = train_test_split(
            digits.data, digits.target, test_size=self.val_fraction, stratify=digits.target,
            random_state=self.seed)
        return x_train, y_train, x_val, y_val


class IdxDataModule(InMemoryDataModule):
    """An MNIST-format dataset read from the standard IDX files; the t10k split serves as validation.

    Files are looked up under ``data_dir`` (in any of `folder_names`, gzipped or not) and then in
    `system_dirs`; with ``download=true`` the standard files are fetched into ``data_dir/<folder>``.
    """

    input_dim = 28 * 28
    max_value = 255.0
    folder_names: ClassVar[tuple[str, ...]]
    system_dirs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data_dir: str = "data", download: bool = False, mirrors: Sequence[str] = (),
                 val_subset: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if val_subset is not None and not (isinstance(val_subset, int) and val_subset > 0):
            raise ConfigError("val_subset", f"must be a positive integer or null, got {val_subset!r}")
        self.data_dir, self.download, self.mirrors = Path(data_dir), download, list(mirrors)
        self.val_subset = val_subset

    def search_dirs(self) -> list[Path]:
        return [self.data_dir / folder for folder in self.folder_names] + [Path(d) for d in self.system_dirs]

    def prepare_data(self) -> None:
        if self.download and self._missing_files():
            download_idx_files(self.data_dir / self.folder_names[0], self.mirrors)

    def _missing_files(self) -> list[str]:
        return [name for name in SPLIT_FILES.values() if find_idx_file(name, self.search_dirs()) is None]

    def load_arrays(self) -> Arrays:
        missing = self._missing_files()
        if missing:
            looked = ", ".join(str(d) for d in self.search_dirs())
            raise ConfigError("data_dir", f"no {self.name} IDX file(s) {missing} in {looked}; "
                              "put the standard files there or set data.download=true")
        arrays = {key: read_idx(find_idx_file(name, self.search_dirs()))  # type: ignore[arg-type]
                  for key, name in SPLIT_FILES.items()}
        x_val, y_val = arrays["test_images"].reshape(-1, self.input_dim), arrays["test_labels"]
        if self.val_subset is not None:
            x_val, y_val = self._sample(x_val, y_val, self.val_subset, "val_subset")
        return arrays["train_images"].reshape(-1, self.input_dim), arrays["train_labels"], x_val, y_val


class FashionMnistDataModule(IdxDataModule):
    """Fashion-MNIST; also found in Debian's `dataset-fashion-mnist` package."""

    name = "fashion_mnist"
    folder_names = ("fashion_mnist", "fashion-mnist", os.path.join("FashionMNIST", "raw"))
    system_dirs = ("/usr/share/datasets/fashion-mnist",)


class MnistDataModule(IdxDataModule):
    """MNIST handwritten digits."""

    name = "mnist"
    folder_names = ("mnist", os.path.join("MNIST", "raw"))
