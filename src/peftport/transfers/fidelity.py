"""Fidelity without labels: how closely the student reproduces the teacher-with-module on held-out texts.

With a moved task head: the share of predictions the student and the teacher agree on (token heads at the
tokens both tokenizers share, sequence heads per text; a one-output regression head: the Pearson correlation
of the two outputs instead), the same per label the teacher predicts and averaged over those labels (so that
a frequent label such as NER's "O" does not dominate), and the mean KL(teacher || student) of their label
distributions. Without a head:
the R^2 of the student's final hidden states against the teacher's mapped into the student's space (the
target recovery trains on), pooled over shared tokens and dimensions. Both models run in eval mode.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from peftport.probing.collect import encode_texts
from peftport.probing.tokens import gather_matched
from peftport.transfers.paired import RecoveryModels, forward
from peftport.transfers.teacher_outputs import TeacherOutputs, teacher_outputs

FIDELITY_BATCH = 32


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denominator = (a.norm() * b.norm()).item()
    return float((a @ b).item() / denominator) if denominator > 0 else float("nan")


def measure_fidelity(
    models: RecoveryModels,
    texts: list[str],
    hidden_map: torch.Tensor | None,
    max_length: int = 128,
    outputs: TeacherOutputs | None = None,
) -> dict[str, Any]:
    """Fidelity of ``models.student`` to the teacher on ``texts``: on the logits (``hidden_map`` None, a moved
    head) or on the final hidden states read through ``hidden_map`` ``(d_s, d_t)``. ``outputs``: the teacher's
    on ``texts``, when already computed (``transfers.teacher_outputs``)."""
    if not texts:
        return {"texts": 0}
    target = "logits" if hidden_map is None else "hidden"
    if outputs is None:
        outputs = teacher_outputs(models, texts, target, max_length, FIDELITY_BATCH)
    teachers, students = [], []
    models.student.eval()
    with torch.no_grad():
        for start in range(0, len(texts), FIDELITY_BATCH):
            indices = list(range(start, min(start + FIDELITY_BATCH, len(texts))))
            batch = [texts[i] for i in indices]
            s_enc = encode_texts(models.student_tokenizer, batch, max_length)
            s_out, matches = forward(models.student, s_enc), outputs.matches(indices, batch, s_enc)
            rows = outputs.rows_at(indices, matches)
            if hidden_map is not None:
                teachers.append(rows @ hidden_map.to(rows).T)
                students.append(gather_matched(s_out.hidden_states[-1].float(), matches, "student").cpu())
            else:
                logits = s_out.logits.float()
                teachers.append(rows)
                students.append((gather_matched(logits, matches, "student") if logits.dim() == 3 else logits).cpu())
    teacher, student = torch.cat(teachers), torch.cat(students)
    figures = hidden_fidelity(teacher, student) if hidden_map is not None else logit_fidelity(teacher, student)
    return {"texts": len(texts), "rows": int(teacher.shape[0]), **figures}


def logit_fidelity(teacher: torch.Tensor, student: torch.Tensor) -> dict[str, float]:
    """Agreement, the mean over the teacher's predicted labels of each one's agreement, and the mean
    KL(teacher || student) of two ``(rows, labels)`` logit tables; one label (a regression head): the
    correlation of the two outputs.

    >>> t = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    >>> logit_fidelity(t, t)["agreement"], logit_fidelity(t, t.flip(1))["agreement"]
    (1.0, 0.0)
    """
    if teacher.shape[0] == 0:
        return {"agreement": float("nan"), "kl": float("nan")}
    if teacher.shape[-1] == 1:
        return {"correlation": _pearson(teacher, student)}
    predicted, same = teacher.argmax(-1), teacher.argmax(-1) == student.argmax(-1)
    per_label = [same[predicted == label].double().mean().item() for label in predicted.unique().tolist()]
    log_t, log_s = F.log_softmax(teacher, -1), F.log_softmax(student, -1)
    kl = F.kl_div(log_s, log_t, log_target=True, reduction="batchmean").item()
    return {
        "agreement": float(same.double().mean().item()),
        "balanced_agreement": float(sum(per_label) / len(per_label)),  # a frequent label ("O") does not dominate
        "kl": float(kl),
    }


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
    """The one figure that says how well it worked: the balanced agreement (labels), correlation (regression
    heads) or R^2 (no head)."""
    for name in ("balanced_agreement", "agreement", "correlation", "r2"):
        if name in measured:
            return name, float(measured[name])
    return "none", math.nan
