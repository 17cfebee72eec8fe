"""Compute, save and load alignments (probe -> correlate -> assign) for a teacher/student pair."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from peftport.architectures.models import describe_model
from peftport.architectures.spec import HEAD_DIMENSIONS, ArchitectureSpec, ModelDims
from peftport.core.alignment import Alignment, PointAlignment
from peftport.core.layer_maps import LayerMap
from peftport.core.matchers import Match, block_match, get_matcher
from peftport.core.module import BottleneckSettings, LoraSettings, PeftModule
from peftport.core.pruning import ROLE_AXES, project_roles, prune_roles
from peftport.core.remap import SlotTransform
from peftport.errors import PeftportError
from peftport.formats.atomic import atomic_directory
from peftport.probing.collect import ProbedModel, ProbeRequest, collect_correlations
from peftport.probing.texts import read_probe_texts
from peftport.probing.tokens import TOKEN_MATCHES

LORA_B_MODES = ("input", "output")
ALIGNMENT_FILE = "alignment.json"
PROJECTIONS_FILE = "projections.safetensors"


@dataclass(frozen=True)
class AlignOptions:
    """How to compute a correlation alignment (defaults follow the paper: 1000 probe sentences)."""

    probe_data: str
    probe_sentences: int = 1000
    token_match: str = "offsets"
    lora_b: str = "input"
    batch_size: int = 32
    max_length: int = 128
    min_shared_tokens: int = 100
    device: str | None = None
    matcher: str = "hungarian"

    def __post_init__(self) -> None:
        get_matcher(self.matcher)
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
    return torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))


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
    """Probe both models on the probe texts and assign dimensions for every mapped layer pair and point."""
    texts = read_probe_texts(options.probe_data, options.probe_sentences)
    device = pick_device(options.device)
    probed_t, probed_s = load_probed(teacher, device), load_probed(student, device)
    requests = [ProbeRequest(i, t, p) for i, group in enumerate(lmap.sources) for t in group for p in points]
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
        )
    check_tokens(stats.per_text, options.min_shared_tokens)
    t_dims, s_dims = describe_model(teacher).dims, describe_model(student).dims
    matcher = get_matcher(options.matcher)
    solved: dict[int, PointAlignment] = {}  # shared accumulators are solved once
    found = {}
    for request, accumulator in accumulators.items():
        if id(accumulator) not in solved:
            space = point_space(probed_t.spec, request.point)
            result = _match(accumulator.pearson(), space, t_dims, s_dims, matcher)
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


def point_space(spec: ArchitectureSpec, point: str) -> str:
    """The dimension a probe point lives in: a linear slot's input or output, else the hidden states."""
    kind, slot = point.split(":", 1)
    if kind in ("in", "out") and slot in spec.slots:
        return spec.slots[slot].in_dim if kind == "in" else spec.slots[slot].out_dim
    return "hidden"


def _match(correlation: torch.Tensor, space: str, teacher: ModelDims, student: ModelDims, matcher) -> Match:
    """Match dimensions; attention spaces of models with known heads are matched head by head."""
    if space not in HEAD_DIMENSIONS or teacher.head_dim is None or student.head_dim is None:
        return matcher(correlation)
    if teacher.head_dim != student.head_dim:
        raise PeftportError(
            f"attention heads differ in size (teacher {teacher.head_dim}, student {student.head_dim}): head-aware "
            "alignment keeps each head whole, so it needs equal head dimensions"
        )
    return block_match(correlation, teacher.head_dim, matcher)


def save_alignment(alignment: Alignment, directory: str | Path, force: bool = False) -> Path:
    """Write ``alignment.json`` (and soft or rotation matrices in ``projections.safetensors``), atomically."""
    from safetensors.torch import save_file

    with atomic_directory(Path(directory), force=force) as staging:
        text = json.dumps(alignment.to_dict(), indent=1, allow_nan=True)
        (staging / ALIGNMENT_FILE).write_text(text + "\n", encoding="utf-8")
        matrices = {
            f"{s}/{t}/{p}": a.projection.clone()
            for (s, t, p), a in alignment.points.items()
            if a.projection is not None
        }
        if matrices:
            save_file(matrices, str(staging / PROJECTIONS_FILE))
    return Path(directory)


def load_alignment(path: str | Path) -> Alignment:
    """Read an alignment saved by :func:`save_alignment` (directory or the JSON file itself)."""
    path = Path(path)
    file = path / ALIGNMENT_FILE if path.is_dir() else path
    if not file.is_file():
        raise PeftportError(f"no alignment at '{path}' (expected a directory with {ALIGNMENT_FILE})")
    try:
        alignment = Alignment.from_dict(json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise PeftportError(f"corrupt alignment file {file}: {exc}") from None
    return _with_projections(alignment, file.parent / PROJECTIONS_FILE)


def _with_projections(alignment: Alignment, file: Path) -> Alignment:
    from dataclasses import replace

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        return alignment
    try:
        matrices = load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise PeftportError(f"corrupt projections file {file}: {exc}") from None
    for key, matrix in matrices.items():
        s, t, point = key.split("/", 2)
        point_key = (int(s), int(t), point)
        if point_key in alignment.points:
            alignment.points[point_key] = replace(alignment.points[point_key], projection=matrix)
    return alignment


def alignment_record(alignment: Alignment, lmap: LayerMap, points: list[str]) -> dict[str, Any]:
    """Manifest diagnostics: per student layer, teacher layers, tokens, correlations and index maps."""
    layers = []
    for i, group in enumerate(lmap.sources):
        entries = {f"{t}/{p}": alignment.get(i, t, p).to_dict() for t in group for p in points}
        layers.append({"student_layer": i, "teacher_layers": list(group), "points": entries})
    summary = {
        k: alignment.details.get(k)
        for k in ("probe_data", "texts", "shared_tokens", "token_match", "lora_b", "matcher")
    }
    return {
        "method": "correlation",
        **summary,
        "layers": layers,
        "mean_matched_correlation": _mean(
            [e["mean_matched_correlation"] for layer in layers for e in layer["points"].values()]
        ),
    }


def _mean(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return sum(real) / len(real) if real else float("nan")


def _teacher_width(roles: dict[str, torch.Tensor], space: str) -> int:
    for role, tensor in roles.items():
        for axis, side in ROLE_AXES.get(role, {}).items():
            if side == space:
                return tensor.shape[axis]
    return 0


def prune_transform(module: PeftModule, alignment: Alignment, lora_b: str) -> SlotTransform:
    """The per-(student layer, teacher layer) pruning that :func:`remap_layers` applies before averaging.

    Permutation alignments select teacher entries; rotations and soft matches project them.
    """

    def transform(student_layer: int, teacher_layer: int, slot: str, roles: dict[str, torch.Tensor]) -> dict:
        if module.kind == "bottleneck":
            found_in = found_out = alignment.get(student_layer, teacher_layer, adapter_point(module.settings, slot))
        else:
            found_in = alignment.get(student_layer, teacher_layer, f"in:{slot}")
            found_out = found_in if lora_b == "input" else alignment.get(student_layer, teacher_layer, f"out:{slot}")
        if found_in.projection is None and found_out.projection is None:
            return prune_roles(roles, found_in.index, found_out.index)
        return project_roles(
            roles,
            found_in.matrix(_teacher_width(roles, "in")),
            found_out.matrix(_teacher_width(roles, "out")),
        )

    return transform
