"""Run teacher and student on the same texts and accumulate correlations at matched tokens."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from peftport.architectures.spec import ArchitectureSpec
from peftport.core.correlation import CorrelationAccumulator
from peftport.errors import PeftportError
from peftport.probing.hooks import Target, capture
from peftport.probing.tokens import TokenMatch, gather_matched, match_by_offsets, match_by_strings

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class ProbeRequest:
    """Correlate ``point`` of student layer ``student_layer`` with that of teacher layer ``teacher_layer``."""

    student_layer: int
    teacher_layer: int
    point: str


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


def hook_target(spec: ArchitectureSpec, layer: int, point: str) -> Target:
    """Where to read hidden states for a probe point (``in:``/``out:``/``adapter:`` + slot)."""
    kind, slot = point.split(":", 1)
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


def _matched_batches(
    teacher: ProbedModel,
    student: ProbedModel,
    texts: list[str],
    targets: tuple[set[Target], set[Target]],
    token_match: str,
    batch_size: int,
    max_length: int,
    stats: TokenStats,
) -> Iterator[tuple[dict[Target, torch.Tensor], dict[Target, torch.Tensor], list[TokenMatch], int]]:
    """Per batch: teacher and student hidden states at ``targets`` and the token matches."""
    _check_fast(teacher, student, token_match)
    for batch in _batches(texts, batch_size):
        t_enc = encode_texts(teacher.tokenizer, batch, max_length, token_match == "offsets")
        s_enc = encode_texts(student.tokenizer, batch, max_length, token_match == "offsets")
        matches = _matches(batch, t_enc, s_enc, (teacher, student), token_match)
        stats.per_text.extend(len(m.teacher) for m in matches)
        yield _run(teacher, t_enc, targets[0]), _run(student, s_enc, targets[1]), matches, len(batch)


def collect_correlations(
    teacher: ProbedModel,
    student: ProbedModel,
    texts: list[str],
    requests: list[ProbeRequest],
    token_match: str = "offsets",
    batch_size: int = 32,
    max_length: int = 128,
    on_batch: Callable[[int], None] | None = None,
    make_accumulator: Callable[[int, int, torch.device], Any] = CorrelationAccumulator,
) -> tuple[dict[ProbeRequest, Any], TokenStats]:
    """Streaming statistics for every request over ``texts``: correlations by default, or what
    ``make_accumulator(d_s, d_t, device)`` accumulates (it needs an ``update(student, teacher)``).

    Requests reading the same hidden states (e.g. the inputs of query and value) share one accumulator.
    """
    pairs = {
        r: (hook_target(teacher.spec, r.teacher_layer, r.point), hook_target(student.spec, r.student_layer, r.point))
        for r in requests
    }
    shared: dict[tuple[Target, Target], Any] = {}
    stats = TokenStats()
    targets = ({t for t, _ in pairs.values()}, {s for _, s in pairs.values()})
    batches = _matched_batches(teacher, student, texts, targets, token_match, batch_size, max_length, stats)
    for t_hidden, s_hidden, matches, size in batches:
        for t_target, s_target in set(pairs.values()):
            t_rows = gather_matched(t_hidden[t_target], matches, "teacher")
            s_rows = gather_matched(s_hidden[s_target], matches, "student")
            if (t_target, s_target) not in shared:
                shared[(t_target, s_target)] = make_accumulator(s_rows.shape[1], t_rows.shape[1], teacher.device)
            shared[(t_target, s_target)].update(s_rows, t_rows)
        if on_batch is not None:
            on_batch(size)
    accumulators = {r: shared[pair] for r, pair in pairs.items()}
    return accumulators, stats


def collect_layer_outputs(
    teacher: ProbedModel,
    student: ProbedModel,
    texts: list[str],
    token_match: str = "offsets",
    batch_size: int = 32,
    max_length: int = 128,
    max_tokens: int = 4000,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor], TokenStats]:
    """Every layer's output at up to ``max_tokens`` shared tokens (float32, CPU): teacher layers, student layers."""
    layer_targets = [
        [hook_target(p.spec, layer, "layer:output") for layer in range(_num_layers(p))] for p in (teacher, student)
    ]
    kept: list[list[list[torch.Tensor]]] = [[[] for _ in targets] for targets in layer_targets]
    stats, count = TokenStats(), 0
    targets = (set(layer_targets[0]), set(layer_targets[1]))
    for t_hidden, s_hidden, matches, size in _matched_batches(
        teacher, student, texts, targets, token_match, batch_size, max_length, stats
    ):
        room = max_tokens - count
        for side, hidden, name in ((0, t_hidden, "teacher"), (1, s_hidden, "student")):
            for layer, target in enumerate(layer_targets[side]):
                kept[side][layer].append(gather_matched(hidden[target], matches, name)[:room].float().cpu())
        count += kept[0][0][-1].shape[0]
        if on_batch is not None:
            on_batch(size)
        if count >= max_tokens:
            break
    outputs = [[torch.cat(rows) if rows else torch.empty(0) for rows in side] for side in kept]
    return outputs[0], outputs[1], stats


def _num_layers(probed: ProbedModel) -> int:
    config = probed.model.config
    return int(config.to_dict()[probed.spec.config_keys.num_layers])
