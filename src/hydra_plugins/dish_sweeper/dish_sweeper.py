"""The search loop as a Hydra sweeper over the ground-truth task:

    python tasks/ground_truth.py -m hydra/sweeper=dish hydra/launcher=joblib data=digits trainer.max_epochs=5

Each round the strategy picks motifs, and the launcher Hydra was given (basic, joblib, submitit_local,
submitit_slurm) runs one ground-truth job per pick, with this command's own overrides plus the motif: the jobs'
stored rows come back as their ``JobReturn``. The ledger, resume and search.json are the search's
(`dish.search.loop`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, RunMode, TaskFunction
from hydra.utils import get_class
from omegaconf import DictConfig, open_dict

from dish.core.errors import ConfigError
from dish.motifs.kind import Motif
from dish.search.loop import run_search
from dish.search.oracles import LauncherOracle, override_value


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
            launcher = self.config.hydra.runtime.choices["hydra/launcher"]
            oracle = LauncherOracle(cfg, motif_type, self.launcher, arguments, f"hydra/launcher={launcher}")
            return run_search(cfg, oracle)
        finally:
            hydra_config.cfg = previous
