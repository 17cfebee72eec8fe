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
    return float(cross / ((x.T @ x).norm() * (y.T @ y).norm()))


class CkaAccumulator:
    """Streaming linear CKA: accumulates sums and Gram-type products over token batches (float64).

    Same ``update(student, teacher)`` interface as the correlation accumulator, so the same probing
    loop fills either. Memory O((d_s + d_t)^2) whatever the number of tokens.
    """

    def __init__(self, student_dim: int, teacher_dim: int, device: str | torch.device = "cpu") -> None:
        options = {"dtype": torch.float64, "device": device}
        self.count = 0
        self.sum_s = torch.zeros(student_dim, **options)
        self.sum_t = torch.zeros(teacher_dim, **options)
        self.ss = torch.zeros(student_dim, student_dim, **options)
        self.tt = torch.zeros(teacher_dim, teacher_dim, **options)
        self.st = torch.zeros(student_dim, teacher_dim, **options)

    def update(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        """Add matched tokens: ``student`` ``(n, d_s)`` and ``teacher`` ``(n, d_t)``."""
        if student.shape[0] != teacher.shape[0]:
            raise ValueError(f"token counts differ: student {student.shape[0]}, teacher {teacher.shape[0]}")
        s = student.to(device=self.st.device, dtype=torch.float64)
        t = teacher.to(device=self.st.device, dtype=torch.float64)
        self.count += s.shape[0]
        self.sum_s += s.sum(0)
        self.sum_t += t.sum(0)
        self.ss += s.T @ s
        self.tt += t.T @ t
        self.st += s.T @ t

    def value(self) -> float:
        """Linear CKA of everything seen so far (equal to :func:`linear_cka` on the stacked tokens)."""
        n = self.count
        if n < 2:
            raise ValueError(f"need at least 2 tokens for CKA, got {n}")
        ss = self.ss - torch.outer(self.sum_s, self.sum_s) / n
        tt = self.tt - torch.outer(self.sum_t, self.sum_t) / n
        st = self.st - torch.outer(self.sum_s, self.sum_t) / n
        denom = ss.norm() * tt.norm()
        return float(st.norm() ** 2 / denom) if denom > 0 else float("nan")
