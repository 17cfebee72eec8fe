"""Unlabelled probe texts from a text file, a CoNLL or TSV task file, or a Hugging Face dataset."""

from __future__ import annotations

import csv
import io
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
