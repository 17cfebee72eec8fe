"""Where runs live: one directory per run, written atomically, and an append-only results index.

A run's directory appears only when the run completed; the index line is appended after it.
Re-running skips every run in the index; a killed process loses only the run in flight.
Several processes (or machines) can share one folder: each claims a run with an exclusive
``.claim`` file before doing it, so no run is done twice.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import warnings
from pathlib import Path
from typing import Any

INDEX_FILE = "results.jsonl"
RUNS_DIR = "runs"
TRANSFERS_DIR = "transfers"


def run_dir(out: Path, run_id: str) -> Path:
    """Directory of a run."""
    return out / RUNS_DIR / run_id


class TornRecordWarning(UserWarning):
    """A line of the results index is not a whole record (a crash cut it); it is skipped."""


def read_index(out: Path) -> list[dict[str, Any]]:
    """Records of finished runs, one per run id; a line cut by a crash is reported (file and line number) and
    skipped. A run recorded twice (a teacher whose record was shared without its directory is trained again, and
    its transfers read the new module) counts once, with its last record, in the place of its first."""
    path = out / INDEX_FILE
    if not path.is_file():
        return []
    records: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or "id" not in record:
            message = f"{path}:{number}: not a whole record (cut by a crash?), skipped"
            warnings.warn(message, TornRecordWarning, stacklevel=2)
            continue
        records[record["id"]] = record
    return list(records.values())


def finished(out: Path) -> set[str]:
    """Ids of the runs in the index: a student's record is enough (nothing reads a student's module, so a
    folder shared without ``runs/baseline-*`` and ``runs/transferred-*``, as docs/results is, resumes without
    retraining them); a teacher also needs its directory, whose module its transfers read."""
    return {r["id"] for r in read_index(out) if r.get("kind") != "teacher" or run_dir(out, r["id"]).is_dir()}


def did_not_learn(record: dict[str, Any]) -> bool:
    """Whether a finished run ends no higher than its zero-step score (before training): a tagger that predicts
    no entity (F1 0), a classifier no more accurate than it started. A classifier that ends at the majority class
    from a worse start is not caught. False for records without a zero-step score.

    >>> did_not_learn({"metric": "f1", "final": {"f1": 0.0}, "zero_step": {"f1": 0.017}})
    True
    >>> did_not_learn({"metric": "f1", "final": {"f1": 0.61}, "zero_step": {"f1": 0.017}})
    False
    """
    metric, before = record["metric"], record.get("zero_step") or {}
    return metric in before and record["final"].get(metric, float("nan")) <= before[metric]


def append_index(out: Path, record: dict[str, Any]) -> None:
    """Append one JSON line, whole, and flush it to disk; after a line cut by a crash it starts a fresh line."""
    path = out / INDEX_FILE
    torn = path.is_file() and path.stat().st_size > 0 and _last_byte(path) != b"\n"
    text = ("\n" if torn else "") + json.dumps(record, sort_keys=True) + "\n"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


def clear_leftovers(out: Path, run_id: str) -> None:
    """Remove what a killed attempt at ``run_id`` left: partial staging folders, an unindexed directory."""
    runs = out / RUNS_DIR
    if not runs.is_dir():
        return
    for stale in runs.glob(f".{run_id}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if run_dir(out, run_id).is_dir():
        shutil.rmtree(run_dir(out, run_id))


def _claim_file(out: Path, run_id: str) -> Path:
    return out / RUNS_DIR / f".{run_id}.claim"


def _owner() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


def _stale(path: Path) -> bool:
    """A claim left by a dead process on this host (claims from other hosts are trusted)."""
    try:
        host, pid = path.read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def claim(out: Path, run_id: str) -> bool:
    """Take ``run_id`` for this process; False when another live process holds it."""
    path = _claim_file(out, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if not _stale(path):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(_owner())
        return True
    return False


def release(out: Path, run_id: str) -> None:
    """Drop this process's claim on ``run_id``."""
    _claim_file(out, run_id).unlink(missing_ok=True)
