"""Where runs live: one directory per run, written atomically, and an append-only results index.

A run's directory appears only when the run completed; the index line is appended after it.
Re-running skips every run in the index; a killed process loses only the run in flight.
"""

from __future__ import annotations

import json
import os
import shutil
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
