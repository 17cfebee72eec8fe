"""Learning-rate sweep on the baseline student only (issue 17: "pick each task's learning rate by a short sweep
on the baseline only and give the transferred student the same").

    python benchmarks/lr_sweep.py EXPERIMENT.yaml --task NAME --language LANG [--module 0] \
        --lrs 1e-3,3e-3,1e-2 [--steps 400] [--eval-every 100 | --eval-log 8] [--seed 0] \
        [--precision auto|fp32|bf16] [--model student|teacher] [--train-limit N|all] [--head-lr LR] [--out FILE]

Trains the experiment's student (its first pair) with the experiment's task, module and training settings,
except the learning rate and the step budget, from the library's initialisation (the baseline), once per rate,
and prints one line per rate: the model, the learning curve on the test split, every final metric (macro-F1 as
well as accuracy shows a classifier that predicts one class), the precision, the training speed and the wall
time. Lines are appended to ``--out`` as they finish, so a stopped sweep keeps what it measured. ``--model
teacher`` trains the first pair's teacher instead, with the experiment's teacher training settings (a teacher
as the grid would train it, at another rate or budget).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from peftport.experiments.config import load_config  # noqa: E402
from peftport.experiments.training.train import train_module  # noqa: E402
from peftport.tasks.data import load_task  # noqa: E402
from peftport.zoo import resolve_model  # noqa: E402


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--task", required=True)
    parser.add_argument("--language", required=True)
    parser.add_argument("--module", type=int, default=0, help="index into the experiment's modules")
    parser.add_argument("--lrs", required=True, help="comma-separated learning rates")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-log", type=int, help="evaluate at N doubling steps instead (as the grids' eval_log)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="default: the experiment's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", choices=["student", "teacher"], default="student", help="which model of the pair")
    parser.add_argument("--train-limit", help="training examples: a number, or 'all' (default: the task's)")
    parser.add_argument("--head-lr", type=float, help="the head's learning rate (default: the experiment's)")
    parser.add_argument("--out", type=Path)
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    config = load_config(args.config)
    task = next(t for t in config.tasks if t.name == args.task)
    if args.train_limit:
        task = task.model_copy(update={"train_limit": None if args.train_limit == "all" else int(args.train_limit)})
    data = load_task(task, args.language)
    module = config.modules[args.module]
    name = config.pairs[0].teacher if args.model == "teacher" else config.pairs[0].student
    base = (config.teacher_training or config.training) if args.model == "teacher" else config.training
    model = resolve_model(name)
    for rate in (float(r) for r in args.lrs.split(",")):
        schedule = {"eval_every": None, "eval_log": args.eval_log} if args.eval_log else {"eval_every": args.eval_every}
        update = {"learning_rate": rate, "max_steps": args.steps, "eval_log": None, **schedule}
        if args.precision:
            update["precision"] = args.precision
        if args.head_lr:
            update["head_learning_rate"] = args.head_lr
        training = base.model_copy(update=update)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:
            result = train_module(model, data, module, training, args.seed, Path(scratch))
        metric = "f1" if data.kind == "token" else "accuracy"
        line = {
            "model": name,
            "task": f"{args.task}/{args.language}",
            "module": module.label,
            "lr": rate,
            "steps": args.steps,
            "seed": args.seed,
            "train_examples": len(data.train),
            "head_lr": training.head_learning_rate,
            "curve": [[point["step"], round(100 * point[metric], 1)] for point in result.curve],
            "metric": metric,
            "final": {key: round(100 * value, 1) for key, value in result.final.items()},
            "precision": result.precision,
            "samples_per_second": round(result.samples_per_second, 1),
            "wall_s": round(time.perf_counter() - start),
        }
        print(json.dumps(line), flush=True)
        if args.out:
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
