"""Alignments for a teacher/student pair from one probe pass (or from the configs alone), by the methods of
``transfers.methods``: the paper's correlation and matching, fitted ridge maps, data-free selection ..."""

from __future__ import annotations

import math
from typing import Any

import torch
from rich.console import Console

from peftport.architectures.models import describe_model
from peftport.architectures.spec import ArchitectureSpec
from peftport.core.alignment import Alignment, PointAlignment
from peftport.core.kinds import KINDS
from peftport.core.layer_maps import LayerMap, build_layer_map
from peftport.core.matchers import get_matcher
from peftport.core.module import PeftModule
from peftport.core.points import ProbePoint
from peftport.core.projection import calibration_gain, relative_update
from peftport.core.pruning import ROLE_AXES, project_roles, prune_roles
from peftport.core.remap import SlotTransform
from peftport.errors import PeftportError
from peftport.probing.session import CKA_MAP, ProbePlan, ProbeResult, ProbeSession
from peftport.probing.settings import ProbeSettings
from peftport.transfers.alignment_methods import point_space
from peftport.transfers.methods import PAPER_METHOD, AlignMethod, align_method, probing_methods
from peftport.transfers.options import TransferOptions


def module_points(module: PeftModule, lora_b: str) -> list[ProbePoint]:
    """Probe points a module's tensors need, by its kind (``core.kinds``): the adapter input per bottleneck
    slot, ``in:``(+``out:``) per LoRA slot."""
    return [point for slot in module.slots for point in module.spec.probe_points(module.settings, slot, lora_b)]


def all_points(spec: ArchitectureSpec, lora_b: str) -> list[ProbePoint]:
    """Every probe point of a family any module kind may need, so one saved alignment serves any module."""
    return [
        point
        for kind in KINDS.values()
        for slot in spec.slots_of_kind(kind.slot_kind)
        for point in kind.candidate_points(slot, lora_b)
    ]


def probe_settings(options: TransferOptions) -> ProbeSettings:
    """How ``options`` probe (their texts, batching and device)."""
    return ProbeSettings(
        options.probe_data or "",
        options.probe_sentences,
        options.token_match,
        options.batch_size,
        options.max_length,
        options.min_shared_tokens,
        options.device,
    )


def alignment_details(options: TransferOptions, result: ProbeResult | None, lmap: LayerMap) -> dict[str, Any]:
    """What a saved alignment and the manifest record of how it was made (the keys of earlier versions)."""
    details: dict[str, Any] = {
        "probe_data": options.probe_data,
        "probe_sentences": options.probe_sentences,
        "token_match": options.token_match,
        "lora_b": options.effective_lora_b,
        "batch_size": options.batch_size,
        "max_length": options.max_length,
        "min_shared_tokens": options.min_shared_tokens,
        "device": options.device,
        "matcher": options.matcher,
        "method": options.align,
        "calibrate": options.calibrate,
    }
    if result is not None:
        details.update(
            texts=result.texts,
            shared_tokens=result.stats.total,
            shared_tokens_per_text=round(result.stats.total / result.texts, 2),
            device=str(result.device),
        )
    return {**details, "layer_map": {"method": lmap.method, "sources": [list(g) for g in lmap.sources]}}


def solve_alignment(
    result: ProbeResult, teacher: str, student: str, options: TransferOptions, spec: ArchitectureSpec
) -> Alignment:
    """Per-point maps from one pass's statistics, by the method's ``solve_point``."""
    t_dims, s_dims = describe_model(teacher).dims, describe_model(student).dims
    matcher, solve = get_matcher(options.matcher), options.method.solve_point
    if solve is None:
        raise PeftportError(f"alignment '{options.align}' does not solve probe statistics")
    solved: dict[int, PointAlignment] = {}  # shared accumulators are solved once
    found = {}
    for request, accumulator in result.accumulators.items():
        if id(accumulator) not in solved:
            space = point_space(spec, request.point)
            solved[id(accumulator)] = solve(accumulator, space, t_dims, s_dims, matcher)
        found[(request.student_layer, request.teacher_layer, request.point)] = solved[id(accumulator)]
    return Alignment(teacher, student, found, alignment_details(options, result, result.layer_map))


def data_free_alignment(
    method: AlignMethod, teacher: str, student: str, lmap: LayerMap, points: list[ProbePoint]
) -> Alignment:
    """A data-free method's alignment of every mapped layer pair and point (its ``details`` name it)."""
    if method.select is None:
        raise PeftportError(f"alignment '{method.name}' needs probe texts")
    found = method.select(teacher, student, lmap, points)
    found.details = {"method": method.name, **found.details}
    return found


def compute_alignment(
    teacher: str,
    student: str,
    lmap: LayerMap | None,
    points: list[ProbePoint],
    options: TransferOptions,
    console: Console | None = None,
) -> Alignment:
    """Align every mapped layer pair and point in one probe pass (data-free methods: no probing). ``lmap``
    None: the layer map is chosen by CKA in the same pass (``details["layer_map"]`` holds it)."""
    if options.method.data_free:
        if lmap is None:
            raise PeftportError(f"{options.align} alignment needs a layer map, not one chosen by probing")
        return data_free_alignment(options.method, teacher, student, lmap, points)
    session = ProbeSession(teacher, student, probe_settings(options), console)
    result = session.probe(ProbePlan(lmap, tuple(points), fitted=options.method.fitted))
    return solve_alignment(result, teacher, student, options, session.models()[0].spec)


def align_models(teacher: str, student: str, options: TransferOptions, console: Console | None = None) -> Alignment:
    """``peftport align``: one alignment of every point of the teacher's family the student also has, so a
    saved alignment serves any module (the layer map chosen by CKA when ``options.layer_map`` is ``cka``)."""
    if not options.method.probes:
        raise PeftportError(f"unknown alignment method '{options.align}': use {' or '.join(probing_methods())}")
    t_info, s_info = describe_model(teacher), describe_model(student)
    layers = (t_info.dims.num_layers, s_info.dims.num_layers)
    lmap = None if options.layer_map == CKA_MAP else build_layer_map(options.layer_map, *layers)
    points = [p for p in all_points(t_info.spec, options.effective_lora_b) if p.slot in s_info.spec.slots]
    return compute_alignment(teacher, student, lmap, points, options, console)


def alignment_record(alignment: Alignment, lmap: LayerMap, points: list[str]) -> dict[str, Any]:
    """Manifest diagnostics: per student layer, teacher layers, tokens, quality figures and index maps.

    ``mean_matched_correlation`` (the key of earlier versions) is each point's quality: the matched correlation
    of selecting methods, the held-out R^2 of the student -> teacher map of fitted ones (``quality_measure``
    says which; fitted maps add both directions' mean R^2).
    """
    layers = []
    for i, group in enumerate(lmap.sources):
        entries = {f"{t}/{p}": alignment.get(i, t, p).to_dict() for t in group for p in points}
        layers.append({"student_layer": i, "teacher_layers": list(group), "points": entries})
    method = align_method(alignment.details.get("method", PAPER_METHOD))
    summary = {
        k: alignment.details.get(k)
        for k in ("probe_data", "texts", "shared_tokens", "token_match", "lora_b", "matcher")
    }
    entries = [e for layer in layers for e in layer["points"].values()]
    record = {
        "method": method.name,
        **summary,
        "quality_measure": method.quality_measure,
        "layers": layers,
        "mean_matched_correlation": _mean([e["mean_matched_correlation"] for e in entries]),
    }
    if method.fitted:
        record["mean_r2_to_teacher"] = _mean([e["fit"]["r2_to_teacher"] for e in entries])
        record["mean_r2_to_student"] = _mean([e["fit"]["r2_to_student"] for e in entries])
    return record


def _mean(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return sum(real) / len(real) if real else float("nan")


def _teacher_width(roles: dict[str, torch.Tensor], space: str) -> int:
    for role, tensor in roles.items():
        for axis, side in ROLE_AXES.get(role, {}).items():
            if side == space:
                return tensor.shape[axis]
    return 0


def prune_transform(
    module: PeftModule, alignment: Alignment, lora_b: str, calibrate: bool = False, gains: dict | None = None
) -> SlotTransform:
    """The per-(student layer, teacher layer) pruning that :func:`remap_layers` applies before averaging.

    Permutation alignments select teacher entries; rotations and soft matches project them; fitted maps
    read through the student -> teacher map and write through the teacher -> student map. ``calibrate``
    (fitted maps, LoRA): scale B so that the update's size relative to the slot's output is the teacher's;
    the factors are written to ``gains`` under ``"<student layer>/<teacher layer>/<slot>"``.
    """

    def transform(student_layer: int, teacher_layer: int, slot: str, roles: dict[str, torch.Tensor]) -> dict:
        reads, writes = module.spec.reads_and_writes(module.settings, slot, lora_b)
        found_in = alignment.get(student_layer, teacher_layer, reads)
        found_out = alignment.get(student_layer, teacher_layer, writes)
        if found_in.projection is None and found_out.projection is None:
            return prune_roles(roles, found_in.index, found_out.index)
        projected = project_roles(
            roles,
            found_in.input_matrix(_teacher_width(roles, "in")),
            found_out.matrix(_teacher_width(roles, "out")),
        )
        if calibrate and module.spec.low_rank and found_in.moments is not None and found_out.moments is not None:
            gain = _calibration(roles, projected, found_in.moments, found_out.moments)
            projected["lora_B"] = projected["lora_B"] * gain
            if gains is not None:
                gains[f"{student_layer}/{teacher_layer}/{slot}"] = gain
        return projected

    return transform


def _calibration(roles: dict, projected: dict, moments_in: tuple, moments_out: tuple) -> float:
    """Gain on B' matching the relative update size (``core.projection.relative_update``) of teacher and student."""
    teacher = relative_update(roles["lora_A"], roles["lora_B"], moments_in[0], moments_out[0])
    student = relative_update(projected["lora_A"], projected["lora_B"], moments_in[1], moments_out[1])
    return calibration_gain(teacher, student)
