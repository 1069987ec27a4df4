"""Ranking metrics: perfect, reversed, hand-checked and constant predictions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats  # a dependency of scikit-learn

from dish.compare.ranking import ranking_metrics

TRUE = np.array([0.1, 0.4, 0.2, 0.9, 0.5, 0.3])


def test_perfect_prediction():
    metrics = ranking_metrics(2 * TRUE + 1, TRUE, k=3)
    for name in ("spearman", "kendall", "pearson"):
        assert metrics[name] == pytest.approx(1.0, abs=1e-6)
    assert metrics["zmse"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["precision_at_k"] == 1.0
    assert metrics["regret"] == 0.0
    assert metrics["best_index"] == 3


def test_reversed_prediction():
    metrics = ranking_metrics(-TRUE, TRUE, k=3)
    for name in ("spearman", "kendall", "pearson"):
        assert metrics[name] == pytest.approx(-1.0, abs=1e-6)
    assert metrics["zmse"] == pytest.approx(4.0)  # z and -z differ by 2z, and mean(z^2) = 1
    assert metrics["precision_at_k"] == 0.0
    assert metrics["best_index"] == 0
    assert metrics["regret"] == pytest.approx(0.9 - 0.1)


def test_hand_example_with_ties():
    predicted = np.array([0.0, 0.5, 0.5, 0.8, 0.2, 0.1])
    metrics = ranking_metrics(predicted, TRUE, k=3)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(predicted, TRUE).statistic, abs=1e-6)
    assert metrics["kendall"] == pytest.approx(stats.kendalltau(predicted, TRUE).statistic, abs=1e-6)  # tau-b
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(predicted, TRUE).statistic, abs=1e-9)
    assert metrics["zmse"] == pytest.approx(np.mean((stats.zscore(predicted) - stats.zscore(TRUE)) ** 2))
    assert metrics["precision_at_k"] == pytest.approx(2 / 3)  # predicted top 3 {3, 1, 2}, true top 3 {3, 4, 1}
    assert metrics["best_index"] == 3
    assert metrics["regret"] == 0.0


def test_regret_of_a_wrong_best():
    metrics = ranking_metrics(np.array([0.0, 0.1, 0.2, 0.3, 0.9, 0.4]), TRUE, k=1)
    assert metrics["best_index"] == 4
    assert metrics["regret"] == pytest.approx(0.9 - 0.5)
    assert metrics["precision_at_k"] == 0.0


def test_precision_does_not_depend_on_the_sign_of_the_scores():
    # scores are often negated losses; torchmetrics alone would count no negative prediction as retrieved
    negative = TRUE - 10.0
    assert (negative < 0).all()
    assert ranking_metrics(negative, TRUE, k=3)["precision_at_k"] == 1.0
    assert ranking_metrics(np.array([0.0, 0.5, 0.5, 0.8, 0.2, 0.1]) - 5, TRUE, k=3)["precision_at_k"] == (
        pytest.approx(2 / 3))


def test_k_is_capped_at_the_table_size():
    assert ranking_metrics(np.array([3.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]), k=5)["precision_at_k"] == 1.0


def test_constant_prediction_gives_nan_correlations_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = ranking_metrics(np.full(6, 0.7), TRUE, k=2)
    assert all(math.isnan(metrics[name]) for name in ("spearman", "kendall", "pearson"))
    assert metrics["zmse"] == pytest.approx(1.0)  # zeros against z-scores of mean square 1
    assert metrics["best_index"] == 0
    assert metrics["regret"] == pytest.approx(0.9 - 0.1)


@pytest.mark.parametrize(("predicted", "true"), [
    (np.zeros(3), np.zeros(4)),
    (np.zeros(1), np.zeros(1)),
    (np.zeros((2, 2)), np.zeros((2, 2))),
    (np.array([1.0, np.nan]), np.array([1.0, 2.0])),
])
def test_bad_inputs(predicted, true):
    with pytest.raises(ValueError):
        ranking_metrics(predicted, true)
