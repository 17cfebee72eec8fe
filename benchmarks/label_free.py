"""A label-free student: how good it gets from unlabelled text alone, and whether the held-out fidelity says so.

    python benchmarks/label_free.py [--steps 0,25,75,150] [--texts 2000] [--lr 0.003] [--schedule linear]
                                    [--start transfer|fresh] [--precision fp32|bf16|auto] [--out FILE.jsonl]

The committed mpnet NER teacher of docs/results/converging-widths (all-mpnet-base-v2, LoRA r8 q,v with its
token head, 80.7 F1) moves to all-MiniLM-L6-v2 by projection with its head (probe: 500 texts), then recovers
for each number of ``--steps`` (16 texts a step, from the first ``--texts`` unlabelled WikiNEuRal English
sentences; the held-out texts follow them) from the same transferred start, the teacher's outputs cached once.
Each student is scored on the test split the grids use (first 250 sentences) before any labelled step, next
to its held-out fidelity (agreement with the teacher's predictions, KL), measured without labels. The closing
line gives the Spearman correlation of fidelity and F1 over the step counts. ``--start fresh`` is the control:
the same student module at peft's default initialisation and a random head (``transfers.output.fresh_start``),
distilled with the same texts, steps and rate. Lines are appended to ``--out`` as they finish.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from peftport.experiments.training.options import ModuleConfig, TrainingConfig  # noqa: E402
from peftport.experiments.training.train import train_module  # noqa: E402
from peftport.formats.registry import save_module  # noqa: E402
from peftport.probing.texts import held_out_texts, read_probe_texts  # noqa: E402
from peftport.tasks.data import TaskConfig, load_task  # noqa: E402
from peftport.transfers.api import transfer_module  # noqa: E402
from peftport.transfers.options import TransferOptions  # noqa: E402
from peftport.transfers.output import fresh_start  # noqa: E402
from peftport.transfers.recovery import Recovery, RecoveryOptions, UserModels, recover_module  # noqa: E402
from peftport.transfers.teacher_outputs import teacher_key  # noqa: E402
from peftport.zoo import resolve_model  # noqa: E402

TEACHER_MODULE = ROOT / "docs/results/converging-widths/runs/teacher-dfd3817a811f/module"
TEACHER_F1 = 0.8071979434447301  # its record's final test F1
DATA = ROOT.parent / "shared/data/wikineural/en"
MODULE = ModuleConfig(type="lora", r=8, alpha=16, targets=["attn_q", "attn_v"])


def _score(student: str, data, module, head, scratch: Path) -> float:
    """The module's test F1 before any labelled step (the zero-step evaluation of peftport's training)."""
    save_module(module, scratch / "init", force=True)
    training = TrainingConfig(learning_rate=1e-3, batch_size=16, max_steps=1, max_length=128)
    result = train_module(student, data, MODULE, training, 0, scratch / "scored", scratch / "init", head=head)
    return float(result.zero_step["f1"])


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="0,25,75,150")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--schedule", default="constant", help="constant or linear (10%% warm-up, linear decay)")
    parser.add_argument("--start", default="transfer", choices=["transfer", "fresh"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"], help="of recovery's steps")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    teacher, student = resolve_model("zoo:all-mpnet-base-v2"), resolve_model("zoo:all-MiniLM-L6-v2")
    source = str(DATA / "val.conllu.gz")
    task = TaskConfig(name="ner", kind="token", languages=["en"], train=source, test=str(DATA / "test.conllu.gz"),
                      train_limit=2000, test_limit=250)  # fmt: skip
    data = load_task(task, "en")
    options = TransferOptions(align="projection", head=True, probe_data=source, probe_sentences=500)
    start = time.perf_counter()
    moved = transfer_module(TEACHER_MODULE, teacher, student, options)
    transfer_seconds = time.perf_counter() - start
    start_module, start_head = moved.module, moved.head
    if args.start == "fresh":  # the control: no transfer, distillation alone
        start_module, start_head = fresh_start(moved.module, moved.head, seed=0)
    trained, held_out = held_out_texts(source, read_probe_texts(source, args.texts))
    lines = []
    with tempfile.TemporaryDirectory() as scratch:
        cache = (Path(scratch) / "teacher", teacher_key(teacher, TEACHER_MODULE, "user"))
        for steps in (int(s) for s in args.steps.split(",")):
            settings = RecoveryOptions(max(steps, 1), args.lr, schedule=args.schedule, precision=args.precision)
            recovery = Recovery(settings, UserModels(TEACHER_MODULE, teacher, student), cache)
            start = time.perf_counter()
            result, head = recover_module(start_module, start_head, recovery, trained, None, held_out)
            record = result.provenance["recovery"]
            fidelity = record["fidelity"]["transferred" if steps == 0 else "recovered"]
            module, head = (start_module, start_head) if steps == 0 else (result, head)
            f1 = _score(student, data, module, head, Path(scratch) / f"s{steps}")
            line = {
                "steps": steps, "f1": f1, "share_of_teacher": f1 / TEACHER_F1, "agreement": fidelity["agreement"],
                "balanced_agreement": fidelity.get("balanced_agreement"), "kl": fidelity["kl"],
                "held_out_texts": fidelity["texts"], "train_texts": len(trained),
                "recovery_seconds": 0.0 if steps == 0 else record["seconds"],
                "teacher_seconds": 0.0 if steps == 0 else record["teacher_seconds"],
                "wall_seconds": time.perf_counter() - start, "transfer_seconds": transfer_seconds, "lr": args.lr,
                "schedule": args.schedule, "start": args.start, "precision": args.precision,
            }  # fmt: skip
            lines.append(line)
            print(json.dumps(line), flush=True)
            if args.out:
                with args.out.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(line) + "\n")
    for figure in ("agreement", "balanced_agreement"):
        values = [x[figure] for x in lines]
        if None not in values:
            rho = _spearman(values, [x["f1"] for x in lines])
            print(f"Spearman({figure}, F1) over {len(lines)} step counts: {rho:.2f}")


if __name__ == "__main__":
    main()
