"""Matchers: turn a student x teacher correlation matrix into a map from teacher to student dimensions.

Every matcher returns a :class:`Match` with a projection ``P`` of shape ``(d_s, d_t)``: a student
vector is ``P @ teacher_vector``. The paper's matcher is a permutation (one 1 per row); others give
a rotation (orthogonal Procrustes) or a soft assignment (Sinkhorn). All take the same matrix, so they
can be compared in one grid. ``index`` is each student dimension's strongest teacher dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from peftport.core.assignment import NAN_SCORE, assign
from peftport.errors import PeftportError


@dataclass(frozen=True)
class Match:
    """A projection from teacher to student dimensions with figures that say how good it is."""

    projection: torch.Tensor | None  # None: a pure permutation, given by ``index``
    index: torch.Tensor
    mean_matched: float
    mean_best: float

    def matrix(self, teacher_dim: int) -> torch.Tensor:
        """The ``(d_s, d_t)`` projection, built from ``index`` for permutations."""
        if self.projection is not None:
            return self.projection
        return one_hot(self.index, teacher_dim)


def one_hot(index: torch.Tensor, teacher_dim: int) -> torch.Tensor:
    """Selection matrix: row ``j`` has a 1 at column ``index[j]``.

    >>> one_hot(torch.tensor([2, 0]), 3)
    tensor([[0., 0., 1.],
            [1., 0., 0.]], dtype=torch.float64)
    """
    matrix = torch.zeros(len(index), teacher_dim, dtype=torch.float64)
    matrix[torch.arange(len(index)), index] = 1.0
    return matrix


def _clean(correlation: torch.Tensor) -> torch.Tensor:
    """float64 with NaN (constant dimensions) set to 0: no evidence either way."""
    return torch.nan_to_num(correlation.detach().cpu().double(), nan=0.0)


def _figures(correlation: torch.Tensor, projection: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """Strongest teacher dimension per row, and the mean correlation the projection carries over."""
    clean = _clean(correlation)
    weights = projection.abs() / projection.abs().sum(1, keepdim=True).clamp_min(1e-12)
    matched = (weights * clean).sum(1).mean().item()
    return projection.abs().argmax(1), float(matched), float(clean.max(1).values.mean())


def hungarian(correlation: torch.Tensor) -> Match:
    """The paper's matcher: a maximum-total-correlation permutation (distinct teacher dimensions)."""
    found = assign(correlation)
    return Match(None, found.index, found.mean_matched, found.mean_best)


def procrustes(correlation: torch.Tensor) -> Match:
    """Orthogonal Procrustes on standardised activations: the ``P`` with orthonormal rows maximising ``tr(P C^T)``.

    For standardised activations ``C`` is the cross-covariance, so ``P = U V^T`` from ``C = U S V^T`` is
    the rotation that best maps teacher onto student representations (Schönemann, 1966).

    >>> q = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    >>> bool(torch.allclose(procrustes(q).projection, q))
    True
    """
    d_s, d_t = correlation.shape
    _check_narrower(d_s, d_t)
    u, _, vh = torch.linalg.svd(_clean(correlation), full_matrices=False)
    projection = u @ vh
    index, matched, best = _figures(correlation, projection)
    return Match(projection, index, matched, best)


SINKHORN_TEMPERATURE = 0.05
SINKHORN_ITERATIONS = 200


def sinkhorn_plan(
    scores: torch.Tensor, temperature: float = SINKHORN_TEMPERATURE, iterations: int = SINKHORN_ITERATIONS
) -> torch.Tensor:
    """Entropic optimal transport: a ``(d_s, d_t)`` plan whose rows sum to 1 and columns to at most 1.

    ``d_t - d_s`` dummy rows with a constant score take the teacher dimensions left over, so the
    padded square plan is doubly stochastic; as the temperature falls the real rows tend to the
    maximum-score assignment (Cuturi, 2013). Computed in the log domain, so small temperatures do not
    overflow.
    """
    d_s, d_t = scores.shape
    _check_narrower(d_s, d_t)
    if temperature <= 0:
        raise PeftportError(f"the Sinkhorn temperature must be positive, got {temperature}")
    padded = torch.cat([scores.double(), torch.zeros(d_t - d_s, d_t, dtype=torch.float64)]) / temperature
    u = torch.zeros(d_t, dtype=torch.float64)
    v = torch.zeros(d_t, dtype=torch.float64)
    for _ in range(iterations):
        u = -torch.logsumexp(padded + v[None, :], dim=1)
        v = -torch.logsumexp(padded + u[:, None], dim=0)
    return torch.exp(padded + u[:, None] + v[None, :])[:d_s]


def sinkhorn(correlation: torch.Tensor) -> Match:
    """Soft assignment: each student dimension becomes a weighted mean of teacher dimensions.

    NaN correlations count as :data:`NAN_SCORE` (never preferred), as in :func:`hungarian`.
    """
    scores = torch.nan_to_num(correlation.detach().cpu().double(), nan=NAN_SCORE)
    projection = sinkhorn_plan(scores)
    index, matched, best = _figures(correlation, projection)
    return Match(projection, index, matched, best)


def _check_narrower(d_s: int, d_t: int) -> None:
    if d_s > d_t:
        raise PeftportError(
            f"the student is wider ({d_s}) than the teacher ({d_t}) here: matchers only map wider to narrower"
        )


MATCHERS: dict[str, Callable[[torch.Tensor], Match]] = {
    "hungarian": hungarian,
    "procrustes": procrustes,
    "sinkhorn": sinkhorn,
}


def get_matcher(name: str) -> Callable[[torch.Tensor], Match]:
    """A matcher by name, or an error listing the known ones."""
    if name not in MATCHERS:
        raise PeftportError(f"unknown matcher '{name}': use one of {', '.join(MATCHERS)}")
    return MATCHERS[name]


def block_match(correlation: torch.Tensor, block: int, matcher: Callable[[torch.Tensor], Match]) -> Match:
    """Head-aware matching: whole blocks of ``block`` dimensions (attention heads) are matched to blocks.

    Blocks are scored by the mean absolute correlation of their dimensions at equal positions (a head's
    dimensions keep their order, as rotary embeddings need), assigned by ``matcher`` on that block
    score matrix, and expanded back to dimensions.
    """
    d_s, d_t = correlation.shape
    if d_s % block or d_t % block:
        raise PeftportError(f"widths {d_s} and {d_t} are not whole numbers of {block}-dimension heads")
    heads_s, heads_t = d_s // block, d_t // block
    clean = _clean(correlation).reshape(heads_s, block, heads_t, block)
    scores = clean.diagonal(dim1=1, dim2=3).abs().mean(-1)  # (heads_s, heads_t): same position in each head
    heads = matcher(scores)
    head_matrix = heads.matrix(heads_t)
    projection = torch.kron(head_matrix, torch.eye(block, dtype=torch.float64))
    index, matched, best = _figures(correlation, projection)
    return Match(None if heads.projection is None else projection, index, matched, best)
