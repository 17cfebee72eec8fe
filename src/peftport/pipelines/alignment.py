"""Compute alignments for a teacher/student pair: probe -> correlate -> assign, probe -> fit maps, or select.

Three methods: ``correlation`` (the paper's: Pearson correlation of matched tokens, then a matcher),
``projection`` (ridge least-squares maps between the two spaces, see ``core.projection``) and
``uniform`` (data-free evenly spaced selection, see ``core.selection``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from peftport.architectures.models import describe_model
from peftport.architectures.spec import ArchitectureSpec
from peftport.core.alignment import Alignment, PointAlignment
from peftport.core.correlation import CorrelationAccumulator
from peftport.core.layer_maps import LayerMap
from peftport.core.matchers import get_matcher
from peftport.core.module import BottleneckSettings, LoraSettings, PeftModule
from peftport.core.projection import MomentAccumulator, calibration_gain, relative_update
from peftport.core.pruning import ROLE_AXES, project_roles, prune_roles
from peftport.core.remap import SlotTransform
from peftport.errors import PeftportError
from peftport.pipelines.alignment_files import load_alignment, save_alignment  # noqa: F401  (re-exported)
from peftport.pipelines.alignment_methods import fitted_point, match_point, point_space, uniform_alignment
from peftport.probing.collect import ProbedModel, ProbeRequest, collect_correlations
from peftport.probing.texts import read_probe_texts
from peftport.probing.tokens import TOKEN_MATCHES

LORA_B_MODES = ("input", "output")
ALIGN_METHODS = ("correlation", "projection", "uniform")
PROBING_METHODS = ("correlation", "projection")


@dataclass(frozen=True)
class AlignOptions:
    """How to compute an alignment (defaults follow the paper: correlation, 1000 probe sentences).

    ``method``: ``correlation`` (select by correlation), ``projection`` (fitted linear maps) or ``uniform``
    (data-free; ``probe_data`` unused). The last two map LoRA B in its own output space, whatever ``lora_b``.
    """

    probe_data: str | None
    probe_sentences: int = 1000
    token_match: str = "offsets"
    lora_b: str = "input"
    batch_size: int = 32
    max_length: int = 128
    min_shared_tokens: int = 100
    device: str | None = None
    matcher: str = "hungarian"
    method: str = "correlation"
    calibrate: bool = True  # projection: give each LoRA update the teacher's size relative to its slot's output

    def __post_init__(self) -> None:
        get_matcher(self.matcher)
        pick_device(self.device)
        if self.method not in ALIGN_METHODS:
            raise PeftportError(f"unknown alignment '{self.method}': use one of {', '.join(ALIGN_METHODS)}")
        if self.method in PROBING_METHODS and not self.probe_data:
            raise PeftportError(f"{self.method} alignment needs probe texts: give --probe-data FILE")
        if self.method != "correlation":  # B is mapped in its own (output) space, never through the input's map
            object.__setattr__(self, "lora_b", "output")
        if self.token_match not in TOKEN_MATCHES:
            raise PeftportError(f"unknown token matching '{self.token_match}': use one of {', '.join(TOKEN_MATCHES)}")
        if self.lora_b not in LORA_B_MODES:
            raise PeftportError(f"unknown LoRA B alignment '{self.lora_b}': use one of {', '.join(LORA_B_MODES)}")
        if self.probe_sentences < 1 or self.batch_size < 1:
            raise PeftportError("probe sentences and batch size must be positive")


def adapter_point(settings: LoraSettings | BottleneckSettings, slot: str) -> str:
    """Probe point of a bottleneck adapter's input: ``adapter_ln:`` after the sub-layer norm, else ``adapter:``."""
    normed = isinstance(settings, BottleneckSettings) and settings.reads_normed_input
    return f"{'adapter_ln' if normed else 'adapter'}:{slot}"


def module_points(module: PeftModule, lora_b: str) -> list[str]:
    """Probe points a module's tensors need: the adapter input per bottleneck slot, ``in:``(+``out:``) per LoRA slot."""
    if module.kind == "bottleneck":
        return [adapter_point(module.settings, slot) for slot in module.slots]
    return [f"{side}:{slot}" for slot in module.slots for side in (("in", "out") if lora_b == "output" else ("in",))]


def all_points(spec: ArchitectureSpec, lora_b: str) -> list[str]:
    """Every probe point of a family, so one saved alignment serves any module."""
    sides = ("in", "out") if lora_b == "output" else ("in",)
    linear = [f"{side}:{slot}" for slot in spec.slots_of_kind("linear") for side in sides]
    bottleneck = [f"{kind}:{slot}" for slot in spec.slots_of_kind("bottleneck") for kind in ("adapter", "adapter_ln")]
    return linear + bottleneck


def load_probed(reference: str, device: torch.device) -> ProbedModel:
    """Model (eval, on ``device``), tokenizer and spec for probing."""
    from transformers import AutoModel, AutoTokenizer

    info = describe_model(reference)
    try:
        tokenizer = AutoTokenizer.from_pretrained(reference)
        model = AutoModel.from_pretrained(reference).eval().to(device)
    except (OSError, ValueError) as exc:
        raise PeftportError(f"cannot load model or tokenizer '{reference}': {str(exc).splitlines()[0]}") from None
    return ProbedModel(model, tokenizer, info.spec, device)


def pick_device(requested: str | None) -> torch.device:
    """The probing device: ``requested`` (checked: known, and CUDA present), else CUDA when there is one."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise PeftportError(f"unknown device '{requested}': use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PeftportError(f"device '{requested}' asked for, but CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise PeftportError(f"unsupported device '{requested}': use cpu, cuda or cuda:N")
    return device


def check_tokens(per_text: list[int], needed: int) -> None:
    total = sum(per_text)
    if total < needed:
        raise PeftportError(
            f"too few shared tokens to estimate correlations: found {total} over {len(per_text)} texts, "
            f"need at least {needed}; give more or longer probe texts (--probe-sentences, --probe-data)"
        )


def compute_alignment(
    teacher: str, student: str, lmap: LayerMap, points: list[str], options: AlignOptions, console: Console | None = None
) -> Alignment:
    """Probe both models on the probe texts and align every mapped layer pair and point (``uniform``: no probing)."""
    if options.method == "uniform":
        return uniform_alignment(teacher, student, lmap, points)
    texts = read_probe_texts(options.probe_data, options.probe_sentences)
    device = pick_device(options.device)
    probed_t, probed_s = load_probed(teacher, device), load_probed(student, device)
    requests = [ProbeRequest(i, t, p) for i, group in enumerate(lmap.sources) for t in group for p in points]
    fitted = options.method == "projection"
    columns = (TextColumn("probing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as progress:
        task = progress.add_task("probe", total=len(texts))
        accumulators, stats = collect_correlations(
            probed_t,
            probed_s,
            texts,
            requests,
            options.token_match,
            options.batch_size,
            options.max_length,
            on_batch=lambda n: progress.advance(task, n),
            make_accumulator=MomentAccumulator if fitted else CorrelationAccumulator,
        )
    check_tokens(stats.per_text, options.min_shared_tokens)
    t_dims, s_dims = describe_model(teacher).dims, describe_model(student).dims
    matcher = get_matcher(options.matcher)
    solved: dict[int, PointAlignment] = {}  # shared accumulators are solved once
    found = {}
    for request, accumulator in accumulators.items():
        if id(accumulator) not in solved:
            if fitted:
                solved[id(accumulator)] = fitted_point(accumulator)
            else:
                space = point_space(probed_t.spec, request.point)
                result = match_point(accumulator.pearson(), space, t_dims, s_dims, matcher)
                solved[id(accumulator)] = PointAlignment(
                    result.index, accumulator.count, result.mean_matched, result.mean_best, result.projection
                )
        found[(request.student_layer, request.teacher_layer, request.point)] = solved[id(accumulator)]
    details = {
        **asdict(options),
        "texts": len(texts),
        "shared_tokens": stats.total,
        "shared_tokens_per_text": round(stats.total / len(texts), 2),
        "device": str(device),
        "layer_map": {"method": lmap.method, "sources": [list(g) for g in lmap.sources]},
    }
    return Alignment(teacher, student, found, details)


def alignment_record(alignment: Alignment, lmap: LayerMap, points: list[str]) -> dict[str, Any]:
    """Manifest diagnostics: per student layer, teacher layers, tokens, quality figures and index maps.

    ``mean_matched_correlation`` is each point's quality: the matched correlation for ``correlation``, the
    held-out R^2 of the student -> teacher map for ``projection`` (``quality_measure`` says which).
    """
    layers = []
    for i, group in enumerate(lmap.sources):
        entries = {f"{t}/{p}": alignment.get(i, t, p).to_dict() for t in group for p in points}
        layers.append({"student_layer": i, "teacher_layers": list(group), "points": entries})
    method = alignment.details.get("method", "correlation")
    summary = {
        k: alignment.details.get(k)
        for k in ("probe_data", "texts", "shared_tokens", "token_match", "lora_b", "matcher")
    }
    entries = [e for layer in layers for e in layer["points"].values()]
    record = {
        "method": method,
        **summary,
        "quality_measure": "heldout_r2" if method == "projection" else "correlation",
        "layers": layers,
        "mean_matched_correlation": _mean([e["mean_matched_correlation"] for e in entries]),
    }
    if method == "projection":
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
        if module.kind == "bottleneck":
            found_in = found_out = alignment.get(student_layer, teacher_layer, adapter_point(module.settings, slot))
        else:
            found_in = alignment.get(student_layer, teacher_layer, f"in:{slot}")
            found_out = found_in if lora_b == "input" else alignment.get(student_layer, teacher_layer, f"out:{slot}")
        if found_in.projection is None and found_out.projection is None:
            return prune_roles(roles, found_in.index, found_out.index)
        projected = project_roles(
            roles,
            found_in.input_matrix(_teacher_width(roles, "in")),
            found_out.matrix(_teacher_width(roles, "out")),
        )
        if calibrate and module.kind == "lora" and found_in.moments is not None and found_out.moments is not None:
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
