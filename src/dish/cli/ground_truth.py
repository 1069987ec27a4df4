"""Ground truth: train the network that repeats each motif and store one row per motif (`dish-ground-truth`)."""

import hydra
from omegaconf import DictConfig

from dish.cli import run, task
from dish.ground_truth.job import job_objective, run_ground_truth


@hydra.main(version_base="1.3", config_path="../conf", config_name="ground_truth")
@task
def main(cfg: DictConfig) -> float | None:
    """Train the configured motifs the store lacks; a job of one motif returns its stored `objective` (what a
    sweeper reads)."""
    run_ground_truth(cfg)
    return job_objective(cfg)


def entry() -> None:
    """The console script: `main` with dish's one-line errors."""
    run(main)


if __name__ == "__main__":
    entry()
