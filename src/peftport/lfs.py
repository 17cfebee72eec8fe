"""Git LFS pointer files: a clone without ``git lfs`` holds these small text files in place of weights and
configs; every reader checks for one first, so the error says what happened instead of "corrupt"."""

from __future__ import annotations

from pathlib import Path

POINTER_START = b"version https://git-lfs.github.com/spec/"


def is_lfs_pointer(path: Path) -> bool:
    """Whether ``path`` is a Git LFS pointer file (it starts with the pointer spec's version line)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(POINTER_START)) == POINTER_START
    except OSError:
        return False


def lfs_pointer_message(path: Path) -> str:
    """The one-line error for a pointer file found where the file itself was expected."""
    return (
        f"{path} is a Git LFS pointer, not the file itself: run `git lfs pull` in its repository "
        "(or download the file from the hub)"
    )
