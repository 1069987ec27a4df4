"""Where a result came from: the hash of the config that defines it, the code version and commit, the SLURM job."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf

import dish

NOT_GROUND_TRUTH = ("data.data_dir", "data.download", "data.mirrors", "trainer.default_root_dir",
                    "trainer.accelerator", "trainer.devices", "trainer.enable_checkpointing",
                    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps")


def config_hash(cfg: DictConfig, sections: Iterable[str], ignore: Iterable[str] = ()) -> str:
    """Short stable hash of the resolved config `sections` (dotted paths), leaving out the `ignore`d keys.

    Ignored keys are never resolved, so they may point anywhere (e.g. at ``hydra:`` run-time values).
    """
    spec = _spec(cfg, sections, ignore)
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


def ground_truth_sections(cfg: DictConfig) -> tuple[str, ...]:
    """What defines a ground-truth number of `cfg`: the config sections its motif kind's host reads (rows made
    under the same hash of these are interchangeable)."""
    return get_class(cfg.motif._target_).ground_truth.sections


def ground_truth_hash(cfg: DictConfig) -> str:
    """The config hash of the ground truth `cfg` defines (its store rows carry it as ``config_hash``)."""
    return config_hash(cfg, ground_truth_sections(cfg), NOT_GROUND_TRUTH)


def ground_truth_settings(cfg: DictConfig) -> str:
    """What `ground_truth_hash` hashes, as compact sorted JSON (the store's ``settings`` column)."""
    return json.dumps(_spec(cfg, ground_truth_sections(cfg), NOT_GROUND_TRUTH), sort_keys=True,
                      separators=(",", ":"), default=str)


def _spec(cfg: DictConfig, sections: Iterable[str], ignore: Iterable[str]) -> dict[str, Any]:
    return {section: _resolved(OmegaConf.select(cfg, section), section, set(ignore)) for section in sections}


def _resolved(node: Any, path: str, ignored: set[str]) -> Any:
    if isinstance(node, DictConfig):
        return {key: _resolved(node[key], f"{path}.{key}", ignored) for key in node if f"{path}.{key}" not in ignored}
    if isinstance(node, ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


@functools.cache
def git_commit() -> str:
    """The commit of the checkout this dish package runs from (``-dirty`` when it has local changes), or
    ``unknown`` where the package is not a tracked file of a git checkout (an installed copy, also one inside
    some other repository)."""
    source = Path(dish.__file__).resolve().parent
    try:
        subprocess.run(["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=source, capture_output=True,
                       check=True, timeout=10)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def slurm_job() -> str:
    """The SLURM job that ran this process (``<array job>_<task>`` for an array task), or empty outside SLURM."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array:
        return f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return os.environ.get("SLURM_JOB_ID", "")


def version() -> str:
    """The installed dish version."""
    return dish.__version__
