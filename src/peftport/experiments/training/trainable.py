"""Put a trainable PEFT module (peft LoRA or AdapterHub bottleneck) with a trainable head on a task model.

The baseline and the transferred student get the same module config and the same head
initialisation; they differ only in whether the module's weights are loaded from a directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from peftport.architectures.spec import ArchitectureSpec
from peftport.errors import PeftportError
from peftport.experiments.training.options import ModuleConfig
from peftport.formats.loading import attach
from peftport.formats.peft_lora import WRAPPER
from peftport.library_logs import ADAPTERS_NOT_ACTIVE, NEW_HEAD_WEIGHTS, expected_messages
from peftport.tasks.data import TaskData
from peftport.zoo import publish_base_model

ADAPTER_NAME = "task"


def head_names(model: torch.nn.Module) -> list[str]:
    """Top-level modules with parameters outside the base model: the task head."""
    base = model.base_model_prefix
    return [n for n, m in model.named_children() if n != base and any(True for _ in m.parameters())]


def trainable_groups(
    model: torch.nn.Module, heads: list[str]
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """Trainable parameters split into (module, head): a head parameter has one of ``heads`` as a component of
    its name (``classifier.weight``, peft's ``base_model.model.classifier.modules_to_save.default.weight``)."""
    module: list[torch.nn.Parameter] = []
    head: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (head if set(name.split(".")) & set(heads) else module).append(param)
    if not head or not module:
        raise PeftportError(f"cannot tell the task head {heads} from the module among the trainable parameters")
    return module, head


def read_head(module_dir: Path) -> dict[str, torch.Tensor]:
    """Task-head weights saved with a trained module (peft ``modules_to_save`` or AdapterHub ``head.safetensors``),
    keyed as in the task model (``classifier.weight``)."""
    from safetensors.torch import load_file

    adapterhub_head = module_dir / "head.safetensors"
    if adapterhub_head.is_file():
        return load_file(str(adapterhub_head))
    peft_file = module_dir / "adapter_model.safetensors"
    if not peft_file.is_file():
        raise PeftportError(f"no task head saved in {module_dir}")
    head = {k.removeprefix(WRAPPER): v for k, v in load_file(str(peft_file)).items() if "lora_" not in k}
    if not head:
        raise PeftportError(f"no task head saved in {module_dir}")
    return head


def load_head(model: torch.nn.Module, head: dict[str, torch.Tensor]) -> None:
    """Put saved head weights into a task model (before its module is attached); shapes must match."""
    own = {k: v for k, v in model.state_dict().items() if k.split(".", 1)[0] in head_names(model)}
    if set(own) != set(head) or any(own[k].shape != head[k].shape for k in own):
        shapes = {k: tuple(v.shape) for k, v in head.items()}
        raise PeftportError(f"the teacher's head {shapes} does not fit the student's head {list(own)}")
    model.load_state_dict(head, strict=False)


def _target_regex(spec: ArchitectureSpec, slots: list[str]) -> str:
    unknown = [s for s in slots if s not in spec.slots or spec.slots[s].kind != "linear"]
    if unknown:
        raise PeftportError(f"LoRA targets {unknown} are not linear slots of {spec.name}")
    paths = [re.escape(spec.module_path(s, 0)).replace(r"\.0\.", r"\.\d+\.") for s in slots]
    return "|".join(rf"(?:.*\.)?{p}" for p in paths)


def _with_lora(model: torch.nn.Module, spec: ArchitectureSpec, config: ModuleConfig, init: Path | None):
    from peft import (
        LoraConfig,
        get_peft_model,
        get_peft_model_state_dict,
        load_peft_weights,
        set_peft_model_state_dict,
    )

    lora = LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=_target_regex(spec, config.targets),
        modules_to_save=head_names(model),
    )
    wrapped = get_peft_model(model, lora)
    if init is not None:
        # the head keeps its fresh initialisation: only LoRA tensors come from ``init``
        current = get_peft_model_state_dict(wrapped)
        loaded = {k: v for k, v in load_peft_weights(str(init)).items() if "lora_" in k}
        missing = sorted(k for k in current if "lora_" in k and k not in loaded)
        unexpected = sorted(k for k in loaded if k not in current)
        if missing or unexpected:
            raise PeftportError(
                f"module {init} does not fit the student: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        set_peft_model_state_dict(wrapped, {**current, **loaded})
    return wrapped


def _with_bottleneck(model: torch.nn.Module, config: ModuleConfig, init: Path | None):
    import adapters

    adapters.init(model)
    if init is None:
        kinds = {"seq_bn": adapters.SeqBnConfig, "double_seq_bn": adapters.DoubleSeqBnConfig}
        with expected_messages(ADAPTERS_NOT_ACTIVE):  # logged while adding the adapter it then activates
            model.add_adapter(ADAPTER_NAME, config=kinds[config.type](reduction_factor=config.reduction_factor))
            model.train_adapter(ADAPTER_NAME)
    else:
        model, report = attach(model, init, trainable=True, name=ADAPTER_NAME)
        if report.missing:
            raise PeftportError(f"module {init} does not fit the student: missing {report.missing[:3]}")
    for name in head_names(model):
        for param in getattr(model, name).parameters():
            param.requires_grad = True
    return model


def attach_module(
    model: torch.nn.Module, spec: ArchitectureSpec, config: ModuleConfig, init: Path | None = None
) -> torch.nn.Module:
    """``model`` with only the module and the head trainable; module weights from ``init`` when given."""
    if config.spec.library == "peft":
        return _with_lora(model, spec, config, init)
    return _with_bottleneck(model, config, init)


def save_trained(model: torch.nn.Module, config: ModuleConfig, directory: Path) -> None:
    """Save the module in its library's format (peft: with the head as ``modules_to_save``; AdapterHub: with
    the head in ``head.safetensors``)."""
    if config.spec.library == "peft":
        model.save_pretrained(str(directory))
        publish_base_model(directory)
        return
    from safetensors.torch import save_file

    model.save_adapter(str(directory), ADAPTER_NAME)
    publish_base_model(directory)
    head = {
        f"{n}.{k}": v.detach().cpu().contiguous()
        for n in head_names(model)
        for k, v in getattr(model, n).state_dict().items()
    }
    save_file(head, str(directory / "head.safetensors"))


def task_model(reference: str, data: TaskData) -> torch.nn.Module:
    """The task model of ``data`` (token or sequence classification) on ``reference``, with its labels."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    auto = AutoModelForTokenClassification if data.kind == "token" else AutoModelForSequenceClassification
    id2label = dict(enumerate(data.labels))
    with expected_messages(NEW_HEAD_WEIGHTS):  # the head is new on purpose: trained, or set from the teacher's
        return auto.from_pretrained(
            reference, num_labels=len(data.labels), id2label=id2label, label2id={v: k for k, v in id2label.items()}
        )
