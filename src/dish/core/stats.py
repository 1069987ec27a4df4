"""The one z-score: standardise along the last dim (population std); a constant row maps to zeros."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def zscore(values: Tensor) -> Tensor:
    """(values - mean) / std along the last dim, std clamped at 1e-8."""
    centred = values - values.mean(-1, keepdim=True)
    return centred / centred.std(-1, correction=0, keepdim=True).clamp_min(1e-8)


def zscore_array(values: np.ndarray) -> np.ndarray:
    """`zscore` of a float64 array."""
    return zscore(torch.as_tensor(np.asarray(values, dtype=np.float64))).numpy()
