"""Shared plumbing of the Hydra tasks: torch settings, config instantiation with clear errors, loggers."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger

from dish.errors import ConfigError

log = logging.getLogger(__name__)


def configure_torch(seed: int, threads: int | None) -> None:
    """Seed every generator, set the thread count and flush denormals (saturated sigmoids make many)."""
    # pytorch-lightning 2.6 trips a torch 2.13 deprecation on every batch; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # Lightning warns on any machine that has SLURM's `srun` when a job is not started by it; our jobs are one
    # process each, and under SLURM submitit starts them with srun.
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")
    pl.seed_everything(seed, workers=True, verbose=False)
    if threads is not None:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


@contextlib.contextmanager
def config_group(name: str) -> Iterator[None]:
    """Re-raise a `ConfigError` from inside (also one wrapped by Hydra's instantiate) under group `name`."""
    try:
        yield
    except ConfigError as exc:
        raise exc.within(name) from None
    except InstantiationException as exc:
        if isinstance(exc.__cause__, ConfigError):
            raise exc.__cause__.within(name) from None
        raise


def instantiate_group(cfg: DictConfig, group: str, /, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate(cfg[group])` with bad values reported as ``group.field: problem``."""
    with config_group(group):
        return instantiate(cfg[group], **kwargs)


def make_logger(cfg: DictConfig) -> Logger | None:
    """The configured experiment logger; a W&B run is grouped by sweep and gets the full resolved config."""
    if cfg.get("logger") is None:
        return None
    overrides: dict[str, Any] = {}
    if cfg.logger._target_.endswith("WandbLogger"):
        hydra_cfg = HydraConfig.get()
        if cfg.logger.get("group") is None and hydra_cfg.mode == RunMode.MULTIRUN:
            overrides["group"] = f"{cfg.task_name}-{Path(hydra_cfg.sweep.dir).name}"
        if cfg.logger.get("name") is None:
            overrides["name"] = hydra_cfg.job.override_dirname or cfg.task_name
    logger = instantiate_group(cfg, "logger", **overrides)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def finish_logger(logger: Logger | None, failed: bool) -> None:
    """Close the job's W&B run, so the next job of a multirun in this process starts its own."""
    if isinstance(logger, WandbLogger):
        import wandb

        if wandb.run is not None:
            wandb.run.finish(exit_code=1 if failed else 0)
