"""Ground-truth oracles of the search: a lookup table, or live training through the configured launcher.

Both return scores oriented so that higher = better (NaN for a motif whose training failed) and count nothing
themselves: the search counts what it asks for.
"""

from __future__ import annotations

import copy
import logging
import math
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from dish.core.errors import ConfigError
from dish.core.provenance import NOT_GROUND_TRUTH, ground_truth_hash
from dish.ground_truth.job import run_ground_truth
from dish.motifs.kind import Motif
from dish.store.csv_store import GroundTruthStore
from dish.store.tables import SCORE_ORIENTATION, SEARCH_FIELDS, GroundTruthTable, load_table

log = logging.getLogger(__name__)
ORACLES = ("live", "table")
GROUND_TRUTH_JOB = "dish.cli.ground_truth"
"""The module a launched ground-truth job runs (``python -m``): found however dish is installed."""
# Groups and sections of tasks/ground_truth.py that a launched job must get exactly as this process has them.
GROUPS = ("task", "data", "motif", "model", "optimizer", "trainer")
SECTIONS = ("data", "model", "optimizer", "trainer", "checkpoint")


class Oracle(Protocol):
    pool: list[Motif] | None
    """Every motif the oracle can score, or None when it can score any motif."""

    def known(self) -> dict[str, tuple[Motif, float]]:
        """Motifs whose scores cost nothing now (already computed), with their scores, by motif key."""
        ...

    def evaluate(self, motifs: Sequence[Motif], label: str) -> np.ndarray:
        """The scores of `motifs`; `label` names the batch (e.g. the search round) in logs and folders."""
        ...


class TableOracle:
    """Scores looked up in a ground-truth table: a search over a finished table runs in seconds."""

    def __init__(self, table: GroundTruthTable) -> None:
        self.table = table
        self.pool = list(table.motifs)
        self.scores = {motif.key: float(score) for motif, score in zip(table.motifs, table.scores, strict=True)}

    def known(self) -> dict[str, tuple[Motif, float]]:
        return {}

    def evaluate(self, motifs: Sequence[Motif], label: str) -> np.ndarray:
        missing = [motif.key for motif in motifs if motif.key not in self.scores]
        if missing:
            raise ConfigError("ground_truth.table", f"has no row for {missing[0]}")
        return np.array([self.scores[motif.key] for motif in motifs])


class LiveOracle:
    """Ground truth trained now and written to the store of tasks/ground_truth.py (a motif already stored under
    the same config is read, never retrained).

    `launcher` ``population`` trains all motifs of a batch as one population in this process; any other value
    is a Hydra launcher (``basic``, ``joblib``, ``submitit_slurm``, ``slurm``, ...): the batch becomes a multirun
    of tasks/ground_truth.py with one job per motif, under ``<sweep_root>/<label>``.
    """

    pool = None

    def __init__(self, cfg: DictConfig, motif_type: type[Motif], score: str, launcher: str,
                 launcher_overrides: Sequence[str], sweep_root: Path) -> None:
        if score not in SCORE_ORIENTATION:
            raise ConfigError("ground_truth.score", f"unknown score column {score!r}", accepted=list(SCORE_ORIENTATION))
        if score not in motif_type.ground_truth.scores:
            raise ConfigError("ground_truth.score", f"the {motif_type.kind} ground truth writes no {score!r} column",
                              accepted=motif_type.ground_truth.scores)
        self.cfg, self.score, self.launcher = cfg, score, launcher
        self.launcher_overrides, self.sweep_root = list(launcher_overrides), sweep_root
        self.motif_type = motif_type
        self.store = GroundTruthStore(Path(cfg.store.path).resolve(), self.motif_type)
        self.spec = ground_truth_hash(cfg)

    def known(self) -> dict[str, tuple[Motif, float]]:
        """Every motif stored under this config, with its score (NaN where its training failed). A successful
        row without the score column is an error: the store holds another kind of ground truth."""
        known = {}
        for row in self.store.read():
            if row.get("config_hash") != self.spec:
                continue
            ok = row.get("status") in (None, "", "ok")
            if ok and not row.get(self.score):
                raise ConfigError("ground_truth.score", f"the rows of {self.store.path} have no {self.score!r}",
                                  accepted=[name for name in SCORE_ORIENTATION if row.get(name)])
            value = float(row[self.score]) if ok else math.nan
            known[self.store.motif_key(row)] = (self.motif_type.decode(row), SCORE_ORIENTATION[self.score] * value)
        return known

    def evaluate(self, motifs: Sequence[Motif], label: str) -> np.ndarray:
        stored = self.known()  # one read of the store, not one per motif
        todo = [motif for motif in motifs if motif.key not in stored]
        if todo:
            if self.launcher == "population":
                self._train_population(todo)
            else:
                self._launch(todo, label)
        known = self.known()
        lost = [motif.key for motif in motifs if motif.key not in known]
        if lost:
            log.warning("no ground truth came back for %d motif(s), counted as failed: %s", len(lost), lost)
        return np.array([known[motif.key][1] if motif.key in known else math.nan for motif in motifs])

    def _train_population(self, motifs: Sequence[Motif]) -> None:
        job = copy.deepcopy(self.cfg)
        with open_dict(job):
            job.population = {"motifs": [motif.key for motif in motifs]}
            job.logger = None  # the search's own W&B run covers it
        run_ground_truth(job)

    def _launch(self, motifs: Sequence[Motif], label: str) -> None:
        """Train `motifs` as a multirun of the ground-truth job through the launcher, one job per motif (its
        key in ``population.motifs``); its stderr is shown as it comes, and a multirun that fails raises
        `LaunchError` with the job's own error."""
        values = ",".join(override_value([motif.key]) for motif in motifs)
        command = [sys.executable, "-m", GROUND_TRUTH_JOB, "-m", f"hydra/launcher={self.launcher}",
                   f"hydra.sweep.dir={self.sweep_root / label}", "logger=none", *self._job_overrides(),
                   f"population.motifs={values}", *self.launcher_overrides]
        log.info("launching %d ground-truth job(s): %s", len(motifs), " ".join(command[1:]))
        with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as multirun:
            error = _relay(multirun.stderr)
        if multirun.returncode != 0:
            raise LaunchError("ground_truth.launcher", f"the ground-truth jobs of {label} (hydra/launcher="
                              f"{self.launcher}) failed with exit code {multirun.returncode}: {error}; their picks "
                              "stay pending, and a rerun of this search retries them")

    def _job_overrides(self) -> list[str]:
        """This process's ground-truth config as overrides of the ground-truth job: group choices, then every
        value of the sections that define a ground-truth number (``++``: also keys this process added with
        ``+``), the seed, threads and the store."""
        choices = HydraConfig.get().runtime.choices
        overrides = [f"{group}={choices[group]}" for group in GROUPS if choices.get(group)]
        for section in SECTIONS:
            for key, value in _leaves(OmegaConf.to_container(self.cfg[section], resolve=True), section):
                if key.rpartition(".")[2] not in ("_target_", "_partial_") and key not in NOT_GROUND_TRUTH:
                    overrides.append(f"++{key}={override_value(value)}")
        return [*overrides, f"seed={self.cfg.seed}", f"threads={override_value(self.cfg.threads)}",
                f"store.path={override_value(str(self.store.path))}"]


def make_oracle(cfg: DictConfig, motif_type: type[Motif], sweep_root: Path) -> Oracle:
    """The oracle named by ``ground_truth.oracle``, once its settings are checked (`check_settings`)."""
    settings = cfg.ground_truth
    check_settings(settings)
    if settings.oracle == "table":
        return TableOracle(load_table(settings.table, motif_type, settings.score,
                                      config_hash=settings.get("config_hash"), current=cfg, fields=SEARCH_FIELDS))
    return LiveOracle(cfg, motif_type, settings.score, settings.launcher, settings.launcher_overrides, sweep_root)


def check_settings(settings: DictConfig) -> None:
    """Refuse an unknown oracle or launcher, and every setting that does not apply to the chosen oracle and
    launcher, before anything trains."""
    if settings.oracle not in ORACLES:
        raise ConfigError("ground_truth.oracle", f"unknown oracle {settings.oracle!r}", accepted=ORACLES)
    launchers = launcher_options()
    if settings.launcher not in launchers:
        raise ConfigError("ground_truth.launcher", f"unknown launcher {settings.launcher!r}", accepted=launchers)
    if settings.oracle == "table":
        if not settings.table:
            raise ConfigError("ground_truth.table", "the table oracle needs the path of a ground-truth CSV")
        if settings.launcher != "population":
            raise ConfigError("ground_truth.launcher", f"{settings.launcher!r} does not apply to the table oracle, "
                              "which trains nothing", accepted=["population"])
    else:
        for name in ("table", "config_hash"):
            if settings.get(name) is not None:
                raise ConfigError(f"ground_truth.{name}", f"{settings[name]!r} does not apply to the live oracle, "
                                  "which trains under this run's config", accepted=["null"])
    if settings.launcher_overrides and settings.launcher == "population":
        raise ConfigError("ground_truth.launcher_overrides", "apply only to a hydra launcher (the live oracle with "
                          f"ground_truth.launcher other than population), got {list(settings.launcher_overrides)}",
                          accepted=["[]"])


def launcher_options() -> list[str]:
    """What ``ground_truth.launcher`` accepts: ``population``, and every ``hydra/launcher`` option (this project's
    presets in dish/conf/hydra/launcher/ and the launcher plugins installed with Hydra)."""
    if not GlobalHydra.instance().is_initialized():
        with initialize_config_module(config_module="dish.conf", version_base=None):
            return launcher_options()
    return ["population", *GlobalHydra.instance().config_loader().get_group_options("hydra/launcher")]


class LaunchError(ConfigError):
    """The multirun that ``ground_truth.launcher`` ran failed: nothing of it counts as an evaluation."""


def _relay(stream: IO[str] | None) -> str:
    """Copy `stream` to stderr line by line until it ends; return its last ``error: ...`` line (without the
    prefix), else its last line."""
    error = last = None
    for line in stream or ():
        sys.stderr.write(line)
        if text := line.strip():
            last = text
            if text.startswith("error: "):
                error = text.removeprefix("error: ")
    if error is not None:
        return error
    return f"its last line on stderr: {last}" if last else "no output on stderr"


def override_value(value: Any) -> str:
    """`value` written in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple | ListConfig):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{override_value(item)}" for key, item in value.items()) + "}"
    escaped = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}")
    else:
        yield prefix, node


