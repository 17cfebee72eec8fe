"""Whether a label-free recovery worked, said in one line: its held-out fidelity against ``--min-fidelity`` and
against the fresh control's (``--compare-fresh``), a warning in the recovery record, or with ``--strict`` an
error before anything is written."""

from __future__ import annotations

from typing import Any

from peftport.errors import PeftportError
from peftport.transfers.fidelity import fidelity_figure
from peftport.transfers.options import TransferOptions


def control_record(recovery: dict[str, Any]) -> dict[str, Any]:
    """What the fresh control's recovery reached: its held-out fidelity, steps and seconds."""
    kept = ("steps", "steps_done", "seconds", "first_loss", "last_loss")
    return {"fidelity": recovery["fidelity"]["recovered"], **{k: recovery[k] for k in kept if k in recovery}}


def judge_fidelity(record: dict[str, Any], options: TransferOptions) -> None:
    """A recovery whose held-out fidelity fell, or stayed below ``min_fidelity`` or the fresh control's, gets a
    ``warning`` in its record; with ``strict`` the latter two are errors (nothing is written)."""
    name, after = fidelity_figure(record["fidelity"]["recovered"])
    _, before = fidelity_figure(record["fidelity"]["transferred"])
    control = fidelity_figure(record["fresh_control"]["fidelity"])[1] if "fresh_control" in record else None
    warning = None
    if options.min_fidelity is not None and not after >= options.min_fidelity:  # NaN: not reached
        warning = f"held-out {name} {after:.3f} after recovery is below --min-fidelity {options.min_fidelity:g}"
    elif control is not None and not after >= control:
        warning = (
            f"held-out {name} {after:.3f} after recovery is below the fresh control's {control:.3f} (a fresh module "
            "distilled with the same texts, steps and seed): the transfer adds nothing to the distillation here"
        )
    if warning is not None and options.strict:
        raise PeftportError(f"{warning} (--strict)")
    if warning is not None:
        record["warning"] = warning
    elif after < before:
        record["warning"] = f"recovery lowered the held-out {name} from {before:.3f} to {after:.3f}"
