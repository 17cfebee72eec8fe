"""Why does English PAWS-X not learn? (issue 31, item 2: "measure why (head rate, pooling, length)").

    python benchmarks/pawsx_diagnosis.py pack --model DIR --out DIR      # a compact copy of a model (see below)
    python benchmarks/pawsx_diagnosis.py lengths --model DIR --train F --test F
    python benchmarks/pawsx_diagnosis.py grid --models L6=DIR,L3=DIR --train F --test F --out FILE \
        [--plan full|smoke] [--deadline SECONDS] [--steps N]

Self-contained on purpose: it needs only torch, transformers and peft (no peftport, no adapters), so it runs
on a borrowed GPU machine whose library versions differ from the pinned ones. It mirrors the grid's training of
a LoRA student (`peftport.experiments.training.train`: the Hugging Face Trainer's AdamW with no weight decay,
a linear decay to zero over the budget, no warm-up, gradient clipping at 1.0, dropout on, batch 16,
``max_length`` 128, the head trained at the module's rate) and varies one thing at a time:

- the budget: curves at doubling steps up to ``--steps`` (default 5,000: ten epochs of the 7,977 pairs);
- the learning rate;
- the pooling: the grid's (``frozen``: BERT's pooler, which the LoRA model leaves frozen, and which the
  sentence-transformers checkpoints never trained), a trained pooler (``pooler``: peft ``modules_to_save``),
  or the mean of the final states under the attention mask (``mean``), which is what these checkpoints were
  trained to produce;
- the module: LoRA r8 on query/value (the grid's), LoRA r8 on every linear layer, full fine-tuning (an upper
  bound on what the model can learn from these pairs).

``pack`` stores the word-embedding matrix as int8 with one fp16 scale per row and every other tensor as fp16, so
both zoo MiniLMs fit the borrowed machine's 64 MiB working tree; ``grid`` loads either a packed copy or a plain
Hugging Face directory. The int8 rows differ from the fp32 ones by at most half a step of their row's scale
(``pack`` prints the largest relative error). ``lengths`` prints how many pairs the 128-token limit truncates.

Each run appends a JSON line per evaluation (accuracy, macro-F1, share predicted "paraphrase") to ``--out``;
runs go in parallel processes (one CPU thread each) and stop at ``--deadline`` seconds with what they measured.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PACKED = "packed.pt"
EMBEDDINGS = "embeddings.word_embeddings.weight"
MAX_LENGTH = 128
BATCH = 16


def read_pairs(path: Path) -> list[tuple[str, str, int]]:
    """PAWS-X en TSV: a ``sentence1 sentence2 label`` header, no quoting."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(r["sentence1"], r["sentence2"], int(r["label"])) for r in rows]


def pack(model_dir: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir)
    state = {}
    worst = 0.0
    for name, tensor in model.state_dict().items():
        if name.endswith(EMBEDDINGS):
            scale = tensor.abs().amax(dim=1, keepdim=True).clamp_min(1e-8) / 127
            codes = torch.round(tensor / scale).to(torch.int8)
            back = codes.float() * scale.half().float()
            worst = max(worst, float(((back - tensor).norm(dim=1) / tensor.norm(dim=1).clamp_min(1e-8)).max()))
            state[name] = {"int8": codes, "scale": scale.half()}
        else:
            state[name] = tensor.half()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / PACKED)
    for item in model_dir.iterdir():
        if item.is_file() and not item.name.endswith((".safetensors", ".bin", ".onnx", ".pt")):
            shutil.copy2(item, out / item.name)
    size = (out / PACKED).stat().st_size / 2**20
    print(f"{model_dir} -> {out}: {size:.1f} MiB, largest relative row error of the int8 embeddings {worst:.4f}")


def base_model(model_dir: Path):
    """The encoder (no head), from a packed copy or a Hugging Face directory, in fp32."""
    import torch
    from transformers import AutoConfig, AutoModel

    if not (model_dir / PACKED).is_file():
        return AutoModel.from_pretrained(model_dir, add_pooling_layer=True)
    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModel.from_config(config, add_pooling_layer=True)
    packed = torch.load(model_dir / PACKED, map_location="cpu")
    state = {
        name: (value["int8"].float() * value["scale"].float()) if isinstance(value, dict) else value.float()
        for name, value in packed.items()
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise SystemExit(f"packed weights do not fit {model_dir}: missing {missing}, unexpected {unexpected}")
    return model


def lengths(model_dir: Path, files: list[Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for path in files:
        pairs = read_pairs(path)
        sizes = sorted(len(tokenizer(a, b)["input_ids"]) for a, b, _ in pairs)
        over = sum(s > MAX_LENGTH for s in sizes)
        positive = sum(label for *_, label in pairs) / len(pairs)
        print(
            json.dumps(
                {
                    "file": path.name,
                    "pairs": len(pairs),
                    "paraphrase_share": round(100 * positive, 1),
                    "tokens_median": sizes[len(sizes) // 2],
                    "tokens_p95": sizes[int(0.95 * len(sizes))],
                    "tokens_max": sizes[-1],
                    "truncated_at_128": over,
                }
            )
        )


# one run: model, module (lora-qv | lora-all | full), pooling (frozen | pooler | mean), lr, seed
PLANS = {
    "full": [
        ("L6", "lora-qv", "frozen", 3e-3, 0),
        ("L6", "lora-qv", "frozen", 3e-3, 1),
        ("L6", "lora-qv", "frozen", 1e-3, 0),
        ("L6", "lora-qv", "frozen", 3e-4, 0),
        ("L6", "lora-qv", "pooler", 3e-3, 0),
        ("L6", "lora-qv", "pooler", 1e-3, 0),
        ("L6", "lora-qv", "pooler", 1e-3, 1),
        ("L6", "lora-qv", "mean", 3e-3, 0),
        ("L6", "lora-qv", "mean", 1e-3, 0),
        ("L6", "lora-all", "pooler", 1e-3, 0),
        ("L6", "lora-all", "mean", 1e-3, 0),
        ("L6", "full", "pooler", 5e-5, 0),
        ("L6", "full", "pooler", 2e-5, 0),
        ("L3", "lora-qv", "frozen", 3e-3, 0),
        ("L3", "lora-qv", "pooler", 1e-3, 0),
        ("L3", "lora-qv", "mean", 1e-3, 0),
        ("L3", "full", "pooler", 5e-5, 0),
    ],
    # the second call: how robust is the one LoRA rate that passed the floor, and do the students learn slowly?
    "seeds": [
        ("L6", "lora-qv", "frozen", 3e-4, 1),
        ("L6", "lora-qv", "frozen", 3e-4, 2),
        ("L6", "lora-qv", "frozen", 5e-4, 0),
        ("L6", "lora-qv", "frozen", 5e-4, 1),
        ("L6", "lora-qv", "frozen", 5e-4, 2),
        ("L6", "lora-qv", "frozen", 1e-4, 0),
        ("L3", "lora-qv", "frozen", 3e-4, 0),
        ("L3", "full", "pooler", 2e-5, 0),
    ],
    "smoke": [("L6", "lora-qv", "frozen", 3e-3, 0), ("L3", "full", "mean", 5e-5, 0)],
}

QV = ["query", "value"]
ALL_LINEAR = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]


def log_steps(total: int) -> list[int]:
    steps = {total}
    step = total
    while step > 40:
        step = math.ceil(step / 2)
        steps.add(step)
    return sorted(steps)


def build(model_dir: Path, module: str, pooling: str, seed: int):
    import torch

    torch.manual_seed(seed)
    encoder = base_model(model_dir)
    hidden = encoder.config.hidden_size

    class PairClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.dropout = torch.nn.Dropout(encoder.config.hidden_dropout_prob)
            self.classifier = torch.nn.Linear(hidden, 2)
            torch.nn.init.normal_(self.classifier.weight, std=encoder.config.initializer_range)
            torch.nn.init.zeros_(self.classifier.bias)

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            if pooling == "mean":
                mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
                pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
            else:
                pooled = out.pooler_output
            return self.classifier(self.dropout(pooled))

    model = PairClassifier()
    if module == "full":
        if pooling == "frozen":
            for param in model.encoder.pooler.parameters():
                param.requires_grad = False
        return model
    from peft import LoraConfig, get_peft_model

    targets = QV if module == "lora-qv" else ALL_LINEAR
    saved = ["classifier"] + (["pooler.dense"] if pooling == "pooler" else [])
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets, modules_to_save=saved)
    return get_peft_model(model, config)


def batches(tokenizer, pairs, order):
    import torch

    for start in range(0, len(order), BATCH):
        chosen = [pairs[i] for i in order[start : start + BATCH]]
        enc = tokenizer(
            [a for a, _, _ in chosen],
            [b for _, b, _ in chosen],
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )
        yield enc, torch.tensor([label for *_, label in chosen])


def evaluate(model, tokenizer, pairs, device) -> dict[str, float]:
    import torch

    model.eval()
    predicted: list[int] = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for enc, _ in batches(tokenizer, pairs, list(range(len(pairs)))):
            logits = model(**{k: v.to(device) for k, v in enc.items()})
            predicted += logits.argmax(-1).tolist()
    model.train()
    gold = [label for *_, label in pairs]
    f1s = []
    for cls in (0, 1):
        tp = sum(p == cls and g == cls for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == cls and g != cls for p, g in zip(predicted, gold, strict=True))
        fn = sum(p != cls and g == cls for p, g in zip(predicted, gold, strict=True))
        f1s.append(2 * tp / max(1, 2 * tp + fp + fn))
    return {
        "accuracy": round(100 * sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold), 1),
        "macro_f1": round(100 * sum(f1s) / 2, 1),
        "predicted_paraphrase": round(100 * sum(predicted) / len(predicted), 1),
    }


def run_one(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    name, module, pooling, lr, seed = json.loads(args.spec)
    model_dir = Path(dict(item.split("=", 1) for item in args.models.split(","))[name])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train, test = read_pairs(args.train), read_pairs(args.test)
    model = build(model_dir, module, pooling, seed).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    total = args.steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))
    generator = torch.Generator().manual_seed(seed)
    checkpoints = set(log_steps(total))
    record = {"model": name, "module": module, "pooling": pooling, "lr": lr, "seed": seed, "steps": total}
    record["trainable"] = sum(p.numel() for p in params)
    record["device"] = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"

    def emit(step: int, seconds: float) -> None:
        line = {**record, "step": step, **evaluate(model, tokenizer, test, device), "train_s": round(seconds, 1)}
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")

    emit(0, 0.0)
    step, started = 0, time.perf_counter()
    while step < total:
        order = torch.randperm(len(train), generator=generator).tolist()
        for enc, labels in batches(tokenizer, train, order):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(**{k: v.to(device) for k, v in enc.items()})
            loss = torch.nn.functional.cross_entropy(logits.float(), labels.to(device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step in checkpoints:
                emit(step, time.perf_counter() - started)
            if step >= total or time.time() > args.deadline_at:
                break
        if time.time() > args.deadline_at:
            emit(step, time.perf_counter() - started)
            return


def grid(args: argparse.Namespace) -> None:
    deadline_at = time.time() + args.deadline
    processes = []
    for spec in PLANS[args.plan]:
        command = [
            sys.executable,
            __file__,
            "one",
            "--spec",
            json.dumps(spec),
            "--models",
            args.models,
            "--train",
            str(args.train),
            "--test",
            str(args.test),
            "--steps",
            str(args.steps),
            "--out",
            str(args.out),
            "--deadline-at",
            str(deadline_at),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        processes.append(subprocess.Popen(command, env=env))
    codes = [p.wait() for p in processes]
    print(f"{len(codes)} runs, exit codes {codes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("lengths")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("files", type=Path, nargs="+")
    for command in ("grid", "one"):
        p = sub.add_parser(command)
        p.add_argument("--models", required=True, help="NAME=DIR,...")
        p.add_argument("--train", type=Path, required=True)
        p.add_argument("--test", type=Path, required=True)
        p.add_argument("--steps", type=int, default=5000)
        p.add_argument("--out", type=Path, required=True)
        if command == "grid":
            p.add_argument("--plan", choices=sorted(PLANS), default="full")
            p.add_argument("--deadline", type=float, default=300)
        else:
            p.add_argument("--spec", required=True)
            p.add_argument("--deadline-at", type=float, required=True)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.model, args.out)
    elif args.command == "lengths":
        lengths(args.model, args.files)
    elif args.command == "grid":
        grid(args)
    else:
        run_one(args)


if __name__ == "__main__":
    main()
