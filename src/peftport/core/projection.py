"""Linear maps between two hidden spaces by ridge least squares, from streamed second moments.

A student activation ``s`` (``d_s``) and the teacher activation ``t`` (``d_t``) of the same token are
related by ``t ~ M s`` (the map *to the teacher*, ``(d_t, d_s)``) and ``s ~ N t`` (the map *to the
student*, ``(d_s, d_t)``). A module reads and writes through them: LoRA ``A' = A @ M_in`` and
``B' = N_out @ B``. The fits have no intercept, because neither LoRA nor an adapter's projections can
add a constant. Every fifth token is held out: the ridge is the largest one whose held-out unexplained
variance is within 1% of the lowest (``RIDGE_TOLERANCE``), then the map is refitted on all tokens with it.
Memory is O((d_s + d_t)^2) whatever the token count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# ridge strengths relative to the mean diagonal of the regressor's Gram matrix
RIDGE_GRID = (1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
HOLD_OUT_EVERY = 5
# A ridge whose held-out 1 - R^2 is within this share of the best one's fits as well and conditions the map
# far better. The map of all-mpnet-base-v2's final layer from paraphrase-MiniLM-L3-v2's: norm 672 at ridge 1e-8
# (R^2 0.263, the lowest error), 4.5 at ridge 0.1 (R^2 0.256); a head mapped through the first trained the
# student to F1 0, one mapped through the second did not (docs/results/README.md).
RIDGE_TOLERANCE = 0.01


class _Moments:
    """Uncentered sums for one split: ``S^T S``, ``T^T T``, ``S^T T`` and the column sums."""

    def __init__(self, d_s: int, d_t: int, device: str | torch.device) -> None:
        options = {"dtype": torch.float64, "device": device}
        self.count = 0
        self.ss = torch.zeros(d_s, d_s, **options)
        self.tt = torch.zeros(d_t, d_t, **options)
        self.st = torch.zeros(d_s, d_t, **options)
        self.sum_s = torch.zeros(d_s, **options)
        self.sum_t = torch.zeros(d_t, **options)

    def add(self, s: torch.Tensor, t: torch.Tensor) -> None:
        self.count += s.shape[0]
        self.ss += s.T @ s
        self.tt += t.T @ t
        self.st += s.T @ t
        self.sum_s += s.sum(0)
        self.sum_t += t.sum(0)

    def merged(self, other: _Moments) -> _Moments:
        total = _Moments(0, 0, self.ss.device)
        total.count = self.count + other.count
        for name in ("ss", "tt", "st", "sum_s", "sum_t"):
            setattr(total, name, getattr(self, name) + getattr(other, name))
        return total


class MomentAccumulator:
    """Streams matched token rows of both models into fit and held-out second moments.

    >>> acc = MomentAccumulator(2, 2)
    >>> s = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    >>> acc.update(s, s.flip(1))
    >>> fit_map(acc, "teacher").matrix.round(decimals=3)
    tensor([[0., 1.],
            [1., 0.]], dtype=torch.float64)
    """

    def __init__(self, student_dim: int, teacher_dim: int, device: str | torch.device = "cpu") -> None:
        self.fit = _Moments(student_dim, teacher_dim, device)
        self.held_out = _Moments(student_dim, teacher_dim, device)
        self._seen = 0

    @property
    def count(self) -> int:
        """Tokens seen in both splits."""
        return self.fit.count + self.held_out.count

    def mean_grams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token mean second moments ``E[t t^T]`` (teacher) and ``E[s s^T]`` (student) over all tokens."""
        total = self.fit.merged(self.held_out)
        n = max(total.count, 1)
        return total.tt / n, total.ss / n

    def update(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        """Add matched tokens: ``student`` ``(n, d_s)``, ``teacher`` ``(n, d_t)``, row i = same token."""
        if student.shape[0] != teacher.shape[0]:
            raise ValueError(f"token counts differ: student {student.shape[0]}, teacher {teacher.shape[0]}")
        device = self.fit.ss.device
        s = student.to(device=device, dtype=torch.float64)
        t = teacher.to(device=device, dtype=torch.float64)
        held = (torch.arange(s.shape[0], device=device) + self._seen) % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1
        self._seen += s.shape[0]
        self.fit.add(s[~held], t[~held])
        self.held_out.add(s[held], t[held])


@dataclass(frozen=True)
class LinearFit:
    """A fitted map with the ridge chosen for it and its held-out coefficient of determination."""

    matrix: torch.Tensor  # (d_out, d_in), float64
    ridge: float  # relative to the regressor's mean Gram diagonal
    r2: float  # held-out R^2 (centered total); NaN without held-out tokens


def _sides(moments: _Moments, target: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(X^T X, X^T Y, Y^T Y, sum Y) with Y the side we predict: ``teacher`` or ``student``."""
    if target == "teacher":
        return moments.ss, moments.st, moments.tt, moments.sum_t
    return moments.tt, moments.st.T, moments.ss, moments.sum_s


def _solve(xx: torch.Tensor, xy: torch.Tensor, relative_ridge: float) -> torch.Tensor:
    """``W`` ``(d_y, d_x)`` minimising ``|Y - X W^T|^2 + lambda |W|^2``."""
    scale = torch.diagonal(xx).mean().clamp_min(1e-30)
    eye = torch.eye(xx.shape[0], dtype=xx.dtype, device=xx.device)
    return torch.linalg.solve(xx + relative_ridge * scale * eye, xy).T


def _r2(matrix: torch.Tensor, moments: _Moments, target: str) -> float:
    """Held-out ``1 - SSE / SST`` from second moments alone."""
    xx, xy, yy, sum_y = _sides(moments, target)
    if moments.count < 2:
        return float("nan")
    sse = torch.trace(yy) - 2 * torch.sum(matrix.T * xy) + torch.sum((matrix @ xx) * matrix)
    sst = torch.trace(yy) - sum_y @ sum_y / moments.count
    return float(1 - sse / sst) if sst > 0 else float("nan")


def _chosen_ridge(scores: dict[float, float]) -> float:
    """The largest ridge whose held-out ``1 - R^2`` is within ``RIDGE_TOLERANCE`` of the best one's.

    >>> _chosen_ridge({1e-8: 0.2626, 1e-4: 0.2568, 0.03: 0.2586, 0.1: 0.2556, 1.0: 0.1952})
    0.1
    >>> _chosen_ridge({1e-8: 1.0, 1e-6: 0.999999})
    1e-08
    """
    top = max(scores.values())
    slack = RIDGE_TOLERANCE * (1 - top)
    return max(ridge for ridge, score in scores.items() if score >= top - slack)


def fit_map(accumulator: MomentAccumulator, target: str, grid: tuple[float, ...] = RIDGE_GRID) -> LinearFit:
    """The ridge map predicting the ``target`` side (``teacher``: ``(d_t, d_s)``; ``student``: ``(d_s, d_t)``)."""
    if target not in ("teacher", "student"):
        raise ValueError(f"target must be 'teacher' or 'student', got {target!r}")
    if accumulator.fit.count < 2:
        raise ValueError(f"need at least 2 tokens to fit a map, got {accumulator.fit.count}")
    xx, xy, _, _ = _sides(accumulator.fit, target)
    scores = {ridge: _r2(_solve(xx, xy, ridge), accumulator.held_out, target) for ridge in grid}
    finite = {ridge: score for ridge, score in scores.items() if not math.isnan(score)}
    best = _chosen_ridge(finite) if finite else grid[len(grid) // 2]
    xx, xy, _, _ = _sides(accumulator.fit.merged(accumulator.held_out), target)
    return LinearFit(_solve(xx, xy, best), best, scores[best])


def relative_update(a: torch.Tensor, b: torch.Tensor, input_gram: torch.Tensor, output_gram: torch.Tensor) -> float:
    """Mean squared size of a low-rank update ``B @ A x`` relative to the mean squared output it is added to,
    from per-token mean second moments of the input ``x`` and of the output.

    >>> a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0], [0.0]])
    >>> relative_update(a, b, torch.eye(2), torch.eye(2) * 4)
    0.5
    """
    delta = b.double() @ a.double()
    update = torch.sum((delta @ input_gram.double()) * delta)
    return float(update / torch.trace(output_gram.double()).clamp_min(1e-30))


def calibration_gain(teacher: float, student: float) -> float:
    """The factor on the student's update that gives it the teacher's relative size (1 when undefined).

    >>> calibration_gain(0.04, 1.0)
    0.2
    """
    if not (teacher > 0 and student > 0):
        return 1.0
    return (teacher / student) ** 0.5
