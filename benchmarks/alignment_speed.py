"""Benchmark: streaming correlation + assignment against the reference algorithm.

The reference (Klimaszewski et al.'s code) holds all hidden states, calls scikit-learn's
``r_regression`` once per student dimension, then ``linear_sum_assignment`` on the negated
matrix. peftport streams token batches into float64 running sums (memory O(d_s x d_t)) and
solves the same assignment. Both see identical hidden states: a student built from a known
subset of teacher dimensions, scaled, mixed and noised, so the optimum is unique.

    python benchmarks/alignment_speed.py                      # 20000 x 1024 -> 768, CPU
    python benchmarks/alignment_speed.py --device cuda        # also on the GPU

Prints each method's time, the speed-up, whether the assignments are identical, and peak
memory (each method runs in its own process, so its peak resident set is its own).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.feature_selection import r_regression

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from peftport.core.assignment import assign  # noqa: E402
from peftport.core.correlation import CorrelationAccumulator  # noqa: E402


def batch(tokens: int, teacher_dim: int, student_dim: int, start: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states of tokens ``start .. start+size`` (deterministic: the same for every method)."""
    setup = torch.Generator().manual_seed(0)
    chosen = torch.randperm(teacher_dim, generator=setup)[:student_dim]
    scale = torch.rand(student_dim, generator=setup) + 0.5
    generator = torch.Generator().manual_seed(1000 + start)
    teacher = torch.randn(size, teacher_dim, generator=generator)
    student = teacher[:, chosen] * scale + 1.5 * torch.randn(size, student_dim, generator=generator)
    return student, teacher


def run_streaming(tokens: int, teacher_dim: int, student_dim: int, device: str, chunk: int) -> np.ndarray:
    acc = CorrelationAccumulator(student_dim, teacher_dim, device)
    for start in range(0, tokens, chunk):
        student, teacher = batch(tokens, teacher_dim, student_dim, start, min(chunk, tokens - start))
        acc.update(student.to(device), teacher.to(device))
    corr = acc.pearson()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return assign(corr).index.numpy()


def run_reference(tokens: int, teacher_dim: int, student_dim: int, chunk: int) -> np.ndarray:
    parts = [batch(tokens, teacher_dim, student_dim, s, min(chunk, tokens - s)) for s in range(0, tokens, chunk)]
    student = torch.cat([p[0] for p in parts]).numpy()
    teacher = torch.cat([p[1] for p in parts]).numpy()
    corr = np.stack([r_regression(teacher, student[:, i]) for i in range(student_dim)])
    rows, cols = linear_sum_assignment(-corr)
    return cols[np.argsort(rows)]


def child(args: argparse.Namespace) -> None:
    """Run one method, write its index map and timings to ``args.result``."""
    if args.method.startswith("cuda"):
        torch.zeros(1, device=args.method)  # start CUDA before timing
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        if args.method == "reference":
            index = run_reference(args.tokens, args.teacher_dim, args.student_dim, args.chunk)
        else:
            index = run_streaming(args.tokens, args.teacher_dim, args.student_dim, args.method, args.chunk)
        timings.append(time.perf_counter() - started)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu_mib = torch.cuda.max_memory_allocated() / 2**20 if args.method.startswith("cuda") else None
    Path(args.result).write_text(
        json.dumps({"index": index.tolist(), "seconds": timings, "peak_rss_mib": peak_mib, "peak_gpu_mib": gpu_mib})
    )


def measure(method: str, args: argparse.Namespace, repeat: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            sys.executable,
            __file__,
            "--child",
            method,
            "--result",
            out.name,
            "--tokens",
            str(args.tokens),
            "--teacher-dim",
            str(args.teacher_dim),
            "--student-dim",
            str(args.student_dim),
            "--chunk",
            str(args.chunk),
            "--repeat",
            str(repeat),
        ]
        subprocess.run(command, check=True)
        return json.loads(Path(out.name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--teacher-dim", type=int, default=1024)
    parser.add_argument("--student-dim", type=int, default=768)
    parser.add_argument("--chunk", type=int, default=2048, help="tokens per streamed batch")
    parser.add_argument("--device", action="append", default=["cpu"], help="devices for peftport (repeatable)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of peftport (reference runs once)")
    parser.add_argument("--child", dest="method", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        return child(args)

    print(
        f"{args.tokens} tokens, teacher {args.teacher_dim} dims, student {args.student_dim} dims, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    reference = measure("reference", args, repeat=1)
    ref_s = min(reference["seconds"])
    held = args.tokens * (args.teacher_dim + args.student_dim) * 4 / 2**20
    print(
        f"reference (r_regression x {args.student_dim} + Hungarian): {ref_s:.2f} s, peak RSS "
        f"{reference['peak_rss_mib']:.0f} MiB (hidden states alone: {held:.0f} MiB)"
    )
    for device in dict.fromkeys(args.device):
        ours = measure(device, args, repeat=args.repeat)
        best = min(ours["seconds"])
        same = ours["index"] == reference["index"]
        gpu = f", peak GPU {ours['peak_gpu_mib']:.0f} MiB" if ours["peak_gpu_mib"] is not None else ""
        print(
            f"peftport streaming on {device}: {best:.3f} s (best of {args.repeat}; all: "
            f"{', '.join(f'{s:.3f}' for s in ours['seconds'])}), speed-up {ref_s / best:.1f}x, identical "
            f"assignment: {same}, peak RSS {ours['peak_rss_mib']:.0f} MiB{gpu}"
        )


if __name__ == "__main__":
    main()
