"""Alignments: for each (student layer, teacher layer, probe point), which teacher dimensions to keep.

A probe point names where hidden states were taken for a slot:
``in:<slot>`` (input of a linear slot, for LoRA A), ``out:<slot>`` (its output, for LoRA B rows)
and ``adapter:<slot>`` (the input of a bottleneck adapter, for all of its tensors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from peftport.core.matchers import one_hot
from peftport.errors import PeftportError

PointKey = tuple[int, int, str]  # (student layer, teacher layer, probe point)


@dataclass(frozen=True)
class PointAlignment:
    """One index map with the figures that say how trustworthy it is."""

    index: torch.Tensor
    tokens: int
    quality: float  # matched correlation (selections) or held-out R^2 of the student -> teacher map (fitted)
    mean_best: float
    projection: torch.Tensor | None = None  # (d_s, d_t) for rotations, soft matches, fitted maps; None: ``index``
    lift: torch.Tensor | None = None  # (d_t, d_s) fitted map from student to teacher activations (projection)
    fit: dict[str, float] | None = None  # projection: held-out R^2 and ridge of both maps
    # projection, not saved: per-token mean second moments (teacher (d_t, d_t), student (d_s, d_s)) for calibration
    moments: tuple[torch.Tensor, torch.Tensor] | None = None

    def matrix(self, teacher_dim: int) -> torch.Tensor:
        """The ``(d_s, d_t)`` map from teacher to student dimensions: what a module *writes* goes through it."""
        if self.projection is not None:
            return self.projection
        return one_hot(self.index, teacher_dim)

    def input_matrix(self, teacher_dim: int) -> torch.Tensor:
        """The ``(d_s, d_t)`` matrix for axes a module *reads*: ``A' = A @ input_matrix.T``.

        A fitted map reads through the transposed lift (``A' = A @ M``, ``M`` predicting the teacher's
        activations from the student's); selections and rotations read and write through the same matrix.
        """
        return self.lift.T if self.lift is not None else self.matrix(teacher_dim)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (a projection matrix is stored beside it, see ``formats.alignment_files``)."""
        return {
            "index": self.index.tolist(),
            "tokens": self.tokens,
            "mean_matched_correlation": self.quality,  # the key of earlier versions
            "mean_best_correlation": self.mean_best,
            "projection": None if self.projection is None else list(self.projection.shape),
            **({"fit": self.fit} if self.fit is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PointAlignment:
        """Inverse of :meth:`to_dict`."""
        return cls(
            index=torch.tensor(data["index"], dtype=torch.long),
            tokens=int(data["tokens"]),
            quality=float(data["mean_matched_correlation"]),
            mean_best=float(data["mean_best_correlation"]),
            fit=data.get("fit"),
        )


@dataclass
class Alignment:
    """All index maps of one teacher/student pair, plus how they were computed."""

    teacher: str
    student: str
    points: dict[PointKey, PointAlignment]
    details: dict[str, Any] = field(default_factory=dict)

    def get(self, student_layer: int, teacher_layer: int, point: str) -> PointAlignment:
        """The index map for one pair and point, or an error naming what is missing."""
        key = (student_layer, teacher_layer, point)
        if key not in self.points:
            raise PeftportError(
                f"the alignment has no '{point}' map for student layer {student_layer} <- teacher layer "
                f"{teacher_layer}: compute it for this module and layer map (peftport align)"
            )
        return self.points[key]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (points as a list, sorted)."""
        points = [
            {"student_layer": s, "teacher_layer": t, "point": p, **self.points[(s, t, p)].to_dict()}
            for s, t, p in sorted(self.points)
        ]
        return {"teacher": self.teacher, "student": self.student, "details": self.details, "points": points}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alignment:
        """Inverse of :meth:`to_dict`."""
        points = {
            (int(p["student_layer"]), int(p["teacher_layer"]), str(p["point"])): PointAlignment.from_dict(p)
            for p in data["points"]
        }
        return cls(str(data["teacher"]), str(data["student"]), points, dict(data.get("details", {})))
