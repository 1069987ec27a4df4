"""Ground truth of activation motifs: train the network that repeats each motif, store one row per motif.

    python tasks/ground_truth.py                                  # one motif on the default data (digits)
    python tasks/ground_truth.py -m motif.slope=0.05,0.25,1,4     # one job per motif
    python tasks/ground_truth.py -m hydra/launcher=joblib motif.slope=0.05,0.25,1,4
    python tasks/ground_truth.py population.slopes='[0.05,0.1,1]' # many motifs in one process
"""

import hydra
from omegaconf import DictConfig

from dish import cli
from dish.ground_truth_job import run_ground_truth


@hydra.main(version_base="1.3", config_path="../conf", config_name="ground_truth")
@cli.task
def main(cfg: DictConfig) -> None:
    run_ground_truth(cfg)


if __name__ == "__main__":
    cli.run(main)
