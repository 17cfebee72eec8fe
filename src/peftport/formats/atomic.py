"""Write an output directory completely or not at all."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peftport.errors import OutputExistsError


def check_creatable(target: Path) -> None:
    """Refuse an output folder that cannot be made: an ancestor that is a file, or one we may not write in."""
    ancestor = Path(target).absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if ancestor != Path(target).absolute() and not ancestor.is_dir():
        raise OutputExistsError(f"cannot create output '{target}': '{ancestor}' is a file, not a folder")
    if ancestor != Path(target).absolute() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputExistsError(f"cannot create output '{target}': no permission to write in '{ancestor}'")


def make_folder(target: Path) -> Path:
    """``mkdir -p`` with a one-line error instead of a traceback."""
    check_creatable(target)
    try:
        Path(target).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputExistsError(f"cannot create output '{target}': {exc.strerror}") from None
    return Path(target)


def check_writable(target: Path, force: bool) -> None:
    """Refuse an existing output unless ``force``, and one that cannot be created; call before expensive work."""
    check_creatable(target)
    if target.exists() and not force:
        raise OutputExistsError(f"output '{target}' already exists: choose another path or pass --force")
    if target.exists() and not target.is_dir():
        raise OutputExistsError(f"output '{target}' exists and is not a directory")


def _missing_parents(target: Path) -> list[Path]:
    return [p for p in reversed(target.absolute().parents) if not p.exists()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clear_dead_staging(target: Path) -> list[Path]:
    """Remove staging folders of ``target`` left by a killed process of this host; returns what was removed.

    Staging folders are named ``.<name>.partial-<host>-<pid>-<random>``; those of live processes, of other
    hosts, and of an unknown form are kept.
    """
    removed = []
    for staging in target.parent.glob(f".{target.name}.partial-*"):
        owner, _, rest = staging.name.removeprefix(f".{target.name}.partial-").rpartition("-")
        host, _, pid = owner.rpartition("-")
        if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)) and rest:
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    return removed


def follow_umask(root: Path) -> None:
    """Give a staged tree the modes a plain ``mkdir``/``open`` would have (temporary folders are 0700)."""
    mask = os.umask(0)
    os.umask(mask)
    root.chmod(0o777 & ~mask)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            (Path(folder) / name).chmod(0o777 & ~mask)
        for name in files:
            (Path(folder) / name).chmod(0o666 & ~mask)


TEXT_SUFFIXES = (".json", ".md", ".txt", ".yaml")


def unstage_paths(staging: Path, target: Path) -> None:
    """Point every mention of ``staging`` in the staged text files (manifests, cards, summaries written while
    staging, e.g. a module transferred from another staged module) at ``target``, which is where they will be."""
    forms = {str(staging): str(target), str(staging.resolve()): str(target.resolve())}
    for path in (p for p in staging.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES):
        if path.stat().st_size > 10_000_000:
            continue
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        fixed = text
        for old, new in forms.items():
            fixed = fixed.replace(old, new)
        if fixed != text:
            path.write_text(fixed, encoding="utf-8", errors="surrogateescape")


@contextmanager
def atomic_directory(target: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; rename it to ``target`` only if the block succeeds.

    On failure the temporary directory and any parent directories created for it are removed,
    and an existing ``target`` is left untouched.
    """
    target = Path(target)
    check_writable(target, force)
    created = _missing_parents(target)
    make_folder(target.parent)
    clear_dead_staging(target)
    prefix = f".{target.name}.partial-{socket.gethostname()}-{os.getpid()}-"
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        yield staging
        unstage_paths(staging, target)
        follow_umask(staging)
        if target.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            target.rename(backup / target.name)
            staging.rename(target)
            shutil.rmtree(backup)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in reversed(created):
            if parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
        raise
