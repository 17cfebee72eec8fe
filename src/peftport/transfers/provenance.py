"""The manifest content of a transfer: where the module came from, which models, which layer map and alignment."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from peftport.architectures.models import ModelInfo
from peftport.core.layer_maps import LayerMap
from peftport.core.module import PeftModule
from peftport.transfers.options import TransferOptions

NO_HEAD = "not transferred: train the student's own task head (peft: modules_to_save)"


def _model_record(info: ModelInfo) -> dict[str, Any]:
    return {
        "model": info.reference,
        "family": info.spec.name,
        "num_layers": info.dims.num_layers,
        "hidden_size": info.dims.hidden_size,
    }


def _module_record(module: PeftModule) -> dict[str, Any]:
    return {"kind": module.kind, "slots": module.slots, "name": module.name, **module.spec.record(module.settings)}


@dataclass(frozen=True)
class TransferRecord:
    """What a transferred module's manifest says of how it was made (``to_dict``: the manifest's JSON, keys as
    in earlier versions; recovery adds ``recovery``, ``save_module`` the version, format and ``loads_on``)."""

    created: str
    source_module: str | None
    source_format: str | None
    teacher: dict[str, Any]
    student: dict[str, Any]
    layer_map: dict[str, Any]
    alignment: dict[str, Any] | None
    layers: dict[str, Any] | None
    module: dict[str, Any]
    dropped: list[str]
    head: dict[str, Any] | str

    def to_dict(self) -> dict[str, Any]:
        """The manifest form."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def command_line(module: str | None, teacher: str, student: str, options: TransferOptions) -> str:
    """The ``peftport transfer`` command that makes this transfer again, less its ``--out``.

    >>> command_line("my lora", "t", "s", TransferOptions(head=True))
    "peftport transfer --teacher t --student s --module 'my lora' --head"
    """
    import shlex

    words = ["peftport", "transfer", "--teacher", teacher, "--student", student, "--module", module or "MODULE"]
    flags = options.command_flags()
    api = [flags.pop()] if flags and flags[-1].startswith("# api:") else []
    return " ".join([*(shlex.quote(w) for w in words + flags), *api])


def named_models(made: dict[str, Any], teacher: str, student: str) -> dict[str, Any]:
    """``made`` with its models named as a reader can fetch them (``transfers`` resolves ``zoo:NAME`` to a folder
    of this machine): a zoo model by its hub id, with the zoo name beside it; hub names and local paths as
    given."""
    from peftport.zoo import ZOO_PREFIX, public_name

    for side, given in (("teacher", teacher), ("student", student)):
        zoo = {"zoo": given.removeprefix(ZOO_PREFIX)} if given.startswith(ZOO_PREFIX) else {}
        made[side] = {**made[side], "model": public_name(given), **zoo}
    return made


def provenance(
    source: PeftModule,
    origin: str | None,
    teacher: ModelInfo,
    student: ModelInfo,
    lmap: LayerMap,
    alignment: dict[str, Any] | None = None,
    similarity: list[list[float]] | None = None,
    layers: dict[str, Any] | None = None,
    head: dict[str, Any] | None = None,
) -> dict:
    """The manifest content describing one transfer (``head``: how the task head moved, if it did)."""
    layer_map: dict[str, Any] = {"method": lmap.method, "sources": [list(g) for g in lmap.sources]}
    if similarity is not None:
        layer_map["similarity"] = {"measure": "linear_cka", "rows": "student layers", "matrix": similarity}
    return TransferRecord(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source_module=origin,
        source_format=source.format_options.get("source_format"),
        teacher=_model_record(teacher),
        student=_model_record(student),
        layer_map=layer_map,
        alignment=alignment,
        layers=layers,
        module=_module_record(source),
        dropped=[] if head else sorted(source.extras),
        head=head or NO_HEAD,
    ).to_dict()
