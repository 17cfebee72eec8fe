"""The solvers of the built-in alignment methods (``transfers.methods`` registers them): correlations -> a
matcher's selection or projection, moments -> fitted ridge maps, configs alone -> uniform selection."""

from __future__ import annotations

from collections.abc import Callable

import torch

from peftport.architectures.models import describe_model
from peftport.architectures.spec import HEAD_DIMENSIONS, ArchitectureSpec, ModelDims
from peftport.core.alignment import Alignment, PointAlignment
from peftport.core.correlation import CorrelationAccumulator
from peftport.core.layer_maps import LayerMap
from peftport.core.matchers import Match, block_match
from peftport.core.points import ProbePoint
from peftport.core.projection import MomentAccumulator, fit_map
from peftport.core.selection import uniform_block_index, uniform_index
from peftport.errors import PeftportError

MatchFn = Callable[[torch.Tensor], Match]  # a matcher of core.matchers


def matched_point(
    accumulator: CorrelationAccumulator, space: str, teacher: ModelDims, student: ModelDims, matcher: MatchFn
) -> PointAlignment:
    """One point's matched dimensions from its correlations (head by head in attention spaces)."""
    match = match_point(accumulator.pearson(), space, teacher, student, matcher)
    return PointAlignment(match.index, accumulator.count, match.mean_matched, match.mean_best, match.projection)


def fitted_point(accumulator: MomentAccumulator) -> PointAlignment:
    """Both ridge maps of one point: teacher -> student (``projection``, for what a module writes) and
    student -> teacher (``lift``, for what it reads). Quality figures are the maps' held-out R^2."""
    to_student, to_teacher = fit_map(accumulator, "student"), fit_map(accumulator, "teacher")
    fit = {
        "r2_to_teacher": to_teacher.r2,
        "r2_to_student": to_student.r2,
        "ridge_to_teacher": to_teacher.ridge,
        "ridge_to_student": to_student.ridge,
    }
    projection = to_student.matrix.float()
    index = projection.abs().argmax(1)
    return PointAlignment(
        index,
        accumulator.count,
        to_teacher.r2,
        to_student.r2,
        projection,
        to_teacher.matrix.float(),
        fit,
        accumulator.mean_grams(),
    )


def uniform_alignment(teacher: str, student: str, lmap: LayerMap, points: list[ProbePoint]) -> Alignment:
    """Evenly spaced teacher dimensions for every mapped layer pair and point; reads only the configs
    (``details`` holds the layer map; the caller adds the method's name)."""
    t_info, s_info = describe_model(teacher), describe_model(student)
    t_dims, s_dims = t_info.dims, s_info.dims
    found = {}
    for point in points:
        space = point_space(t_info.spec, point)
        t_width, s_width = t_dims.width(space), s_dims.width(space)
        heads = space in HEAD_DIMENSIONS and t_dims.head_dim is not None and t_dims.head_dim == s_dims.head_dim
        index = uniform_block_index(t_width, s_width, t_dims.head_dim) if heads else uniform_index(t_width, s_width)
        nan = float("nan")
        for i, group in enumerate(lmap.sources):
            for t in group:
                found[(i, t, point)] = PointAlignment(index, 0, nan, nan)
    details = {"layer_map": {"method": lmap.method, "sources": [list(g) for g in lmap.sources]}}
    return Alignment(teacher, student, found, details)


def point_space(spec: ArchitectureSpec, point: ProbePoint | str) -> str:
    """The dimension a probe point lives in: a linear slot's input or output, else the hidden states."""
    point = ProbePoint.parse(point)
    kind, slot = point.kind, point.slot
    if kind in ("in", "out") and slot in spec.slots:
        return spec.slots[slot].in_dim if kind == "in" else spec.slots[slot].out_dim
    return "hidden"


def match_point(
    correlation: torch.Tensor, space: str, teacher: ModelDims, student: ModelDims, matcher: MatchFn
) -> Match:
    """Match dimensions; attention spaces of models with known heads are matched head by head."""
    if space not in HEAD_DIMENSIONS or teacher.head_dim is None or student.head_dim is None:
        return matcher(correlation)
    if teacher.head_dim != student.head_dim:
        raise PeftportError(
            f"attention heads differ in size (teacher {teacher.head_dim}, student {student.head_dim}): head-aware "
            "alignment keeps each head whole, so it needs equal head dimensions"
        )
    return block_match(correlation, teacher.head_dim, matcher)
