"""Transfer: a teacher module becomes the initial module of a student (the CLI, experiments and the
Python API all come here). Models are probed at most once per transfer, in one `ProbeSession` pass that
serves the CKA layer map, the module's alignment and the final layers' alignment (head, recovery)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from peftport.architectures.models import ModelInfo, describe_model
from peftport.core.alignment import Alignment, PointAlignment
from peftport.core.layer_maps import LayerMap
from peftport.core.lowrank import merge_by_svd
from peftport.core.module import LayerTensors, PeftModule
from peftport.core.points import FINAL_POINT
from peftport.core.remap import mean_roles, remap_layers
from peftport.errors import PeftportError
from peftport.formats.peft_lora import NAME as PEFT_FORMAT
from peftport.formats.peft_lora import head_extras, task_head
from peftport.formats.registry import detect_format, load_module
from peftport.probing.session import ProbePlan, ProbeSession
from peftport.probing.texts import read_probe_texts
from peftport.transfers.alignment import (
    alignment_record,
    data_free_alignment,
    module_points,
    probe_settings,
    prune_transform,
    solve_alignment,
)
from peftport.transfers.checks import check_hostable, check_prunable, check_teacher_fit, check_widths
from peftport.transfers.heads import aligned_head, check_head_width, final_layer_map
from peftport.transfers.layers import check_depth, fall_back, fixed_layer_map, layer_quality
from peftport.transfers.methods import PAPER_METHOD, AlignMethod, align_method
from peftport.transfers.options import TransferOptions, transfer_options
from peftport.transfers.provenance import provenance
from peftport.transfers.recovery import RecoveryOptions, final_hidden_map, recover_module

# Options tied to the teacher model or its task head: peft refuses a SEQ_CLS module whose file lacks
# the head weights it lists in modules_to_save, so they are kept only when the head moves too.
MODEL_BOUND_OPTIONS = ("model_class", "revision", "task_type", "modules_to_save")
HEAD_OPTIONS = ("task_type", "modules_to_save")


@dataclass
class Transferred:
    """A transfer's module, and the final layers' alignment when one was made (for a head or recovery)."""

    module: PeftModule
    final: PointAlignment | None = None


@dataclass
class _Plan:
    """What one transfer does, decided from its options before any model runs."""

    method: AlignMethod
    lora_b: str
    points: list
    final: bool  # the final layers' alignment is needed


def transfer(
    module: PeftModule | str | Path,
    teacher: str,
    student: str,
    layer_map: str | LayerMap | None = None,
    options: TransferOptions | None = None,
    *,
    alignment: Alignment | None = None,
    **fields: Any,
) -> PeftModule:
    """Initial student module from a teacher module.

    ``module`` is a `PeftModule` or a module directory (peft or AdapterHub); ``teacher`` and ``student``
    are hub names or local model directories; ``layer_map`` is a name (``skip``, ``avg`` ..., ``cka``: the
    best monotone map by linear CKA of layer outputs on the probe texts), a list like ``"0,2,4"`` or a
    `LayerMap`. Every other option is a `TransferOptions` field, given as ``options`` or as keywords
    (``align="projection", probe_data="texts.txt", head=True, recover_steps=25`` ...). Without ``align``
    the models must have equal widths and only their configs are read. ``alignment``: a saved `Alignment`
    (``peftport align``) used instead of probing. Tensors outside the transformer layers (task heads) are
    dropped and listed in the provenance unless ``head``.
    """
    values = options.model_dump() if options is not None else {}
    if isinstance(layer_map, str):  # an explicit name wins over the options' layer map
        values["layer_map"] = layer_map
    resolved = transfer_options(**{**values, **fields})
    given = layer_map if isinstance(layer_map, LayerMap) else None
    return transfer_module(module, teacher, student, resolved, alignment=alignment, layer_map=given).module


def transfer_module(
    module: PeftModule | str | Path,
    teacher: str,
    student: str,
    options: TransferOptions,
    alignment: Alignment | None = None,
    layer_map: LayerMap | None = None,
    final: bool = False,
    console: Console | None = None,
) -> Transferred:
    """:func:`transfer` with validated ``options``; ``final``: also return the final layers' alignment."""
    if not isinstance(module, PeftModule):
        detect_format(module)  # a bad module directory fails before any model is looked up
    t_info, s_info = describe_model(teacher), describe_model(student)
    source = module if isinstance(module, PeftModule) else load_module(module, family=t_info.spec.name)
    plan = _checked_plan(source, t_info, s_info, options, alignment, final)
    head = _teacher_head(source) if options.head else None
    if head is not None and plan.method.aligns:
        check_head_width(head, t_info.dims.hidden_size)
    lmap = layer_map or fixed_layer_map(options.layer_map, t_info.dims.num_layers, s_info.dims.num_layers)
    if layer_map is not None:
        check_depth(layer_map, s_info.dims.num_layers)
    session, similarity, found = None, None, alignment
    if alignment is None and (plan.method.probes or lmap is None):
        session = ProbeSession(teacher, student, probe_settings(options), console)
        probing = plan.method.probes
        points = tuple(plan.points if probing else ())
        result = session.probe(ProbePlan(lmap, points, plan.final and probing, plan.method.fitted))
        lmap, similarity = result.layer_map, result.similarity
        if probing:
            found = solve_alignment(result, teacher, student, options, t_info.spec)
    if plan.method.data_free and alignment is None:
        found = data_free_alignment(plan.method, teacher, student, lmap, plan.points)
    final_found = _final(found, plan, teacher, student, t_info, s_info) if plan.final else None
    layers, record = _remapped(source, lmap, found, plan, options)
    layer_record = None
    if options.min_quality is not None:
        quality, measure = layer_quality(lmap, similarity, record)
        layers, layer_record = fall_back(layers, quality, measure, options.min_quality, options.seed)
        if options.strict and "warning" in layer_record:
            raise PeftportError(f"{layer_record['warning']} (--strict)")
    extras, head_record = _moved_head(head, final_found, t_info, plan.method) if head is not None else ({}, None)
    origin = None if isinstance(module, PeftModule) else str(module)
    made = provenance(source, origin, t_info, s_info, lmap, record, similarity, layer_record, head_record)
    result_module = _student_module(source, options, s_info, layers, extras, made)
    if options.recover_steps:
        texts = session.texts if session is not None else read_probe_texts(options.probe_data, options.probe_sentences)
        recovery = RecoveryOptions(options.recover_steps, options.recovery_lr)
        hidden_map = None if head is not None else final_hidden_map(final_found, t_info.dims, s_info.dims)
        result_module = recover_module(result_module, module, teacher, student, texts, recovery, hidden_map)
    return Transferred(result_module, final_found)


def _checked_plan(
    source: PeftModule,
    teacher: ModelInfo,
    student: ModelInfo,
    options: TransferOptions,
    alignment: Alignment | None,
    final: bool,
) -> _Plan:
    """Every check that needs only configs, before any probing; what the transfer will do."""
    check_teacher_fit(source, teacher)
    check_hostable(source, student)
    if options.lora_svd and source.kind != "lora":
        raise PeftportError("--lora-svd re-factors LoRA updates; this module is a bottleneck adapter")
    if alignment is not None:
        method = align_method(alignment.details.get("method", PAPER_METHOD))
        lora_b = alignment.details.get("lora_b") or "input"
    else:
        method, lora_b = options.method, options.effective_lora_b
    if not method.aligns:
        check_widths(source, teacher, student)
        return _Plan(method, lora_b, [], False)
    check_prunable(source, teacher, student, lora_b, method.widens)
    needs_final = final or options.head or options.recover_steps > 0
    if alignment is not None and needs_final:
        raise PeftportError(
            "a saved alignment holds no final-layer alignment for the head or recovery: probe with the transfer"
        )
    return _Plan(method, lora_b, module_points(source, lora_b), needs_final)


def _final(
    found: Alignment | None, plan: _Plan, teacher: str, student: str, t_info: ModelInfo, s_info: ModelInfo
) -> PointAlignment:
    last_t, last_s = t_info.dims.num_layers - 1, s_info.dims.num_layers - 1
    if plan.method.data_free:
        final_map = final_layer_map(t_info.dims.num_layers, s_info.dims.num_layers)
        made = data_free_alignment(plan.method, teacher, student, final_map, [FINAL_POINT])
        return made.get(last_s, last_t, FINAL_POINT)
    if found is None:
        raise PeftportError("no alignment was made for the final layers")
    return found.get(last_s, last_t, FINAL_POINT)


def _remapped(
    source: PeftModule, lmap: LayerMap, found: Alignment | None, plan: _Plan, options: TransferOptions
) -> tuple[LayerTensors, dict[str, Any] | None]:
    merge = merge_by_svd if options.lora_svd else mean_roles
    if found is None:
        return remap_layers(source.layers, lmap, merge=merge), None
    method = align_method(found.details.get("method", PAPER_METHOD))
    calibrate = bool(found.details.get("calibrate", False)) and method.calibrates
    gains: dict[str, float] = {}
    layers = remap_layers(source.layers, lmap, prune_transform(source, found, plan.lora_b, calibrate, gains), merge)
    record = alignment_record(found, lmap, plan.points)
    if method.calibrates:
        record["calibration"] = {"calibrated": bool(gains), "gains": gains}
    return layers, record


def _teacher_head(source: PeftModule) -> dict[str, torch.Tensor]:
    saved = source.format_options.get("modules_to_save")
    if source.format_options.get("source_format") != PEFT_FORMAT or not saved:
        raise PeftportError("moving the head needs a peft module saved with its task head (modules_to_save)")
    head = task_head(source)
    if not head:
        raise PeftportError(f"the module lists modules_to_save {saved} but its file holds no head weights")
    return head


def _moved_head(
    head: dict[str, torch.Tensor], final: PointAlignment | None, teacher: ModelInfo, method: AlignMethod
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The head for the student, as peft extras: copied for equal widths, else through the final alignment."""
    if final is None:
        return head_extras(head), {"method": "copied"}
    moved, record = aligned_head(head, teacher.dims.hidden_size, final, method.name)
    return head_extras(moved), {"method": "aligned", **record}


def _student_module(
    source: PeftModule,
    options: TransferOptions,
    student: ModelInfo,
    layers: LayerTensors,
    extras: dict[str, torch.Tensor],
    made: dict[str, Any],
) -> PeftModule:
    bound = [k for k in MODEL_BOUND_OPTIONS if not (options.head and k in HEAD_OPTIONS)]
    return source.with_layers(
        layers,
        family=student.spec.name,
        base_model=student.reference,
        model_type=student.config.model_type,
        hidden_size=student.dims.hidden_size,
        num_layers=student.dims.num_layers,
        extras=extras,
        format_options={k: v for k, v in source.format_options.items() if k not in bound},
        provenance=made,
    )
