"""What a motif kind plugs into: the interfaces of its ground-truth host and of its Petri-dish motif-network."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

Params = list[Tensor]


class GroundTruthHost(Protocol):
    """A LightningModule class that trains a population of motifs' host networks at once.

    `sections` are the config sections that define its numbers (what the config hash covers), `scores` the
    result columns its rows carry, `supplied` the constructor arguments the job fills in (the rest come from the
    ``model`` config), `budget_field` the config field of its training budget and `stop_field` the one that stops
    it early with the full budget's schedule (what early stopping sets)."""

    sections: ClassVar[tuple[str, ...]]
    scores: ClassVar[tuple[str, ...]]
    supplied: ClassVar[tuple[str, ...]]
    budget_field: ClassVar[str]
    stop_field: ClassVar[str]

    @classmethod
    def from_config(cls, motifs: Sequence[Any], population: nn.Module, cfg: DictConfig,
                    datamodule: pl.LightningDataModule) -> pl.LightningModule: ...


class DishNetwork(ABC):
    """The dish's tiny motif-network: weights with a leading member dim, and its forward pass."""

    @staticmethod
    @abstractmethod
    def sample_shape(sizes: Sequence[int], sequence_length: int) -> tuple[int, ...]:
        """The shape of one synthetic input sample."""

    @staticmethod
    @abstractmethod
    def init_weights(sizes: Sequence[int], init_scale: float | None, generator: torch.Generator,
                     population: nn.Module) -> dict[str, Tensor]:
        """One seeded initialisation (no member dim), by name; names starting with ``b`` are biases."""

    @staticmethod
    @abstractmethod
    def forward(params: Params, x: Tensor, population: nn.Module, output_activation: bool) -> Tensor:
        """Outputs (members, samples, out) of every member's network on its inputs x (members, samples, ...)."""
