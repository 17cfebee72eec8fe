"""A transfer's options, written once: the CLI flags of ``peftport transfer``, the experiment YAML's
``transfers`` entries and the keyword arguments of :func:`peftport.transfer` all derive from these models.

``TransferFields`` holds what every entry point shares; ``TransferOptions`` adds what a single transfer
needs (the head as a switch, the probing device, the seed of fresh layers, probing batch sizes). The
experiment file's ``TransferConfig`` (``experiments.config``) adds its own ``head`` choice instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from peftport.core.layer_maps import check_layer_selection
from peftport.errors import PeftportError
from peftport.transfers.methods import NO_ALIGNMENT, AlignMethod, align_method, methods_help

MATCHERS = ("hungarian", "procrustes", "sinkhorn")  # core.matchers.MATCHERS (kept light: no torch here)
TOKEN_MATCHES = ("offsets", "strings")  # probing.tokens.TOKEN_MATCHES
LORA_B_MODES = ("input", "output")
RECOVERY_SCHEDULES = ("constant", "linear")  # transfers.recovery.RecoveryOptions.schedule
RECOVERY_PRECISIONS = ("fp32", "bf16", "auto")  # auto: bf16 where the device computes it natively
STARTS = ("transfer", "fresh")  # fresh: the control that distils a default-initialised module instead
DEFAULT_RECOVER_LR = 1e-3
# json_schema_extra of an option added after the first studies: an experiment's run ids include it only when
# it is set off its default, so the ids of earlier runs stay valid (experiments.grid reads the marker)
LATER: dict[str, Any] = {"later": True}


CHOICES = {  # field -> (allowed values, what the error calls it)
    "matcher": (MATCHERS, "matcher"),
    "token_match": (TOKEN_MATCHES, "token matching"),
    "lora_b": (LORA_B_MODES, "LoRA B alignment"),
    "recover_schedule": (RECOVERY_SCHEDULES, "recovery schedule"),
    "recover_precision": (RECOVERY_PRECISIONS, "recovery precision"),
    "start": (STARTS, "start"),
}


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} '{value}': use one of {', '.join(allowed)}")
    return value


class TransferFields(BaseModel):
    """Options every entry point shares (CLI, YAML, API); each field's description is its help text."""

    model_config = ConfigDict(extra="forbid")
    layer_map: str = Field(
        "skip",
        description="skip, skip-last, skip-uniform, avg, identity, cka (best monotone map by CKA on --probe-data), "
        "or a list like '0,2,4' ('+' averages).",
    )
    align: str = Field(NO_ALIGNMENT, description=methods_help() + ".")
    probe_data: str | None = Field(None, description="Probe texts: text/CoNLL/TSV file (.gz ok) or hub dataset.")
    probe_sentences: int = Field(1000, description="Number of probe texts to use.")
    token_match: str = Field("offsets", description="Shared tokens by character 'offsets' or reference 'strings'.")
    lora_b: str = Field("input", description="LoRA B rows: reuse the 'input' alignment or align the layer 'output'.")
    matcher: str = Field(
        "hungarian",
        description="hungarian (permutation, the paper's), procrustes (rotation) or sinkhorn (soft).",
        json_schema_extra=LATER,
    )
    min_quality: float | None = Field(
        None,
        description="Student layers whose quality (matched correlation, held-out R^2 of projection, or CKA) is "
        "lower keep a fresh init.",
        json_schema_extra=LATER,
    )
    transfer_layers: str = Field(
        "all",
        description="Student layers to transfer: all, first-half, second-half, every-other or '0,2' (rest: fresh).",
        json_schema_extra=LATER,
    )
    lora_svd: bool = Field(
        False,
        description="Merge LoRA layer groups through B@A, re-factored by truncated SVD.",
        json_schema_extra={"flag": "--lora-svd", **LATER},
    )
    calibrate: bool = Field(
        True,
        description="With --align projection: give each LoRA update the teacher's size relative to its slot.",
        json_schema_extra=LATER,
    )
    recover_steps: int = Field(
        0,
        description="Then train the student's module (and moved head) this many steps on the probe texts, without "
        "labels, towards the teacher's outputs (logits with --head, else mapped final hidden states).",
        json_schema_extra=LATER,
    )
    recover_lr: float | None = Field(
        None, description=f"Learning rate of recovery (default {DEFAULT_RECOVER_LR:g}).", json_schema_extra=LATER
    )
    recover_schedule: str = Field(
        "constant",
        description="Recovery's learning rate: 'constant', or 'linear' (10% warm-up, then linear decay to zero).",
        json_schema_extra=LATER,
    )
    recover_precision: str = Field(
        "fp32",
        description="Recovery's student steps under bf16 autocast ('bf16'), where the device computes bf16 natively "
        "('auto': a GPU that supports it, a CPU with AVX512-BF16 or AMX), or in fp32 (the default).",
        json_schema_extra=LATER,
    )
    start: str = Field(
        "transfer",
        description="'transfer': the teacher's module, moved; 'fresh': the control that isolates what the transfer "
        "adds: the same module at the library's default initialisation and a random head, distilled into the "
        "teacher's outputs like the transfer (needs --recover-steps and --head).",
        json_schema_extra=LATER,
    )
    recover_patience: int | None = Field(
        None,
        description="Stop recovery when the held-out fidelity has not risen for this many checks (10 per run), "
        "and keep the module of the best check (possibly the transferred one).",
        json_schema_extra=LATER,
    )
    min_fidelity: float | None = Field(
        None,
        description="After recovery: warn when the held-out fidelity (agreement with the teacher's predictions, "
        "averaged over its labels; R^2 of the mapped final states without --head) is lower; with --strict, fail "
        "and write nothing.",
        json_schema_extra=LATER,
    )

    @field_validator("align")
    @classmethod
    def _align(cls, value: str) -> str:
        try:
            align_method(value)  # the registry of transfers.methods (a method registered later is known too)
        except PeftportError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("matcher", "token_match", "lora_b", "recover_schedule", "recover_precision", "start")
    @classmethod
    def _known(cls, value: str, info: ValidationInfo) -> str:
        allowed, what = CHOICES[info.field_name]
        return _one_of(value, allowed, what)

    @field_validator("transfer_layers")
    @classmethod
    def _layers(cls, value: str) -> str:
        try:
            return check_layer_selection(value)
        except PeftportError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("probe_sentences")
    @classmethod
    def _sentences(cls, value: int) -> int:
        if value < 1:
            raise ValueError("probe sentences and batch size must be positive")
        return value

    @field_validator("recover_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value < 0:
            raise ValueError("recovery needs steps >= 0")
        return value

    @field_validator("recover_lr")
    @classmethod
    def _lr(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError("recovery needs a positive learning rate")
        return value

    @model_validator(mode="after")
    def _fidelity_needs_recovery(self) -> TransferFields:
        if self.min_fidelity is not None and not self.recover_steps:
            raise ValueError("--min-fidelity judges recovery's held-out fidelity: give --recover-steps N")
        if self.recover_patience is not None and (self.recover_patience < 1 or not self.recover_steps):
            raise ValueError("--recover-patience needs a positive number of checks and --recover-steps N")
        return self

    @property
    def method(self) -> AlignMethod:
        """The registry entry of ``align``."""
        return align_method(self.align)

    @property
    def probes(self) -> bool:
        """Whether the transfer runs both models on probe texts (a probing alignment, a CKA layer map, recovery)."""
        return self.method.probes or self.layer_map == "cka" or self.recover_steps > 0

    @property
    def effective_lora_b(self) -> str:
        """How LoRA B is aligned: the ``lora_b`` option, unless the method fixes it (fitted and uniform maps
        write LoRA B in its own output space)."""
        return self.method.effective_lora_b(self.lora_b)


class TransferOptions(TransferFields):
    """Every option of one transfer (``peftport transfer``, :func:`peftport.transfer`), validated once."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    head: bool = Field(
        False,
        description="Move the task head too (peft modules_to_save): copied, or aligned by the last layers.",
        json_schema_extra={"flag": "--head"},
    )
    device: str | None = Field(None, description="Device for probing (default: cuda if available, else cpu).")
    strict: bool = Field(
        False,
        description="Fail instead of warning when no student layer reaches --min-quality, or recovery ends below "
        "--min-fidelity or the fresh control (--compare-fresh).",
        json_schema_extra={"flag": "--strict"},
    )
    seed: int = Field(0, description="Seed of the fresh initialisation of layers below --min-quality.")
    teacher_cache: str | None = Field(
        None,
        description="Folder that keeps the teacher's outputs on the recovery texts, for other students, seeds and "
        "reruns to reuse (default: computed for this transfer only).",
    )
    compare_fresh: bool = Field(
        False,
        description="Also distil the fresh control (as --start fresh) with the same texts, steps and seed; warn "
        "(--strict: fail) when the transfer's held-out fidelity is lower. Doubles the recovery's time.",
        json_schema_extra={"flag": "--compare-fresh"},
    )
    batch_size: int = Field(32, description="Probe texts per forward pass.", json_schema_extra={"cli": False})
    max_length: int = Field(128, description="Tokens per probe text.", json_schema_extra={"cli": False})
    min_shared_tokens: int = Field(
        100, description="Fewest shared tokens to trust statistics.", json_schema_extra={"cli": False}
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        from peftport.probing.settings import pick_device

        try:
            pick_device(value)
        except PeftportError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _needs_texts(self) -> TransferOptions:
        if self.batch_size < 1 or self.max_length < 2:
            raise ValueError("probe sentences and batch size must be positive")
        if self.method.probes and not self.probe_data:
            raise ValueError(f"{self.align} alignment needs probe texts: give --probe-data FILE")
        if self.layer_map == "cka" and not self.probe_data:
            raise ValueError("the 'cka' layer map compares both models on probe texts: give --probe-data")
        if self.recover_steps and not self.probe_data:
            raise ValueError("recovery trains on probe texts: give --probe-data")
        if self.compare_fresh and (not self.recover_steps or not self.head or self.start == "fresh"):
            raise ValueError("--compare-fresh needs --recover-steps N and --head, and no --start fresh")
        return self

    def command_flags(self) -> list[str]:
        """The ``peftport transfer`` flags that give these options (those not at their default), in field order;
        an option the CLI does not take is written ``# api: name=value`` after them.

        >>> TransferOptions(align="projection", probe_data="t.txt", head=True, calibrate=False).command_flags()
        ['--align', 'projection', '--probe-data', 't.txt', '--no-calibrate', '--head']
        """
        flags: list[str] = []
        api: list[str] = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value == field.default:
                continue
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            flag = str(extra.get("flag") or "--" + name.replace("_", "-"))
            if extra.get("cli") is False:
                api.append(f"{name}={value!r}")
            elif isinstance(value, bool):
                flags.append(flag if value else "--no-" + name.replace("_", "-"))
            else:
                flags += [flag, str(value)]
        return flags + ([f"# api: {', '.join(api)}"] if api else [])

    @property
    def recovery_lr(self) -> float:
        """The learning rate recovery uses."""
        return self.recover_lr if self.recover_lr is not None else DEFAULT_RECOVER_LR


def transfer_options(**values: Any) -> TransferOptions:
    """`TransferOptions` from keyword values; a bad value is a one-line `PeftportError` naming it."""
    try:
        return TransferOptions(**values)
    except ValidationError as exc:
        raise PeftportError(first_error(exc)) from None


def first_error(error: ValidationError) -> str:
    """The first problem of a validation error as one line (our own messages without pydantic's prefix)."""
    first = error.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "value_error" or not first["loc"]:
        return message
    return f"{'.'.join(str(part) for part in first['loc'])}: {message}"
