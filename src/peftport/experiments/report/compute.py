"""Label-free against supervised at equal compute: a transferred run that recovered without labels is set
beside its supervised baseline (same model, task, language, module and seed) given the seconds the recovery
took. The baseline's seconds per step (its training time over its steps, evaluations excluded) turn those
seconds into a step count, and its learning curve, read between evaluations, gives its score there. The
baseline's rate schedule then is that of its full budget (a run stopped early, not one planned that short)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from peftport.experiments.report.cells import run_cell
from peftport.experiments.report.curves import score_at

EQUAL_COMPUTE_HEADER = [
    "cell",
    "seeds",
    "label-free (before labels)",
    "recovery s",
    "= supervised steps",
    "supervised there",
    "label-free - supervised",
]


def equal_compute_points(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per recovered transferred run with a baseline of its seed: its score before any labelled step, the
    recovery's seconds, the supervised steps those seconds buy and the baseline's score there (percent)."""

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return r["model"], r["task"], r["language"], r["module"], r.get("variant"), r["seed"]

    baselines = {key(r): r for r in records if r["kind"] == "baseline"}
    points = []
    for r in records:
        seconds = (r.get("recovery") or {}).get("seconds")
        base = baselines.get(key(r))
        if r["kind"] != "transferred" or not seconds or base is None or r["metric"] not in r.get("zero_step", {}):
            continue
        if not base.get("train_seconds") or not base.get("steps") or not base.get("curve"):
            continue
        steps = seconds / (base["train_seconds"] / base["steps"])
        points.append(
            {
                "cell": run_cell(r),
                "label_free": 100 * r["zero_step"][r["metric"]],
                "seconds": seconds,
                "steps": steps,
                "supervised": 100 * score_at(base["curve"], r["metric"], steps),
            }
        )
    return points


def equal_compute_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per cell (means over its seeds)."""
    cells: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in equal_compute_points(records):
        cells[point["cell"]].append(point)
    rows = []
    for cell, group in sorted(cells.items()):
        mean = {k: statistics.fmean(p[k] for p in group) for k in ("label_free", "seconds", "steps", "supervised")}
        rows.append(
            [cell, str(len(group)), f"{mean['label_free']:.1f}", f"{mean['seconds']:.0f}", f"{mean['steps']:.0f}",
             f"{mean['supervised']:.1f}", f"{mean['label_free'] - mean['supervised']:+.1f}"]
        )  # fmt: skip
    return rows


EQUAL_COMPUTE_NOTE = (
    "Each student that recovered without labels, before any labelled step, beside its supervised baseline (same "
    "seed) given the seconds the recovery took: the baseline's seconds per step turn them into steps, and its "
    "learning curve, read between evaluations, gives its score there (test scores in percent). The recovery's "
    "seconds include the teacher's forward passes where its outputs were not cached; the baseline needs labels, "
    "the label-free student does not."
)
