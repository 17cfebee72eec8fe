"""One probing of a teacher/student pair: each model loaded once, each probe text run once through each.

Every consumer of a transfer is served by the same pass: the CKA layer map (layer outputs of the first
``CKA_MAX_TOKENS`` shared tokens), the module's alignment (statistics at its probe points for every mapped
layer pair) and the final layers' alignment (for a moved head or recovery). When the layer map is chosen
by CKA, the point statistics of the batches read before the map is known are kept and replayed into the
accumulators once it is, so no text is run twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from peftport.architectures.models import describe_model
from peftport.core.correlation import CorrelationAccumulator
from peftport.core.layer_maps import LayerMap, monotone_map
from peftport.core.points import FINAL_POINT, ProbePoint
from peftport.core.similarity import linear_cka
from peftport.errors import PeftportError
from peftport.probing.collect import ProbedModel, ProbeRequest, TokenStats, hook_target, matched_batches
from peftport.probing.hooks import Target
from peftport.probing.settings import ProbeSettings, check_tokens, pick_device
from peftport.probing.texts import read_probe_texts
from peftport.probing.tokens import gather_matched

CKA_MAP = "cka"
CKA_MAX_TOKENS = 4000
Rows = tuple[dict[Target, torch.Tensor], dict[Target, torch.Tensor]]  # matched rows per teacher, student target


@dataclass(frozen=True)
class ProbePlan:
    """What one pass collects. ``layer_map`` None: choose it by CKA first (``similarity`` is then computed).
    ``points``: per mapped layer pair; ``final``: the last layers' outputs too; ``fitted``: second moments
    (projection) instead of correlations."""

    layer_map: LayerMap | None
    points: tuple[ProbePoint, ...] = ()
    final: bool = False
    fitted: bool = False


@dataclass
class ProbeResult:
    """The statistics of one pass: the layer map used (and the CKA matrix it came from), one accumulator
    per request, and how many tokens the two tokenizers shared."""

    layer_map: LayerMap
    similarity: list[list[float]] | None
    accumulators: dict[ProbeRequest, Any]
    stats: TokenStats
    texts: int
    device: torch.device


@dataclass
class ProbeSession:
    """Probing of ``teacher`` and ``student`` with ``settings``; models and texts are loaded on first use,
    once. ``loads`` and ``passes`` count model loads and passes over the texts."""

    teacher: str
    student: str
    settings: ProbeSettings
    console: Console | None = None
    loads: int = 0
    passes: int = 0
    _models: tuple[ProbedModel, ProbedModel] | None = field(default=None, repr=False)
    _texts: list[str] | None = field(default=None, repr=False)

    @property
    def texts(self) -> list[str]:
        """The probe texts, read once."""
        if self._texts is None:
            self._texts = read_probe_texts(self.settings.probe_data, self.settings.probe_sentences)
        return self._texts

    def models(self) -> tuple[ProbedModel, ProbedModel]:
        """Teacher and student, loaded once (eval mode, on the probing device)."""
        if self._models is None:
            device = pick_device(self.settings.device)
            self._models = (load_probed(self.teacher, device), load_probed(self.student, device))
            self.loads += 2
        return self._models

    def probe(self, plan: ProbePlan) -> ProbeResult:
        """Run every probe text once through both models and collect what ``plan`` asks for."""
        texts = self.texts  # a missing or empty file fails before any model loads
        teacher, student = self.models()
        self.passes += 1
        columns = (TextColumn("probing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console or Console(stderr=True), transient=True) as progress:
            task = progress.add_task("probe", total=len(texts))
            result = _one_pass(teacher, student, texts, plan, self.settings, lambda n: progress.advance(task, n))
        check_tokens(result.stats.per_text, self.settings.min_shared_tokens)
        return result


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


def requests_for(lmap: LayerMap, plan: ProbePlan, teacher_layers: int) -> list[ProbeRequest]:
    """Every (student layer, teacher layer, point) the plan needs under ``lmap``."""
    requests = [ProbeRequest(i, t, p) for i, group in enumerate(lmap.sources) for t in group for p in plan.points]
    if plan.final:
        requests.append(ProbeRequest(lmap.num_student_layers - 1, teacher_layers - 1, FINAL_POINT))
    return requests


def _layers(probed: ProbedModel) -> int:
    return int(probed.model.config.to_dict()[probed.spec.config_keys.num_layers])


class _Accumulating:
    """Accumulators of the requests, shared between requests that read the same pair of hidden states."""

    def __init__(self, teacher: ProbedModel, student: ProbedModel, requests: list[ProbeRequest], fitted: bool):
        from peftport.core.projection import MomentAccumulator

        self.pairs = {
            r: (
                hook_target(teacher.spec, r.teacher_layer, r.point),
                hook_target(student.spec, r.student_layer, r.point),
            )
            for r in requests
        }
        self.make = MomentAccumulator if fitted else CorrelationAccumulator
        self.device = teacher.device
        self.shared: dict[tuple[Target, Target], Any] = {}

    def targets(self) -> tuple[set[Target], set[Target]]:
        return {t for t, _ in self.pairs.values()}, {s for _, s in self.pairs.values()}

    def update(self, rows: Rows) -> None:
        for pair in set(self.pairs.values()):
            t_rows, s_rows = rows[0][pair[0]], rows[1][pair[1]]
            if pair not in self.shared:
                self.shared[pair] = self.make(s_rows.shape[1], t_rows.shape[1], self.device)
            self.shared[pair].update(s_rows, t_rows)

    def result(self) -> dict[ProbeRequest, Any]:
        return {r: self.shared[pair] for r, pair in self.pairs.items() if pair in self.shared}


def _rows(t_hidden: dict, s_hidden: dict, matches: list, pairs: set[tuple[Target, Target]]) -> Rows:
    """The matched-token rows of every target the pairs read, each gathered once (however many pairs share it)."""
    teacher = {t: gather_matched(t_hidden[t], matches, "teacher") for t in {t for t, _ in pairs}}
    return teacher, {s: gather_matched(s_hidden[s], matches, "student") for s in {s for _, s in pairs}}


def _one_pass(
    teacher: ProbedModel,
    student: ProbedModel,
    texts: list[str],
    plan: ProbePlan,
    settings: ProbeSettings,
    on_batch: Callable[[int], None],
) -> ProbeResult:
    stats = TokenStats()
    t_layers, s_layers = _layers(teacher), _layers(student)

    def batches(targets: tuple[set[Target], set[Target]], skip: int = 0) -> Iterator[tuple]:
        return matched_batches(teacher, student, texts, targets, settings, stats, skip)

    similarity, lmap, replay, seen = None, plan.layer_map, [], 0
    if lmap is None:
        similarity, replay, seen = _similarity_phase(teacher, student, plan, (t_layers, s_layers), batches, on_batch)
        lmap = monotone_map(similarity, CKA_MAP)
    accumulating = _Accumulating(teacher, student, requests_for(lmap, plan, t_layers), plan.fitted)
    if accumulating.pairs:
        for rows in replay:  # the batches read while the map was being chosen
            accumulating.update(rows)
        for t_hidden, s_hidden, matches, size in batches(accumulating.targets(), skip=seen):
            accumulating.update(_rows(t_hidden, s_hidden, matches, set(accumulating.pairs.values())))
            on_batch(size)
    return ProbeResult(lmap, similarity, accumulating.result(), stats, len(texts), teacher.device)


def _candidate_pairs(
    teacher: ProbedModel, student: ProbedModel, plan: ProbePlan, layers: tuple[int, int]
) -> set[tuple[Target, Target]]:
    """Every pair of hidden states some layer map could request (all layer pairs x points, and the final)."""
    every = LayerMap(CKA_MAP, tuple(tuple(range(layers[0])) for _ in range(layers[1])))
    return set(_Accumulating(teacher, student, requests_for(every, plan, layers[0]), plan.fitted).pairs.values())


def _similarity_phase(
    teacher: ProbedModel,
    student: ProbedModel,
    plan: ProbePlan,
    layers: tuple[int, int],
    batches: Callable[..., Iterator[tuple]],
    on_batch: Callable[[int], None],
) -> tuple[list[list[float]], list[Rows], int]:
    """Linear CKA of every layer pair on the first ``CKA_MAX_TOKENS`` shared tokens (``matrix[i][t]``), the
    candidate point rows of the batches read meanwhile (to replay), and how many texts those were."""
    outputs = [
        [hook_target(p.spec, i, FINAL_POINT) for i in range(n)] for p, n in zip((teacher, student), layers, strict=True)
    ]
    candidates = _candidate_pairs(teacher, student, plan, layers)
    targets = (set(outputs[0]) | {t for t, _ in candidates}, set(outputs[1]) | {s for _, s in candidates})
    kept: list[list[list[torch.Tensor]]] = [[[] for _ in side] for side in outputs]
    replay, count, seen = [], 0, 0
    for t_hidden, s_hidden, matches, size in batches(targets):
        room = CKA_MAX_TOKENS - count
        for side, hidden, name in ((0, t_hidden, "teacher"), (1, s_hidden, "student")):
            for layer, target in enumerate(outputs[side]):
                kept[side][layer].append(gather_matched(hidden[target], matches, name)[:room].float().cpu())
        count += kept[0][0][-1].shape[0]
        if plan.points or plan.final:
            replay.append(_rows(t_hidden, s_hidden, matches, candidates))
        seen += size
        on_batch(size)
        if count >= CKA_MAX_TOKENS:
            break
    t_out, s_out = ([torch.cat(rows) if rows else torch.empty(0) for rows in side] for side in kept)
    return [[linear_cka(t, s) for t in t_out] for s in s_out], replay, seen
