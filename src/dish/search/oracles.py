"""Ground-truth oracles of the search: a lookup table, live training in this process, or ground-truth jobs
through a Hydra launcher.

Both return scores oriented so that higher = better (NaN for a motif whose training failed) and count nothing
themselves: the search counts what it asks for.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from hydra import initialize_config_module
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, RunMode, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from dish.core.errors import ConfigError
from dish.core.provenance import NOT_GROUND_TRUTH, ground_truth_hash
from dish.ground_truth.job import run_ground_truth
from dish.motifs.kind import Motif
from dish.store.csv_store import GroundTruthStore
from dish.store.tables import SCORE_ORIENTATION, SEARCH_FIELDS, GroundTruthTable, load_table

log = logging.getLogger(__name__)
ORACLES = ("live", "table")
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
    """Ground truth trained now, all motifs of a batch as one population in this process, and written to the
    store of tasks/ground_truth.py (a motif already stored under the same config is read, never retrained)."""

    pool = None

    def __init__(self, cfg: DictConfig, motif_type: type[Motif], score: str) -> None:
        if score not in SCORE_ORIENTATION:
            raise ConfigError("ground_truth.score", f"unknown score column {score!r}", accepted=list(SCORE_ORIENTATION))
        if score not in motif_type.ground_truth.scores:
            raise ConfigError("ground_truth.score", f"the {motif_type.kind} ground truth writes no {score!r} column",
                              accepted=motif_type.ground_truth.scores)
        self.cfg, self.score, self.motif_type = cfg, score, motif_type
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
        stored = {key: score for key, (_, score) in self.known().items()}  # one read of the store, not one per motif
        todo = [motif for motif in motifs if motif.key not in stored]
        scores = stored | (self._train(todo, label) if todo else {})
        lost = [motif.key for motif in motifs if motif.key not in scores]
        if lost:
            log.warning("no ground truth came back for %d motif(s), counted as failed: %s", len(lost), lost)
        return np.array([scores.get(motif.key, math.nan) for motif in motifs])

    def _train(self, motifs: Sequence[Motif], label: str) -> dict[str, float]:
        """Train `motifs`; their scores by motif key."""
        job = copy.deepcopy(self.cfg)
        with open_dict(job):
            job.population = {"motifs": [motif.key for motif in motifs]}
            job.logger = None  # the search's own W&B run covers it
        run_ground_truth(job)
        return {key: score for key, (_, score) in self.known().items()}


class LauncherOracle(LiveOracle):
    """Live ground truth through a Hydra launcher (basic, joblib, submitit_local, submitit_slurm, ...): a batch is
    one ``launcher.launch(...)`` of ground-truth jobs, one per motif not yet stored, each with `job_overrides`
    (the ground-truth config, so the same config hash) plus its motif and ``objective`` set to the searched
    score; the scores are the jobs' returns (Hydra's `JobReturn`)."""

    def __init__(self, cfg: DictConfig, motif_type: type[Motif], launcher: Launcher, job_overrides: Sequence[str],
                 chosen_by: str) -> None:
        super().__init__(cfg, motif_type, cfg.ground_truth.score)
        self.launcher, self.job_overrides, self.chosen_by = launcher, list(job_overrides), chosen_by
        self.launched = 0

    def _train(self, motifs: Sequence[Motif], label: str) -> dict[str, float]:
        jobs = [[*self.job_overrides, "logger=none", f"objective={self.score}",
                 f"population.motifs={override_value([motif.key])}"] for motif in motifs]
        setting = self.chosen_by.partition("=")[0]
        log.info("%s: launching %d ground-truth job(s) (%s)", label, len(jobs), self.chosen_by)
        with _hydra_state_kept():
            try:
                returns = self.launcher.launch(jobs, initial_job_idx=self.launched)
            except Exception as exc:  # the launcher itself failed (e.g. its settings): no job ran
                raise LaunchError(setting, f"the ground-truth jobs of {label} ({self.chosen_by}) could not be "
                                  f"launched: {type(exc).__name__}: {exc}{PENDING}") from exc
        self.launched += len(jobs)
        scores = {}
        for motif, job in zip(motifs, returns, strict=True):
            if job.status != JobStatus.COMPLETED:
                raise LaunchError(setting, f"the ground-truth job of {motif.key} ({label}, {self.chosen_by}) "
                                  f"failed: {job._return_value}{PENDING}")
            scores[motif.key] = SCORE_ORIENTATION[self.score] * float(job.return_value)
        return scores


PENDING = "; the round's picks stay pending, and a rerun retries them"


@contextlib.contextmanager
def _hydra_state_kept() -> Iterator[None]:
    """Give back this process's Hydra config and log handlers, which a launcher running jobs in this process
    (basic) replaces with each job's."""
    hydra_config, root = HydraConfig.instance(), logging.getLogger()
    config, handlers, level = hydra_config.cfg, list(root.handlers), root.level
    try:
        yield
    finally:
        hydra_config.cfg = config
        root.handlers[:] = handlers
        root.setLevel(level)


def ground_truth_launcher(name: str, overrides: Sequence[str], sweep_dir: Path, task: TaskFunction) -> Launcher:
    """Hydra's launcher `name` over `task` (that of tasks/ground_truth.py), set up as ``-m hydra/sweeper=dish
    hydra/launcher=<name> hydra.sweep.dir=<sweep_dir> <overrides>`` sets it up (its jobs numbered under
    `sweep_dir`): this search is then the sweeper."""
    loader = GlobalHydra.instance().config_loader()
    config = loader.load_configuration("ground_truth", [f"hydra/launcher={name}", "hydra/sweeper=dish",
                                                        "hydra.mode=MULTIRUN", "hydra.job.name=ground_truth",
                                                        f"hydra.sweep.dir={override_value(str(sweep_dir))}",
                                                        *overrides], RunMode.MULTIRUN)
    return Plugins.instance().instantiate_launcher(
        hydra_context=HydraContext(config_loader=loader, callbacks=Callbacks(config)),
        task_function=task, config=config)


def job_overrides(cfg: DictConfig, store: Path) -> list[str]:
    """This process's ground-truth config as overrides of the ground-truth job: group choices, then every value
    of the sections that define a ground-truth number (``++``: also keys this process added with ``+``), the
    seed, threads and the store."""
    choices = HydraConfig.get().runtime.choices
    overrides = [f"{group}={choices[group]}" for group in GROUPS if choices.get(group)]
    for section in SECTIONS:
        for key, value in _leaves(OmegaConf.to_container(cfg[section], resolve=True), section):
            if key.rpartition(".")[2] not in ("_target_", "_partial_") and key not in NOT_GROUND_TRUTH:
                overrides.append(f"++{key}={override_value(value)}")
    return [*overrides, f"seed={cfg.seed}", f"threads={override_value(cfg.threads)}",
            f"store.path={override_value(str(store))}"]


def make_oracle(cfg: DictConfig, motif_type: type[Motif], sweep_root: Path,
                ground_truth_task: TaskFunction | None = None) -> Oracle:
    """The oracle named by ``ground_truth.oracle``, once its settings are checked (`check_settings`); jobs that
    ``ground_truth.launcher`` launches run `ground_truth_task` under `sweep_root`."""
    settings = cfg.ground_truth
    check_settings(settings)
    if settings.oracle == "table":
        return TableOracle(load_table(settings.table, motif_type, settings.score,
                                      config_hash=settings.get("config_hash"), current=cfg, fields=SEARCH_FIELDS))
    if settings.launcher == "population":
        return LiveOracle(cfg, motif_type, settings.score)
    parsed = OverridesParser.create().parse_overrides(list(settings.launcher_overrides))
    hydra = [override.input_line for override in parsed if override.is_hydra_override()]
    jobs = [override.input_line for override in parsed if not override.is_hydra_override()]
    if ground_truth_task is None:
        raise ValueError(f"ground_truth.launcher={settings.launcher} launches ground-truth jobs: pass their task")
    launcher = ground_truth_launcher(settings.launcher, hydra, sweep_root, ground_truth_task)
    return LauncherOracle(cfg, motif_type, launcher, [*job_overrides(cfg, Path(cfg.store.path).resolve()), *jobs],
                          f"ground_truth.launcher={settings.launcher}")


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
    """A launch of ground-truth jobs failed: nothing of it counts as an evaluation."""


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


