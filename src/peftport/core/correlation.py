"""Streaming Pearson correlation between every student and every teacher dimension.

Memory is O(d_student x d_teacher) whatever the number of tokens: running sums and
cross-products are accumulated in float64, batch by batch, on the tensors' device.
"""

from __future__ import annotations

import torch


class CorrelationAccumulator:
    """Accumulates ``sum s``, ``sum t``, ``sum s^2``, ``sum t^2`` and ``s^T t`` over token batches.

    >>> acc = CorrelationAccumulator(1, 2)
    >>> acc.update(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[2.0, 3.0], [4.0, 2.0], [6.0, 1.0]]))
    >>> acc.pearson()
    tensor([[ 1., -1.]], dtype=torch.float64)
    """

    def __init__(self, student_dim: int, teacher_dim: int, device: str | torch.device = "cpu") -> None:
        options = {"dtype": torch.float64, "device": device}
        self.count = 0
        self.sum_s = torch.zeros(student_dim, **options)
        self.sum_t = torch.zeros(teacher_dim, **options)
        self.sq_s = torch.zeros(student_dim, **options)
        self.sq_t = torch.zeros(teacher_dim, **options)
        self.cross = torch.zeros(student_dim, teacher_dim, **options)

    def update(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        """Add matched tokens: ``student`` ``(n, d_s)`` and ``teacher`` ``(n, d_t)``, row i = same token."""
        if student.shape[0] != teacher.shape[0]:
            raise ValueError(f"token counts differ: student {student.shape[0]}, teacher {teacher.shape[0]}")
        s = student.to(device=self.cross.device, dtype=torch.float64)
        t = teacher.to(device=self.cross.device, dtype=torch.float64)
        self.count += s.shape[0]
        self.sum_s += s.sum(0)
        self.sum_t += t.sum(0)
        self.sq_s += (s * s).sum(0)
        self.sq_t += (t * t).sum(0)
        self.cross += s.T @ t

    def pearson(self) -> torch.Tensor:
        """Correlation matrix ``(d_s, d_t)``; NaN where a dimension was constant over all tokens."""
        n = self.count
        if n < 2:
            raise ValueError(f"need at least 2 tokens to correlate, got {n}")
        cov = self.cross - torch.outer(self.sum_s, self.sum_t) / n
        var_s = (self.sq_s - self.sum_s**2 / n).clamp_min(0)
        var_t = (self.sq_t - self.sum_t**2 / n).clamp_min(0)
        denom = torch.sqrt(torch.outer(var_s, var_t))
        corr = cov / denom
        return torch.where(denom > 0, corr.clamp(-1.0, 1.0), torch.full_like(corr, float("nan")))
