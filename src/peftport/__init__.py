"""peftport: move PEFT modules (LoRA, bottleneck adapters) from a teacher model to a smaller student.

Python API::

    import peftport
    student_module = peftport.transfer("teacher-lora/", teacher="bert-base-cased",
                                       student="distilbert-base-cased", layer_map="skip")
    # any TransferOptions field as a keyword: align="projection", probe_data="texts.txt", head=True ...
    peftport.save_module(student_module, "student-lora/")

The names below load on first use, so ``import peftport.core...`` (the pure layer) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BottleneckSettings": "peftport.core.module",
    "LoraSettings": "peftport.core.module",
    "PeftModule": "peftport.core.module",
    "PeftportError": "peftport.errors",
    "TransferOptions": "peftport.transfers.options",
    "load_module": "peftport.formats.registry",
    "save_module": "peftport.formats.registry",
    "transfer": "peftport.transfers.api",
    "transfer_many": "peftport.transfers.batch",
}
__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'peftport' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
