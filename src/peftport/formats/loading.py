"""Load a module directory onto a model with the module's own library, reporting key mismatches."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from peftport.core.module import PeftModule
from peftport.formats.codecs import detect_format
from peftport.library_logs import ADAPTERS_NOT_ACTIVE, expected_messages


@dataclass(frozen=True)
class LoadReport:
    """Adapter keys the library could not place (both lists empty on a clean load)."""

    missing: list[str]
    unexpected: list[str]

    @property
    def clean(self) -> bool:
        """True when every adapter key was loaded and none was missing."""
        return not self.missing and not self.unexpected


def _with_peft(model: torch.nn.Module, module_dir: Path) -> tuple[torch.nn.Module, LoadReport]:
    from peft import PeftModel

    wrapped = PeftModel.from_pretrained(model, str(module_dir), adapter_name="probe")
    result = wrapped.load_adapter(str(module_dir), adapter_name="check")
    wrapped.delete_adapter("check")
    wrapped.set_adapter("probe")
    missing = [k for k in result.missing_keys if "lora_" in k and ".check." in k]
    return wrapped, LoadReport(missing, list(result.unexpected_keys))


def _with_adapters(
    model: torch.nn.Module, module_dir: Path, name: str | None = None
) -> tuple[torch.nn.Module, LoadReport]:
    import adapters

    adapters.init(model)
    info: dict[str, Any] = {}
    with expected_messages(ADAPTERS_NOT_ACTIVE):  # adapters logs it while adding the adapter it then activates
        name = model.load_adapter(str(module_dir), loading_info=info, set_active=True, load_as=name)
    missing = [k for k in info.get("missing_keys", []) if f".{name}." in k]
    return model, LoadReport(missing, list(info.get("unexpected_keys", [])))


def attach(
    model: torch.nn.Module, module_dir: str | Path, trainable: bool = False, name: str | None = None
) -> tuple[torch.nn.Module, LoadReport]:
    """``model`` with the module of ``module_dir`` loaded by its own library (peft or AdapterHub, whichever
    wrote it), and which adapter keys did not fit (a trainable peft load is not checked: its report is empty):
    in eval mode, or (``trainable``) with only the module's parameters trainable. ``name``: the AdapterHub
    adapter's name (default: the saved one). The one way peftport attaches a saved module: the load check,
    recovery and training's transferred adapters use it."""
    module_dir = Path(module_dir)
    if detect_format(module_dir) != "peft":
        loaded, report = _with_adapters(model, module_dir, name)
        if trainable:
            with expected_messages(ADAPTERS_NOT_ACTIVE):
                loaded.train_adapter(loaded.active_adapters.last())
            return loaded, report
        return loaded.eval(), report
    if not trainable:
        loaded, report = _with_peft(model, module_dir)
        return loaded.eval(), report
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(module_dir), is_trainable=True), LoadReport([], [])


def apply_module(model: torch.nn.Module, module_dir: str | Path) -> tuple[torch.nn.Module, LoadReport]:
    """``model`` with the module loaded by peft or AdapterHub (whichever wrote it), in eval mode."""
    return attach(model, module_dir)


# peft task types -> the transformers auto class a user loads such a module on
TASK_CLASSES = {
    "TOKEN_CLS": "AutoModelForTokenClassification",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "CAUSAL_LM": "AutoModelForCausalLM",
}


def user_model_class(module: PeftModule) -> str:
    """The auto class a user loads ``module`` on: its task type's class (or, for a transfer that cleared it with
    the head, the teacher module's); else, for keys in a task model's layout (``bert.encoder...``), a task class
    (token classification: every task class shares the layout); else the bare model."""
    task = module.format_options.get("task_type") or module.format_options.get("source_task_type")
    if task in TASK_CLASSES:
        return TASK_CLASSES[task]
    return "AutoModelForTokenClassification" if module.task_model else "AutoModel"


OUTPUT_LAYERS = ("classifier", "out_proj", "score", "qa_outputs")  # the last layer of a transformers task head


def head_labels(module: PeftModule) -> int:
    """How many labels the module's task head predicts (2 when it carries none): the rows of the head's last
    layer, the 2-D weight whose output no other head weight reads (DistilBERT's ``pre_classifier`` and
    RoBERTa's ``classifier.dense`` feed the output layer); by name where widths cannot tell."""
    weights = {k: t for k, t in module.extras.items() if k.endswith(".weight") and t.dim() == 2}
    if not weights:
        return 2
    read = [t.shape[1] for t in weights.values()]
    last = [t for t in weights.values() if read.count(t.shape[0]) == 0]
    if len(last) == 1:
        return int(last[0].shape[0])
    named = [t for k, t in weights.items() if k.removesuffix(".weight").rsplit(".", 1)[-1] in OUTPUT_LAYERS]
    return int((named or list(weights.values()))[-1].shape[0])


def load_check(module: PeftModule, module_dir: Path, reference: str) -> tuple[str, LoadReport]:
    """Load the written ``module_dir`` onto ``reference`` built as the class a user loads it on, on the meta
    device (no weights are read); returns that class's name and which adapter keys did not fit."""
    import transformers

    name = user_model_class(module)
    config = transformers.AutoConfig.from_pretrained(reference)
    if name != "AutoModel":
        config.num_labels = head_labels(module)
    with torch.device("meta"):
        model = getattr(transformers, name).from_config(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report says what did not load
        _, report = apply_module(model, module_dir)
    return name, report
