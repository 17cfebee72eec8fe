"""Reject impossible experiments before any training: missing data, unknown or mismatched models."""

from __future__ import annotations

from peftport.architectures.models import ModelInfo, describe_model
from peftport.core.layer_maps import build_layer_map, monotone_map
from peftport.errors import PeftportError
from peftport.experiments.config import ExperimentConfig, PairConfig
from peftport.experiments.training.options import ModuleConfig
from peftport.probing.session import CKA_MAP
from peftport.transfers.methods import METHODS, PAPER_METHOD
from peftport.zoo import resolve_model


def _check_pair(config: ExperimentConfig, index: int, pair: PairConfig) -> None:
    where = f"pairs[{index}]"
    try:
        teacher, student = describe_model(resolve_model(pair.teacher)), describe_model(resolve_model(pair.student))
    except PeftportError as exc:
        raise PeftportError(f"{where}: {exc}") from None
    t_width, s_width = teacher.dims.hidden_size, student.dims.hidden_size
    for number, transfer in enumerate(config.transfers):
        method = transfer.method
        if s_width > t_width and not method.widens:
            wideners = " or ".join(name for name, m in METHODS.items() if m.widens)
            raise PeftportError(
                f"{where}: the student is wider ({s_width}) than the teacher ({t_width}); only align: {wideners} "
                f"maps to a wider model (transfers[{number}])"
            )
        if not method.aligns and s_width != t_width:
            raise PeftportError(
                f"transfers[{number}]: hidden sizes differ in {where} ({t_width} -> {s_width}): use align: "
                f"{PAPER_METHOD}"
            )
        try:
            if transfer.layer_map == CKA_MAP:
                monotone_map([[0.0] * teacher.dims.num_layers] * student.dims.num_layers)
            else:
                build_layer_map(transfer.layer_map, teacher.dims.num_layers, student.dims.num_layers)
        except PeftportError as exc:
            raise PeftportError(f"transfers[{number}].layer_map with {where}: {exc}") from None
    for number, module in enumerate(config.modules):
        _check_module(f"modules[{number}]", module, (teacher, student))


def _check_module(where: str, module: ModuleConfig, models: tuple[ModelInfo, ModelInfo]) -> None:
    for info in models:
        spec = info.spec
        if module.spec.library == "adapters" and not spec.adapterhub:
            raise PeftportError(f"{where}: AdapterHub has no {module.type} adapters for {spec.name} models")
        targets = module.targets if module.spec.library == "peft" else []  # training targets LoRA slots
        missing = [t for t in targets if t not in spec.slots_of_kind(module.spec.slot_kind)]
        if missing:
            raise PeftportError(f"{where}.targets: {missing} are not LoRA slots of {spec.name}")


def _check_labels(config: ExperimentConfig) -> None:
    """Rows the report would merge: two modules or two transfers with one label (they differ only in options
    the label leaves out), whose runs would be averaged as if they were seeds of one cell."""
    for field, rows in (("modules", config.modules), ("transfers", config.transfers)):
        seen: dict[str, int] = {}
        for number, row in enumerate(rows):
            if (first := seen.setdefault(row.label, number)) != number:
                raise PeftportError(
                    f"{field}[{first}] and {field}[{number}] share the report label '{row.label}', so the report "
                    "would merge their runs: give them options the label shows"
                    + (", a name" if field == "transfers" else "")
                    + ", or separate experiment folders"
                )


def check_experiment(config: ExperimentConfig) -> None:
    """Every data file exists, every pair loads and fits every transfer and module, no two rows share a report
    label; raise on the first problem."""
    _check_labels(config)
    for number, task in enumerate(config.tasks):
        try:
            task.check_files()
        except PeftportError as exc:
            raise PeftportError(f"tasks[{number}]: {exc}") from None
    for index, pair in enumerate(config.pairs):
        _check_pair(config, index, pair)
