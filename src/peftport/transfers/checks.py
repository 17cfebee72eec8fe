"""Checks a transfer runs before any model is probed: the module fits its teacher, the student can host its
slots, and the widths allow the chosen alignment."""

from __future__ import annotations

from peftport.architectures.models import ModelInfo
from peftport.architectures.registry import spec_by_name
from peftport.architectures.spec import ArchitectureSpec
from peftport.core.module import PeftModule
from peftport.errors import ArchitectureError, ModuleFormatError, ShapeMismatchError


def same_layout(a: ArchitectureSpec, b: ArchitectureSpec) -> bool:
    """Whether two families name layers and slots identically (bert, roberta, electra ...)."""
    return a.layer_template == b.layer_template and a.slots == b.slots


def check_teacher_fit(module: PeftModule, teacher: ModelInfo) -> None:
    """The module was made for this teacher: its family (or an identical layout), layers and width."""
    if module.family != teacher.spec.name and not same_layout(teacher.spec, spec_by_name(module.family)):
        raise ModuleFormatError(f"the module is for a {module.family} model, the teacher is a {teacher.spec.name}")
    beyond = [i for i in module.layer_indices if i >= teacher.dims.num_layers]
    if beyond:
        raise ShapeMismatchError(
            f"the module has layer {beyond[0]}, the teacher only {teacher.dims.num_layers} layers: wrong --teacher?"
        )
    if module.hidden_size and module.hidden_size != teacher.dims.hidden_size:
        raise ShapeMismatchError(f"the module is {module.hidden_size} wide, the teacher {teacher.dims.hidden_size}")


def check_widths(module: PeftModule, teacher: ModelInfo, student: ModelInfo) -> None:
    """A matching transfer (no alignment) needs equal widths in every space the module touches."""
    t, s = teacher.dims, student.dims
    if t.hidden_size < s.hidden_size:
        raise ShapeMismatchError(
            f"hidden sizes differ (teacher {t.hidden_size}, student {s.hidden_size}): the student is wider; "
            "fit maps between the two spaces (--align projection --probe-data FILE)"
        )
    if t.hidden_size != s.hidden_size:
        raise ShapeMismatchError(
            f"hidden sizes differ (teacher {t.hidden_size}, student {s.hidden_size}): matching transfer needs "
            "equal widths; align them (--align correlation|projection --probe-data FILE, or --align uniform)"
        )
    for slot in module.slots:
        for dim in (teacher.spec.slots[slot].in_dim, teacher.spec.slots[slot].out_dim):
            if t.width(dim) != s.width(dim):
                raise ShapeMismatchError(
                    f"slot {slot} needs equal {dim} sizes (teacher {t.width(dim)}, student {s.width(dim)})"
                )


def check_prunable(module: PeftModule, teacher: ModelInfo, student: ModelInfo, lora_b: str, widens: bool) -> None:
    """Selecting transfers keep a subset of teacher dimensions, so no student width may exceed the teacher's
    (methods that ``widen``, like fitted projections, map any width to any other)."""
    if widens:
        return
    for slot in module.slots:
        spec = teacher.spec.slots[slot]
        for dim in (spec.in_dim, spec.out_dim):
            if student.dims.width(dim) > teacher.dims.width(dim):
                raise ShapeMismatchError(
                    f"the student's {dim} size ({student.dims.width(dim)}) exceeds the teacher's "
                    f"({teacher.dims.width(dim)}): prune-and-align only moves modules to narrower models; "
                    "use --align projection for a wider student"
                )
        if module.spec.low_rank and lora_b == "input" and spec.in_dim != spec.out_dim:
            raise ShapeMismatchError(
                f"LoRA B of slot {slot} lives in the {spec.out_dim} space, not its input's: use --lora-b output"
            )


def check_hostable(module: PeftModule, student: ModelInfo) -> None:
    """The student's family has every slot the module uses."""
    missing = [slot for slot in module.slots if slot not in student.spec.slots]
    if missing:
        raise ArchitectureError(f"student family {student.spec.name} cannot host module slot(s) {missing}")
