"""What a run records about where it ran: git revision, package versions, device (and the CPU's name)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from peftport import __version__

PACKAGES = ("torch", "transformers", "peft", "adapters")


def environment() -> dict[str, Any]:
    """Git revision, package versions and device, recorded with every run."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        ).stdout.strip()
    except OSError:
        revision = ""
    versions = {"peftport": __version__, **{p: metadata.version(p) for p in PACKAGES}}
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:  # fp32 scores differ between CPU models (other kernels, other rounding), so the record names it
        threads = torch.get_num_threads()
        device = f"cpu ({cpu_info()[0]}, {threads} thread{'s' if threads > 1 else ''})"
    return {"git": revision or None, "versions": versions, "device": device}


def cpu_info(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    """The CPU's model name and instruction flags (``path`` where there is one; else the platform's name, no
    flags)."""
    name, flags = "", set()
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    return name or platform.processor() or platform.machine() or "unknown", flags
