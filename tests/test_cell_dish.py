"""The Petri dish for recurrent cells: gradient into the synthetic sequences, batched scoring, the comparison."""

from __future__ import annotations

import csv
import json
import math
import random

import numpy as np
import pytest
import torch

from dish.motifs.rnn_cell import RecurrentCell
from dish.predictors.petri_dish.model import PetriDish

pytestmark = [
    pytest.mark.usefixtures("flush_denormal"),
    # training_step is called by hand, outside a Trainer, where Lightning says self.log goes nowhere
    pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)` but the `self.trainer`"),
]
CELLS = [RecurrentCell.sample(random.Random(seed)) for seed in range(14)]


def made_up_score(cell: RecurrentCell) -> float:
    """A table to learn from: tanh nodes help, identity nodes help a little."""
    return sum(op == "tanh" for op, _ in cell.nodes) + 0.3 * sum(op == "identity" for op, _ in cell.nodes)


def test_gradient_reaches_the_synthetic_sequences():
    dish = PetriDish(RecurrentCell, CELLS[:4], sizes=(2, 2, 1), sequence_length=4, num_samples=6, inner_steps=5,
                     seed=0)
    assert dish.x_train.shape == (1, 6, 4, 2)  # (replicas, samples, steps, inputs)
    outer = dish.training_step(torch.tensor([made_up_score(c) for c in CELLS[:4]]), 0)
    outer.backward()
    for data in (dish.x_train, dish.x_val):
        assert torch.isfinite(data.grad).all() and data.grad.abs().sum() > 0
    assert torch.isfinite(outer) and 0 <= outer.item() <= 4  # MSE between two z-scored vectors is at most 4


def test_dish_scores_many_cells_in_one_call():
    dish = PetriDish(RecurrentCell, CELLS[:3], sizes=(2, 2, 1), seed=0)
    scored = dish.score(CELLS)
    assert scored.losses.shape == (14,) and np.isfinite(scored.losses).all() and not scored.diverged.any()
    assert sorted(scored.ranking.tolist()) == list(range(14))
    assert len(set(np.round(scored.losses, 6))) > 10  # different cells train differently


def test_comparison_runs_on_a_cell_table(tmp_path, run_compare):
    table = tmp_path / "cells.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["genotype", "val_loss"])
        writer.writerows([cell.genotype, 6.0 - 0.1 * made_up_score(cell)] for cell in CELLS)
    run_dir = tmp_path / "run"
    proc = run_compare(f"gt.path={table}", "gt.motif=rnn_cell", "gt.score=val_loss", "dish=cell", "dish.steps=5",
                       "split=random", "split.n=7", "predictors=[dish,nn_surrogate,gp]", "logger=none",
                       f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((run_dir / "comparison.json").read_text())
    assert (report["n_train"], report["n_heldout"]) == (7, 7)
    assert set(report["predictors"]) == {"dish", "nn_surrogate", "gp"}
    dish = report["predictors"]["dish"]
    assert dish["diverged"] is False and math.isfinite(dish["spearman"])
    assert RecurrentCell(dish["best_motif"]["genotype"]) in CELLS
    assert (run_dir / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_cell_dish_ensemble_trains_each_replica_on_its_own_sequences():
    dish = PetriDish(RecurrentCell, CELLS[:4], sizes=(2, 2, 1), sequence_length=4, num_samples=6, inner_steps=5,
                     ensemble=2, seed=0)
    assert dish.x_train.shape == (2, 6, 4, 2)
    outer = dish.training_step(torch.tensor([made_up_score(c) for c in CELLS[:4]]), 0)
    outer.backward()
    for replica in range(2):  # both replicas' sequences get a gradient
        assert dish.x_train.grad[replica].abs().sum() > 0
    losses = dish.dish_losses(dish.population(CELLS), 14, create_graph=False)
    assert losses.shape == (2, 14) and not torch.allclose(losses[0], losses[1])
    assert np.isfinite(dish.score(CELLS).scores).all()
