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
from pathlib import Path
from typing import Any

INDEX_FILE = "results.jsonl"
RUNS_DIR = "runs"
TRANSFERS_DIR = "transfers"


def run_dir(out: Path, run_id: str) -> Path:
    """Directory of a run."""
    return out / RUNS_DIR / run_id


def read_index(out: Path) -> list[dict[str, Any]]:
    """Records of finished runs (a torn last line from a crash is ignored)."""
    path = out / INDEX_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def finished(out: Path) -> set[str]:
    """Ids of runs in the index whose directory exists."""
    return {r["id"] for r in read_index(out) if run_dir(out, r["id"]).is_dir()}


def append_index(out: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk."""
    with (out / INDEX_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


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
