"""Shared plumbing of the Hydra tasks: torch settings, config instantiation with clear errors, loggers and
progress reports."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, RichProgressBar, TQDMProgressBar
from pytorch_lightning.loggers import Logger, WandbLogger

from dish.core.errors import ConfigError

log = logging.getLogger(__name__)
PROGRESS_SECONDS = "DISH_PROGRESS_SECONDS"
"""Environment variable: the least seconds between two progress log lines (default 5)."""
WANDB_VERBOSITY = ("WANDB_SILENT", "WANDB_QUIET", "WANDB_CONSOLE")
"""Environment variables through which a user chooses wandb's own console output; unset, wandb stays silent."""


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
        if not any(name in os.environ for name in WANDB_VERBOSITY) and "settings" not in cfg.logger:
            import wandb

            overrides["settings"] = wandb.Settings(silent=True)  # its banners: 34 lines a run; dish says where
    logger = instantiate_group(cfg, "logger", **overrides)
    if isinstance(logger, WandbLogger):
        # Lightning always passes `anonymous`, which wandb (0.31 here) deprecates with a warning on every run
        logger._wandb_init.pop("anonymous", None)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if isinstance(logger, WandbLogger):
        _announce(logger.experiment)
    return logger


def _announce(run: Any) -> None:
    """One line on where the W&B run went."""
    if run.offline:
        log.info("wandb: offline run, upload it with: wandb sync %s", run.settings.sync_dir)
    else:
        log.info("wandb: run %s", run.url)


def finish_logger(logger: Logger | None, failed: bool) -> None:
    """Close the job's W&B run, so the next job of a multirun in this process starts its own."""
    if isinstance(logger, WandbLogger):
        import wandb

        if wandb.run is not None:
            wandb.run.finish(exit_code=1 if failed else 0)


class ReportsProgress(Protocol):
    """A LightningModule that says how far its training is."""

    def progress(self) -> tuple[float, str]:
        """The fraction of training done and a few words on it, e.g. ``(0.4, "epoch 20/50, val_loss 0.31")``."""
        ...


class ProgressLog(Callback):
    """A log line at each tenth of training, once `every_seconds` have passed since the last line (so a fit of
    a few seconds says nothing): ``<label>: epoch 20/50, val_loss 0.31 (12 s)``. For logs and pipes, where a
    progress bar would write carriage returns."""

    def __init__(self, label: str, every_seconds: float = 5.0) -> None:
        self.label, self.every_seconds = label, every_seconds
        self.start = self.last = 0.0
        self.next_tenth = 1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = self.last = time.monotonic()
        self.next_tenth = 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: ReportsProgress) -> None:  # type: ignore[override]
        done, words = pl_module.progress()
        now = time.monotonic()
        if 10 * done < self.next_tenth or now - self.last < self.every_seconds:
            return
        self.next_tenth, self.last = int(10 * done) + 1, now
        log.info("%s: %s (%.0f s)", self.label, words, now - self.start)


def progress_callback(label: str) -> Callback:
    """How a fit reports progress: a Lightning progress bar where stderr is a terminal (Rich's where `rich` is
    installed, else tqdm's), else `ProgressLog` lines at most every ``$DISH_PROGRESS_SECONDS`` (5) seconds."""
    if sys.stderr.isatty():
        return RichProgressBar() if importlib.util.find_spec("rich") else TQDMProgressBar()
    return ProgressLog(label, float(os.environ.get(PROGRESS_SECONDS, "5")))
