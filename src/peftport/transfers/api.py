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
from peftport.core.layer_maps import LayerMap, chosen_layers
from peftport.core.lowrank import merge_by_svd
from peftport.core.module import LayerTensors, PeftModule
from peftport.core.points import FINAL_POINT
from peftport.core.remap import mean_roles, remap_layers
from peftport.errors import PeftportError
from peftport.formats.peft_lora import head_extras
from peftport.formats.registry import detect_format, load_module
from peftport.probing.session import ProbePlan, ProbeSession
from peftport.probing.texts import held_out_texts, read_probe_texts
from peftport.transfers.alignment import (
    alignment_record,
    data_free_alignment,
    module_points,
    probe_settings,
    prune_transform,
    solve_alignment,
)
from peftport.transfers.checks import check_hostable, check_prunable, check_teacher_fit, check_widths
from peftport.transfers.heads import check_head_width, final_layer_map
from peftport.transfers.layers import check_depth, fall_back, fixed_layer_map, layer_quality, only_layers
from peftport.transfers.methods import PAPER_METHOD, AlignMethod, align_method
from peftport.transfers.options import TransferOptions, transfer_options
from peftport.transfers.output import fresh_start, moved_head, student_module, teacher_head
from peftport.transfers.provenance import command_line, named_models, provenance
from peftport.transfers.recovery import Recovery, RecoveryOptions, UserModels, final_hidden_map, recover_module
from peftport.transfers.teacher_outputs import teacher_key
from peftport.transfers.verdict import control_record, judge_fidelity
from peftport.zoo import resolve_model


@dataclass
class Transferred:
    """A transfer's module, the moved task head (keyed as in the task model) when one moved, and the final
    layers' alignment when one was made (for a head or recovery)."""

    module: PeftModule
    head: dict[str, torch.Tensor] | None = None
    final: PointAlignment | None = None


@dataclass
class _Plan:
    """What one transfer does, decided from its options before any model runs."""

    method: AlignMethod
    lora_b: str
    points: list
    final: bool  # the final layers' alignment is needed


@dataclass
class _Probed:
    """What the probe step gives: the layer map (chosen by CKA or fixed), its similarity matrix, the module's
    alignment and the session (whose texts recovery reuses)."""

    lmap: LayerMap
    similarity: list[list[float]] | None
    found: Alignment | None
    session: ProbeSession | None


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
    console: Console | None = None,
    *,
    head: dict[str, torch.Tensor] | None = None,
    recovery: Recovery | None = None,
) -> Transferred:
    """:func:`transfer` with validated ``options``, in steps: plan (configs only), probe (one pass), remap,
    head, fallback, recover. ``head``: a teacher task head to move (keyed as in the task model; default with
    ``options.head``: the peft module's own, which then travels in the output's extras); ``recovery``: how
    recovery trains and builds its models (default from ``options.recover_steps``: the classes a user loads
    the modules on). Grids pass both (``experiments.transferred``); the result's ``head`` is the moved head."""
    if not isinstance(module, PeftModule):
        detect_format(module)  # a bad module directory fails before any model is looked up
    names = (teacher, student)  # as given (zoo:NAME, hub, local): what the records name
    teacher, student = resolve_model(teacher), resolve_model(student)
    t_info, s_info = describe_model(teacher), describe_model(student)
    source = module if isinstance(module, PeftModule) else load_module(module, family=t_info.spec.name)
    if head is None and options.head:
        head = teacher_head(source)
    if recovery is None and options.recover_steps:
        settings = RecoveryOptions(
            options.recover_steps,
            options.recovery_lr,
            schedule=options.recover_schedule,
            precision=options.recover_precision,
            patience=options.recover_patience,
        )
        cached = options.teacher_cache is not None and not isinstance(module, PeftModule)
        cache = (Path(str(options.teacher_cache)), teacher_key(teacher, Path(module), "user")) if cached else None
        recovery = Recovery(settings, UserModels(module, teacher, student), cache)
    if options.start == "fresh" and (head is None or recovery is None):
        raise PeftportError(
            "--start fresh distils a fresh module and a random head into the teacher's outputs: give "
            "--recover-steps N and --head"
        )
    plan = _checked_plan(source, t_info, s_info, options, alignment, head is not None or recovery is not None)
    if head is not None and plan.method.aligns:
        check_head_width(head, t_info.dims.hidden_size)
    probed = _probe(plan, options, alignment, layer_map, (teacher, student), (t_info, s_info), console)
    final_found = _final(probed.found, plan, teacher, student, t_info, s_info) if plan.final else None
    layers, record = _remapped(source, probed.lmap, probed.found, plan, options)
    layers, layer_record = _fall_back(layers, probed, record, options)
    moved, head_record = moved_head(head, final_found, t_info, plan.method) if head is not None else (None, None)
    origin = None if isinstance(module, PeftModule) else str(module)
    made = provenance(source, origin, t_info, s_info, probed.lmap, record, probed.similarity, layer_record, head_record)
    made = named_models(made, *names)
    made["command"] = command_line(origin, *names, options)
    extras = head_extras(moved) if options.head and moved is not None else {}
    result = student_module(source, options.head, s_info, layers, extras, made, names[1])
    if options.start == "fresh" and moved is not None:  # the control: what distillation alone reaches
        result, moved = fresh_start(result, moved, options.seed)
        result = result.with_layers(result.layers, extras=head_extras(moved) if options.head else {})
    if recovery is not None and recovery.options.steps:
        session = probed.session
        texts = session.texts if session is not None else read_probe_texts(options.probe_data, options.probe_sentences)
        hidden_map = final_hidden_map(final_found, t_info.dims, s_info.dims)
        texts, held_out = held_out_texts(options.probe_data or "", texts)
        control = fresh_start(result, moved, options.seed) if options.compare_fresh and moved is not None else None
        result, moved = recover_module(result, moved, recovery, texts, hidden_map, held_out, console)
        if control is not None:
            distilled, _ = recover_module(*control, recovery, texts, hidden_map, held_out, console)
            result.provenance["recovery"]["fresh_control"] = control_record(distilled.provenance["recovery"])
        judge_fidelity(result.provenance["recovery"], options)
        if options.head and moved is not None:
            result = result.with_layers(result.layers, extras=head_extras(moved))
    return Transferred(result, moved, final_found)


def _probe(
    plan: _Plan,
    options: TransferOptions,
    alignment: Alignment | None,
    layer_map: LayerMap | None,
    references: tuple[str, str],
    infos: tuple[ModelInfo, ModelInfo],
    console: Console | None,
) -> _Probed:
    """The layer map and the module's alignment, from one probe pass when anything needs one (a probing
    method, a CKA map), from the configs for data-free methods, or as given (``alignment``)."""
    (teacher, student), (t_info, s_info) = references, infos
    lmap = layer_map or fixed_layer_map(options.layer_map, t_info.dims.num_layers, s_info.dims.num_layers)
    if layer_map is not None:
        check_depth(layer_map, s_info.dims.num_layers)
    probed = _Probed(lmap, None, alignment, None)
    if alignment is None and (plan.method.probes or lmap is None):
        probed.session = ProbeSession(teacher, student, probe_settings(options), console)
        probing = plan.method.probes
        points = tuple(plan.points if probing else ())
        result = probed.session.probe(ProbePlan(lmap, points, plan.final and probing, plan.method.fitted))
        probed.lmap, probed.similarity = result.layer_map, result.similarity
        if probing:
            probed.found = solve_alignment(result, teacher, student, options, t_info.spec)
    if plan.method.data_free and alignment is None:
        probed.found = data_free_alignment(plan.method, teacher, student, probed.lmap, plan.points)
    return probed


def _fall_back(
    layers: LayerTensors, probed: _Probed, record: dict[str, Any] | None, options: TransferOptions
) -> tuple[LayerTensors, dict[str, Any] | None]:
    """Student layers below ``min_quality`` (``strict``: none may fall short) and outside ``transfer_layers``
    keep a fresh init."""
    layer_record = None
    if options.min_quality is not None:
        quality, measure = layer_quality(probed.lmap, probed.similarity, record)
        layers, layer_record = fall_back(layers, quality, measure, options.min_quality, options.seed)
        if options.strict and "warning" in layer_record:
            raise PeftportError(f"{layer_record['warning']} (--strict)")
    return only_layers(layers, options.transfer_layers, options.seed, layer_record)


def _checked_plan(
    source: PeftModule,
    teacher: ModelInfo,
    student: ModelInfo,
    options: TransferOptions,
    alignment: Alignment | None,
    needs_final: bool,
) -> _Plan:
    """Every check that needs only configs, before any probing; what the transfer will do."""
    check_teacher_fit(source, teacher)
    check_hostable(source, student)
    chosen_layers(options.transfer_layers, student.dims.num_layers)  # before any probing
    if options.lora_svd and not source.spec.low_rank:
        raise PeftportError(f"--lora-svd re-factors LoRA updates; this module is a {source.kind} adapter")
    if alignment is not None:
        method = align_method(alignment.details.get("method", PAPER_METHOD))
        lora_b = alignment.details.get("lora_b") or "input"
    else:
        method, lora_b = options.method, options.effective_lora_b
    if not method.aligns:
        check_widths(source, teacher, student)
        return _Plan(method, lora_b, [], False)
    check_prunable(source, teacher, student, lora_b, method.widens)
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
