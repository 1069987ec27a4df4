"""Zero-cost proxies on the real ground-truth network at initialisation: hand-checked values, batching over motifs
exact, known correlation scores, the language model's hidden covariance, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from torch import nn

from dish.core.errors import ConfigError
from dish.core.runtime import instantiate_group
from dish.ground_truth.job import build_module
from dish.hosts.population import PopulationMLP
from dish.motifs.activation import Activation
from dish.motifs.rnn_cell import RecurrentCell
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.predictors.context import PredictorContext
from dish.predictors.zero_cost import EIGEN_OFFSET, PROXIES, correlation_score, proxy_applies

SLOPES = [SigmoidSlope(0.5), SigmoidSlope(2.0), SigmoidSlope(8.0)]
HIDDEN = [6, 5]
BATCH = 16
CELLS = [RecurrentCell("darts_v1"), RecurrentCell("darts_v2")]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors this small only make a second thread spin (and wait for a busy core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def composed(overrides: list[str]):
    with initialize_config_module("dish.conf", version_base=None):
        return compose("ground_truth", overrides)


@pytest.fixture(scope="module")
def slope_gt():
    return composed([f"model.hidden=[{','.join(map(str, HIDDEN))}]", "seed=3"])


@pytest.fixture(scope="module")
def cell_gt():
    return composed(["task=rnn_cell", "model.hidden=8", "model.bptt=6"])


def proxy(name: str, motif_type, cfg):
    return PROXIES[name](PredictorContext(motif_type, 0, cfg), batch_size=BATCH)


def minibatch(cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """The proxies' minibatch of the digits training split, as the ground-truth host draws it."""
    datamodule = instantiate_group(cfg, "data")
    datamodule.setup("fit")
    host = build_module(cfg, SLOPES, datamodule)
    return host.proxy_batch(datamodule, BATCH, torch.Generator().manual_seed(cfg.seed))


def member_alone(seed: int, hidden: list[int]) -> list[torch.Tensor]:
    """One member's initial weights [W1, b1, W2, b2, ...] as plain leaf tensors: the ground truth's seeded draw."""
    net = PopulationMLP(64, hidden, 10, nn.Identity(), 1, seed)
    return [parameter.detach().clone().requires_grad_() for parameter in net.parameters()]


def plain_forward(params: list[torch.Tensor], x: torch.Tensor, slope: float) -> torch.Tensor:
    """The MLP with sigmoid(slope * .) after each hidden layer, written out in plain torch."""
    for index in range(0, len(params), 2):
        x = x @ params[index] + params[index + 1]
        if index + 2 < len(params):
            x = torch.sigmoid(slope * x)
    return x


def test_synflow_of_a_linear_network_is_the_hand_computed_flow():
    """Identity and ReLU (alike on the all-ones input with |weights|) in a 64 -> 4 -> 10 MLP: with A = |W|,
    c = |b|, h = A1ᵀ1 + c1 and s = A2 1, R = 1ᵀ(A2ᵀh + c2), and Σ θ·∂R/∂θ = 1ᵀA2ᵀh + Σc2 + 1ᵀA1 s + c1·s."""
    cfg = composed(["motif=activation", "model.hidden=[4]"])
    w1, b1, w2, b2 = (p.detach().double().abs().numpy() for p in member_alone(cfg.seed, [4]))
    hidden = w1.sum(0) + b1
    rows = w2.sum(1)
    expected = (w2.T @ hidden).sum() + b2.sum() + (w1 @ rows).sum() + b1 @ rows
    scores = proxy("synflow", Activation, cfg).predict([Activation(name="identity"), Activation(name="relu")])
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, [expected, expected], rtol=1e-12)


@pytest.mark.parametrize("name", ["grad_norm", "snip"])
def test_gradient_proxies_of_a_population_equal_each_member_run_alone(slope_gt, name):
    """Sum of the per-tensor gradient norms (grad_norm) and of |θ · ∂L/∂θ| (snip) of each slope's network,
    computed alone in plain torch."""
    x, y = minibatch(slope_gt)
    expected = []
    for motif in SLOPES:
        params = member_alone(slope_gt.seed, HIDDEN)
        grads = torch.autograd.grad(F.cross_entropy(plain_forward(params, x, motif.slope), y), params)
        per_tensor = [g.norm() if name == "grad_norm" else (p.detach() * g).abs().sum()
                      for p, g in zip(params, grads, strict=True)]
        expected.append(float(sum(per_tensor)))
    np.testing.assert_allclose(proxy(name, SigmoidSlope, slope_gt).predict(SLOPES), expected, rtol=1e-5)


def test_jacob_cov_equals_numpys_score_of_each_member_alone(slope_gt):
    x, _ = minibatch(slope_gt)
    expected = []
    for motif in SLOPES:
        inputs = x.clone().requires_grad_()
        plain_forward(member_alone(slope_gt.seed, HIDDEN), inputs, motif.slope).sum().backward()
        eigenvalues = np.linalg.eigvalsh(np.corrcoef(inputs.grad.double().numpy()))
        expected.append(-np.sum(np.log(eigenvalues + 1e-5) + 1 / (eigenvalues + 1e-5)))
    np.testing.assert_allclose(proxy("jacob_cov", SigmoidSlope, slope_gt).predict(SLOPES), expected, rtol=1e-4)


def test_correlation_score_is_highest_for_uncorrelated_rows_and_lowest_for_identical_ones():
    """-Σ log(λ + k) + 1/(λ + k): uncorrelated rows (Hadamard rows) have the identity as their correlation
    matrix, copies of one row (scaled, shifted) the all-ones one (eigenvalues n, 0, ..., 0); a constant row has no
    correlation (NaN), and the other members keep their scores."""
    n, k = 3, EIGEN_OFFSET
    uncorrelated = torch.tensor([[1.0, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])
    identical = torch.tensor([[1.0], [2], [-3]]) * torch.tensor([0.0, 1, 2, 5]) + 7
    constant = torch.tensor([[2.0, 2, 2, 2], [1, 2, 3, 4], [4, 1, 0, 2]])
    scores = correlation_score(torch.stack([uncorrelated, identical, constant]))
    assert scores[0] == pytest.approx(-n * (math.log(1 + k) + 1 / (1 + k)), rel=1e-12)
    assert scores[1] == pytest.approx(-(math.log(n + k) + 1 / (n + k)) - (n - 1) * (math.log(k) + 1 / k), rel=1e-9)
    assert torch.isnan(scores[2])


def test_a_saturated_motif_scores_minus_infinity_and_the_others_are_unchanged(slope_gt):
    """sigmoid(1e30 x) is a step: its input Jacobian is zero, which has no correlation."""
    scores = proxy("jacob_cov", SigmoidSlope, slope_gt).predict([SigmoidSlope(1e30), *SLOPES])
    assert scores[0] == -math.inf
    np.testing.assert_allclose(scores[1:], proxy("jacob_cov", SigmoidSlope, slope_gt).predict(SLOPES), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_language_model_proxies_are_finite_and_a_population_equals_its_cells_alone(cell_gt, name):
    together = proxy(name, RecurrentCell, cell_gt).predict(CELLS)
    alone = [proxy(name, RecurrentCell, cell_gt).predict([cell])[0] for cell in CELLS]
    assert np.isfinite(together).all() and together[0] != together[1]
    np.testing.assert_allclose(together, alone, rtol=1e-5)


def test_hidden_cov_applies_to_language_models_only(slope_gt, cell_gt):
    assert proxy_applies("hidden_cov", RecurrentCell) and not proxy_applies("hidden_cov", SigmoidSlope)
    assert all(proxy_applies(name, SigmoidSlope) for name in PROXIES if name != "hidden_cov")
    with pytest.raises(ConfigError) as error:
        proxy("hidden_cov", SigmoidSlope, slope_gt)
    assert error.value.field == "predictors" and "sigmoid_slope" in error.value.problem
    assert error.value.accepted == ["grad_norm", "snip", "synflow", "jacob_cov"]
    with pytest.raises(ConfigError) as error:  # a ground truth of another kind
        proxy("snip", SigmoidSlope, cell_gt)
    assert error.value.field == "gt.build"


def test_the_same_config_gives_the_same_scores_in_any_population(slope_gt):
    for name in ("grad_norm", "snip", "synflow", "jacob_cov"):
        first = proxy(name, SigmoidSlope, slope_gt).predict(SLOPES)
        again = proxy(name, SigmoidSlope, slope_gt).predict(list(reversed(SLOPES)))[::-1]
        alone = proxy(name, SigmoidSlope, slope_gt).predict(SLOPES[1:2])  # a population of one: 2-D weights
        assert np.array_equal(first, again), name
        np.testing.assert_allclose(alone, first[1:2], rtol=1e-5, err_msg=name)
