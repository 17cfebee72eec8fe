"""What `peftport inspect` shows: a JSON-friendly summary of a module and its rendering."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from peftport.core.kinds import KINDS
from peftport.core.module import BottleneckSettings, PeftModule, lora_settings


def _slot_shapes(module: PeftModule) -> dict[str, dict[str, list[int]]]:
    shapes: dict[str, dict[str, list[int]]] = {}
    for layer in module.layer_indices:
        for slot, roles in module.layers[layer].items():
            shapes.setdefault(slot, {role: list(t.shape) for role, t in roles.items()})
    return shapes


def _settings(module: PeftModule) -> dict[str, Any]:
    if isinstance(module.settings, BottleneckSettings):
        s = module.settings
        return {"architecture": s.architecture, "non_linearity": s.non_linearity, **s.options}
    lora = lora_settings(module)
    return {"rank": lora.rank, "alpha": lora.alpha, "use_rslora": lora.use_rslora, "scaling": lora.scaling}


def summarize(module: PeftModule, fmt: str, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything `inspect` reports, as plain JSON-serialisable data."""
    return {
        "format": fmt,
        "kind": module.kind,
        "name": module.name,
        "family": module.family,
        "task_model": module.task_model,
        "base_model": module.base_model,
        "hidden_size": module.hidden_size,
        "layers": module.layer_indices,
        "slots": module.slots,
        "shapes": _slot_shapes(module),
        "parameters": module.num_parameters(),
        "settings": _settings(module),
        "extras": {k: list(t.shape) for k, t in sorted(module.extras.items())},
        "manifest": manifest,
    }


def _overview(summary: dict[str, Any]) -> Table:
    table = Table(title="PEFT module", show_header=False)
    for key in ("format", "kind", "name", "family", "task_model", "base_model", "hidden_size", "parameters"):
        table.add_row(key, str(summary[key]))
    layers = summary["layers"]
    table.add_row("layers", f"{len(layers)} ({layers[0]}..{layers[-1]})" if layers else "none")
    settings = summary["settings"]
    keys = KINDS[summary["kind"]].summary_keys
    table.add_row("settings", ", ".join(f"{k}={settings[k]}" for k in keys))
    if summary["extras"]:
        table.add_row("other tensors", ", ".join(summary["extras"]))
    return table


def _shapes(summary: dict[str, Any]) -> Table:
    table = Table(title="Slots (shapes in one layer)")
    table.add_column("slot")
    table.add_column("role")
    table.add_column("shape")
    for slot, roles in summary["shapes"].items():
        for role, shape in roles.items():
            table.add_row(slot, role, "x".join(str(d) for d in shape))
    return table


def _conversion(conversion: dict[str, Any]) -> Table:
    table = Table(title="Converted by peftport", show_header=False)
    table.add_row("from", f"{conversion.get('source_module')} ({conversion.get('source_format')})")
    table.add_row("to", f"{conversion.get('format')}, {conversion.get('created')}")
    return table


def _manifest(manifest: dict[str, Any]) -> Table:
    if "teacher" not in manifest and "conversion" in manifest:
        return _conversion(manifest["conversion"])
    table = Table(title="Made by peftport", show_header=False)
    for side in ("teacher", "student"):
        m = manifest.get(side) or {}
        table.add_row(
            side, f"{m.get('model')} ({m.get('family')}, {m.get('num_layers')} layers, {m.get('hidden_size')})"
        )
    lmap = manifest.get("layer_map") or {}
    sources = ", ".join(f"{i}<-{'+'.join(map(str, g))}" for i, g in enumerate(lmap.get("sources", [])))
    table.add_row("layer map", f"{lmap.get('method')}: {sources}")
    similarity = (lmap.get("similarity") or {}).get("matrix")
    if similarity:
        chosen = [similarity[i][g[0]] for i, g in enumerate(lmap.get("sources", [])) if g]
        table.add_row("layer CKA", ", ".join(f"{i}: {v:.3f}" for i, v in enumerate(chosen)) + " (inspect --plot)")
    layers = manifest.get("layers")
    if layers:
        chosen = [f"min quality {layers['min_quality']:g}"] if "min_quality" in layers else []
        chosen += [f"transfer layers {layers['transfer_layers']}"] if "transfer_layers" in layers else []
        measure = f" ({layers['measure']})" if "measure" in layers else ""
        table.add_row(
            ", ".join(chosen), f"transferred {layers['transferred']}, fresh init {layers['default_init']}{measure}"
        )
    gains = ((manifest.get("alignment") or {}).get("calibration") or {}).get("gains")
    if gains:
        spread = f"{min(gains.values()):.3f} .. {max(gains.values()):.3f}"
        table.add_row("calibration", f"B gains {spread} over {len(gains)} slots")
    recovery = manifest.get("recovery")
    if recovery:
        table.add_row(
            "recovery",
            f"{recovery['steps']} steps on {recovery['target']}, {recovery['seconds']:.1f} s, "
            f"loss {recovery['first_loss']:.4f} -> {recovery['last_loss']:.4f}",
        )
        if fidelity := _fidelity(recovery.get("fidelity") or {}):
            table.add_row("fidelity", fidelity)
    table.add_row("source", f"{manifest.get('source_module')} ({manifest.get('source_format')})")
    if manifest.get("command"):
        table.add_row("made by", manifest["command"])
    if manifest.get("dropped"):
        table.add_row("dropped", ", ".join(manifest["dropped"]))
    table.add_row("peftport", str(manifest.get("peftport_version")))
    return table


# transfers.fidelity's figures, in the order shown
FIDELITY_FIGURES = ("agreement", "balanced_agreement", "correlation", "r2", "kl")


def _fidelity(fidelity: dict[str, Any]) -> str:
    """``held out: 200 texts; agreement 0.412 -> 0.801, kl 1.204 -> 0.311`` (after the transfer -> recovery)."""
    before, after = fidelity.get("transferred") or {}, fidelity.get("recovered") or {}
    shown = [f"{k} {before.get(k, float('nan')):.3f} -> {after[k]:.3f}" for k in FIDELITY_FIGURES if k in after]
    return f"held out: {after.get('texts')} texts; {', '.join(shown)}" if shown else ""


# a record's quality_measure -> its two columns (the default: a matched correlation and the best available)
QUALITY_COLUMNS = {"heldout_r2": ("held-out R² s->t", "held-out R² t->s")}
SELECTION_COLUMNS = ("matched corr", "best corr")
FITTED_MEASURES = ("heldout_r2",)  # the quality figures of fitted maps


def _alignment(record: dict[str, Any]) -> Table:
    """The manifest's alignment record as a table; the method is named by the record, never assumed."""
    method = str(record.get("method") or "alignment")
    measure = record.get("quality_measure")
    if record.get("texts") is None and measure not in FITTED_MEASURES:
        return _data_free(method, record)
    kind = " (fitted maps)" if measure in FITTED_MEASURES else ""
    title = (
        f"{method.capitalize()} alignment{kind}: {record.get('shared_tokens')} shared tokens from "
        f"{record.get('texts')} texts ({record.get('token_match')}, LoRA B: {record.get('lora_b')})"
    )
    table = Table(title=title)
    quality = QUALITY_COLUMNS.get(str(measure), SELECTION_COLUMNS)
    for column in ("student layer", "teacher layer", "point", "tokens", *quality):
        table.add_column(column)
    for layer in record.get("layers", []):
        for key, point in layer["points"].items():
            teacher_layer, name = key.split("/", 1)
            table.add_row(
                str(layer["student_layer"]),
                teacher_layer,
                name,
                str(point["tokens"]),
                f"{point['mean_matched_correlation']:.3f}",
                f"{point['mean_best_correlation']:.3f}",
            )
    return table


def _data_free(method: str, record: dict[str, Any]) -> Table:
    table = Table(title=f"{method.capitalize()} selection (data-free): teacher dimensions from the configs")
    for column in ("student layer", "teacher layers", "points"):
        table.add_column(column)
    for layer in record.get("layers", []):
        points = sorted({key.split("/", 1)[1] for key in layer["points"]})
        table.add_row(str(layer["student_layer"]), "+".join(map(str, layer["teacher_layers"])), ", ".join(points))
    return table


def render(summary: dict[str, Any]) -> Group:
    """Rich tables for a module summary."""
    parts: list[Table] = [_overview(summary), _shapes(summary)]
    manifest = summary.get("manifest")
    if manifest:
        parts.append(_manifest(manifest))
        if manifest.get("alignment"):
            parts.append(_alignment(manifest["alignment"]))
    return Group(*parts)
