"""Task scores: span F1 for tagging (seqeval, IOB2), accuracy and macro-F1 for classification."""

from __future__ import annotations


def span_f1(true_tags: list[list[str]], predicted_tags: list[list[str]]) -> float:
    """Micro-averaged entity-span F1 (seqeval, as in the paper).

    >>> span_f1([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])
    1.0
    """
    from seqeval.metrics import f1_score

    return float(f1_score(true_tags, predicted_tags, zero_division=0))


def accuracy(true: list[int], predicted: list[int]) -> float:
    """Share of equal labels.

    >>> accuracy([0, 1, 1], [0, 1, 0])
    0.6666666666666666
    """
    if len(true) != len(predicted) or not true:
        raise ValueError("accuracy needs two equally long, non-empty label lists")
    return sum(t == p for t, p in zip(true, predicted, strict=True)) / len(true)


def macro_f1(true: list[int], predicted: list[int]) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``true`` or ``predicted``.

    >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1]), 4)
    0.7333
    """
    scores = []
    for label in sorted(set(true) | set(predicted)):
        hit = sum(t == p == label for t, p in zip(true, predicted, strict=True))
        guessed, actual = predicted.count(label), true.count(label)
        scores.append(2 * hit / (guessed + actual) if guessed + actual else 0.0)
    return sum(scores) / len(scores)
