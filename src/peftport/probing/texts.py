"""Unlabelled probe texts from a text file, a CoNLL or TSV task file, or a Hugging Face dataset."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from peftport.errors import PeftportError
from peftport.tasks.hub import load_hub_split
from peftport.tasks.readers import parse_conll, read_text_file

CONLL_SUFFIXES = (".conll", ".conllu", ".conllx", ".iob", ".bio")
TABLE_SUFFIXES = (".tsv", ".csv")


def _open_text(path: Path) -> str:
    return read_text_file(path, "probe file")


def _base_suffix(path: Path) -> str:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).suffix.lower()


def conll_sentences(text: str) -> list[str]:
    """Sentences of a CoNLL file (``token tag`` or ``idx token tag``), tokens joined by spaces.

    >>> conll_sentences("0\\tHello\\tO\\n1\\tParis\\tB-LOC\\n\\n0\\tBye\\tO\\n")
    ['Hello Paris', 'Bye']
    """
    return [" ".join(sentence.tokens) for sentence in parse_conll(text)]


def table_texts(text: str, delimiter: str) -> list[str]:
    """Every cell of a TSV/CSV that looks like a sentence (has a space, is not a number)."""
    rows = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_NONE)
    texts = []
    for row in rows:
        texts.extend(cell.strip() for cell in row if " " in cell.strip() and not _is_number(cell))
    return texts


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _hub_texts(name: str, limit: int) -> list[str]:
    """Texts of the first string column of a hub dataset split (``NAME[:CONFIG][@SPLIT]``, default train)."""
    split = load_hub_split(name, limit)
    columns = [c for c, f in split.features.items() if getattr(f, "dtype", None) == "string"]
    if not columns:
        raise PeftportError(f"dataset '{name}' has no text column")
    return [str(row[columns[0]]) for row in split]


def read_probe_texts(source: str | Path, limit: int) -> list[str]:
    """Up to ``limit`` non-empty texts from ``source`` (file path or hub dataset name)."""
    path = Path(source)
    if path.is_file():
        text = _open_text(path)
        suffix = _base_suffix(path)
        if suffix in CONLL_SUFFIXES:
            texts = conll_sentences(text)
        elif suffix in TABLE_SUFFIXES:
            texts = table_texts(text, "\t" if suffix == ".tsv" else ",")
        else:
            texts = [line.strip() for line in text.splitlines()]
    elif path.exists() or str(source).startswith((".", "/", "~")) or Path(str(source)).suffix:
        raise PeftportError(f"probe file '{source}' does not exist")
    else:
        texts = _hub_texts(str(source), limit)
    texts = [t for t in texts if t][:limit]
    if not texts:
        raise PeftportError(f"probe data '{source}' holds no texts")
    return texts


HELD_OUT_SHARE = 0.1
HELD_OUT_LEAST = 200


def held_out_texts(source: str | Path, trained: list[str]) -> tuple[list[str], list[str]]:
    """Texts kept apart for measuring, never trained on: ``(trained, held out)``.

    The held-out texts are the source's next texts after the ``trained`` ones (10% as many, at least 200),
    de-duplicated and none equal to a trained text, so the trained texts stay as they were. A source too short
    for that gives up the trained texts' tail instead, to hold out at most a fifth of all its texts.
    """
    want = max(math.ceil(HELD_OUT_SHARE * len(trained)), HELD_OUT_LEAST)
    seen, held = set(trained), []
    for text in read_probe_texts(source, len(trained) + 4 * want)[len(trained) :]:
        if text not in seen:
            seen.add(text)
            held.append(text)
        if len(held) == want:
            return trained, held
    missing = min(want, (len(trained) + len(held)) // 5) - len(held)
    if missing <= 0:
        return trained, held
    kept, given = trained[:-missing], trained[-missing:]
    known = set(kept) | set(held)
    for text in given:
        if text not in known:
            known.add(text)
            held.append(text)
    return kept, held
