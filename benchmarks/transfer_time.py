"""Benchmark: wall time of one aligned transfer (probe + correlate + assign + prune, or probe + fit maps +
project) on real architectures.

    python benchmarks/transfer_time.py --teacher MPNET_DIR --student MINILM_DIR \\
        --probe-data ../shared/data/wikineural/en/val.conllu.gz [--sentences 1000] [--device cuda] \\
        [--method correlation|projection]

``--random-init`` builds both models from their ``config.json`` (tokenizer files beside it) with
random weights: the time is the same as with trained weights, and only configs need to travel.
The teacher module is a random peft LoRA (rank 8 on query and value).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from peftport.architectures.models import describe_model  # noqa: E402
from peftport.transfers.api import transfer  # noqa: E402
from peftport.transfers.options import transfer_options  # noqa: E402


def random_copy(model_dir: Path, out: Path) -> Path:
    """A randomly initialised model with ``model_dir``'s config and tokenizer files."""
    from transformers import AutoConfig, AutoModel

    AutoModel.from_config(AutoConfig.from_pretrained(str(model_dir))).save_pretrained(str(out))
    for item in model_dir.iterdir():
        if item.is_file() and item.name.startswith(("tokenizer", "vocab", "special_tokens", "merges", "sentencepiece")):
            shutil.copy(item, out / item.name)
    return out


def teacher_lora(model_dir: Path, out: Path, seed: int = 0) -> Path:
    """A random peft LoRA (rank 8, alpha 16) on the teacher's query and value."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    spec = describe_model(str(model_dir)).spec
    targets = [spec.slots[s].path.rsplit(".", 1)[-1] for s in ("attn_q", "attn_v")]
    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModel.from_pretrained(str(model_dir)),
        LoraConfig(r=8, lora_alpha=16, target_modules=targets, init_lora_weights=False),
    )
    model.save_pretrained(str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--probe-data", required=True)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lora-b", default="input", choices=["input", "output"])
    parser.add_argument("--method", default="correlation", choices=["correlation", "projection"])
    parser.add_argument("--device", default=None)
    parser.add_argument("--random-init", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        teacher, student = args.teacher, args.student
        if args.random_init:
            teacher, student = random_copy(teacher, root / "teacher"), random_copy(student, root / "student")
        module = teacher_lora(teacher, root / "lora")
        options = transfer_options(
            align=args.method,
            probe_data=args.probe_data,
            probe_sentences=args.sentences,
            lora_b=args.lora_b,
            batch_size=args.batch_size,
            device=args.device,
        )
        warm_up = options.model_copy(update={"probe_sentences": 8})
        transfer(module, str(teacher), str(student), "skip", warm_up)
        started = time.perf_counter()
        result = transfer(module, str(teacher), str(student), "skip", options)
        seconds = time.perf_counter() - started
    record = result.provenance["alignment"]
    t, s = result.provenance["teacher"], result.provenance["student"]
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"{t['family']} {t['num_layers']}x{t['hidden_size']} -> {s['family']} {s['num_layers']}x{s['hidden_size']}, "
        f"LoRA q,v r8, skip, {args.method}, lora-b {options.effective_lora_b}: {seconds:.1f} s "
        f"for {record['texts']} texts / "
        f"{record['shared_tokens']} shared tokens ({record['shared_tokens'] / seconds:.0f} tokens/s) on {name}"
    )


if __name__ == "__main__":
    main()
