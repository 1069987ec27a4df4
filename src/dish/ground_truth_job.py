"""The ground-truth job: train the motifs not yet in the store and append one row per motif."""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, ProgressBar
from pytorch_lightning.loggers import Logger, WandbLogger

from dish.cells import RecurrentCell
from dish.errors import ConfigError
from dish.ground_truth import GroundTruthModule
from dish.language_model import LanguageModelGroundTruth
from dish.motifs import Motif
from dish.provenance import git_commit, ground_truth_hash, ground_truth_settings, slurm_job, version
from dish.runtime import config_group, configure_torch, finish_logger, instantiate_group, make_logger, progress_callback
from dish.store import GroundTruthStore
from dish.validation import validate_ground_truth

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("status", "val_loss", "val_acc", "val_ppl", "best_val_loss", "best_epoch")


def motifs_from_config(cfg: DictConfig) -> list[Motif]:
    """The population listed under ``population.<field>``, else the single motif of the `motif` group."""
    motif_type: type[Motif] = get_class(cfg.motif._target_)
    values = cfg.population.get(motif_type.population_field)
    if values is None:
        return [instantiate_group(cfg, "motif")]
    if len(values) == 0:
        raise ConfigError(f"population.{motif_type.population_field}", "is empty; give at least one motif")
    with config_group("population"):
        return motif_type.from_population_config(values)


def run_ground_truth(cfg: DictConfig) -> list[dict[str, Any]]:
    """Train every configured motif missing from the store (all of them with ``force``); return new rows."""
    validate_ground_truth(cfg)
    configure_torch(cfg.seed, cfg.threads)
    motifs = motifs_from_config(cfg)
    store = GroundTruthStore(cfg.store.path, type(motifs[0]))
    spec = ground_truth_hash(cfg)
    store.check_writable()
    done = set() if cfg.force else store.finished_keys(spec)
    todo = [motif for motif in motifs if motif.key not in done]
    if len(todo) < len(motifs):
        log.info("skipping %d motif(s) already in %s under config %s", len(motifs) - len(todo), store.path, spec)
    if not todo:
        return []

    datamodule = instantiate_group(cfg, "data")
    with config_group("data"):
        datamodule.prepare_data()
        datamodule.setup("fit")
    module = build_module(cfg, todo, datamodule)
    checkpoints = checkpoint_dir(cfg, store, spec, todo)
    last = checkpoints / "last.ckpt"
    resume = _resumable(last)
    if resume:
        log.info("resuming from checkpoint %s", last)
    saver = _checkpoint_callback(cfg, checkpoints)
    progress = [progress_callback(f"ground truth of {len(todo)} motif(s)")] if cfg.trainer.enable_progress_bar else []
    logger = make_logger(cfg)
    failed = True
    try:
        # Lightning adds a checkpoint callback of its own unless one is given or checkpointing is off
        trainer = instantiate_group(cfg, "trainer", logger=logger if logger is not None else False,
                                    enable_checkpointing=isinstance(saver, ModelCheckpoint),
                                    enable_progress_bar=any(isinstance(c, ProgressBar) for c in progress),
                                    callbacks=[saver, *progress])
        start = time.perf_counter()
        with warnings.catch_warnings():
            if resume:  # the folder holds the checkpoint we resume from, as it should
                warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            trainer.fit(module, datamodule=datamodule, ckpt_path=last if resume else None)
        wall = time.perf_counter() - start
        settings = ground_truth_settings(cfg)
        rows = [_row(result, datamodule.name, cfg.seed, spec, settings, wall, len(todo))
                for result in module.results()]
        written = store.append(rows, replace=cfg.force)
        shutil.rmtree(checkpoints, ignore_errors=True)  # the rows are stored: nothing left to resume
        _log_results(logger, rows)
        failed = False
    finally:
        finish_logger(logger, failed)
    log.info("wrote %d row(s) to %s in %.1f s of training\n%s", written, store.path, wall, _table(rows))
    return rows


def build_module(cfg: DictConfig, motifs: list[Motif], datamodule: Any) -> pl.LightningModule:
    """The ground-truth module of the motif kind: an MLP classifier for activations, a language model for cells."""
    if isinstance(motifs[0], RecurrentCell):
        return LanguageModelGroundTruth(motifs, datamodule.vocab_size, seed=cfg.seed, **cfg.model)  # type: ignore[arg-type]
    optimizer = instantiate_group(cfg, "optimizer")
    return GroundTruthModule(motifs, datamodule.input_dim, datamodule.num_classes, cfg.model.hidden, optimizer,
                             seed=cfg.seed)


def checkpoint_dir(cfg: DictConfig, store: GroundTruthStore, spec: str, motifs: Sequence[Motif]) -> Path:
    """Where the job training `motifs` under config `spec` keeps its checkpoints: the same folder for every
    attempt at the same work (a requeue, a rerun after a kill), another one for any other work."""
    root = Path(cfg.checkpoint.dir) if cfg.checkpoint.dir else store.path.parent / "checkpoints"
    work = hashlib.sha256("\n".join(motif.key for motif in motifs).encode()).hexdigest()[:12]
    return root / f"{store.path.stem}-{spec}-{work}"


def _checkpoint_callback(cfg: DictConfig, folder: Path) -> Callback:
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.part")
        trainer.save_checkpoint(partial)
        os.replace(partial, self.path)
        self.last_save = time.monotonic()


def _resumable(checkpoint: Path) -> bool:
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


def _row(result: dict[str, Any], data: str, seed: int, spec: str, settings: str, wall: float,
         population: int) -> dict:
    motif: Motif = result.pop("motif")
    return {
        "motif_kind": motif.kind, "motif_key": motif.key, **motif.encode(), "data": data, **result,
        "wall_seconds": round(wall, 3), "population_size": population, "seed": seed, "config_hash": spec,
        "settings": settings, "dish_version": version(), "git_commit": git_commit(),
        "slurm_job": slurm_job(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _log_results(logger: Logger | None, rows: Sequence[dict[str, Any]]) -> None:
    if isinstance(logger, WandbLogger):
        columns = list(rows[0])
        logger.log_table(key="ground_truth", columns=columns, data=[[row[c] for c in columns] for row in rows])
    if logger is not None and len(rows) == 1:
        logger.log_metrics({f"final/{name}": rows[0][name] for name in ("val_loss", "val_acc", "val_ppl",
                                                                         "best_val_loss") if name in rows[0]})


def _table(rows: Sequence[dict[str, Any]]) -> str:
    columns = [column for column in RESULT_COLUMNS if column in rows[0]]
    lines = [f"{'motif':<36}" + "".join(f"{c:>15}" for c in columns)]
    for row in rows:
        cells = "".join(f"{row[c]:>15.4f}" if isinstance(row[c], float) else f"{row[c]!s:>15}" for c in columns)
        lines.append(f"{row['motif_key']:<36}{cells}")
    return "\n".join(lines)
