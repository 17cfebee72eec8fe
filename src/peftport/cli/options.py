"""Command-line flags derived from an options model: one typer option per field, its help the field's
description, so an option is written once (in ``transfer.options``) and the CLI follows it."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Optional, Union, get_args, get_origin

import typer
from pydantic import BaseModel


def _plain(annotation: Any, optional: bool = True) -> Any:
    """``X | None`` as ``Optional[X]`` (what typer reads), or as ``X`` for a required flag."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return Optional[args[0]] if optional else args[0]
    return annotation


def field_flags(model: type[BaseModel], names: Iterable[str] | None = None, required: Iterable[str] = ()) -> list:
    """`inspect.Parameter`s (keyword-only) for the CLI-visible fields of ``model`` (``names``: only these).
    A field's ``json_schema_extra`` may give ``flag`` (e.g. ``--head``: a switch without ``--no-head``) or
    ``cli: False`` (API only)."""
    chosen = set(names) if names is not None else None
    params = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("cli") is False or (chosen is not None and name not in chosen):
            continue
        flag = extra.get("flag")
        option = typer.Option(*([flag] if flag else []), help=field.description)
        needed = name in required
        annotation = Annotated[_plain(field.annotation, optional=not needed), option]
        default = ... if needed else field.default
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    return params


def with_flags(command: Callable[..., None], params: list[inspect.Parameter]) -> Callable[..., None]:
    """``command`` with ``params`` added to its signature (keyword-only, after its own parameters), so typer
    makes a flag of each; the command receives them as keyword arguments."""
    parameters = inspect.signature(command, eval_str=True).parameters.values()
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in parameters if p.kind != p.VAR_KEYWORD]
    hints = {p.name: p.annotation for p in own + params}
    signature = inspect.Signature(own + params)

    def wrapper(**values: Any) -> None:
        command(**values)

    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = hints
    wrapper.__doc__ = command.__doc__
    wrapper.__name__ = command.__name__
    return wrapper


def validated(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """``model(**values)``, a bad value as a one-line `PeftportError` naming it."""
    from pydantic import ValidationError

    from peftport.errors import PeftportError
    from peftport.transfers.options import first_error

    try:
        return model(**values)
    except ValidationError as exc:
        raise PeftportError(first_error(exc)) from None
