"""The sweeper's config, registered as ``hydra/sweeper=dish``."""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore


@dataclass
class DishSweeperConf:
    """`strategy`: a preset of conf/strategy/ (how picks are made); `search`: more overrides of the search's
    config (``search.budget=6``, ``dish=ensemble``, ``search.seed=1``)."""

    _target_: str = "hydra_plugins.dish_sweeper.dish_sweeper.DishSweeper"
    strategy: str | None = "dish_greedy"
    search: list[str] = field(default_factory=list)


ConfigStore.instance().store(group="hydra/sweeper", name="dish", node=DishSweeperConf, provider="dish")
