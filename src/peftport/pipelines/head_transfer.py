"""Move a trained task head to a student of another width: align the final hidden states, then map the head."""

from __future__ import annotations

from typing import Any

import torch

from peftport.architectures.models import describe_model
from peftport.core.alignment import PointAlignment
from peftport.core.layer_maps import LayerMap
from peftport.core.pruning import project_head
from peftport.errors import ShapeMismatchError
from peftport.pipelines.alignment import AlignOptions, compute_alignment

FINAL_POINT = "layer:output"  # the last layer's output: what a token head reads


def final_alignment(teacher: str, student: str, options: AlignOptions) -> PointAlignment:
    """The alignment of the last layers' outputs (what a token head reads)."""
    t_dims, s_dims = describe_model(teacher).dims, describe_model(student).dims
    last_s, last_t = s_dims.num_layers - 1, t_dims.num_layers - 1
    final = LayerMap("final", tuple(() for _ in range(last_s)) + ((last_t,),))
    return compute_alignment(teacher, student, final, [FINAL_POINT], options).get(last_s, last_t, FINAL_POINT)


def aligned_head(
    head: dict[str, torch.Tensor], teacher: str, student: str, options: AlignOptions
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The teacher's head with its hidden-size axes mapped to the student's by the final layers' alignment.

    A selection keeps the aligned columns; a fitted projection applies the teacher's head to the student's
    final states mapped into the teacher's space (``W' = W @ M``). Exact in kind for token heads (a linear
    map of the last hidden states); for sentence heads that read a pooled vector it assumes the pooled
    dimensions follow the token dimensions.
    """
    t_dims = describe_model(teacher).dims
    widths = {tensor.shape[-1] for tensor in head.values() if tensor.dim() == 2}
    if t_dims.hidden_size not in widths:
        raise ShapeMismatchError(f"the teacher's head reads no {t_dims.hidden_size}-wide input: {sorted(widths)}")
    found = final_alignment(teacher, student, options)
    record = {
        "point": FINAL_POINT,
        "alignment": options.method,
        "tokens": found.tokens,
        "mean_matched_correlation": found.mean_matched,
        **({"fit": found.fit} if found.fit else {}),
    }
    return project_head(head, found.input_matrix(t_dims.hidden_size)), record
