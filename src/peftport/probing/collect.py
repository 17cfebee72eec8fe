"""Run teacher and student on the same texts, batch by batch, and read hidden states at matched tokens."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from peftport.architectures.spec import ArchitectureSpec
from peftport.core.points import ProbePoint
from peftport.errors import PeftportError
from peftport.probing.hooks import Target, capture
from peftport.probing.settings import ProbeSettings
from peftport.probing.tokens import TokenMatch, match_by_offsets, match_by_strings

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class ProbeRequest:
    """Correlate ``point`` of student layer ``student_layer`` with that of teacher layer ``teacher_layer``."""

    student_layer: int
    teacher_layer: int
    point: ProbePoint


@dataclass
class ProbedModel:
    """A loaded model with its tokenizer and family spec, on a device."""

    model: torch.nn.Module
    tokenizer: Any
    spec: ArchitectureSpec
    device: torch.device


@dataclass
class TokenStats:
    """How many tokens both tokenizers shared, per text and overall."""

    per_text: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Shared tokens over all texts."""
        return sum(self.per_text)


def hook_target(spec: ArchitectureSpec, layer: int, point: ProbePoint | str) -> Target:
    """Where to read hidden states for a probe point (``in:``/``out:``/``adapter:`` + slot)."""
    point = ProbePoint.parse(point)
    kind, slot = point.kind, point.slot
    layer_path = spec.layer_template.format(layer=layer)
    if kind == "layer":  # the whole layer's output (hidden states after it)
        return layer_path, "output"
    slot_spec = spec.slots[slot]
    if kind == "adapter":
        return f"{layer_path}.{slot_spec.probe_path}", "output"
    if kind == "adapter_ln":
        if slot_spec.probe_normed is None:
            raise PeftportError(f"the {spec.name} spec gives no sub-layer norm for slot '{slot}' (probe_normed)")
        return f"{layer_path}.{slot_spec.probe_normed}", "output"
    return f"{layer_path}.{slot_spec.path}", "input" if kind == "in" else "output"


def encode_texts(tokenizer: Any, texts: list[str], max_length: int, offsets: bool = True) -> Any:
    """A padded batch with the special-tokens mask (and character offsets) that token matching needs."""
    return tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
        return_offsets_mapping=offsets,
        return_special_tokens_mask=True,
    )


def _matches(
    texts: list[str], t_enc: Any, s_enc: Any, probed: tuple[ProbedModel, ProbedModel], mode: str
) -> list[TokenMatch]:
    if mode == "offsets":
        return [
            match_by_offsets(
                texts[i],
                {k: t_enc[k][i].tolist() for k in ("offset_mapping", "special_tokens_mask")},
                {k: s_enc[k][i].tolist() for k in ("offset_mapping", "special_tokens_mask")},
            )
            for i in range(len(t_enc["input_ids"]))
        ]
    tokens = [
        (
            probed[0].tokenizer.convert_ids_to_tokens(_real_ids(t_enc, i)),
            probed[1].tokenizer.convert_ids_to_tokens(_real_ids(s_enc, i)),
        )
        for i in range(len(texts))
    ]
    return [match_by_strings(t, s) for t, s in tokens]


def _real_ids(encoded: Any, row: int) -> list[int]:
    """Token ids of one row without padding."""
    return encoded["input_ids"][row][encoded["attention_mask"][row].bool()].tolist()


def _run(probed: ProbedModel, encoded: Any, targets: set[Target]) -> dict[Target, torch.Tensor]:
    accepted = inspect.signature(probed.model.forward).parameters
    inputs = {k: v.to(probed.device) for k, v in encoded.items() if k in MODEL_INPUTS and k in accepted}
    with capture(probed.model, targets) as captured, torch.no_grad():
        probed.model(**inputs)
    return dict(captured)


def _batches(texts: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


def _check_fast(teacher: ProbedModel, student: ProbedModel, token_match: str) -> None:
    if token_match == "offsets" and not (teacher.tokenizer.is_fast and student.tokenizer.is_fast):
        raise PeftportError("offset matching needs fast tokenizers on both sides: use --token-match strings")


def matched_batches(
    teacher: ProbedModel,
    student: ProbedModel,
    texts: list[str],
    targets: tuple[set[Target], set[Target]],
    settings: ProbeSettings,
    stats: TokenStats,
    skip: int = 0,
) -> Iterator[tuple[dict[Target, torch.Tensor], dict[Target, torch.Tensor], list[TokenMatch], int]]:
    """Per batch of ``texts`` (after the first ``skip``): teacher and student hidden states at ``targets`` and
    the token matches; each batch's shared-token counts are added to ``stats``."""
    _check_fast(teacher, student, settings.token_match)
    offsets = settings.token_match == "offsets"
    for batch in _batches(texts[skip:], settings.batch_size):
        t_enc = encode_texts(teacher.tokenizer, batch, settings.max_length, offsets)
        s_enc = encode_texts(student.tokenizer, batch, settings.max_length, offsets)
        matches = _matches(batch, t_enc, s_enc, (teacher, student), settings.token_match)
        stats.per_text.extend(len(m.teacher) for m in matches)
        yield _run(teacher, t_enc, targets[0]), _run(student, s_enc, targets[1]), matches, len(batch)
