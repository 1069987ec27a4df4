"""The search loop as a Hydra sweeper over the ground-truth task:

    python tasks/ground_truth.py -m hydra/sweeper=dish hydra/launcher=joblib data=digits trainer.max_epochs=5

Each round the strategy picks motifs, and the launcher Hydra was given (basic, joblib, submitit_local,
submitit_slurm) runs one ground-truth job per pick, with this command's own overrides plus the motif: the jobs'
stored rows come back as their ``JobReturn``. The ledger, resume and search.json are the search's
(`dish.search.loop`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, RunMode, TaskFunction
from hydra.utils import get_class
from omegaconf import DictConfig, open_dict

from dish.core.errors import ConfigError
from dish.motifs.kind import Motif
from dish.search.loop import run_search
from dish.search.oracles import LaunchError, LiveOracle, override_value
from dish.store.tables import SCORE_ORIENTATION

log = logging.getLogger(__name__)


class LauncherOracle(LiveOracle):
    """Live ground truth through a Hydra launcher: a batch is one launch of ground-truth jobs, one per motif not
    yet stored, each with the sweep's own overrides (so the same config hash) and ``objective`` set to the
    search's score; the scores are the jobs' returns."""

    def __init__(self, cfg: DictConfig, motif_type: type[Motif], launcher: Any, arguments: Sequence[str],
                 sweep_root: Path) -> None:
        super().__init__(cfg, motif_type, cfg.ground_truth.score, "hydra", [], sweep_root)
        self.hydra_launcher, self.arguments = launcher, list(arguments)
        self.launched = 0
        self.returned: dict[str, float] = {}

    def evaluate(self, motifs: Sequence[Motif], label: str) -> np.ndarray:
        stored = self.known()
        todo = [motif for motif in motifs if motif.key not in stored]
        if todo:
            self._launch(todo, label)
        scores = {key: score for key, (_, score) in stored.items()} | self.returned
        lost = [motif.key for motif in motifs if motif.key not in scores]
        if lost:
            log.warning("no ground truth came back for %d motif(s), counted as failed: %s", len(lost), lost)
        return np.array([scores.get(motif.key, math.nan) for motif in motifs])

    def _launch(self, motifs: Sequence[Motif], label: str) -> None:
        jobs = [[*self.arguments, "logger=none", f"objective={self.score}",
                 f"population.motifs={override_value([motif.key])}"] for motif in motifs]
        log.info("%s: launching %d ground-truth job(s)", label, len(jobs))
        returns = self.hydra_launcher.launch(jobs, initial_job_idx=self.launched)
        self.launched += len(jobs)
        for motif, job in zip(motifs, returns, strict=True):
            if job.status != JobStatus.COMPLETED:
                raise LaunchError("hydra/launcher", f"the ground-truth job of {motif.key} ({label}) failed: "
                                  f"{job._return_value!r}; the round's picks stay pending, and a rerun of this "
                                  "sweep retries them")
            self.returned[motif.key] = SCORE_ORIENTATION[self.score] * float(job.return_value)


class DishSweeper(Sweeper):
    """Hydra's sweeper interface around `dish.search.loop.run_search`."""

    def __init__(self, strategy: str | None, search: Sequence[str]) -> None:
        self.strategy, self.search_overrides = strategy, list(search)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> dict[str, Any]:
        swept = [o.input_line for o in OverridesParser.create().parse_overrides(arguments) if o.is_sweep_override()]
        if swept:
            raise ConfigError("hydra/sweeper=dish", f"picks the motifs itself and sweeps nothing else, got {swept}",
                              accepted=["plain overrides of the ground-truth task"])
        sweep_dir = Path(self.config.hydra.sweep.dir)
        strategy = [] if self.strategy is None else [f"strategy={self.strategy}"]
        overrides = [*arguments, *strategy, *self.search_overrides, "ground_truth.oracle=live",
                     f"paths.output_dir={override_value(str(sweep_dir))}"]
        cfg = self.hydra_context.config_loader.load_configuration("search", overrides, RunMode.RUN)
        hydra_config = HydraConfig.instance()
        previous, hydra_config.cfg = hydra_config.cfg, None
        hydra_config.set_config(cfg)  # ${hydra:runtime.choices...} (the store's path) resolve as in a job
        try:
            with open_dict(cfg):
                del cfg["hydra"]
            motif_type: type[Motif] = get_class(cfg.motif._target_)
            return run_search(cfg, LauncherOracle(cfg, motif_type, self.launcher, arguments, sweep_dir))
        finally:
            hydra_config.cfg = previous
