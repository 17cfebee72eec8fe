"""Label-free recovery: after a transfer, train the student's module (and moved head) for a few steps on the
probe texts so that the student reproduces the teacher-with-module's outputs.

Targets: the teacher's logits when the task head moved (KL at shared tokens, or per text for sentence
heads), otherwise the teacher's final hidden states mapped into the student's space by the final layers'
alignment (mean squared error relative to the target's mean square). Only the parameters that are
trainable in ``student`` move; both models run in eval mode (no dropout).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from rich.console import Console

from peftport.architectures.spec import ModelDims
from peftport.core.alignment import PointAlignment
from peftport.core.module import LayerTensors, PeftModule
from peftport.errors import PeftportError
from peftport.formats.loading import head_labels, user_model_class
from peftport.library_logs import NEW_HEAD_WEIGHTS, expected_messages
from peftport.probing.collect import encode_texts
from peftport.probing.tokens import TokenMatch, gather_matched
from peftport.transfers.checkpoints import Checkpoint, run_key
from peftport.transfers.fidelity import FIDELITY_BATCH, fidelity_figure, measure_fidelity
from peftport.transfers.paired import RecoveryModels, forward
from peftport.transfers.progress import recovery_bar
from peftport.transfers.recovery_options import RecoveryOptions, uses_bf16
from peftport.transfers.stopping import EarlyStop
from peftport.transfers.teacher_outputs import teacher_outputs


def _loss(
    teacher: torch.Tensor, s_out: Any, matches: list[TokenMatch], hidden_map: torch.Tensor | None
) -> torch.Tensor:
    """KL on logits (``hidden_map`` None) or relative MSE on mapped final hidden states; ``teacher``: the
    teacher's rows for the batch (``TeacherOutputs.rows_at``)."""
    if hidden_map is None:
        s_logits = s_out.logits.float()
        if s_logits.dim() == 3:  # token heads: shared tokens only
            s_logits = gather_matched(s_logits, matches, "student")
        log_s, log_t = F.log_softmax(s_logits, -1), F.log_softmax(teacher, -1)
        return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")
    s_rows = gather_matched(s_out.hidden_states[-1].float(), matches, "student")
    target = teacher @ hidden_map.to(teacher).T
    return F.mse_loss(s_rows, target) / target.pow(2).mean().clamp_min(1e-12)


def _batches(count: int, size: int) -> Iterator[list[int]]:
    while True:  # cycle through the texts in order: the same batches for the same texts
        for start in range(0, count, size):
            yield list(range(start, min(start + size, count)))


def recover(
    models: RecoveryModels,
    texts: list[str],
    options: RecoveryOptions,
    hidden_map: torch.Tensor | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    cache: tuple[Path, str] | None = None,
    stopper: EarlyStop | None = None,
) -> dict[str, Any]:
    """Train ``models.student``'s trainable parameters towards the teacher's outputs on ``texts`` (computed
    once, fp16, or read from ``cache``: see ``transfers.teacher_outputs``); returns the record: steps, seconds
    (training, and the teacher's share), target, loss at the first and the last step."""
    if not (models.teacher_tokenizer.is_fast and models.student_tokenizer.is_fast):
        raise PeftportError("recovery matches tokens by character offsets: it needs fast tokenizers on both sides")
    params = [p for p in models.student.parameters() if p.requires_grad]
    if not params or not texts:
        raise PeftportError("recovery needs probe texts and a student with trainable module parameters")
    optimizer = torch.optim.AdamW(params, lr=options.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, options.rate_factor)
    models.teacher.eval()
    models.student.eval()
    start = time.perf_counter()
    target = "hidden" if hidden_map is not None else "logits"
    used = texts[: options.steps * options.batch_size]  # only the texts the steps reach need the teacher
    outputs = teacher_outputs(models, texts, target, options.max_length, options.batch_size, cache, len(used))
    teacher_seconds = time.perf_counter() - start
    saves = (
        Checkpoint(cache[0], run_key(cache[1], target, used, options, models.student), options.steps) if cache else None
    )
    done, losses = saves.load(models.student, optimizer, scheduler, stopper) if saves else (0, [])
    batches = _batches(len(used), options.batch_size)
    for _ in range(done):  # a resumed run: the batches it has seen
        next(batches)
    device = next(models.student.parameters()).device
    bf16 = uses_bf16(options.precision, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    stopped_early = False
    for step in range(done, options.steps):
        indices = next(batches)
        batch = [used[i] for i in indices]
        s_enc = encode_texts(models.student_tokenizer, batch, options.max_length)
        matches = outputs.matches(indices, batch, s_enc)
        with autocast:  # the loss itself is taken in fp32 (_loss casts the student's outputs)
            s_out = forward(models.student, s_enc)
        loss = _loss(outputs.rows_at(indices, matches), s_out, matches, hidden_map)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, options.steps, losses[-1])
        stopped_early = stopper is not None and stopper.after(step + 1)
        if saves is not None:
            saves.save(step + 1, losses, models.student, optimizer, scheduler, stopper)
        if stopped_early:
            break
    stopped = stopper.restore() if stopper is not None else {}
    if saves is not None:
        saves.finish()
    return {
        "steps": options.steps,
        "seconds": time.perf_counter() - start,
        "teacher_seconds": teacher_seconds,
        "target": target,
        "learning_rate": options.learning_rate,
        **({"precision": "bf16"} if bf16 else {}),
        **({"schedule": options.schedule} if options.schedule != "constant" else {}),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        **({"steps_done": len(losses), **stopped} if stopper is not None else {}),
        **({"resumed_at": done} if done else {}),
    }


class RecoveryBackend(Protocol):
    """How recovery builds its two models and reads the trained student back: the classes a user loads the
    modules on (`UserModels`, the CLI and API), or a grid's trained task models (``experiments.transferred``)."""

    def models(self, before: Path, head: dict[str, torch.Tensor] | None) -> RecoveryModels:
        """The teacher with its module and the student with the module in ``before`` (and ``head``) trainable."""
        ...

    def read_back(self, student: torch.nn.Module, after: Path, head: bool) -> tuple[LayerTensors, dict | None]:
        """The trained student's layers and (``head``) task head keyed as in the task model, via ``after``."""
        ...


@dataclass(frozen=True)
class Recovery:
    """Recovery of one transfer: how it trains and how its models are built."""

    options: RecoveryOptions
    backend: RecoveryBackend
    cache: tuple[Path, str] | None = None  # a folder for the teacher's outputs and the teacher's key in it


def _loaded(reference: str, module: PeftModule, head: bool) -> torch.nn.Module:
    """``reference`` as the class a user loads ``module`` on (with as many labels as a moved head)."""
    import transformers

    name = user_model_class(module)
    if head and name not in ("AutoModelForTokenClassification", "AutoModelForSequenceClassification"):
        task = module.format_options.get("task_type")
        raise PeftportError(f"recovery with a moved head needs a token or sequence classification module, not {task}")
    labels = {"num_labels": head_labels(module)} if name != "AutoModel" else {}
    with expected_messages(NEW_HEAD_WEIGHTS):  # the module's own head is loaded over the new one
        return getattr(transformers, name).from_pretrained(reference, **labels)


def _trainable_student(reference: str, module: PeftModule, directory: Path, head: bool) -> torch.nn.Module:
    from peftport.formats.loading import attach

    return attach(_loaded(reference, module, head), directory, trainable=True)[0]


@dataclass(frozen=True)
class UserModels:
    """Recovery on the classes a user loads the modules on: the teacher with ``source`` (a module directory
    or a `PeftModule`), the student with the transferred module, whose moved head travels in its extras."""

    source: PeftModule | str | Path
    teacher: str
    student: str

    def models(self, before: Path, head: dict[str, torch.Tensor] | None) -> RecoveryModels:
        from transformers import AutoTokenizer

        from peftport.formats.loading import apply_module
        from peftport.formats.registry import load_module, save_module

        source = self.source
        if isinstance(source, PeftModule):
            source = save_module(source, before.parent / "source")
        teacher_model, _ = apply_module(_loaded(self.teacher, load_module(source), head is not None), source)
        return RecoveryModels(
            teacher_model,
            _trainable_student(self.student, load_module(before), before, head is not None),
            AutoTokenizer.from_pretrained(self.teacher),
            AutoTokenizer.from_pretrained(self.student),
        )

    def read_back(self, student: torch.nn.Module, after: Path, head: bool) -> tuple[LayerTensors, dict | None]:
        from peftport.formats.peft_lora import WRAPPER
        from peftport.formats.registry import load_module

        _save_student(student, after)
        recovered = load_module(after)
        return recovered.layers, {k.removeprefix(WRAPPER): v for k, v in recovered.extras.items()} if head else None


def recover_module(
    result: PeftModule,
    head: dict[str, torch.Tensor] | None,
    recovery: Recovery,
    texts: list[str],
    hidden_map: torch.Tensor | None,
    held_out: list[str] | None = None,
    console: Console | None = None,
) -> tuple[PeftModule, dict[str, torch.Tensor] | None]:
    """``result`` (a transferred module) and its moved ``head`` after ``recovery.options.steps`` recovery steps
    on ``texts`` towards the teacher: on logits when a head moved, else on the teacher's final hidden states
    mapped by ``hidden_map``. The module's provenance gains the ``recovery`` record, with the fidelity on the
    ``held_out`` texts right after the transfer and after recovery (``transfers.fidelity``)."""
    from peftport.formats.registry import save_module

    with tempfile.TemporaryDirectory() as scratch:
        before, after = Path(scratch) / "before", Path(scratch) / "after"
        save_module(result, before)
        models = recovery.backend.models(before, head)
        target = None if head is not None else hidden_map
        start, held_out, length = time.perf_counter(), held_out or [], recovery.options.max_length
        kind = "logits" if target is None else "hidden"
        outputs = teacher_outputs(models, held_out, kind, length, FIDELITY_BATCH, recovery.cache) if held_out else None
        transferred = measure_fidelity(models, held_out, target, length, outputs)
        seconds = time.perf_counter() - start
        stopper = None
        if recovery.options.patience and held_out:
            judge = lambda: fidelity_figure(measure_fidelity(models, held_out, target, length, outputs))[1]  # noqa: E731
            first = fidelity_figure(transferred)[1]  # the transferred module: the check at step 0, measured above
            stopper = EarlyStop.over(judge, models.student, recovery.options.patience, recovery.options.steps, first)
        with recovery_bar(console, recovery.options.steps, stopper) as on_step:
            record = recover(models, texts, recovery.options, target, on_step, recovery.cache, stopper)
        start = time.perf_counter()
        recovered = measure_fidelity(models, held_out, target, length, outputs)
        fidelity = {"transferred": transferred, "recovered": recovered}
        record.update(texts=len(texts), fidelity=fidelity, fidelity_seconds=seconds + time.perf_counter() - start)
        layers, recovered_head = recovery.backend.read_back(models.student, after, head is not None)
    return result.with_layers(layers, provenance={**result.provenance, "recovery": record}), recovered_head


def _save_student(model: torch.nn.Module, directory: Path) -> None:
    if hasattr(model, "active_adapters") and hasattr(model, "save_adapter") and not hasattr(model, "peft_config"):
        model.save_adapter(str(directory), model.active_adapters.last())
    else:
        model.save_pretrained(str(directory))


def final_hidden_map(final: PointAlignment | None, teacher: ModelDims, student: ModelDims) -> torch.Tensor:
    """``(d_s, d_t)``: how the teacher's final hidden states read in the student's space: the identity when
    no final alignment was made (equal widths), else the final layers' alignment ``final`` (`PointAlignment`).
    ``teacher`` and ``student`` are the models' `ModelDims`."""
    if final is None:
        return torch.eye(student.hidden_size)
    return final.matrix(teacher.hidden_size).float()
