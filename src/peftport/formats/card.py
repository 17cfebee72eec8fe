"""The model card (``README.md``) written next to every module peftport makes, from its manifest: what moved
from which teacher, how, how well, the command that makes it again and how to load it. Written with
``huggingface_hub``'s ``ModelCard`` / ``ModelCardData``, as peft's ``save_pretrained`` does, so the hub reads
its metadata."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from peftport.formats.inspection import FIDELITY_FIGURES

CARD_FILE = "README.md"
LIBRARIES = {"peft": "peft", "adapterhub": "adapters"}
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_name(reference: str | None) -> str | None:
    """``reference`` when it reads as a hub model id (``owner/name``) and is no local folder, else None.

    >>> hub_name("sentence-transformers/all-MiniLM-L6-v2"), hub_name("/tmp/student")
    ('sentence-transformers/all-MiniLM-L6-v2', None)
    """
    if not reference or not HUB_NAME.match(reference) or Path(reference).expanduser().exists():
        return None
    return reference


def _model(record: dict[str, Any] | None) -> str:
    record = record or {}
    layers, hidden = record.get("num_layers"), record.get("hidden_size")
    return f"`{record.get('model')}` ({record.get('family')}, {layers} layers, hidden {hidden})"


def _quality(alignment: dict[str, Any] | None) -> str:
    if not alignment:
        return "none: equal widths, tensors copied"
    if "mean_r2_to_teacher" in alignment:
        return (
            f"{alignment.get('method')} maps fitted on {alignment.get('shared_tokens')} shared tokens of "
            f"{alignment.get('texts')} texts; held-out R² student->teacher {alignment['mean_r2_to_teacher']:.3f}"
        )
    if alignment.get("texts"):
        return (
            f"{alignment.get('method')} on {alignment.get('shared_tokens')} shared tokens of {alignment.get('texts')} "
            f"texts; mean matched correlation {alignment.get('mean_matched_correlation', float('nan')):.3f}"
        )
    return f"{alignment.get('method')} (data-free)"


def _fidelity(manifest: dict[str, Any]) -> str:
    fidelity = (manifest.get("recovery") or {}).get("fidelity") or {}
    after, before = fidelity.get("recovered") or {}, fidelity.get("transferred") or {}
    shown = [f"{k} {before[k]:.3f} -> {after[k]:.3f}" for k in FIDELITY_FIGURES if k in after and k in before]
    if not shown:
        return "not measured (no label-free recovery: `--recover-steps`)"
    return f"on {after.get('texts')} held-out texts, after the transfer -> after recovery: {', '.join(shown)}"


def _rows(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    lmap = manifest.get("layer_map") or {}
    pairs = ", ".join(f"{i}<-{'+'.join(map(str, g)) or 'none'}" for i, g in enumerate(lmap.get("sources", [])))
    head = manifest.get("head")
    module = manifest.get("module") or {}
    return [
        ("teacher", _model(manifest.get("teacher"))),
        ("student", _model(manifest.get("student"))),
        ("module", f"{module.get('kind')} on {', '.join(module.get('slots', []))}"),
        ("layer map", f"{lmap.get('method')}: {pairs} (student layer <- teacher layers)"),
        ("alignment", _quality(manifest.get("alignment"))),
        ("task head", head.get("method", "") if isinstance(head, dict) else str(head)),
        ("fidelity (no labels)", _fidelity(manifest)),
        ("not transferred", ", ".join(manifest.get("dropped") or []) or "nothing"),
    ]


def _load_snippet(manifest: dict[str, Any], fmt: str) -> str:
    loads_on = manifest.get("loads_on") or {}
    model_class = loads_on.get("model_class") or "AutoModel"
    model = loads_on.get("model") or (manifest.get("student") or {}).get("model") or "STUDENT"
    labels = f", num_labels={loads_on['num_labels']}" if loads_on.get("num_labels") else ""
    if fmt == "peft":
        return (
            f"from peft import PeftModel\nfrom transformers import {model_class}\n\n"
            f'model = {model_class}.from_pretrained("{model}"{labels})\n'
            'model = PeftModel.from_pretrained(model, "THIS_FOLDER")'
        )
    return (
        f"import adapters\nfrom transformers import {model_class}\n\n"
        f'model = {model_class}.from_pretrained("{model}"{labels})\nadapters.init(model)\n'
        'name = model.load_adapter("THIS_FOLDER", set_active=True)'
    )


def card_text(manifest: dict[str, Any], target: Path) -> str:
    """The card's markdown body (without its metadata block) for the output folder ``target``."""
    fmt = str(manifest.get("format"))
    if "teacher" not in manifest:  # a conversion of a module peftport did not make
        conversion = manifest.get("conversion") or {}
        dropped = ", ".join(conversion.get("dropped") or []) or "nothing"
        source = f"`{conversion.get('source_module')}` ({conversion.get('source_format')})"
        return (
            f"# {fmt} module converted by peftport\n\nRewritten from {source} with `peftport convert --to {fmt}`; "
            f"not converted: {dropped}.\n"
        )
    rows = "\n".join(f"| {key} | {value} |" for key, value in _rows(manifest))
    command = f"{manifest.get('command') or 'peftport transfer ...'} --out {target.name}"
    checked = (manifest.get("loads_on") or {}).get("model_class")
    return (
        f"# {(manifest.get('module') or {}).get('kind')} module for {(manifest.get('student') or {}).get('model')}, "
        f"transferred by peftport\n\n"
        "Moved from a module trained on the teacher to the student before any training on the student: a start "
        "for the student's own fine-tuning (see the fidelity row for how closely it already imitates the "
        "teacher).\n\n| | |\n|---|---|\n"
        f"{rows}\n\n## Make it again\n\n```bash\n{command}\n```\n\n"
        f"## Load it\n\n{'Checked to load on ' + checked + ' with every adapter key in place.' if checked else ''}\n\n"
        f"```python\n{_load_snippet(manifest, fmt)}\n```\n\n"
        f"peftport {manifest.get('peftport_version')}; the full record is `peftport_manifest.json`.\n"
    )


def write_card(manifest: dict[str, Any], directory: Path, target: Path) -> None:
    """Write ``README.md`` into ``directory`` (the staging folder of the output folder ``target``); base_model:
    the student, when it is a hub name."""
    from huggingface_hub import ModelCard, ModelCardData

    fmt = str(manifest.get("format"))
    module = manifest.get("module") or {}
    student = (manifest.get("student") or {}).get("model")
    tags = ["peftport", str(module.get("kind") or fmt), "transferred" if "teacher" in manifest else "converted"]
    data = ModelCardData(base_model=hub_name(student), library_name=LIBRARIES.get(fmt, fmt), tags=tags)
    ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_text(manifest, target)}").save(directory / CARD_FILE)
