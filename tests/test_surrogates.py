"""Black-box baselines: they rank an easy U-shaped table, keep the scores' scale, and are deterministic."""

from __future__ import annotations

import logging
import logging.handlers
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sklearn.exceptions import ConvergenceWarning

from dish.compare.ranking import ranking_metrics
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.predictors.surrogates import SURROGATES, GaussianProcessSurrogate, NNSurrogate, SurrogateMLP

SLOPES = np.geomspace(0.05, 200, 15)
SCORES = 1000 + 50 * -(np.log(SLOPES) - np.log(3)) ** 2  # a bowl in log-slope, far from zero mean / unit scale
TRAIN = [SigmoidSlope(float(s)) for s in SLOPES[::2]]
HELDOUT = [SigmoidSlope(float(s)) for s in SLOPES[1::2]]


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_ranks_held_out_slopes_of_a_u_shaped_table(name):
    surrogate = SURROGATES[name]()
    assert surrogate.name == name
    surrogate.fit(TRAIN, SCORES[::2])
    predicted = surrogate.predict(HELDOUT)
    assert predicted.shape == (len(HELDOUT),)
    assert ranking_metrics(predicted, SCORES[1::2])["spearman"] >= 0.9
    # on the training scores' scale, not z-scored (a forest's trees each see a bootstrap of the 8 slopes, so
    # its fit of them is looser)
    tolerance = 0.3 if name == "random_forest" else 0.02
    np.testing.assert_allclose(surrogate.predict(TRAIN), SCORES[::2], atol=tolerance * np.ptp(SCORES))


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_predictions_are_deterministic(name):
    first, second = SURROGATES[name](seed=5), SURROGATES[name](seed=5)  # every surrogate takes a seed
    first.fit(TRAIN, SCORES[::2])
    second.fit(TRAIN, SCORES[::2])
    np.testing.assert_array_equal(first.predict(HELDOUT), second.predict(HELDOUT))


def test_nn_surrogate_is_a_seeded_lightning_module():
    torch.manual_seed(123)
    rng_state = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    surrogate = NNSurrogate(epochs=120, seed=1)
    surrogate.fit(TRAIN, SCORES[::2])
    assert isinstance(surrogate.module, SurrogateMLP)
    assert isinstance(surrogate.module, pl.LightningModule)
    assert [layer.out_features for layer in surrogate.module.net if isinstance(layer, torch.nn.Linear)] == [10, 10, 1]
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # the caller's RNG stream is untouched
    assert torch.get_num_threads() == threads
    other = NNSurrogate(epochs=120, seed=2)
    other.fit(TRAIN, SCORES[::2])
    assert not np.array_equal(surrogate.predict(HELDOUT), other.predict(HELDOUT))


def test_nn_surrogate_runs_exactly_its_epochs(monkeypatch):
    steps = []
    original = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: steps.append(1) or original(self, *a, **k))
    NNSurrogate(epochs=73).fit(TRAIN, SCORES[::2])  # not a multiple of the 50 per Lightning step
    assert len(steps) == 73


def test_nn_surrogate_fit_keeps_lightning_quiet():
    # Lightning may have its own stderr handler and not propagate to the root logger: listen on its logger.
    lightning = logging.getLogger("pytorch_lightning")
    records = logging.handlers.BufferingHandler(capacity=100)
    lightning.addHandler(records)
    try:
        NNSurrogate(epochs=10).fit(TRAIN, SCORES[::2])
    finally:
        lightning.removeHandler(records)
    assert [record.getMessage() for record in records.buffer] == []


def test_gp_shows_no_convergence_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        GaussianProcessSurrogate().fit(TRAIN, SCORES[::2])
        GaussianProcessSurrogate().fit(HELDOUT, -np.log([m.slope for m in HELDOUT]))
