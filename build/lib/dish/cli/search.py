"""Architecture search with a predictor choosing what to train next (`dish-search`)."""

import hydra
from omegaconf import DictConfig

from dish.cli import run, task
from dish.search.loop import run_search


@hydra.main(version_base="1.3", config_path="../conf", config_name="search")
@task
def main(cfg: DictConfig) -> None:
    run_search(cfg)


def entry() -> None:
    """The console script: `main` with dish's one-line errors."""
    run(main)


if __name__ == "__main__":
    entry()
