"""Ground truth of activation motifs: train the network that repeats each motif, store one row per motif.

    python tasks/ground_truth.py                                  # one motif on the default data (digits)
    python tasks/ground_truth.py -m motif.slope=0.05,0.25,1,4     # one job per motif
    python tasks/ground_truth.py -m hydra/launcher=joblib motif.slope=0.05,0.25,1,4
    python tasks/ground_truth.py population.slopes='[0.05,0.1,1]' # many motifs in one process
"""

from dish.cli.ground_truth import entry

if __name__ == "__main__":
    entry()
