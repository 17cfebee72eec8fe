"""How to probe: which texts, how many, how tokens are matched, in what batches, on which device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from peftport.errors import PeftportError
from peftport.probing.tokens import TOKEN_MATCHES


@dataclass(frozen=True)
class ProbeSettings:
    """The probe texts (a file or hub dataset) and how they are run (defaults follow the paper: 1000 texts)."""

    probe_data: str
    probe_sentences: int = 1000
    token_match: str = "offsets"
    batch_size: int = 32
    max_length: int = 128
    min_shared_tokens: int = 100
    device: str | None = None

    def __post_init__(self) -> None:
        if self.token_match not in TOKEN_MATCHES:
            raise PeftportError(f"unknown token matching '{self.token_match}': use one of {', '.join(TOKEN_MATCHES)}")
        if self.probe_sentences < 1 or self.batch_size < 1 or self.max_length < 2:
            raise PeftportError("probe sentences, batch size and max length must be positive")
        pick_device(self.device)


def pick_device(requested: str | None) -> torch.device:
    """The probing device: ``requested`` (checked: known, and CUDA present), else CUDA when there is one."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise PeftportError(f"unknown device '{requested}': use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PeftportError(f"device '{requested}' asked for, but CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise PeftportError(f"unsupported device '{requested}': use cpu, cuda or cuda:N")
    return device


def check_tokens(per_text: list[int], needed: int) -> None:
    """Refuse statistics from fewer than ``needed`` shared tokens."""
    total = sum(per_text)
    if total < needed:
        raise PeftportError(
            f"too few shared tokens to estimate correlations: found {total} over {len(per_text)} texts, "
            f"need at least {needed}; give more or longer probe texts (--probe-sentences, --probe-data)"
        )
