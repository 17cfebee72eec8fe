"""Similarity of two sets of representations of the same items, independent of their widths."""

from __future__ import annotations

import torch


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centred kernel alignment between ``x`` ``(n, d1)`` and ``y`` ``(n, d2)`` (Kornblith et al., 2019).

    1 for representations equal up to rotation and isotropic scaling, near 0 for unrelated ones.

    >>> x = torch.randn(50, 4, dtype=torch.float64)
    >>> round(linear_cka(x, 3 * x), 6)
    1.0
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"need the same items on both sides, got {x.shape[0]} and {y.shape[0]}")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = (y.T @ x).norm() ** 2
    denom = (x.T @ x).norm() * (y.T @ y).norm()
    return float(cross / denom) if denom > 0 else float("nan")
