"""Assign every student dimension a distinct teacher dimension, maximising total correlation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from peftport.errors import ShapeMismatchError

# A constant dimension has no correlation (NaN); it ranks below every real value (>= -1), so
# such dimensions are matched only once the informative ones are.
NAN_SCORE = -2.0


@dataclass(frozen=True)
class Assignment:
    """``index[j]``: the teacher dimension assigned to student dimension ``j``, with quality figures."""

    index: torch.Tensor
    mean_matched: float
    mean_best: float


def assign(correlation: torch.Tensor) -> Assignment:
    """Maximum-total-correlation assignment of a ``(d_s, d_t)`` matrix, ``d_s <= d_t``.

    Ties are broken by scipy's deterministic solver; NaN counts as :data:`NAN_SCORE`.

    >>> assign(torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.7, 0.2]])).index
    tensor([1, 0])
    """
    d_s, d_t = correlation.shape
    if d_s > d_t:
        raise ShapeMismatchError(
            f"the student is wider ({d_s}) than the teacher ({d_t}) here: every student dimension needs "
            "a distinct teacher dimension, so prune-and-align only goes from wider to narrower models"
        )
    scores = np.nan_to_num(correlation.detach().cpu().double().numpy(), nan=NAN_SCORE)
    rows, cols = linear_sum_assignment(scores, maximize=True)
    index = np.empty(d_s, dtype=np.int64)
    index[rows] = cols
    matched = scores[np.arange(d_s), index]
    return Assignment(torch.from_numpy(index), _real_mean(matched), _real_mean(scores.max(axis=1)))


def _real_mean(values: np.ndarray) -> float:
    """Mean over entries that are real correlations (NaN when there are none)."""
    real = values[values != NAN_SCORE]
    return float(real.mean()) if real.size else float("nan")
