"""What every ``peftport`` command shares: the consoles, the one-line error handling, common options."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from peftport.errors import PeftportError


def output_width() -> int | None:
    """The width tables are laid out for: ``COLUMNS`` when set, else the terminal's (None: rich asks it), else
    200 for a file or a pipe (rich would assume 80 there)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if sys.stdout.isatty() else 200


console = Console(width=output_width())
errors = Console(stderr=True)

Force = Annotated[bool, typer.Option("--force", help="Replace an existing output directory.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output directory (written atomically).")]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a `PeftportError` into a one-line message on stderr and exit code 2."""
    try:
        yield
    except PeftportError as exc:
        errors.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Warnings of peftport's own read one line, like its errors."""
    return f"warning: {message}\n"
