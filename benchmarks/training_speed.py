"""Training speed: peftport's training loop against a plain Hugging Face ``Trainer`` with the same model,
data and settings, in fp32 and bf16 autocast; samples per second and the final test F1 of each.

    python benchmarks/training_speed.py [--model zoo:all-MiniLM-L6-v2] [--steps 60] [--bf16-steps 10] [--out FILE]

The data is the demo's English NER split (2,000 training sentences shipped in the package); the model
gets a LoRA r8 on query and value with a token-classification head, lr 3e-3, batch 16, max length 64.
On a CPU, bf16 means ``torch.autocast`` on the CPU (``TrainingArguments(bf16=True, use_cpu=True)``); on
a GPU, peftport's own choice (bf16 where supported).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from peftport.demo.experiment import DEMO_CONFIG  # noqa: E402
from peftport.experiments.config import load_config  # noqa: E402
from peftport.experiments.environment import cpu_info  # noqa: E402
from peftport.experiments.training import train as peftport_train  # noqa: E402
from peftport.experiments.training.options import ModuleConfig, TrainingConfig  # noqa: E402
from peftport.tasks.data import load_task  # noqa: E402
from peftport.zoo import resolve_model  # noqa: E402

MODULE = ModuleConfig(type="lora", r=8, alpha=16, targets=["attn_q", "attn_v"])


def _training(steps: int, bf16: bool) -> TrainingConfig:
    precision = "bf16" if bf16 else "fp32"
    return TrainingConfig(learning_rate=3e-3, batch_size=16, max_steps=steps, max_length=64, precision=precision)


def _cpu() -> str:
    """The CPU, its thread count and its bf16 instructions."""
    name, flags = cpu_info()
    bf16 = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags]
    return f"CPU {name}, {torch.get_num_threads()} threads, bf16 instructions: {', '.join(bf16) or 'none'}"


def peftport_loop(model: str, data, steps: int, bf16: bool) -> tuple[float, float]:
    """peftport's ``train_module`` (samples/s, final F1) with ``training.precision`` bf16 or fp32."""
    with tempfile.TemporaryDirectory() as scratch:
        result = peftport_train.train_module(model, data, MODULE, _training(steps, bf16), 0, Path(scratch) / "m")
    return result.samples_per_second, result.final["f1"]


def plain_trainer(model: str, data, steps: int, bf16: bool) -> tuple[float, float]:
    """The same model, data and settings through ``peft.get_peft_model`` and a plain ``Trainer``."""
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from peftport.tasks.encoding import encode_split

    set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model)
    base = AutoModelForTokenClassification.from_pretrained(model, num_labels=len(data.labels))
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"], task_type="TOKEN_CLS")
    peft_model = get_peft_model(base, config)
    train = encode_split(data, "train", tokenizer, 64)
    test = encode_split(data, "test", tokenizer, 64)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            learning_rate=3e-3,
            per_device_train_batch_size=16,
            per_device_eval_batch_size=64,
            max_steps=steps,
            save_strategy="no",
            report_to=[],
            seed=0,
            data_seed=0,
            disable_tqdm=True,
            label_names=["labels"],
            **peftport_train._precision("bf16" if bf16 else "fp32"),  # the flags peftport passes
        )
        compute = peftport_train._metric_function(data)
        trainer = Trainer(
            model=peft_model,
            args=args,
            data_collator=DataCollatorForTokenClassification(tokenizer),
            train_dataset=train,
            eval_dataset=test,
            compute_metrics=compute,
        )
        output = trainer.train()
        final = trainer.evaluate()
    return float(output.metrics["train_samples_per_second"]), float(final["eval_f1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:all-MiniLM-L6-v2")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--bf16-steps",
        type=int,
        default=10,
        help="budget of the bf16 runs, also run in fp32 (on a CPU without avx512_bf16 or AMX bf16 is emulated and "
        "slow); with --steps' value, the bf16 runs compare directly with the fp32 ones",
    )
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    model = resolve_model(args.model)
    task = load_config(DEMO_CONFIG).tasks[0]
    data = load_task(task, "en")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else _cpu()
    lines = [f"{args.model}, LoRA r8 q,v + token head, en NER, {args.steps} steps of 16, max length 64, on {device}"]
    lines.append(f"{'loop':<16} {'precision':<9} {'steps':>5} {'samples/s':>10} {'test F1':>8} {'wall s':>7}")
    runs = [(loop, False, args.steps) for loop in ("peftport", "plain Trainer")]
    precisions = (True,) if args.bf16_steps == args.steps else (False, True)  # no fp32 run twice
    runs += [(loop, bf16, args.bf16_steps) for bf16 in precisions for loop in ("peftport", "plain Trainer")]
    loops = {"peftport": peftport_loop, "plain Trainer": plain_trainer}
    for name, bf16, steps in runs:
        start = time.perf_counter()
        speed, f1 = loops[name](model, data, steps, bf16)
        wall = time.perf_counter() - start
        precision = "bf16" if bf16 else "fp32"
        lines.append(f"{name:<16} {precision:<9} {steps:>5} {speed:>10.1f} {100 * f1:>8.1f} {wall:>7.0f}")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
