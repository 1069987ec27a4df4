"""The ground-truth job: train the motifs not yet in the store and append one row per motif."""

from __future__ import annotations

import datetime
import logging
import math
import shutil
import time
import warnings
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.loggers import Logger, WandbLogger

from dish.core.provenance import git_commit, ground_truth_hash, ground_truth_settings, slurm_job, version
from dish.core.runtime import (
    config_group,
    configure_torch,
    finish_logger,
    instantiate_group,
    make_logger,
    progress_callback,
)
from dish.ground_truth.checkpoints import checkpoint_callback, checkpoint_dir, resumable
from dish.ground_truth.validation import motifs_from_config, validate_ground_truth
from dish.motifs.kind import Motif
from dish.store.csv_store import GroundTruthStore

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("status", "val_loss", "val_acc", "val_ppl", "best_val_loss", "best_epoch")


def job_objective(cfg: DictConfig) -> float | None:
    """A job of one motif: its stored `objective` column (NaN where its training failed), whether trained now or
    found stored; what the job returns to a sweeper (Hydra's ``JobReturn.return_value``). None for several."""
    motifs = motifs_from_config(cfg)
    if len(motifs) != 1:
        return None
    store = GroundTruthStore(cfg.store.path, type(motifs[0]))
    spec = ground_truth_hash(cfg)
    row = next((row for row in store.read()
                if row.get("config_hash") == spec and store.motif_key(row) == motifs[0].key), None)
    ok = row is not None and row.get("status") in (None, "", "ok") and row.get(cfg.objective)
    return float(row[cfg.objective]) if ok else math.nan


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
    resume = resumable(last)
    if resume:
        log.info("resuming from checkpoint %s", last)
    saver = checkpoint_callback(cfg, checkpoints)
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
    """The ground-truth module of the motifs' kind (its `ground_truth` host), with the kind's population module."""
    motif_type = type(motifs[0])
    return motif_type.ground_truth.from_config(motifs, motif_type.population(motifs), cfg, datamodule)


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
