"""Find the tokens two tokenizers produce identically for the same text.

``offsets`` (default): tokens covering the same character span of the text (fast tokenizers'
offset mapping), so positions may drift apart and still match. ``strings`` (the reference
behaviour): same position and same subword after normalising the ``▁``/``Ġ``/``##`` conventions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

TOKEN_MATCHES = ("offsets", "strings")
WORD_START = ("▁", "Ġ")


@dataclass(frozen=True)
class TokenMatch:
    """Positions of shared tokens in one text: ``teacher[k]`` and ``student[k]`` are the same token."""

    teacher: list[int]
    student: list[int]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop surrounding whitespace from a span (SentencePiece-style tokens include the space before a word)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _spans(text: str, offsets: list[tuple[int, int]], special: list[int]) -> dict[tuple[int, int], int]:
    """Character span -> first position having it, skipping special and whitespace-only tokens."""
    spans: dict[tuple[int, int], int] = {}
    for position, (start, end) in enumerate(offsets):
        span = _trim(text, start, end)
        if span[1] > span[0] and not special[position]:
            spans.setdefault(span, position)
    return spans


def match_by_offsets(text: str, teacher: dict[str, Any], student: dict[str, Any]) -> TokenMatch:
    """Shared character spans of one encoded text (needs ``offset_mapping`` and ``special_tokens_mask``).

    A span's surrounding whitespace is ignored: ``▁yo`` covering `` yo`` matches ``yo``.

    >>> t = {"offset_mapping": [(0, 0), (0, 3), (3, 6)], "special_tokens_mask": [1, 0, 0]}
    >>> s = {"offset_mapping": [(0, 0), (0, 1), (1, 3), (4, 6)], "special_tokens_mask": [1, 0, 0, 0]}
    >>> match_by_offsets("Hey yo", t, s)
    TokenMatch(teacher=[2], student=[3])
    """
    t_spans = _spans(text, teacher["offset_mapping"], teacher["special_tokens_mask"])
    s_spans = _spans(text, student["offset_mapping"], student["special_tokens_mask"])
    shared = sorted(t_spans.keys() & s_spans.keys())
    return TokenMatch([t_spans[span] for span in shared], [s_spans[span] for span in shared])


def normalise_subword(token: str, marks_word_start: bool) -> str:
    """Rewrite a subword in WordPiece style: ``▁ab`` -> ``ab``, ``cd`` -> ``##cd`` (SentencePiece/BPE).

    >>> normalise_subword("▁Paris", True), normalise_subword("is", True), normalise_subword("##is", False)
    ('Paris', '##is', '##is')
    """
    if not marks_word_start:
        return token
    return token[1:] if token.startswith(WORD_START) else "##" + token


def _marks_word_start(tokens: list[str]) -> bool:
    return any(t.startswith(WORD_START) for t in tokens)


def match_by_strings(teacher_tokens: list[str], student_tokens: list[str]) -> TokenMatch:
    """Positions where both tokenizers have the same normalised subword (the reference behaviour)."""
    t_norm = [normalise_subword(t, _marks_word_start(teacher_tokens)) for t in teacher_tokens]
    s_norm = [normalise_subword(s, _marks_word_start(student_tokens)) for s in student_tokens]
    same = [i for i, (t, s) in enumerate(zip(t_norm, s_norm, strict=False)) if t == s]
    return TokenMatch(same, same)


def gather_matched(hidden: torch.Tensor, matches: list[TokenMatch], side: str) -> torch.Tensor:
    """Rows of ``hidden`` ``(batch, seq, d)`` at the matched positions, as ``(tokens, d)``."""
    rows = [b for b, m in enumerate(matches) for _ in getattr(m, side)]
    cols = [p for m in matches for p in getattr(m, side)]
    return hidden[torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)]
