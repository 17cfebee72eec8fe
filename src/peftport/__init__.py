"""peftport: move PEFT modules (LoRA, bottleneck adapters) from a teacher model to a smaller student.

Python API::

    import peftport
    student_module = peftport.transfer("teacher-lora/", teacher="bert-base-cased",
                                       student="distilbert-base-cased", layer_map="skip")
    peftport.save_module(student_module, "student-lora/")
"""

__version__ = "0.1.0"

from peftport.core.module import BottleneckSettings, LoraSettings, PeftModule  # noqa: E402
from peftport.errors import PeftportError  # noqa: E402
from peftport.formats.registry import load_module, save_module  # noqa: E402
from peftport.pipelines.transfer import transfer  # noqa: E402

__all__ = [
    "BottleneckSettings",
    "LoraSettings",
    "PeftModule",
    "PeftportError",
    "__version__",
    "load_module",
    "save_module",
    "transfer",
]
