"""The hyperparameters of each module kind: LoRA's rank and scaling, a bottleneck adapter's AdapterHub config."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyperparameters. The update is ``scaling * B @ A`` applied to the layer input.

    >>> LoraSettings(rank=8, alpha=16).scaling
    2.0
    """

    rank: int
    alpha: float
    use_rslora: bool = False
    dropout: float = 0.0

    @property
    def scaling(self) -> float:
        """Effective multiplier of ``B @ A`` (peft: alpha/r, or alpha/sqrt(r) with rsLoRA)."""
        return self.alpha / (math.sqrt(self.rank) if self.use_rslora else self.rank)


@dataclass(frozen=True)
class BottleneckSettings:
    """Bottleneck adapter settings, kept as AdapterHub's own config dictionary.

    ``options`` is the AdapterHub ``config`` block (placement, non-linearity, layer norms);
    the bottleneck width is read from the tensors, not from ``reduction_factor``.
    """

    options: dict[str, Any]

    @property
    def architecture(self) -> str:
        """``double_seq_bn`` (Houlsby) when adapters sit after attention and FFN, else ``seq_bn``."""
        both = self.options.get("mh_adapter") and self.options.get("output_adapter")
        return "double_seq_bn" if both else "seq_bn"

    @property
    def reads_normed_input(self) -> bool:
        """Whether the adapter's input is the sub-layer's normed residual sum (``original_ln_before``, seq_bn)
        rather than the sub-layer's output before the residual (double_seq_bn)."""
        return bool(self.options.get("original_ln_before", False))

    @property
    def non_linearity(self) -> str:
        """Activation between the down- and up-projection."""
        return str(self.options.get("non_linearity", "relu"))
