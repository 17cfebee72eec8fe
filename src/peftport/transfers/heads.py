"""Move a trained task head to a student of another width: through the final layers' alignment."""

from __future__ import annotations

from typing import Any

import torch

from peftport.core.alignment import PointAlignment
from peftport.core.layer_maps import LayerMap
from peftport.core.points import FINAL_POINT
from peftport.core.pruning import project_head
from peftport.errors import ShapeMismatchError


def final_layer_map(teacher_layers: int, student_layers: int) -> LayerMap:
    """A map pairing only the last layers (what a token head reads), for aligning the head alone."""
    return LayerMap("final", tuple(() for _ in range(student_layers - 1)) + ((teacher_layers - 1,),))


def check_head_width(head: dict[str, torch.Tensor], teacher_hidden: int) -> None:
    """Refuse a head that reads nothing of the teacher's hidden size (checked before any probing)."""
    widths = {tensor.shape[-1] for tensor in head.values() if tensor.dim() == 2}
    if teacher_hidden not in widths:
        raise ShapeMismatchError(f"the teacher's head reads no {teacher_hidden}-wide input: {sorted(widths)}")


def aligned_head(
    head: dict[str, torch.Tensor], teacher_hidden: int, found: PointAlignment, method: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The teacher's head with its hidden-size axes mapped to the student's by the final layers' alignment
    ``found``.

    A selection keeps the aligned columns; a fitted projection applies the teacher's head to the student's
    final states mapped into the teacher's space (``W' = W @ M``). Exact in kind for token heads (a linear
    map of the last hidden states); for sentence heads that read a pooled vector it assumes the pooled
    dimensions follow the token dimensions.
    """
    check_head_width(head, teacher_hidden)
    record = {
        "point": FINAL_POINT,
        "alignment": method,
        "tokens": found.tokens,
        "mean_matched_correlation": found.quality,
        **({"fit": found.fit} if found.fit else {}),
    }
    return project_head(head, found.input_matrix(teacher_hidden)), record
