"""Automatic layer maps: compare every teacher layer with every student layer on probe texts (linear CKA)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from peftport.core.layer_maps import LayerMap, monotone_map
from peftport.core.similarity import linear_cka
from peftport.pipelines.alignment import AlignOptions, check_tokens, load_probed, pick_device
from peftport.probing.collect import collect_layer_outputs
from peftport.probing.texts import read_probe_texts

CKA_MAP = "cka"
CKA_MAX_TOKENS = 4000


def layer_similarity(
    teacher: str, student: str, options: AlignOptions, console: Console | None = None
) -> list[list[float]]:
    """Linear CKA of layer outputs at shared tokens: ``matrix[i][t]`` for student layer i, teacher layer t."""
    texts = read_probe_texts(options.probe_data, options.probe_sentences)
    device = pick_device(options.device)
    probed_t, probed_s = load_probed(teacher, device), load_probed(student, device)
    columns = (TextColumn("comparing layers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as progress:
        task = progress.add_task("cka", total=len(texts))
        t_out, s_out, stats = collect_layer_outputs(
            probed_t,
            probed_s,
            texts,
            options.token_match,
            options.batch_size,
            options.max_length,
            CKA_MAX_TOKENS,
            on_batch=lambda n: progress.advance(task, n),
        )
    check_tokens(stats.per_text, options.min_shared_tokens)
    return [[linear_cka(t, s) for t in t_out] for s in s_out]


def cka_layer_map(
    teacher: str, student: str, options: AlignOptions, console: Console | None = None
) -> tuple[LayerMap, list[list[float]]]:
    """The order-preserving map with the highest total CKA, and the CKA matrix it was chosen from."""
    similarity = layer_similarity(teacher, student, options, console)
    return monotone_map(similarity, CKA_MAP), similarity
