"""Turn examples into model inputs: sub-token labels for tagging (first sub-token), ids for classification."""

from __future__ import annotations

from typing import Any

from peftport.tasks.data import TaskData
from peftport.tasks.readers import TaggedSentence, TextExample

IGNORED = -100  # label of sub-tokens after the first and of special tokens (the loss skips them)


def encode_tagged(sentence: TaggedSentence, tokenizer: Any, labels: dict[str, int], max_length: int) -> dict:
    """Input ids with the tag of each word on its first sub-token and ``IGNORED`` elsewhere."""
    enc = tokenizer(sentence.tokens, is_split_into_words=True, truncation=True, max_length=max_length)
    targets, seen = [], set()
    for word in enc.word_ids():
        first = word is not None and word not in seen
        targets.append(labels[sentence.tags[word]] if first else IGNORED)
        seen.add(word)
    return {**enc, "labels": targets}


def encode_text(example: TextExample, tokenizer: Any, labels: dict[str, int], max_length: int) -> dict:
    """Input ids of a text (pair) with its label id."""
    enc = tokenizer(example.text, example.text_pair, truncation=True, max_length=max_length)
    return {**enc, "labels": labels[example.label]}


def encode_split(data: TaskData, split: str, tokenizer: Any, max_length: int) -> list[dict]:
    """Encoded examples of ``split`` (``train`` or ``test``)."""
    labels = {label: i for i, label in enumerate(data.labels)}
    examples = data.train if split == "train" else data.test
    return [
        encode_tagged(e, tokenizer, labels, max_length)
        if isinstance(e, TaggedSentence)
        else encode_text(e, tokenizer, labels, max_length)
        for e in examples
    ]
