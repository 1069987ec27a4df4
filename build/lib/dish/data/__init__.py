"""Datasets as in-memory tensors: images (digits, MNIST, Fashion-MNIST) and token streams (python_docs, PTB).

The datamodules are importable from here (``dish.data.DigitsDataModule``): the configs name them so, and those
names enter the ground-truth config hash, which stays the same wherever the modules live."""

from dish.data.images import DigitsDataModule, FashionMnistDataModule, MnistDataModule
from dish.data.text import CorpusDataModule

__all__ = ["CorpusDataModule", "DigitsDataModule", "FashionMnistDataModule", "MnistDataModule"]
