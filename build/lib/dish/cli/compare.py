"""The comparison of predictors on held-out motifs of a ground-truth table (`dish-compare`)."""

import hydra
from omegaconf import DictConfig

from dish.cli import run, task
from dish.compare.job import run_compare


@hydra.main(version_base="1.3", config_path="../conf", config_name="compare")
@task
def main(cfg: DictConfig) -> None:
    run_compare(cfg)


def entry() -> None:
    """The console script: `main` with dish's one-line errors."""
    run(main)


if __name__ == "__main__":
    entry()
