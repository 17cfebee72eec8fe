"""How well sparse evaluations tell when a transferred student reaches its baseline's final score (issue 17).

    python benchmarks/reach_reading.py FOLDER [--points 8] [--out FILE]

For an experiment folder whose students were evaluated densely (``eval_every``) as well as at ``eval_log``'s
doubling steps, prints one line per transferred run: two measurements on its dense curve, to ``eval_every``
steps, of when it reaches the baseline's final score (the first evaluation at or above it, which a lucky
evaluation can make early, and the first from which every later one stays at or above it), and the two readings
the report makes from the doubling steps alone (the first doubling step at or above it, and the straight line
between the doubling steps around it, ``summary.crossing_step``). A closing line gives the medians over the
runs as shares of the budget (a run that never reaches it counting as never) and the error of each sparse
reading against the dense "stays" measurement. Lines are also appended to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from peftport.experiments.report.summary import crossing_step, first_reaching, median_reach  # noqa: E402
from peftport.experiments.store import read_index  # noqa: E402
from peftport.experiments.training.options import log_steps  # noqa: E402


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--points", type=int, default=8, help="the eval_log the sparse reading keeps")
    parser.add_argument("--out", type=Path)
    return parser.parse_args()


def stays_at_or_above(curve: list[dict[str, float]], metric: str, target: float) -> float | None:
    """The first evaluated step from which every later evaluation is at or above ``target``."""
    since = None
    for point in curve:
        if point.get(metric, float("-inf")) >= target:
            since = float(point["step"]) if since is None else since
        else:
            since = None
    return since


def readings(run: dict[str, Any], baseline: dict[str, Any], points: int) -> dict[str, Any]:
    """The dense measurement and the two sparse readings of one transferred run, in steps (None: never)."""
    metric, budget = run["metric"], int(run["steps"])
    target = baseline["final"][metric]
    kept = {0, *log_steps(budget, points)}
    sparse = [p for p in run["curve"] if p["step"] in kept]
    return {
        "id": run["id"],
        "cell": f"{run['task']}/{run['language']} {run['module']} {run['transfer']} seed {run['seed']}",
        "budget": budget,
        "dense_first": first_reaching(run["curve"], metric, target),
        "dense": stays_at_or_above(run["curve"], metric, target),
        "first_doubling": first_reaching(sparse, metric, target),
        "line_between": crossing_step(sparse, metric, target),
        "evaluations": len(run["curve"]),
    }


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _share(steps: float | None, budget: int) -> float:
    return float("inf") if steps is None else steps / budget


def _text(share: float | None) -> str:
    return "never" if share is None else f"{100 * share:.0f}%"


def main() -> None:
    args = _arguments()
    if not (args.folder / "results.jsonl").is_file():
        _fail(f"{args.folder} has no results.jsonl: not an experiment folder")
    records = read_index(args.folder)
    baselines = {
        (r["model"], r["task"], r["language"], r["module"], r["seed"]): r for r in records if r["kind"] == "baseline"
    }
    lines = []
    for run in (r for r in records if r["kind"] == "transferred"):
        baseline = baselines.get((run["model"], run["task"], run["language"], run["module"], run["seed"]))
        if baseline is None:
            continue
        line = readings(run, baseline, args.points)
        lines.append(line)
        print(
            f"{line['cell']}: dense first {line['dense_first']}, dense stays {line['dense']}, "
            f"first doubling step {line['first_doubling']}, "
            f"line between {None if line['line_between'] is None else round(line['line_between'])}"
        )
        if args.out:
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")
    if not lines:
        _fail(f"{args.folder} holds no transferred run with its baseline")
    medians = {
        name: median_reach([_share(line[name], line["budget"]) for line in lines])
        for name in ("dense_first", "dense", "first_doubling", "line_between")
    }
    print(
        f"{len(lines)} transferred runs: median steps to the baseline's final score, dense first "
        f"{_text(medians['dense_first'])}, dense stays {_text(medians['dense'])}, "
        f"first doubling step {_text(medians['first_doubling'])}, line between {_text(medians['line_between'])} of "
        f"the budget; error against dense, {_error(lines, 'first_doubling')}; {_error(lines, 'line_between')}"
    )


def _error(lines: list[dict[str, Any]], reading: str) -> str:
    """The mean and range of a reading's error against the dense "stays" measurement, in points of the budget, over the
    runs where both reach the baseline's final score."""
    both = [
        (line[reading] - line["dense"]) / line["budget"] for line in lines if None not in (line[reading], line["dense"])
    ]
    if not both:
        return f"{reading}: no run reached it in both"
    return (
        f"{reading} {100 * statistics.fmean(both):+.0f} points (from {100 * min(both):+.0f} to {100 * max(both):+.0f}, "
        f"{len(both)} runs)"
    )


if __name__ == "__main__":
    main()
