"""The ground-truth job: train the motifs not yet in the store and append one row per motif."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Sequence
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, WandbLogger

from dish.errors import ConfigError
from dish.ground_truth import GroundTruthModule
from dish.motifs import Motif
from dish.provenance import config_hash, git_commit, version
from dish.runtime import config_group, configure_torch, finish_logger, instantiate_group, make_logger
from dish.store import GroundTruthStore

log = logging.getLogger(__name__)

# What defines a ground-truth number: rows made under the same hash of these are interchangeable.
GROUND_TRUTH_SECTIONS = ("data", "model", "optimizer", "trainer", "seed")
NOT_GROUND_TRUTH = ("data.data_dir", "data.download", "data.mirrors", "trainer.default_root_dir",
                    "trainer.accelerator", "trainer.devices", "trainer.enable_checkpointing",
                    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps")
RESULT_COLUMNS = ("status", "val_loss", "val_acc", "best_val_loss", "best_epoch")


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
    configure_torch(cfg.seed, cfg.threads)
    motifs = motifs_from_config(cfg)
    store = GroundTruthStore(cfg.store.path, type(motifs[0]))
    spec = config_hash(cfg, GROUND_TRUTH_SECTIONS, NOT_GROUND_TRUTH)
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
    optimizer = instantiate_group(cfg, "optimizer")
    module = GroundTruthModule(todo, datamodule.input_dim, datamodule.num_classes, cfg.model.hidden,
                               optimizer, seed=cfg.seed)
    logger = make_logger(cfg)
    failed = True
    try:
        trainer = instantiate_group(cfg, "trainer", logger=logger if logger is not None else False)
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        wall = time.perf_counter() - start
        rows = [_row(result, datamodule.name, cfg.seed, spec, wall, len(todo)) for result in module.results()]
        written = store.append(rows, replace=cfg.force)
        _log_results(logger, rows)
        failed = False
    finally:
        finish_logger(logger, failed)
    log.info("wrote %d row(s) to %s in %.1f s of training\n%s", written, store.path, wall, _table(rows))
    return rows


def _row(result: dict[str, Any], data: str, seed: int, spec: str, wall: float, population: int) -> dict:
    motif: Motif = result.pop("motif")
    return {
        "motif_kind": motif.kind, "motif_key": motif.key, **motif.encode(), "data": data, **result,
        "wall_seconds": round(wall, 3), "population_size": population, "seed": seed, "config_hash": spec,
        "dish_version": version(), "git_commit": git_commit(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _log_results(logger: Logger | None, rows: Sequence[dict[str, Any]]) -> None:
    if isinstance(logger, WandbLogger):
        columns = list(rows[0])
        logger.log_table(key="ground_truth", columns=columns, data=[[row[c] for c in columns] for row in rows])
    if logger is not None and len(rows) == 1:
        logger.log_metrics({f"final/{name}": rows[0][name] for name in ("val_loss", "val_acc", "best_val_loss")})


def _table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'motif':<36}" + "".join(f"{c:>15}" for c in RESULT_COLUMNS)]
    for row in rows:
        cells = "".join(f"{row[c]:>15.4f}" if isinstance(row[c], float) else f"{row[c]!s:>15}"
                        for c in RESULT_COLUMNS)
        lines.append(f"{row['motif_key']:<36}{cells}")
    return "\n".join(lines)
