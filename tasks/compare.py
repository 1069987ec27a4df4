"""Compare the Petri dish with the NN surrogate and baselines on held-out motifs of a ground-truth table.

    python tasks/compare.py gt.path=FILE gt.score=val_acc split=flag split.column=paper_train seed=0
    python tasks/compare.py gt.path=store/sigmoid_slope_digits.csv split=range split.slope_max=10
    python tasks/compare.py -m gt.path=FILE split=random split.n=6,10,14 seed=0,1,2,3,4
"""

from dish.cli.compare import entry

if __name__ == "__main__":
    entry()
