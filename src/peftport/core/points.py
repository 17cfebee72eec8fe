"""Probe points: where in a layer hidden states are read for a slot.

A point is a small typed value that still reads and compares as its text, so saved alignments (whose
keys are that text) and manifests keep their format::

    >>> p = ProbePoint("in", "attn_q")
    >>> p, p.kind, p.slot
    ('in:attn_q', 'in', 'attn_q')
    >>> ProbePoint.parse("layer:output") == FINAL_POINT
    True
"""

from __future__ import annotations

from typing import Literal

from peftport.errors import PeftportError

PointKind = Literal["in", "out", "adapter", "adapter_ln", "layer"]
POINT_KINDS: tuple[str, ...] = ("in", "out", "adapter", "adapter_ln", "layer")


class ProbePoint(str):
    """``kind:slot``: ``in``/``out`` of a linear slot (LoRA A / B), ``adapter``/``adapter_ln`` (what a
    bottleneck adapter reads, raw or after the sub-layer norm) or ``layer:output`` (the layer's output)."""

    __slots__ = ()

    def __new__(cls, kind: str, slot: str) -> ProbePoint:
        if kind not in POINT_KINDS:
            raise PeftportError(f"unknown probe point kind '{kind}': use one of {', '.join(POINT_KINDS)}")
        if not slot or ":" in slot:
            raise PeftportError(f"a probe point names one slot, not '{slot}'")
        return super().__new__(cls, f"{kind}:{slot}")

    @classmethod
    def parse(cls, text: str) -> ProbePoint:
        """The point written as ``kind:slot`` (as in saved alignments)."""
        kind, sep, slot = str(text).partition(":")
        if not sep:
            raise PeftportError(f"'{text}' is not a probe point (kind:slot)")
        return cls(kind, slot)

    @property
    def kind(self) -> str:
        """What is read: ``in``, ``out``, ``adapter``, ``adapter_ln`` or ``layer``."""
        return self.partition(":")[0]

    @property
    def slot(self) -> str:
        """The slot read (``output`` for a whole layer)."""
        return self.partition(":")[2]


FINAL_POINT = ProbePoint("layer", "output")  # a layer's output; the last one is what a token head reads
