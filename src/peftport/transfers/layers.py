"""The layer map of a transfer and which student layers keep a fresh init: those below ``--min-quality``, and
those outside ``--transfer-layers``."""

from __future__ import annotations

import math
from typing import Any

import torch

from peftport.core.initialisation import default_roles
from peftport.core.layer_maps import LayerMap, build_layer_map, chosen_layers
from peftport.core.module import LayerTensors
from peftport.errors import PeftportError, ShapeMismatchError
from peftport.probing.session import CKA_MAP


def fixed_layer_map(layer_map: str | LayerMap, teacher_layers: int, student_layers: int) -> LayerMap | None:
    """The map named or given (None for ``cka``: chosen while probing), checked against the student's depth."""
    if isinstance(layer_map, LayerMap):
        lmap = layer_map
    elif layer_map == CKA_MAP:
        return None
    else:
        lmap = build_layer_map(layer_map, teacher_layers, student_layers)
    check_depth(lmap, student_layers)
    return lmap


def check_depth(lmap: LayerMap, student_layers: int) -> None:
    """The map covers exactly the student's layers."""
    if lmap.num_student_layers != student_layers:
        raise ShapeMismatchError(
            f"the layer map covers {lmap.num_student_layers} layers, the student has {student_layers}"
        )


def layer_quality(
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


def fall_back(
    layers: LayerTensors, quality: list[float], measure: str, threshold: float, seed: int
) -> tuple[LayerTensors, dict[str, Any]]:
    """Layers whose quality is below ``threshold`` get the library's fresh initialisation instead."""
    low = [i for i, q in enumerate(quality) if not q >= threshold]  # NaN counts as low
    kept = _with_fresh(layers, set(low), seed)
    record = {
        "quality": quality,
        "measure": measure,
        "min_quality": threshold,
        "transferred": [i for i in sorted(layers) if i not in low],
        "default_init": [i for i in sorted(layers) if i in low],
    }
    if not record["transferred"]:
        best = max((q for q in quality if not math.isnan(q)), default=float("nan"))
        record["warning"] = (
            f"no student layer reached --min-quality {threshold:g} (best {measure} {best:.3f}): every layer "
            "keeps the library's fresh initialisation"
        )
    return kept, record


def _with_fresh(layers: LayerTensors, fresh: set[int], seed: int) -> LayerTensors:
    """``layers`` with those in ``fresh`` at the library's fresh initialisation, drawn in layer order from
    ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return {
        i: {slot: default_roles(roles, generator) for slot, roles in slots.items()} if i in fresh else slots
        for i, slots in layers.items()
    }


def _mean(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return sum(real) / len(real) if real else float("nan")


def only_layers(
    layers: LayerTensors, spec: str, seed: int, record: dict[str, Any] | None
) -> tuple[LayerTensors, dict[str, Any] | None]:
    """Student layers outside ``spec`` (``transfer_layers``) get the library's fresh initialisation; the record
    (``min_quality``'s, when given) lists which layers were transferred and which kept the fresh init."""
    if spec == "all":
        return layers, record
    chosen = set(chosen_layers(spec, len(layers)))
    kept = _with_fresh(layers, set(layers) - chosen, seed + 1)  # not the min-quality fallback's draws
    was_transferred = set(record["transferred"]) if record is not None else set(layers)
    transferred = [i for i in sorted(layers) if i in chosen and i in was_transferred]
    merged = {
        **(record or {}),
        "transfer_layers": spec,
        "transferred": transferred,
        "default_init": [i for i in sorted(layers) if i not in transferred],
    }
    return kept, merged
