"""The Petri dish: differentiable inner loop, outer loss, ranking a made-up U, divergence detection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dish.compare.ranking import ranking_metrics
from dish.core.epochs import OncePerEpoch
from dish.core.errors import ConfigError
from dish.core.stats import zscore
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.predictors.petri_dish.harness import DishPredictor
from dish.predictors.petri_dish.model import PetriDish
from dish.predictors.petri_dish.options import dish_label

pytestmark = [
    pytest.mark.usefixtures("flush_denormal"),
    # some tests call training_step by hand, outside a Trainer, where Lightning says self.log goes nowhere
    pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)` but the `self.trainer`"),
]

SLOPES = np.logspace(-1.5, 2, 15)


def u_scores(slopes: np.ndarray) -> np.ndarray:
    """A made-up U in log-slope: best at slope 2, worse on both sides (higher = better)."""
    return -((np.log(slopes) - np.log(2.0)) ** 2)


def test_zscore_hand_example():
    assert torch.allclose(zscore(torch.tensor([1.0, 2.0, 3.0])), torch.tensor([-1.2247449, 0.0, 1.2247449]))
    assert torch.equal(zscore(torch.tensor([5.0, 5.0])), torch.zeros(2))  # constant batch: no division by 0


def test_outer_loss_is_mse_of_zscored_negated_losses():
    dish = PetriDish(SigmoidSlope, [SigmoidSlope(s) for s in (0.5, 2.0, 8.0)], seed=0)
    scores = torch.tensor([0.1, 0.3, 0.2])
    losses = dish.dish_losses(dish.train_population, 3, create_graph=False)
    expected = torch.mean((zscore(-losses) - zscore(scores)) ** 2)
    assert dish.training_step(scores, 0).item() == pytest.approx(expected.item(), rel=1e-5)
    # perfectly ordered dish losses would give 0: the orientation is "lower dish loss = better motif"
    assert torch.mean((zscore(-losses) - zscore(-losses)) ** 2).item() == 0


def test_inner_loop_is_differentiable_into_the_synthetic_data():
    motifs = [SigmoidSlope(s) for s in (0.3, 1.0, 3.0, 10.0)]
    dish = PetriDish(SigmoidSlope, motifs, seed=0)
    loss = dish.training_step(torch.tensor([0.0, 1.0, 2.0, 1.5]), 0)
    loss.backward()
    for name in ("x_train", "x_val"):
        grad = getattr(dish, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert dish.y_train.grad is None  # targets stay fixed unless learn_targets


def test_one_batched_call_equals_one_call_per_motif():
    motifs = [SigmoidSlope(s) for s in (0.3, 1.0, 3.0, 10.0)]
    dish = PetriDish(SigmoidSlope, motifs, seed=0)
    together = dish.score(motifs)
    alone = np.array([dish.score([motif]).losses[0] for motif in motifs])
    np.testing.assert_allclose(together.losses, alone, rtol=1e-5)
    assert list(together.ranking) == list(np.argsort(together.losses))


def test_fitted_dish_ranks_held_out_motifs_of_a_u():
    train, heldout = SLOPES[::2], SLOPES[1::2]
    predictor = DishPredictor(SigmoidSlope, steps=100, seed=0)
    predictor.fit([SigmoidSlope(s) for s in train], u_scores(train))
    predicted = predictor.predict([SigmoidSlope(s) for s in heldout])
    rho = ranking_metrics(predicted, u_scores(heldout))["spearman"]
    # 7 held-out motifs on both flanks of the U: any ranking monotone in slope scores +-0.21 here, so >= 0.75
    # means the dish found the turn. Measured 0.786 with seed 0 (seeds 1 and 2 gave 0.757 and -0.04: the dish
    # is not reliable on this table at 100 outer steps, which the README reports).
    assert rho >= 0.75, rho
    assert predictor.dish.max_dish_loss < 10 * 0.25  # bounded: the correlations are results


def test_divergence_is_detected_and_reported():
    motifs = [SigmoidSlope(s) for s in (1.0, 100.0)]
    dish = PetriDish(SigmoidSlope, motifs, inner_lr=1e4, seed=0)
    scored = dish.score(motifs)
    assert scored.diverged.any()
    assert dish.max_dish_loss > 10 * 0.25 or math.isinf(dish.max_dish_loss)
    assert dish.training_step(torch.tensor([0.0, 1.0]), 0) is None  # no outer step from a blown-up inner loop
    assert dish.diverged_steps == 1


def test_a_sigmoid_readout_and_a_clipped_inner_step_keep_that_inner_loop_bounded():
    """The blow-up above, made safe: every loss in [0, 1] (MSE of (0, 1) outputs on 0/1 targets) and none
    diverged; at the default rate the motifs are still told apart."""
    motifs = [SigmoidSlope(s) for s in (0.1, 1.0, 100.0)]
    dish = PetriDish(SigmoidSlope, motifs, inner_lr=1e4, readout="sigmoid", inner_clip=1.0, seed=0)
    scored = dish.score(motifs)
    assert not scored.diverged.any()
    assert ((scored.losses >= 0) & (scored.losses <= 1)).all()
    assert len(set(np.round(PetriDish(SigmoidSlope, motifs, readout="sigmoid", seed=0).score(motifs).losses, 6))) == 3
    outputs = dish.motif_network(dish.initial_params(1), dish.x_val[:1], dish.population(motifs[:1]))
    assert ((outputs > 0) & (outputs < 1)).all()


def test_an_outer_step_with_a_non_finite_gradient_is_skipped_and_counted():
    motifs = [SigmoidSlope(s) for s in (0.5, 1.0, 2.0)]
    dish = PetriDish(SigmoidSlope, motifs, seed=0)
    optimizer = torch.optim.Adam([dish.x_train, dish.x_val], lr=0.1)
    before = dish.x_train.detach().clone()
    dish.training_step(torch.tensor([0.0, 1.0, 2.0]), 0).backward()
    dish.x_train.grad[0, 0, 0] = float("nan")
    dish.on_before_optimizer_step(optimizer)
    optimizer.step()
    assert dish.x_train.grad is None and dish.diverged_steps == 1
    torch.testing.assert_close(dish.x_train.detach(), before, rtol=0, atol=0)  # no NaN reached the data
    dish.training_step(torch.tensor([0.0, 1.0, 2.0]), 0).backward()
    dish.on_before_optimizer_step(optimizer)  # a finite gradient: kept, and the step moves the data
    optimizer.step()
    assert dish.diverged_steps == 1 and not torch.equal(dish.x_train.detach(), before)


def test_a_once_per_epoch_loader_serves_its_item_once_per_epoch():
    table = OncePerEpoch(torch.tensor([0.5, 0.25]))
    (scores,) = list(table)
    assert scores.tolist() == [0.5, 0.25]


def test_authors_inner_loop_adam_and_bce_is_differentiable_and_bounded():
    motifs = [SigmoidSlope(s) for s in (0.3, 1.0, 3.0)]
    dish = PetriDish(SigmoidSlope, motifs, sizes=(10, 1, 1, 10), num_samples=10, inner_optimizer="adam",
                     loss="bce", init_scale=0.1, inner_lr=0.1, inner_steps=10, seed=0)
    assert dish.chance_loss == pytest.approx(math.log(2))
    loss = dish.training_step(torch.tensor([0.0, 1.0, 0.5]), 0)
    loss.backward()
    assert torch.isfinite(dish.x_train.grad).all() and dish.x_train.grad.abs().sum() > 0
    scored = dish.score(motifs)
    assert not scored.diverged.any()
    assert (scored.losses < 10 * math.log(2)).all()


def test_ensemble_replica_zero_is_the_single_dish_and_replicas_differ():
    motifs = [SigmoidSlope(s) for s in (0.3, 1.0, 3.0, 10.0)]
    single = PetriDish(SigmoidSlope, motifs, seed=3)
    ensemble = PetriDish(SigmoidSlope, motifs, ensemble=3, seed=3)
    assert ensemble.x_train.shape == (3, 20, 2) and ensemble.w0.shape == (3, 2, 1)
    assert torch.equal(ensemble.x_train[0], single.x_train[0]) and torch.equal(ensemble.w0[0], single.w0[0])
    losses = ensemble.dish_losses(ensemble.train_population, 4, create_graph=False)
    assert losses.shape == (3, 4)
    torch.testing.assert_close(losses[0], single.dish_losses(single.train_population, 4, create_graph=False)[0])
    assert not torch.allclose(losses[0], losses[1])  # independent synthetic data and initialisations


def test_weight_gain_multiplies_the_initial_weight_matrices_but_not_the_biases():
    motifs = [SigmoidSlope(s) for s in (0.3, 1.0, 3.0)]
    plain = PetriDish(SigmoidSlope, motifs, ensemble=2, seed=1)
    gained = PetriDish(SigmoidSlope, motifs, ensemble=2, weight_gain=2.0, seed=1)
    assert plain.names == ["w0", "b0", "w1", "b1", "w2", "b2"]
    for name in plain.names:
        factor = 2.0 if name.startswith("w") else 1.0
        assert torch.equal(getattr(gained, name), factor * getattr(plain, name)), name
    assert torch.equal(gained.x_train, plain.x_train)  # the same draws: only the weights are scaled


@pytest.mark.parametrize(("ensemble_score", "combine"), [("mean", np.mean), ("median", np.median)])
def test_ensemble_score_combines_replicas_standardised_on_the_training_motifs(ensemble_score: str, combine):
    train = [SigmoidSlope(s) for s in (0.3, 1.0, 3.0, 10.0)]
    new = [SigmoidSlope(s) for s in (0.5, 2.0, 30.0)]
    dish = PetriDish(SigmoidSlope, train, ensemble=3, ensemble_score=ensemble_score, seed=0)
    scored = dish.score(new)
    reference = dish.dish_losses(dish.train_population, 4, create_graph=False).detach()
    losses = dish.dish_losses(dish.population(new), 3, create_graph=False).detach()
    by_hand = [((reference[r].mean() - losses[r]) / reference[r].std(correction=0)).numpy() for r in range(3)]
    assert not np.allclose(np.median(by_hand, axis=0), np.mean(by_hand, axis=0))  # the example tells them apart
    np.testing.assert_allclose(scored.scores, combine(by_hand, axis=0), rtol=1e-5)
    np.testing.assert_allclose(scored.losses, losses.mean(0).numpy(), rtol=1e-6)


def test_chance_penalty_adds_the_mean_excess_over_chance():
    motifs = [SigmoidSlope(s) for s in (0.3, 1.0, 3.0)]
    scores = torch.tensor([0.1, 0.3, 0.2])
    plain = PetriDish(SigmoidSlope, motifs, ensemble=2, seed=0)
    penalised = PetriDish(SigmoidSlope, motifs, ensemble=2, chance_penalty=30.0, seed=0)
    losses = plain.dish_losses(plain.train_population, 3, create_graph=False).detach()
    excess = torch.relu(losses - 0.25).mean()
    assert excess > 0  # some motif-networks of this untrained dish end worse than chance (0.25)
    expected = (zscore(-losses) - zscore(scores)).pow(2).mean() + 30.0 * excess
    assert penalised.training_step(scores, 0).item() == pytest.approx(expected.item(), rel=1e-5)
    assert plain.training_step(scores, 0).item() == pytest.approx((expected - 30.0 * excess).item(), rel=1e-5)


@pytest.mark.parametrize(("option", "value", "accepted"), [("ensemble", 0, "an integer >= 1"),
                                                          ("input_scale", 0.0, "a number > 0"),
                                                          ("chance_penalty", -1.0, "a number >= 0"),
                                                          ("weight_gain", 0.0, "a number > 0"),
                                                          ("ensemble_score", "mode", "mean, median"),
                                                          ("readout", "tanh", "linear, sigmoid")])
def test_bad_ensemble_options_are_refused_naming_the_field(option: str, value: float | str, accepted: str):
    with pytest.raises(ConfigError, match=rf"dish\.{option}: .*\(accepted: {accepted}\)"):
        PetriDish(SigmoidSlope, [SigmoidSlope(1.0), SigmoidSlope(2.0)], **{option: value})


def test_dish_label_names_every_option_that_differs_from_the_default():
    base = {"sizes": [2, 1, 1, 1], "inner_steps": 30, "inner_lr": 0.5, "ensemble": 1, "ensemble_score": "mean",
            "weight_gain": 1.0, "steps": 200}
    assert dish_label(base) == "dish[2, 1, 1, 1]x30@0.5"
    ensemble = {**base, "ensemble": 8, "ensemble_score": "median", "weight_gain": 2, "input_scale": 6.0}
    assert dish_label(ensemble) == ("dish[2, 1, 1, 1]x30@0.5 ensemble=8 ensemble_score=median input_scale=6.0"
                                    " weight_gain=2")


@pytest.mark.parametrize(("options", "message"), [
    ({"steps": -5}, "dish.steps: got -5 (accepted: an integer >= 1)"),
    ({"inner_steps": 2.5}, "dish.inner_steps: got 2.5 (accepted: an integer >= 1)"),
    ({"outer_lr": 0}, "dish.outer_lr: got 0 (accepted: a number > 0)"),
    ({"loss": "hinge"}, "dish.loss: got 'hinge' (accepted: mse, bce)"),
    ({"sizes": [2]}, "dish.sizes: got [2] (accepted: a list of at least two integers >= 1)"),
    ({"stpes": 10}, "dish.stpes: is not a dish option (accepted: sizes, "),
], ids=["steps", "inner-steps", "outer-lr", "loss", "sizes", "unknown"])
def test_dish_predictor_refuses_bad_options_when_built(options: dict, message: str):
    """Before any fit (the comparison and the search build their predictors up front)."""
    with pytest.raises(ConfigError) as refused:
        DishPredictor(SigmoidSlope, **options)
    assert refused.value.message.startswith(message), refused.value.message


def test_a_dish_whose_every_outer_step_diverged_scores_nothing():
    """Before, it ranked motifs with its untrained synthetic data as if it had learned."""
    motifs = [SigmoidSlope(s) for s in (0.3, 1.0, 3.0, 10.0)]
    predictor = DishPredictor(SigmoidSlope, steps=3, divergence_factor=1e-9, num_samples=4, inner_steps=2)
    predictor.fit(motifs, np.array([0.1, 0.5, 0.9, 0.2]))
    assert not predictor.trained and predictor.dish.diverged_steps == 3
    assert np.isnan(predictor.predict(motifs)).all() and predictor.last.diverged.all()


def test_a_training_motif_that_blows_up_is_left_out_of_the_outer_step():
    """The step trains on the other motifs (before, one such motif skipped every step), with finite gradients."""
    from dish.motifs.activation import Activation

    blows_up = Activation(unary1="exp", unary2="exp", binary="mul", unary3="exp", unary4="x", binary2="mul")
    motifs = [blows_up, Activation(name="relu"), Activation(name="tanh"), Activation(name="silu")]
    dish = PetriDish(Activation, motifs, input_scale=30.0, inner_steps=5)
    outer = dish.training_step(torch.tensor([0.0, 1.0, 0.5, 0.8]), 0)
    assert dish.diverged_steps == 1 and outer is not None and torch.isfinite(outer)
    outer.backward()
    assert torch.isfinite(dish.x_train.grad).all() and dish.x_train.grad.abs().sum() > 0
    assert dish.score(motifs).scores[0] == -np.inf  # and it scores the worst
