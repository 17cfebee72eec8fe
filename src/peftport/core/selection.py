"""Data-free uniform selection of teacher dimensions (Xu et al., "Initializing Models with Larger Ones", 2024).

Weight selection keeps evenly spaced rows and columns of the larger model, the same ones in every
layer, so that what one layer writes is what the next reads. Attention spaces with heads of equal size
keep whole heads, evenly spaced.
"""

from __future__ import annotations

import torch

from peftport.errors import ShapeMismatchError


def uniform_index(teacher_dim: int, student_dim: int) -> torch.Tensor:
    """``student_dim`` evenly spaced teacher indices, first and last kept.

    >>> uniform_index(8, 4).tolist()
    [0, 2, 5, 7]
    >>> uniform_index(6, 6).tolist()
    [0, 1, 2, 3, 4, 5]
    """
    if student_dim > teacher_dim or student_dim < 1:
        raise ShapeMismatchError(
            f"uniform selection keeps {student_dim} of {teacher_dim} teacher dimensions: it needs a student "
            "no wider than the teacher (use --align projection for wider students)"
        )
    if student_dim == 1:
        return torch.zeros(1, dtype=torch.long)
    return torch.round(torch.linspace(0, teacher_dim - 1, student_dim, dtype=torch.float64)).long()


def uniform_block_index(teacher_dim: int, student_dim: int, block: int) -> torch.Tensor:
    """Evenly spaced whole blocks (attention heads) of size ``block``.

    >>> uniform_block_index(8, 4, 2).tolist()
    [0, 1, 6, 7]
    """
    if teacher_dim % block or student_dim % block:
        raise ShapeMismatchError(f"widths {teacher_dim} and {student_dim} are not whole heads of {block}")
    heads = uniform_index(teacher_dim // block, student_dim // block)
    return (heads[:, None] * block + torch.arange(block)).reshape(-1)
