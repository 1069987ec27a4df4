"""Architecture search with a predictor choosing what to train next (`dish-search`)."""

import hydra
from omegaconf import DictConfig

from dish.cli import ground_truth, run, task
from dish.search.loop import run_search


@hydra.main(version_base="1.3", config_path="../conf", config_name="search")
@task
def main(cfg: DictConfig) -> None:
    """Run the search; a hydra launcher's jobs (``ground_truth.launcher``) run the task of tasks/ground_truth.py
    (the function its hydra.main wraps)."""
    run_search(cfg, ground_truth_task=ground_truth.main.__wrapped__)


def entry() -> None:
    """The console script: `main` with dish's one-line errors."""
    run(main)


if __name__ == "__main__":
    entry()
