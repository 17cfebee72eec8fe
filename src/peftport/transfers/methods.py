"""The alignment methods, one `AlignMethod` entry each: the only place a method is named.

An entry says what the method needs (probe texts, second moments instead of correlations), what it allows
(a wider student), how LoRA B is aligned, which quality figure it reports, how experiment tables label it,
and how it solves: ``solve_point`` turns one probe point's statistics into a `PointAlignment`; a data-free
method gives ``select`` instead, which maps every layer pair from the configs alone. Options, CLI, YAML
checks, labels, ``inspect`` and the transfer itself read these entries; :func:`register` adds a method
(docs/extending.md). Solvers import torch lazily, so reading options stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from peftport.errors import PeftportError

NO_ALIGNMENT = "none"
QUALITY_NAMES = {"correlation": "correlation", "heldout_r2": "held-out R^2"}  # quality_measure -> its words


def plain_label(method: AlignMethod, transfer: Any) -> str:
    """``<layer map>+<table name>``: the label of most methods (``transfer``: a `TransferFields`)."""
    return f"{transfer.layer_map}+{method.table_name}"


@dataclass(frozen=True)
class AlignMethod:
    """One alignment method and everything the rest of peftport asks of it."""

    name: str
    help: str  # one phrase for the option's help: what it does and when to use it
    table_name: str = ""  # short name in experiment labels (default: the name)
    probes: bool = False  # runs both models on probe texts (needs --probe-data)
    fitted: bool = False  # collects second moments and fits ridge maps (else correlations)
    lora_b: str | None = None  # None: the lora_b option decides; else LoRA B is aligned this way
    widens: bool = False  # may move a module to a wider student
    calibrates: bool = False  # the calibrate option applies
    quality_measure: str = "correlation"  # the name of its per-point quality figure (QUALITY_NAMES)
    solve_point: Callable[..., Any] | None = None  # (accumulator, space, t_dims, s_dims, matcher) -> PointAlignment
    select: Callable[..., Any] | None = None  # data-free: (teacher, student, layer map, points) -> Alignment
    label: Callable[[AlignMethod, Any], str] = plain_label

    def __post_init__(self) -> None:
        if self.name != NO_ALIGNMENT and (self.solve_point is None) == (self.select is None):
            raise PeftportError(f"alignment method '{self.name}' needs exactly one of solve_point and select")
        if self.probes == (self.select is not None) and self.name != NO_ALIGNMENT:
            raise PeftportError(f"alignment method '{self.name}': a probing method solves points, a data-free selects")
        if not self.table_name:
            object.__setattr__(self, "table_name", self.name)

    @property
    def aligns(self) -> bool:
        """False for ``none`` (equal widths: the module's tensors are kept as they are)."""
        return self.name != NO_ALIGNMENT

    @property
    def data_free(self) -> bool:
        """Maps dimensions from the configs alone (no probe pass)."""
        return self.select is not None

    def effective_lora_b(self, option: str) -> str:
        """How LoRA B is aligned under this method when the option says ``option``."""
        return self.lora_b or option

    def quality_words(self) -> str:
        """Its quality figure in words (``correlation``, ``held-out R^2``)."""
        return QUALITY_NAMES.get(self.quality_measure, self.quality_measure)


METHODS: dict[str, AlignMethod] = {}


def register(method: AlignMethod) -> AlignMethod:
    """Add ``method`` (replacing one of the same name); returns it."""
    METHODS[method.name] = method
    return method


def align_method(name: str) -> AlignMethod:
    """The method registered as ``name``; an unknown name is a one-line `PeftportError` listing the known."""
    if name not in METHODS:
        raise PeftportError(f"unknown alignment '{name}': use {', '.join(METHODS)}")
    return METHODS[name]


def probing_methods() -> list[str]:
    """Names of the methods that probe (``peftport align`` computes and saves these)."""
    return [name for name, method in METHODS.items() if method.probes]


def methods_help() -> str:
    """Every method with its phrase, for option help texts."""
    return ", ".join(f"'{m.name}' ({m.help})" for m in METHODS.values())


def _matched(accumulator: Any, space: str, teacher: Any, student: Any, matcher: Any) -> Any:
    from peftport.transfers.alignment_methods import matched_point

    return matched_point(accumulator, space, teacher, student, matcher)


def _fitted(accumulator: Any, space: str, teacher: Any, student: Any, matcher: Any) -> Any:
    from peftport.transfers.alignment_methods import fitted_point

    return fitted_point(accumulator)


def _uniform(teacher: str, student: str, lmap: Any, points: list) -> Any:
    from peftport.transfers.alignment_methods import uniform_alignment

    return uniform_alignment(teacher, student, lmap, points)


def _correlation_label(method: AlignMethod, transfer: Any) -> str:
    return f"{transfer.layer_map}+{method.table_name}({transfer.token_match},{transfer.lora_b})"


def _none_label(method: AlignMethod, transfer: Any) -> str:
    return str(transfer.layer_map)


register(AlignMethod(NO_ALIGNMENT, "equal widths", label=_none_label))
PAPER_METHOD = register(
    AlignMethod(
        "correlation",
        "the paper's prune and align",
        table_name="corr",
        probes=True,
        solve_point=_matched,
        label=_correlation_label,
    )
).name
register(
    AlignMethod(
        "projection",
        "ridge maps between the hidden spaces; any widths",
        table_name="proj",
        probes=True,
        fitted=True,
        lora_b="output",
        widens=True,
        calibrates=True,
        quality_measure="heldout_r2",
        solve_point=_fitted,
    )
)
register(AlignMethod("uniform", "data-free evenly spaced selection", lora_b="output", select=_uniform))
