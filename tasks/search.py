"""Search motifs with the Petri dish (or a surrogate, or at random) choosing what to train next.

    python tasks/search.py                                        # the dish in the loop, live ground truth
    python tasks/search.py -m search.predictor=dish,nn_surrogate,random search.seed=0,1,2
    python tasks/report.py outputs/search/multiruns/<time>     # curves of every strategy over seeds
"""

from dish.cli.search import entry

if __name__ == "__main__":
    entry()
