"""Fidelity without labels: how closely the student reproduces the teacher-with-module on held-out texts.

With a moved task head: the share of predictions the student and the teacher agree on (token heads at the
tokens both tokenizers share, sequence heads per text; a one-output regression head: the Pearson correlation
of the two outputs instead) and the mean KL(teacher || student) of their label distributions. Without a head:
the R^2 of the student's final hidden states against the teacher's mapped into the student's space (the
target recovery trains on), pooled over shared tokens and dimensions. Both models run in eval mode.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from peftport.probing.tokens import gather_matched
from peftport.transfers.paired import RecoveryModels, encoded_pair, forward

FIDELITY_BATCH = 32


def _logit_rows(t_out: Any, s_out: Any, matches: list) -> tuple[torch.Tensor, torch.Tensor]:
    t_logits, s_logits = t_out.logits.float(), s_out.logits.float()
    if t_logits.dim() == 3:  # token heads: shared tokens only
        return gather_matched(t_logits, matches, "teacher"), gather_matched(s_logits, matches, "student")
    return t_logits, s_logits


def _hidden_rows(t_out: Any, s_out: Any, matches: list, hidden_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t_rows = gather_matched(t_out.hidden_states[-1].float(), matches, "teacher")
    s_rows = gather_matched(s_out.hidden_states[-1].float(), matches, "student")
    return t_rows @ hidden_map.to(t_rows).T, s_rows


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denominator = (a.norm() * b.norm()).item()
    return float((a @ b).item() / denominator) if denominator > 0 else float("nan")


def measure_fidelity(
    models: RecoveryModels, texts: list[str], hidden_map: torch.Tensor | None, max_length: int = 128
) -> dict[str, Any]:
    """Fidelity of ``models.student`` to ``models.teacher`` on ``texts``: on the logits (``hidden_map`` None,
    a moved head) or on the final hidden states read through ``hidden_map`` ``(d_s, d_t)``."""
    if not texts:
        return {"texts": 0}
    targets, outputs = [], []
    models.teacher.eval()
    models.student.eval()
    with torch.no_grad():
        for start in range(0, len(texts), FIDELITY_BATCH):
            batch = texts[start : start + FIDELITY_BATCH]
            t_enc, s_enc, matches = encoded_pair(models, batch, max_length)
            t_out, s_out = forward(models.teacher, t_enc), forward(models.student, s_enc)
            rows = (
                _logit_rows(t_out, s_out, matches)
                if hidden_map is None
                else _hidden_rows(t_out, s_out, matches, hidden_map)
            )
            targets.append(rows[0].cpu())
            outputs.append(rows[1].cpu())
    target, output = torch.cat(targets), torch.cat(outputs)
    if hidden_map is not None:
        return {"texts": len(texts), "rows": int(target.shape[0]), **hidden_fidelity(target, output)}
    return {"texts": len(texts), "rows": int(target.shape[0]), **logit_fidelity(target, output)}


def logit_fidelity(teacher: torch.Tensor, student: torch.Tensor) -> dict[str, float]:
    """Agreement and mean KL(teacher || student) of two ``(rows, labels)`` logit tables; one label (a
    regression head): the correlation of the two outputs.

    >>> t = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    >>> logit_fidelity(t, t)["agreement"], logit_fidelity(t, t.flip(1))["agreement"]
    (1.0, 0.0)
    """
    if teacher.shape[0] == 0:
        return {"agreement": float("nan"), "kl": float("nan")}
    if teacher.shape[-1] == 1:
        return {"correlation": _pearson(teacher, student)}
    agreement = (teacher.argmax(-1) == student.argmax(-1)).double().mean().item()
    log_t, log_s = F.log_softmax(teacher, -1), F.log_softmax(student, -1)
    kl = F.kl_div(log_s, log_t, log_target=True, reduction="batchmean").item()
    return {"agreement": float(agreement), "kl": float(kl)}


def hidden_fidelity(target: torch.Tensor, output: torch.Tensor) -> dict[str, float]:
    """R^2 of ``output`` against ``target`` (``(rows, d)``; pooled over rows and dimensions, each dimension
    centred on its own mean) and the relative mean squared error recovery minimises.

    >>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> hidden_fidelity(t, t)["r2"], round(hidden_fidelity(t, torch.zeros_like(t))["relative_mse"], 3)
    (1.0, 1.0)
    """
    if target.shape[0] < 2:
        return {"r2": float("nan"), "relative_mse": float("nan")}
    target, output = target.double(), output.double()
    residual = (output - target).pow(2).sum().item()
    spread = (target - target.mean(0)).pow(2).sum().item()
    scale = target.pow(2).sum().item()
    r2 = 1 - residual / spread if spread > 0 else float("nan")
    return {"r2": float(r2), "relative_mse": float(residual / scale) if scale > 0 else float("nan")}


def fidelity_figure(measured: dict[str, Any]) -> tuple[str, float]:
    """The one figure that says how well it worked: agreement, correlation (regression heads) or R^2."""
    for name in ("agreement", "correlation", "r2"):
        if name in measured:
            return name, float(measured[name])
    return "none", math.nan
