"""Learning-curve figures: when a curve first reaches a score (at or between evaluations), its score at a step,
its area, and the median reach over seeds."""

from __future__ import annotations

import statistics


def first_reaching(curve: list[dict[str, float]], metric: str, target: float) -> float | None:
    """The first evaluated step at which the learning curve is at or above ``target``; ``None`` if none is."""
    return next((point["step"] for point in curve if point.get(metric, float("-inf")) >= target), None)


def crossing_step(curve: list[dict[str, float]], metric: str, target: float) -> float | None:
    """The step at which the learning curve first reaches ``target``, read between the evaluations around it by a
    straight line (the first evaluated step itself when the one before it is missing); ``None`` if it never does.
    A smooth curve that flattens crosses earlier than the line says; a noisy one can cross either side of it
    (benchmarks/reach_reading.py measures the error against dense evaluations).

    >>> crossing_step([{"step": 0, "f1": 0.0}, {"step": 312, "f1": 0.4}, {"step": 625, "f1": 0.6}], "f1", 0.5)
    468.5
    >>> crossing_step([{"step": 0, "f1": 0.6}], "f1", 0.5), crossing_step([{"step": 0, "f1": 0.1}], "f1", 0.5)
    (0.0, None)
    """
    points = [(p["step"], p[metric]) for p in curve if metric in p]
    for index, (step, score) in enumerate(points):
        if score >= target:
            if index == 0:
                return float(step)
            before, below = points[index - 1]
            return before + (step - before) * (target - below) / (score - below)
    return None


def score_at(curve: list[dict[str, float]], metric: str, step: float) -> float:
    """The learning curve's score at ``step``, on the straight line between the evaluations around it (the last
    evaluation's score past the end).

    >>> score_at([{"step": 0, "f1": 0.0}, {"step": 10, "f1": 0.4}, {"step": 20, "f1": 0.6}], "f1", 15)
    0.5
    """
    points = sorted((p["step"], p[metric]) for p in curve if metric in p)
    for (before, low), (after, high) in zip(points, points[1:], strict=False):
        if before <= step <= after:
            return low + (high - low) * (step - before) / max(after - before, 1e-9)
    return points[-1][1] if step > points[-1][0] else points[0][1]


def area_under_curve(curve: list[dict[str, float]], metric: str) -> float:
    """The learning curve's area (trapezoids over steps) divided by its last step: the mean score over training.

    >>> area_under_curve([{"step": 0, "f1": 0.0}, {"step": 10, "f1": 0.5}, {"step": 20, "f1": 0.5}], "f1")
    0.375
    """
    points = [(p["step"], p[metric]) for p in curve if metric in p]
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return float("nan")
    area = sum((b - a) * (u + v) / 2 for (a, u), (b, v) in zip(points, points[1:], strict=False))
    return area / (points[-1][0] - points[0][0])


def median_reach(shares: list[float]) -> float | None:
    """Median over seeds of the steps (or share of the budget) needed to reach the baseline's final score, a seed
    that never reaches it counting as infinitely many; ``None`` when the median itself is never reached.

    >>> median_reach([0.2, 0.4, float("inf")])
    0.4
    >>> median_reach([0.2, float("inf"), float("inf")]) is None
    True
    """
    if not shares:
        return None
    middle = statistics.median(shares)
    return None if middle == float("inf") else middle
