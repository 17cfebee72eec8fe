"""Save and load alignments: ``alignment.json`` plus the matrices of projections in ``projections.safetensors``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from peftport.core.alignment import Alignment
from peftport.errors import PeftportError
from peftport.formats.atomic import atomic_directory

ALIGNMENT_FILE = "alignment.json"
PROJECTIONS_FILE = "projections.safetensors"
LIFT_PREFIX = "lift/"  # key prefix of the student -> teacher maps of fitted projections


def save_alignment(alignment: Alignment, directory: str | Path, force: bool = False) -> Path:
    """Write ``alignment.json`` (and soft, rotation or fitted matrices in ``projections.safetensors``), atomically."""
    from safetensors.torch import save_file

    with atomic_directory(Path(directory), force=force) as staging:
        text = json.dumps(alignment.to_dict(), indent=1, allow_nan=True)
        (staging / ALIGNMENT_FILE).write_text(text + "\n", encoding="utf-8")
        matrices = {}
        for (s, t, p), found in alignment.points.items():
            if found.projection is not None:
                matrices[f"{s}/{t}/{p}"] = found.projection.clone()
            if found.lift is not None:
                matrices[f"{LIFT_PREFIX}{s}/{t}/{p}"] = found.lift.clone()
        if matrices:
            save_file(matrices, str(staging / PROJECTIONS_FILE))
    return Path(directory)


def load_alignment(path: str | Path) -> Alignment:
    """Read an alignment saved by :func:`save_alignment` (directory or the JSON file itself)."""
    path = Path(path)
    file = path / ALIGNMENT_FILE if path.is_dir() else path
    if not file.is_file():
        raise PeftportError(f"no alignment at '{path}' (expected a directory with {ALIGNMENT_FILE})")
    try:
        alignment = Alignment.from_dict(json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise PeftportError(f"corrupt alignment file {file}: {exc}") from None
    return _with_projections(alignment, file.parent / PROJECTIONS_FILE)


def _with_projections(alignment: Alignment, file: Path) -> Alignment:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        return alignment
    try:
        matrices = load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise PeftportError(f"corrupt projections file {file}: {exc}") from None
    for key, matrix in matrices.items():
        field = "lift" if key.startswith(LIFT_PREFIX) else "projection"
        s, t, point = key.removeprefix(LIFT_PREFIX).split("/", 2)
        point_key = (int(s), int(t), point)
        if point_key in alignment.points:
            alignment.points[point_key] = replace(alignment.points[point_key], **{field: matrix})
    return alignment
