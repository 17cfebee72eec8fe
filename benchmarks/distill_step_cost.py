"""What one label-free distillation (recovery) step costs against one supervised step of the same student,
with the teacher's outputs computed in the run and read from the cache, and cached under bf16 autocast (issue
30's target: <= 1.2x once cached).

    python benchmarks/distill_step_cost.py [--teacher zoo:all-mpnet-base-v2] [--student zoo:all-MiniLM-L6-v2]
                                           [--steps 20] [--out FILE]

The teacher gets a random LoRA r8 on query and value with a 9-label token head (the cost does not depend on
what it learnt); it moves to the student by projection with its head (``--head``), then recovers ``--steps``
steps of 16 demo NER sentences at max length 64 towards the teacher's logits: once computing the teacher's
outputs, once reading them from ``--teacher-cache``. The supervised step is peftport's training loop on the
student (LoRA r8 q,v, token head) with the same batch and length.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from peftport.demo.experiment import DEMO_CONFIG  # noqa: E402
from peftport.experiments.config import load_config  # noqa: E402
from peftport.experiments.environment import cpu_info  # noqa: E402
from peftport.experiments.training.options import ModuleConfig, TrainingConfig  # noqa: E402
from peftport.experiments.training.train import train_module  # noqa: E402
from peftport.tasks.data import load_task  # noqa: E402
from peftport.zoo import resolve_model  # noqa: E402

BATCH, LENGTH = 16, 64


def _teacher_module(teacher: str, labels: int, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(teacher, num_labels=labels)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value", "q", "v"], task_type="TOKEN_CLS",
                        init_lora_weights=False)  # fmt: skip
    get_peft_model(model, config).save_pretrained(str(out))
    return out


def _distil(
    module: Path, teacher: str, student: str, texts: Path, steps: int, cache: Path, precision: str = "fp32"
) -> dict:
    import peftport

    moved = peftport.transfer(
        module, teacher, student, align="projection", head=True, probe_data=str(texts),
        probe_sentences=steps * BATCH, max_length=LENGTH, recover_steps=steps, teacher_cache=str(cache),
        recover_precision=precision,
    )  # fmt: skip
    return moved.provenance["recovery"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="zoo:all-mpnet-base-v2")
    parser.add_argument("--student", default="zoo:all-MiniLM-L6-v2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    teacher, student = resolve_model(args.teacher), resolve_model(args.student)
    data = load_task(load_config(DEMO_CONFIG).tasks[0], "en")
    name, _ = cpu_info()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{name}, {torch.get_num_threads()} threads"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        texts = root / "texts.txt"
        texts.write_text("\n".join(" ".join(s.tokens) for s in data.train) + "\n")
        module = _teacher_module(teacher, len(data.labels), root / "teacher")
        fresh = _distil(module, teacher, student, texts, args.steps, root / "cache")
        cached = _distil(module, teacher, student, texts, args.steps, root / "cache")
        bf16 = _distil(module, teacher, student, texts, args.steps, root / "cache", "bf16")
        training = TrainingConfig(learning_rate=1e-3, batch_size=BATCH, max_steps=args.steps, max_length=LENGTH)
        module_config = ModuleConfig(type="lora", r=8, alpha=16, targets=["attn_q", "attn_v"])
        supervised = train_module(student, data, module_config, training, 0, root / "student")
    supervised_step = BATCH / supervised.samples_per_second
    lines = [
        f"{args.teacher} -> {args.student}, {args.steps} steps of {BATCH} texts, max length {LENGTH}, on {device}",
        f"supervised student step: {supervised_step:.3f} s",
    ]
    runs = (("teacher computed", fresh), ("teacher cached", cached), ("teacher cached, bf16 autocast", bf16))
    for label, record in runs:
        step = record["seconds"] / args.steps
        lines.append(
            f"distillation step, {label}: {step:.3f} s = {step / supervised_step:.2f}x supervised "
            f"(teacher {record['teacher_seconds']:.1f} s of {record['seconds']:.1f} s; loss {record['first_loss']:.4f} "
            f"-> {record['last_loss']:.4f})"
        )
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
