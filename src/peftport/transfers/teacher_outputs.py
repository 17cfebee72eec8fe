"""The teacher's outputs on the recovery texts, computed once: per text, its logits (per token for token heads,
per text for sequence heads) or its final hidden states per token, in fp16, with the teacher tokenizer's
character offsets so that any student's tokens can be matched to them. Recovery and fidelity read these
instead of running the teacher at every step; with a cache folder they are kept on disk, keyed by the teacher,
the files of its module, the target, the length and the texts, and reused by every student, seed and resumed
run that asks for the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from peftport.formats.atomic import atomic_directory
from peftport.probing.collect import encode_texts
from peftport.probing.tokens import TokenMatch, match_by_offsets
from peftport.transfers.paired import RecoveryModels, forward

OUTPUTS_FILE, META_FILE = "outputs.safetensors", "outputs.json"
MANIFEST = "peftport_manifest.json"  # written by peftport with a timestamp: not part of a module's identity


@dataclass(frozen=True)
class TeacherOutputs:
    """The teacher's ``target`` ("logits" or "hidden") per text, and its tokens' offsets and special marks."""

    target: str
    rows: list[torch.Tensor]
    offsets: list[list[list[int]]]
    special: list[list[int]]

    def matches(self, indices: list[int], texts: list[str], student: Any) -> list[TokenMatch]:
        """Shared tokens of the cached texts ``indices`` (``texts``) and the student's encoding ``student``."""
        keys = ("offset_mapping", "special_tokens_mask")
        return [
            match_by_offsets(
                text,
                {"offset_mapping": self.offsets[i], "special_tokens_mask": self.special[i]},
                {k: student[k][row].tolist() for k in keys},
            )
            for row, (i, text) in enumerate(zip(indices, texts, strict=True))
        ]

    def rows_at(self, indices: list[int], matches: list[TokenMatch]) -> torch.Tensor:
        """The teacher's rows for a batch: at its shared tokens, or one per text for a sequence head."""
        if self.rows[indices[0]].dim() == 1:
            return torch.stack([self.rows[i] for i in indices]).float()
        positions = [
            self.rows[i][torch.tensor(m.teacher, dtype=torch.long)] for i, m in zip(indices, matches, strict=True)
        ]
        return torch.cat(positions).float()


def compute_outputs(
    models: RecoveryModels, texts: list[str], target: str, max_length: int, batch_size: int
) -> TeacherOutputs:
    """Run the teacher once over ``texts`` in batches of ``batch_size``."""
    rows, offsets, special = [], [], []
    models.teacher.eval()
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            encoded = encode_texts(models.teacher_tokenizer, texts[start : start + batch_size], max_length)
            out = forward(models.teacher, encoded)
            values = out.logits if target == "logits" else out.hidden_states[-1]
            for i, length in enumerate(encoded["attention_mask"].sum(1).tolist()):
                per_token = values.dim() == 3
                rows.append((values[i, :length] if per_token else values[i]).detach().to(torch.float16).cpu())
                offsets.append([list(pair) for pair in encoded["offset_mapping"][i, :length].tolist()])
                special.append(encoded["special_tokens_mask"][i, :length].tolist())
    return TeacherOutputs(target, rows, offsets, special)


def module_fingerprint(directory: Path) -> str:
    """A hash of a module folder's files (peftport's manifest left out: it carries a timestamp)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.name != MANIFEST):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def teacher_key(reference: str, module_dir: Path, built: str) -> str:
    """How a cache names a teacher: its reference, its module's files, and how it is built (``built``: the
    recovery backend's name, since a grid's trained task model and a user's class may differ)."""
    return f"{reference}|{module_fingerprint(module_dir)}|{built}"


def outputs_key(teacher: str, target: str, max_length: int, texts: list[str]) -> str:
    """The cache key of ``teacher`` (its reference and its module's fingerprint, as the backend names it) on
    ``texts``."""
    text_hash = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return hashlib.sha256(json.dumps([teacher, target, max_length, text_hash]).encode()).hexdigest()[:16]


def teacher_outputs(
    models: RecoveryModels,
    texts: list[str],
    target: str,
    max_length: int,
    batch_size: int,
    cache: tuple[Path, str] | None = None,
    needed: int | None = None,
) -> TeacherOutputs:
    """The teacher's outputs on the first ``needed`` (default: all) of ``texts``: read from ``cache`` (a folder
    and the teacher's key, see ``outputs_key``, which names the whole list) when as many are there, else
    computed (and then written there)."""
    count = len(texts) if needed is None else min(needed, len(texts))
    if cache is None:
        return compute_outputs(models, texts[:count], target, max_length, batch_size)
    folder = cache[0] / outputs_key(cache[1], target, max_length, texts)
    if (folder / META_FILE).is_file():
        found = _read(folder)
        if len(found.rows) >= count:
            return TeacherOutputs(found.target, found.rows[:count], found.offsets[:count], found.special[:count])
    outputs = compute_outputs(models, texts[:count], target, max_length, batch_size)
    with atomic_directory(folder, force=True) as staging:
        _write(outputs, staging)
    return outputs


def _write(outputs: TeacherOutputs, folder: Path) -> None:
    from safetensors.torch import save_file

    save_file({f"rows.{i}": row.contiguous() for i, row in enumerate(outputs.rows)}, str(folder / OUTPUTS_FILE))
    meta = {"target": outputs.target, "offsets": outputs.offsets, "special": outputs.special}
    (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")


def _read(folder: Path) -> TeacherOutputs:
    from safetensors.torch import load_file

    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / OUTPUTS_FILE))
    rows = [tensors[f"rows.{i}"] for i in range(len(meta["offsets"]))]
    return TeacherOutputs(meta["target"], rows, meta["offsets"], meta["special"])
