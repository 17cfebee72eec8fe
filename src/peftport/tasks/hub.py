"""Task splits from Hugging Face datasets (needs ``pip install datasets`` and internet)."""

from __future__ import annotations

from typing import Any

from peftport.errors import PeftportError
from peftport.tasks.readers import TaggedSentence, TextExample


def load_hub_split(name: str, limit: int | None) -> Any:
    """The first ``limit`` rows of ``NAME[:CONFIG][@SPLIT]`` (split default: train), with one-line errors."""
    try:
        import datasets
    except ImportError:
        raise PeftportError(
            f"dataset '{name}' is not a file; reading Hugging Face datasets needs `pip install datasets`"
        ) from None
    reference, _, split = name.partition("@")
    path, _, config = reference.partition(":")
    split = split or "train"
    try:
        return datasets.load_dataset(path, config or None, split=f"{split}[:{limit}]" if limit else split)
    except Exception as exc:  # the hub client raises many types (network, missing config, ...)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PeftportError(f"cannot load dataset '{name}': {first}") from None


def _names(split: Any, column: str) -> list[str] | None:
    feature = split.features[column]
    inner = getattr(feature, "feature", feature)
    return list(inner.names) if hasattr(inner, "names") else None


def hub_split(name: str, kind: str, columns: dict[str, Any], limit: int | None) -> list[TaggedSentence | TextExample]:
    """Examples of ``NAME[:CONFIG]@SPLIT``: tagging reads ``tokens`` + ``ner_tags``, tables the named columns."""
    split = load_hub_split(name, limit)
    if kind == "token":
        names = _names(split, "ner_tags")
        return [
            TaggedSentence(list(row["tokens"]), [names[t] if names else str(t) for t in row["ner_tags"]])
            for row in split
        ]
    label_names = _names(split, columns["label"])
    pair = columns.get("text_pair") if kind == "pair" else None
    return [
        TextExample(
            str(row[columns["text"]]),
            label_names[row[columns["label"]]] if label_names else str(row[columns["label"]]),
            str(row[pair]) if pair else None,
        )
        for row in split
    ]
