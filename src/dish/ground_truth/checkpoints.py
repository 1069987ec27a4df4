"""Checkpoints of unfinished ground-truth work: where a job keeps them, when it saves, whether one resumes."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from dish.core.errors import ConfigError
from dish.core.files import atomic_target
from dish.motifs.kind import Motif
from dish.store.csv_store import GroundTruthStore

log = logging.getLogger(__name__)


def checkpoint_dir(cfg: DictConfig, store: GroundTruthStore, spec: str, motifs: Sequence[Motif]) -> Path:
    """Where the job training `motifs` under config `spec` keeps its checkpoints: the same folder for every
    attempt at the same work (a requeue, a rerun after a kill), another one for any other work."""
    root = Path(cfg.checkpoint.dir) if cfg.checkpoint.dir else store.path.parent / "checkpoints"
    work = hashlib.sha256("\n".join(motif.key for motif in motifs).encode()).hexdigest()[:12]
    return root / f"{store.path.stem}-{spec}-{work}"


def checkpoint_callback(cfg: DictConfig, folder: Path) -> Callback:
    """Keep only ``last.ckpt``, saved every ``checkpoint.every_n_epochs`` epochs or else every
    ``checkpoint.every_minutes`` minutes (a job shorter than that never writes one)."""
    every = cfg.checkpoint
    if (every.every_n_epochs is None) == (every.every_minutes is None):
        raise ConfigError("checkpoint", "set one of every_n_epochs and every_minutes, the other to null",
                          accepted=["every_n_epochs=N every_minutes=null", "every_n_epochs=null every_minutes=M"])
    if every.every_minutes is not None:
        return TimedCheckpoint(folder / "last.ckpt", every.every_minutes)
    # no monitor and top-1: each save replaces the previous one, always named last.ckpt
    return ModelCheckpoint(dirpath=folder, filename="last", save_top_k=1, every_n_epochs=every.every_n_epochs,
                           enable_version_counter=False)


class TimedCheckpoint(Callback):
    """Save `path` at the end of an epoch once `minutes` have passed since training started or last saved.

    Lightning's `ModelCheckpoint` ignores its ``train_time_interval`` under manual optimisation, which every
    ground-truth module uses, so the timer is kept here. The file is written under a temporary name and
    renamed, so a kill mid-save leaves the previous checkpoint intact.
    """

    def __init__(self, path: Path, minutes: float) -> None:
        self.path, self.seconds = Path(path), 60.0 * minutes
        self.last_save = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last_save = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if time.monotonic() - self.last_save < self.seconds:
            return
        with atomic_target(self.path) as partial:
            trainer.save_checkpoint(partial)
        self.last_save = time.monotonic()


def resumable(checkpoint: Path) -> bool:
    """Whether `checkpoint` exists and loads; one cut short by a kill is removed and the work starts over."""
    if not checkpoint.exists():
        return False
    try:
        torch.load(checkpoint, map_location="cpu", weights_only=False)  # our own file
    except Exception as exc:  # a truncated or garbled file: torch raises several kinds
        log.warning("checkpoint %s is unreadable (%s): starting over", checkpoint, exc)
        checkpoint.unlink()
        return False
    return True
