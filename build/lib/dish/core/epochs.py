"""The one epoch iterable: a loader whose single item per epoch is all a Lightning step needs (tiny models pay
Lightning's per-step overhead once per epoch), and whole-epoch minibatches in a seeded order per epoch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]
Item = TypeVar("Item")


class OncePerEpoch(Generic[Item]):
    """An iterable (a Lightning train loader) whose single item per epoch is `item()`: a fixed item by default."""

    sampler: EpochShuffle | None = None
    """Lightning calls ``sampler.set_epoch`` at the start of each epoch where there is one."""

    def __init__(self, item: Item) -> None:
        self.fixed = item

    def item(self) -> Item:
        return self.fixed

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Item]:
        yield self.item()


class EpochShuffle:
    """The sample order of each epoch: a permutation fixed by (seed, epoch).

    Lightning calls `set_epoch` at the start of every training epoch (also after resuming from a checkpoint),
    so every run with the same seed sees the same batches in the same order.
    """

    def __init__(self, num_samples: int, seed: int) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def permutation(self) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.num_samples, generator=generator)


@dataclass
class TrainingEpoch:
    """One Lightning step's data: this epoch's training samples in order, and the validation split.

    Whole tensors rather than a list of minibatches, so Lightning's batch handling touches four objects, not 30;
    the minibatches are cut on demand.
    """

    x: Tensor
    y: Tensor
    batch_size: int
    x_val: Tensor
    y_val: Tensor

    def minibatches(self) -> Iterator[Batch]:
        return zip(self.x.split(self.batch_size), self.y.split(self.batch_size), strict=True)


class EpochBatches(OncePerEpoch[TrainingEpoch]):
    """The loader whose single item per epoch is that epoch's `TrainingEpoch`.

    Handing Lightning one item per epoch keeps its per-step overhead away from tiny models: the module trains
    on the epoch's minibatches and scores the validation split in one step. The tensors stay on their device,
    so no sample is copied to the host.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, seed: int, validation: Batch) -> None:
        self.x, self.y, self.batch_size, self.validation = x, y, batch_size, validation
        self.sampler = EpochShuffle(len(x), seed)

    def item(self) -> TrainingEpoch:
        order = self.sampler.permutation().to(self.x.device)
        return TrainingEpoch(self.x[order], self.y[order], self.batch_size, *self.validation)
