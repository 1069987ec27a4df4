"""How well predicted scores rank motifs like their true scores (both higher = better)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional import kendall_rank_corrcoef, mean_squared_error, pearson_corrcoef, spearman_corrcoef
from torchmetrics.functional.retrieval import retrieval_precision

from dish.core.stats import zscore_array

CORRELATIONS = {"spearman": spearman_corrcoef, "kendall": kendall_rank_corrcoef, "pearson": pearson_corrcoef}


def ranking_metrics(predicted: np.ndarray, true: np.ndarray, k: int = 5) -> dict[str, float]:
    """Rank correlations, z-scored MSE, precision@k, regret and the predicted best motif's index.

    - ``spearman``, ``kendall`` (tau-b), ``pearson``: nan when either side is constant (undefined);
    - ``zmse``: mean squared error between the z-scored (population std) predicted and true scores; a constant
      side z-scores to zeros;
    - ``precision_at_k``: share of the predicted top ``min(k, n)`` that is in the true top ``min(k, n)`` (ties in
      the true scores broken by position);
    - ``regret``: true best score minus the true score of the predicted best motif (>= 0);
    - ``best_index``: position of the predicted best motif (the first of ties).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if predicted.ndim != 1 or predicted.shape != true.shape or len(true) < 2:
        raise ValueError(f"need two 1-D score arrays of one length >= 2, got shapes {predicted.shape}, {true.shape}")
    if not (np.isfinite(predicted).all() and np.isfinite(true).all()):
        raise ValueError("scores must be finite")
    preds, target = torch.from_numpy(predicted), torch.from_numpy(true)
    constant = np.ptp(predicted) == 0 or np.ptp(true) == 0
    correlations = {name: math.nan if constant else float(metric(preds, target))
                    for name, metric in CORRELATIONS.items()}
    top = min(k, len(true))
    relevant = torch.zeros(len(true), dtype=torch.bool)
    relevant[np.argsort(-true, kind="stable")[:top]] = True
    best = int(np.argmax(predicted))
    return {
        **correlations,
        "zmse": float(mean_squared_error(torch.from_numpy(_zscores(predicted)), torch.from_numpy(_zscores(true)))),
        # torchmetrics counts only positive predictions as retrieved: shift them above zero (same order)
        "precision_at_k": float(retrieval_precision(preds - preds.min() + 1, relevant, top_k=top)),
        "regret": float(true.max() - true[best]),
        "best_index": best,
    }


def _zscores(x: np.ndarray) -> np.ndarray:
    """`zscore_array`, exactly zero for a constant array (whose mean may differ from it by rounding)."""
    return np.zeros_like(x) if np.ptp(x) == 0 else zscore_array(x)
