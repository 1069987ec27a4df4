"""Search motifs with the Petri dish (or a surrogate, or at random) choosing what to train next.

    python tasks/search.py                                        # the dish in the loop, live ground truth
    python tasks/search.py -m search.predictor=dish,nn_surrogate,random search.seed=0,1,2
    python tasks/report.py outputs/search/multiruns/<time>     # curves of every strategy over seeds
"""

import hydra
from omegaconf import DictConfig

from dish import cli
from dish.search import run_search


@hydra.main(version_base="1.3", config_path="../conf", config_name="search")
@cli.task
def main(cfg: DictConfig) -> None:
    run_search(cfg)


if __name__ == "__main__":
    cli.run(main)
