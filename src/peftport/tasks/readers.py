"""Read labelled examples from files: CoNLL token tagging, and TSV / CSV / JSONL tables.

Gzip is detected from the bytes, so ``.gz`` works for every format.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

from peftport.errors import PeftportError


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence of a token-tagging task."""

    tokens: list[str]
    tags: list[str]


@dataclass(frozen=True)
class TextExample:
    """One (single or pair) text-classification example; ``label`` is a string label."""

    text: str
    label: str
    text_pair: str | None = None


@dataclass(frozen=True)
class TableColumns:
    """Where a table's fields are: column names (with a header) or 0-based indices (without).

    ``threshold`` turns a numeric label column into ``"1"`` (score >= threshold) or ``"0"`` (STS-B).
    """

    text: str | int
    label: str | int
    text_pair: str | int | None = None
    header: bool = True
    threshold: float | None = None


def read_text_file(path: Path, what: str = "data file") -> str:
    """The UTF-8 text of ``path``, gunzipped when it is gzip; one-line errors for missing or binary files."""
    if not path.is_file():
        raise PeftportError(f"{what} '{path}' does not exist")
    raw = path.read_bytes()
    try:
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        return data.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise PeftportError(f"{what} {path} is not (gzipped) UTF-8 text: {exc}") from None


def parse_conll(text: str) -> list[TaggedSentence]:
    """Sentences of a CoNLL text: ``token tag`` or ``idx token tag`` lines, blank lines between sentences.

    >>> parse_conll("0\\tParis\\tB-LOC\\n1\\tis\\tO\\n\\nHi O\\n")[0]
    TaggedSentence(tokens=['Paris', 'is'], tags=['B-LOC', 'O'])
    """
    sentences, tokens, tags = [], [], []
    for line in text.splitlines() + [""]:
        if not line.strip():
            if tokens:
                sentences.append(TaggedSentence(tokens, tags))
            tokens, tags = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        indexed = len(fields) >= 3 and fields[0].isdigit()
        tokens.append(fields[1] if indexed else fields[0])
        tags.append(fields[-1] if len(fields) > 1 else "O")
    return sentences


def read_conll(path: Path, limit: int | None = None) -> list[TaggedSentence]:
    """The first ``limit`` sentences of a CoNLL file (all when ``None``)."""
    sentences = parse_conll(read_text_file(path))
    if not sentences:
        raise PeftportError(f"CoNLL file {path} holds no sentences")
    return sentences[:limit]


def _rows(text: str, path: Path, header: bool) -> tuple[list[str] | None, list[list[str]]]:
    if path.name.removesuffix(".gz").endswith((".jsonl", ".json")):
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        names = list(records[0]) if records else []
        return names, [[str(r.get(n, "")) for n in names] for r in records]
    delimiter = "," if path.name.removesuffix(".gz").endswith(".csv") else "\t"
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_NONE) if r]
    return (rows[0], rows[1:]) if header and rows else (None, rows)


def _column(names: list[str] | None, key: str | int, path: Path) -> int:
    if isinstance(key, int):
        return key
    if names is None or key not in names:
        raise PeftportError(f"column '{key}' not in {path} (columns: {', '.join(names or []) or 'no header'})")
    return names.index(key)


def _label(cell: str, columns: TableColumns, path: Path) -> str:
    if columns.threshold is None:
        return cell.strip()
    try:
        return "1" if float(cell) >= columns.threshold else "0"
    except ValueError:
        raise PeftportError(f"label '{cell}' in {path} is not a number, so it cannot be thresholded") from None


def read_table(path: Path, columns: TableColumns, limit: int | None = None) -> list[TextExample]:
    """Examples of a TSV / CSV / JSONL file (JSONL: keys are the column names)."""
    names, rows = _rows(read_text_file(path), path, columns.header)
    wanted = [columns.text, columns.label] + ([columns.text_pair] if columns.text_pair is not None else [])
    index = [_column(names, key, path) for key in wanted]
    examples = []
    for number, row in enumerate(rows, start=2 if names else 1):
        if len(row) <= max(index):
            raise PeftportError(f"{path} line {number} has {len(row)} columns, need {max(index) + 1}")
        pair = row[index[2]] if len(index) == 3 else None
        examples.append(TextExample(row[index[0]], _label(row[index[1]], columns, path), pair))
        if limit is not None and len(examples) == limit:
            break
    if not examples:
        raise PeftportError(f"table {path} holds no examples")
    return examples
