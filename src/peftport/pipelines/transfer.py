"""Matching transfer: a teacher module becomes the initial module of a same-width student."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from peftport.architectures.models import ModelInfo, describe_model
from peftport.architectures.registry import spec_by_name
from peftport.architectures.spec import ArchitectureSpec
from peftport.core.alignment import Alignment
from peftport.core.initialisation import default_roles
from peftport.core.layer_maps import LayerMap, build_layer_map
from peftport.core.lowrank import merge_by_svd
from peftport.core.module import LayerTensors, PeftModule
from peftport.core.remap import Merge, mean_roles, remap_layers
from peftport.errors import ArchitectureError, ModuleFormatError, PeftportError, ShapeMismatchError
from peftport.formats.peft_lora import NAME as PEFT_FORMAT
from peftport.formats.peft_lora import head_extras, task_head
from peftport.formats.registry import detect_format, load_module
from peftport.pipelines.alignment import (
    AlignOptions,
    alignment_record,
    compute_alignment,
    module_points,
    prune_transform,
)
from peftport.pipelines.head_transfer import aligned_head
from peftport.pipelines.layer_matching import CKA_MAP, cka_layer_map
from peftport.pipelines.provenance import provenance
from peftport.pipelines.recovery import RecoveryOptions, recovered

# Options tied to the teacher model or its task head: peft refuses a SEQ_CLS module whose file lacks
# the head weights it lists in modules_to_save, so they are kept only when the head moves too.
MODEL_BOUND_OPTIONS = ("model_class", "revision", "task_type", "modules_to_save")
HEAD_OPTIONS = ("task_type", "modules_to_save")


def same_layout(a: ArchitectureSpec, b: ArchitectureSpec) -> bool:
    """Whether two families name layers and slots identically (bert, roberta, electra ...)."""
    return a.layer_template == b.layer_template and a.slots == b.slots


def _check_teacher_fit(module: PeftModule, teacher: ModelInfo) -> None:
    if module.family != teacher.spec.name and not same_layout(teacher.spec, spec_by_name(module.family)):
        raise ModuleFormatError(f"the module is for a {module.family} model, the teacher is a {teacher.spec.name}")
    beyond = [i for i in module.layer_indices if i >= teacher.dims.num_layers]
    if beyond:
        raise ShapeMismatchError(
            f"the module has layer {beyond[0]}, the teacher only {teacher.dims.num_layers} layers: wrong --teacher?"
        )
    if module.hidden_size and module.hidden_size != teacher.dims.hidden_size:
        raise ShapeMismatchError(f"the module is {module.hidden_size} wide, the teacher {teacher.dims.hidden_size}")


def _check_widths(module: PeftModule, teacher: ModelInfo, student: ModelInfo) -> None:
    t, s = teacher.dims, student.dims
    if t.hidden_size < s.hidden_size:
        raise ShapeMismatchError(
            f"hidden sizes differ (teacher {t.hidden_size}, student {s.hidden_size}): the student is wider; "
            "fit maps between the two spaces (--align projection --probe-data FILE)"
        )
    if t.hidden_size != s.hidden_size:
        raise ShapeMismatchError(
            f"hidden sizes differ (teacher {t.hidden_size}, student {s.hidden_size}): matching transfer needs "
            "equal widths; align them (--align correlation|projection --probe-data FILE, or --align uniform)"
        )
    for slot in module.slots:
        for dim in (teacher.spec.slots[slot].in_dim, teacher.spec.slots[slot].out_dim):
            if t.width(dim) != s.width(dim):
                raise ShapeMismatchError(
                    f"slot {slot} needs equal {dim} sizes (teacher {t.width(dim)}, student {s.width(dim)})"
                )


def _check_prunable(module: PeftModule, teacher: ModelInfo, student: ModelInfo, lora_b: str, method: str) -> None:
    """Selecting transfers keep a subset of teacher dimensions, so no student width may exceed the teacher's
    (fitted projections map any width to any other)."""
    if method == "projection":
        return
    for slot in module.slots:
        spec = teacher.spec.slots[slot]
        for dim in (spec.in_dim, spec.out_dim):
            if student.dims.width(dim) > teacher.dims.width(dim):
                raise ShapeMismatchError(
                    f"the student's {dim} size ({student.dims.width(dim)}) exceeds the teacher's "
                    f"({teacher.dims.width(dim)}): prune-and-align only moves modules to narrower models; "
                    "use --align projection for a wider student"
                )
        if module.kind == "lora" and lora_b == "input" and spec.in_dim != spec.out_dim:
            raise ShapeMismatchError(
                f"LoRA B of slot {slot} lives in the {spec.out_dim} space, not its input's: use --lora-b output"
            )


def _check_hostable(module: PeftModule, student: ModelInfo) -> None:
    missing = [slot for slot in module.slots if slot not in student.spec.slots]
    if missing:
        raise ArchitectureError(f"student family {student.spec.name} cannot host module slot(s) {missing}")


def _teacher_head(source: PeftModule) -> dict[str, torch.Tensor]:
    saved = source.format_options.get("modules_to_save")
    if source.format_options.get("source_format") != PEFT_FORMAT or not saved:
        raise PeftportError("moving the head needs a peft module saved with its task head (modules_to_save)")
    head = task_head(source)
    if not head:
        raise PeftportError(f"the module lists modules_to_save {saved} but its file holds no head weights")
    return head


def _moved_head(
    source: PeftModule, teacher: str, student: str, align: AlignOptions | Alignment | None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The head for the student, as peft extras: copied for equal widths, else aligned by the last layers."""
    head = _teacher_head(source)
    if align is None:
        return head_extras(head), {"method": "copied"}
    if not isinstance(align, AlignOptions):
        raise PeftportError("a saved alignment holds no final-layer alignment for the head: probe with the transfer")
    moved, record = aligned_head(head, teacher, student, align)
    return head_extras(moved), {"method": "aligned", **record}


def _aligned(
    source: PeftModule,
    teacher: ModelInfo,
    student: ModelInfo,
    lmap: LayerMap,
    align: AlignOptions | Alignment,
    merge: Merge,
) -> tuple[LayerTensors, dict[str, Any]]:
    details = asdict(align) if isinstance(align, AlignOptions) else align.details
    lora_b, method = details.get("lora_b") or "input", details.get("method", "correlation")
    _check_prunable(source, teacher, student, lora_b, method)
    points = module_points(source, lora_b)
    calibrate = bool(details.get("calibrate", False)) and method == "projection"
    if isinstance(align, AlignOptions):
        align = compute_alignment(teacher.reference, student.reference, lmap, points, align)
    gains: dict[str, float] = {}
    layers = remap_layers(source.layers, lmap, prune_transform(source, align, lora_b, calibrate, gains), merge)
    record = alignment_record(align, lmap, points)
    if method == "projection":
        record["calibration"] = {"calibrated": bool(gains), "gains": gains}
    return layers, record


def _layer_map(
    layer_map: str | LayerMap, teacher: ModelInfo, student: ModelInfo, probe: AlignOptions | None
) -> tuple[LayerMap, list[list[float]] | None]:
    t_layers, s_layers = teacher.dims.num_layers, student.dims.num_layers
    if isinstance(layer_map, LayerMap):
        lmap, similarity = layer_map, None
    elif layer_map == CKA_MAP:
        if probe is None or not probe.probe_data:
            raise PeftportError("the 'cka' layer map compares both models on probe texts: give --probe-data")
        lmap, similarity = cka_layer_map(teacher.reference, student.reference, probe)
    else:
        lmap, similarity = build_layer_map(layer_map, t_layers, s_layers), None
    if lmap.num_student_layers != s_layers:
        raise ShapeMismatchError(f"the layer map covers {lmap.num_student_layers} layers, the student has {s_layers}")
    return lmap, similarity


def _layer_quality(
    lmap: LayerMap, similarity: list[list[float]] | None, record: dict[str, Any] | None
) -> tuple[list[float], str]:
    """Per student layer: mean matched correlation (aligned transfers) or CKA of its teacher layers."""
    if record is not None:
        by_layer = {e["student_layer"]: e for e in record["layers"]}
        values = [
            _mean([p["mean_matched_correlation"] for p in by_layer[i]["points"].values()])
            for i in range(lmap.num_student_layers)
        ]
        return values, "mean_matched_correlation"
    if similarity is not None:
        return [_mean([similarity[i][t] for t in group]) for i, group in enumerate(lmap.sources)], "linear_cka"
    raise PeftportError(
        "--min-quality needs a per-layer quality: use --layer-map cka or --align correlation (SKIP/AVG of equal "
        "widths measure nothing)"
    )


def _fall_back(
    layers: LayerTensors, quality: list[float], measure: str, threshold: float, seed: int
) -> tuple[LayerTensors, dict[str, Any]]:
    """Layers whose quality is below ``threshold`` get the library's fresh initialisation instead."""
    generator = torch.Generator().manual_seed(seed)
    low = [i for i, q in enumerate(quality) if not q >= threshold]  # NaN counts as low
    kept = {
        i: {slot: default_roles(roles, generator) for slot, roles in slots.items()} if i in low else slots
        for i, slots in layers.items()
    }
    record = {
        "quality": quality,
        "measure": measure,
        "min_quality": threshold,
        "transferred": [i for i in sorted(layers) if i not in low],
        "default_init": [i for i in sorted(layers) if i in low],
    }
    return kept, record


def transfer(
    module: PeftModule | str | Path,
    teacher: str,
    student: str,
    layer_map: str | LayerMap = "skip",
    align: AlignOptions | Alignment | None = None,
    probe: AlignOptions | None = None,
    min_quality: float | None = None,
    lora_svd: bool = False,
    seed: int = 0,
    head: bool = False,
    recover: RecoveryOptions | None = None,
) -> PeftModule:
    """Initial student module from a teacher module.

    ``module`` is a `PeftModule` or a module directory (peft or AdapterHub); ``teacher`` and
    ``student`` are hub names or local model directories; ``layer_map`` is a name from
    ``LAYER_MAPS`` (``skip``, ``avg`` ...), ``cka`` (best monotone map by linear CKA of layer
    outputs on probe texts), an explicit list like ``"0,2,4"`` or a `LayerMap`.
    Without ``align`` the models must have equal widths and only their configs are read.
    With ``align`` (`AlignOptions` to probe now, or a saved `Alignment`) each teacher layer is
    pruned (or projected, with the Procrustes and Sinkhorn matchers) to the student's widths before
    the layer map is applied. ``probe`` gives the probe texts for ``cka`` (default: ``align``'s).
    ``min_quality``: student layers whose quality (mean matched correlation, or CKA) is lower keep
    the library's fresh initialisation (seeded by ``seed``). ``lora_svd``: merge a LoRA group through
    its mean update ``B @ A``, re-factored to the rank by truncated SVD, instead of averaging factors.
    Tensors outside the transformer layers (task heads) are dropped and listed in the provenance, unless
    ``head``: then a peft module's task head (``modules_to_save``) moves too, copied for equal widths and
    otherwise pruned (or projected) by an alignment of the last layers' outputs. ``recover``: then train
    the student's module (and moved head) label-free on the probe texts towards the teacher's outputs.
    """
    if not isinstance(module, PeftModule):
        detect_format(module)  # a bad module directory fails before any model is looked up
    teacher_info, student_info = describe_model(teacher), describe_model(student)
    origin = None if isinstance(module, PeftModule) else str(module)
    source = module if isinstance(module, PeftModule) else load_module(module, family=teacher_info.spec.name)
    _check_teacher_fit(source, teacher_info)
    _check_hostable(source, student_info)
    if lora_svd and source.kind != "lora":
        raise PeftportError("--lora-svd re-factors LoRA updates; this module is a bottleneck adapter")
    merge = merge_by_svd if lora_svd else mean_roles
    probe = probe or (align if isinstance(align, AlignOptions) else None)
    if align is None:
        _check_widths(source, teacher_info, student_info)
    lmap, similarity = _layer_map(layer_map, teacher_info, student_info, probe)
    record = None
    if align is None:
        layers = remap_layers(source.layers, lmap, merge=merge)
    else:
        layers, record = _aligned(source, teacher_info, student_info, lmap, align, merge)
    layer_record = None
    if min_quality is not None:
        quality, measure = _layer_quality(lmap, similarity, record)
        layers, layer_record = _fall_back(layers, quality, measure, min_quality, seed)
    extras, head_record = _moved_head(source, teacher, student, align) if head else ({}, None)
    bound = [k for k in MODEL_BOUND_OPTIONS if not (head and k in HEAD_OPTIONS)]
    options = {k: v for k, v in source.format_options.items() if k not in bound}
    result = source.with_layers(
        layers,
        family=student_info.spec.name,
        base_model=student,
        model_type=student_info.config.model_type,
        hidden_size=student_info.dims.hidden_size,
        num_layers=student_info.dims.num_layers,
        extras=extras,
        format_options=options,
        provenance=provenance(
            source, origin, teacher_info, student_info, lmap, record, similarity, layer_record, head_record
        ),
    )
    if recover is not None and recover.steps:
        result = recovered(result, module, teacher, student, align, probe, recover)
    return result


def _mean(values: list[float]) -> float:
    real = [v for v in values if v == v]
    return sum(real) / len(real) if real else float("nan")
