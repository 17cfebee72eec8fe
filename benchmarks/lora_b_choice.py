"""Experiment: which alignment should prune LoRA B's rows when widths differ?

B's rows live in the adapted layer's *output* space (query/value projections), not in the
residual stream that aligns A's columns. Options:
  input  - reuse the input (residual) index for B's rows, as the reference code does;
  output - align the layer's output space separately and use that index;
  random - a random distinct subset of rows (a floor).

Measure: how well the transferred module reproduces the teacher module's effect. For held-out
sentences, the shift a module causes in the mean-pooled last hidden state is taken on the teacher
(teacher+module minus teacher) and on the student (student+transferred minus student); their
similarity is linear CKA, which does not depend on the two widths. Several teacher LoRAs (rank 8
on query and value; random, or trained briefly for NER with ``--train-steps``) give a mean and spread.

    python benchmarks/lora_b_choice.py --teacher MPNET --student MINILM --probe-data FILE
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from transfer_time import teacher_lora  # noqa: E402

from peftport.core.layer_maps import build_layer_map  # noqa: E402
from peftport.core.remap import remap_layers  # noqa: E402
from peftport.core.similarity import linear_cka  # noqa: E402
from peftport.experiments.training.trainable import read_head  # noqa: E402
from peftport.formats.registry import load_module, save_module  # noqa: E402
from peftport.probing.texts import read_probe_texts  # noqa: E402
from peftport.tasks.readers import read_conll  # noqa: E402
from peftport.transfers.alignment import compute_alignment, module_points  # noqa: E402
from peftport.transfers.api import transfer  # noqa: E402
from peftport.transfers.options import transfer_options  # noqa: E402


def pooled(model_dir: str, module_dir: Path | None, texts: list[str]) -> torch.Tensor:
    """Mean-pooled last hidden states, with the module loaded by peft when given.

    A module saved from a task model has task-model keys, so it is loaded onto one (else peft would
    silently leave it out); hidden states do not depend on the head.
    """
    from peft import PeftModel
    from transformers import AutoModel, AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    task = module_dir is not None and load_module(module_dir).task_model
    if task:
        model = AutoModelForTokenClassification.from_pretrained(
            model_dir, num_labels=read_head(module_dir)["classifier.weight"].shape[0]
        )
    else:
        model = AutoModel.from_pretrained(model_dir)
    if module_dir is not None:
        model = PeftModel.from_pretrained(model, str(module_dir))
        report = model.load_adapter(str(module_dir), adapter_name="check")
        if [k for k in report.missing_keys if ".check." in k and "lora_" in k]:
            raise RuntimeError(f"{module_dir} did not load completely")
        model.delete_adapter("check")
        model.set_adapter("default")
    model.eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            batch = tokenizer(
                texts[start : start + 32], padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            hidden = model(**batch, output_hidden_states=True).hidden_states[-1]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            rows.append((hidden * mask).sum(1) / mask.sum(1))
    return torch.cat(rows)


def train_teacher_lora(model_dir: str, data: str, steps: int, out: Path, seed: int) -> Path:
    """A teacher LoRA (rank 8, query+value) trained for NER with a token-classification head, briefly."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    examples = [(s.tokens, s.tags) for s in read_conll(Path(data), steps * 16)]
    labels = sorted({tag for _, tags in examples for tag in tags})
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=len(labels))
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q", "v"], task_type="TOKEN_CLS"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for step in range(steps):
        batch = examples[step * 16 : step * 16 + 16]
        enc = tokenizer(
            [t for t, _ in batch],
            is_split_into_words=True,
            padding=True,
            truncation=True,
            max_length=96,
            return_tensors="pt",
        )
        target = torch.full(enc["input_ids"].shape, -100)
        for row, (_, tags) in enumerate(batch):
            seen = set()
            for position, word in enumerate(enc.word_ids(row)):
                if word is not None and word not in seen:
                    target[row, position] = labels.index(tags[word])
                    seen.add(word)
        loss = model(**enc, labels=target).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 25 == 0 or step == steps - 1:
            print(f"  train step {step}: loss {loss.item():.3f}", flush=True)
    model.save_pretrained(str(out))
    return out


def random_rows(student_module, teacher_module, lmap, seed: int):
    """The 'input' module with B's rows replaced by a random distinct subset of the teacher's rows."""
    generator = torch.Generator().manual_seed(seed)

    def transform(i: int, t: int, slot: str, roles: dict) -> dict:
        keep = torch.randperm(roles["lora_B"].shape[0], generator=generator)[: student_module.hidden_size]
        return {**roles, "lora_B": roles["lora_B"][keep]}

    randomised = remap_layers(teacher_module.layers, lmap, transform)
    layers = {
        i: {s: {**student_module.layers[i][s], "lora_B": randomised[i][s]["lora_B"]} for s in slots}
        for i, slots in student_module.layers.items()
    }
    return student_module.with_layers(layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--student", required=True)
    parser.add_argument("--probe-data", required=True)
    parser.add_argument("--probe-sentences", type=int, default=500)
    parser.add_argument("--eval-sentences", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=0, help="train each teacher LoRA on NER (CoNLL probe data)")
    parser.add_argument("--keep", type=Path, help="keep trained teacher modules here and reuse them on a rerun")
    args = parser.parse_args()
    texts = read_probe_texts(args.probe_data, args.probe_sentences + args.eval_sentences)
    held_out = texts[args.probe_sentences :]
    options = transfer_options(
        align="correlation", probe_data=args.probe_data, probe_sentences=args.probe_sentences, lora_b="output"
    )
    scores: dict[str, list[float]] = {"input": [], "output": [], "random": []}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        t_base, s_base = pooled(args.teacher, None, held_out), pooled(args.student, None, held_out)
        alignment = None
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            if args.train_steps:
                kept = (args.keep or root) / f"teacher-{seed}-{args.train_steps}steps"
                if not (kept / "adapter_config.json").is_file():
                    train_teacher_lora(args.teacher, args.probe_data, args.train_steps, kept, seed)
                module_dir = kept
            else:
                module_dir = teacher_lora(Path(args.teacher), root / f"teacher-{seed}", seed)
            module = load_module(module_dir)
            lmap = build_layer_map("skip", 12, 6)
            if alignment is None:
                alignment = compute_alignment(
                    args.teacher, args.student, lmap, module_points(module, "output"), options
                )
            t_shift = pooled(args.teacher, module_dir, held_out) - t_base
            for mode in ("input", "output"):
                alignment.details["lora_b"] = mode
                moved = transfer(module, args.teacher, args.student, lmap, alignment=alignment)
                if mode == "input":
                    variants = {"input": moved, "random": random_rows(moved, module, lmap, seed)}
                else:
                    variants = {"output": moved}
                for name, student_module in variants.items():
                    out = save_module(student_module, root / f"{name}-{seed}", format="peft")
                    scores[name].append(linear_cka(t_shift, pooled(args.student, out, held_out) - s_base))
            print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in scores.items()), flush=True)
    print(
        f"CKA(teacher module shift, transferred module shift) over {args.seeds} teacher LoRAs "
        f"({f'trained {args.train_steps} steps on NER' if args.train_steps else 'random'}), "
        f"{len(held_out)} held-out sentences, alignment on {args.probe_sentences}:"
    )
    for name, values in scores.items():
        print(f"  {name:7s} {statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}")


if __name__ == "__main__":
    main()
