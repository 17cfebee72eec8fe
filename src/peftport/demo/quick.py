"""The offline demo: transfer real modules from all-MiniLM-L6-v2 to a 3-layer student and check them.

The teacher modules here are randomly initialised (nothing is trained yet); the demo shows that
the transferred module loads unchanged in peft / AdapterHub on the student, and measures how
well it reproduces the teacher module's *effect*: the cosine between the embedding shift the
module causes on the teacher and on the student, against a fresh random module on the student.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from peftport.formats.atomic import atomic_directory
from peftport.formats.loading import apply_module
from peftport.formats.registry import save_module
from peftport.transfers.api import transfer
from peftport.zoo import minilm_l6_dir, publish_base_model
from peftport.zoo.students import make_layer_reduced

SENTENCES = [
    "The committee approved the new budget on Tuesday.",
    "Marie Curie was born in Warsaw and worked in Paris.",
    "Heavy rain caused flooding across the northern valleys.",
    "The striker scored twice in the second half.",
    "Researchers trained a smaller model to imitate a larger one.",
    "Our train to Berlin was delayed by forty minutes.",
    "She plays the cello in the city orchestra.",
    "The company reported higher profits than expected.",
]
STUDENT_LAYERS = [0, 2, 4]
TEACHER_NAME = "zoo:all-MiniLM-L6-v2"


@dataclass(frozen=True)
class DemoCase:
    """One demo transfer: a module type in a format, moved with a layer map."""

    kind: str
    fmt: str
    layer_map: str


CASES = [DemoCase("lora", "peft", "skip"), DemoCase("lora", "peft", "avg"), DemoCase("seq_bn", "adapterhub", "skip")]


def _embed(model: torch.nn.Module, tokenizer: Any) -> torch.Tensor:
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1)


def _make_teacher_module(kind: str, model_dir: Path, out: Path, seed: int) -> None:
    """A randomly initialised teacher module (rank 8 on query/value, or a seq_bn adapter)."""
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_pretrained(str(model_dir))
    if kind == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"], init_lora_weights=False)
        get_peft_model(model, config).save_pretrained(str(out))
        publish_base_model(out)
        return
    import adapters

    adapters.init(model)
    model.add_adapter("demo", config="seq_bn")
    for name, param in model.named_parameters():
        if ".adapters.demo." in name:
            torch.nn.init.normal_(param, std=0.05)
    model.save_adapter(str(out), "demo")
    publish_base_model(out)


def _shift(model_dir: Path, module_dir: Path | None, tokenizer: Any, base: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir)).eval()
    if module_dir is not None:
        model, report = apply_module(model, module_dir)
        if not report.clean:
            raise RuntimeError(f"{module_dir} did not load cleanly: {report}")
    return (_embed(model, tokenizer) - base).flatten()


def _run_case(case: DemoCase, teacher: Path, student: Path, run: Path, tokenizer: Any) -> dict[str, Any]:
    from transformers import AutoModel

    teacher_module = run / f"teacher-{case.kind}"
    if not teacher_module.exists():
        _make_teacher_module(case.kind, teacher, teacher_module, seed=0)
    random_module = run / f"random-{case.kind}"
    if not random_module.exists():
        _make_teacher_module(case.kind, student, random_module, seed=1)
    started = time.perf_counter()
    # the teacher by its zoo name, so the manifest names its hub id, not this machine's folder
    moved = transfer(teacher_module, teacher=TEACHER_NAME, student=str(student), layer_map=case.layer_map)
    out = save_module(moved, run / f"student-{case.kind}-{case.layer_map}", format=case.fmt)
    seconds = time.perf_counter() - started
    t_base = _embed(AutoModel.from_pretrained(str(teacher)).eval(), tokenizer)
    s_base = _embed(AutoModel.from_pretrained(str(student)).eval(), tokenizer)
    t_shift = _shift(teacher, teacher_module, tokenizer, t_base)
    cos = torch.nn.functional.cosine_similarity
    return {
        "module": case.kind,
        "format": case.fmt,
        "layer_map": case.layer_map,
        "output": str(out),
        "transfer_seconds": round(seconds, 3),
        "loads_cleanly": True,
        "cos_transferred": float(cos(t_shift, _shift(student, out, tokenizer, s_base), dim=0)),
        "cos_random": float(cos(t_shift, _shift(student, random_module, tokenizer, s_base), dim=0)),
    }


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="all-MiniLM-L6-v2 (6 layers) -> its layers 0,2,4 (3 layers)",
        caption="cosine between the embedding shift a module causes on the student and the teacher module's shift",
    )
    for column in ("module", "format", "map", "loads", "transferred", "random", "seconds"):
        table.add_column(column)
    for r in rows:
        cells = [r["module"], r["format"], r["layer_map"], "yes" if r["loads_cleanly"] else "NO"]
        cells += [f"{r['cos_transferred']:.3f}", f"{r['cos_random']:.3f}", f"{r['transfer_seconds']:.2f}"]
        table.add_row(*cells)
    return table


QUICK_DIR = "quick"


def run_demo(out: Path, console: Console) -> list[dict[str, Any]]:
    """Run every demo case into ``out/quick`` (replaced on each call, atomically) and print a summary table."""
    import logging

    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("adapters").setLevel(logging.ERROR)
    teacher = minilm_l6_dir()
    student = out / "models" / "all-MiniLM-L6-v2-layers-0-2-4"
    run = out / QUICK_DIR
    with console.status("building the 3-layer student"):
        if not student.exists():
            make_layer_reduced(teacher, STUDENT_LAYERS, student)
    tokenizer = AutoTokenizer.from_pretrained(str(teacher))
    rows = []
    with atomic_directory(run, force=True) as staging:
        for case in CASES:
            with console.status(f"transferring {case.kind} with {case.layer_map} and checking it"):
                rows.append(_run_case(case, teacher, student, staging, tokenizer))
        rows = [{**row, "output": row["output"].replace(str(staging), str(run))} for row in rows]
        (staging / "summary.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    console.print(_table(rows))
    console.print(f"Outputs in {run}")
    return rows
