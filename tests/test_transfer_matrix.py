"""Matching transfer for every (teacher family, student family, module type), end to end.

Teacher module made by the real library on a 4-layer teacher -> ``peftport transfer`` -> loaded by
the real library on a 2-layer student with no missing or unexpected keys -> every student tensor
equals the teacher tensor the layer map names (SKIP) or the mean of its group (AVG).
"""

from __future__ import annotations

from pathlib import Path

import adapters
import pytest
import torch
from peft import PeftModel
from transformers import AutoModel, AutoModelForSequenceClassification

from module_factory import make_adapterhub, make_peft_lora
from peftport.architectures.registry import spec_by_name
from peftport.formats.registry import load_module
from tiny_models import ADAPTERHUB_FAMILIES, FAMILIES

TEACHER_LAYERS, STUDENT_LAYERS = 4, 2
GROUPS = {"skip": [[0], [2]], "avg": [[0, 1], [2, 3]]}
CASES = [(t, s, "peft_lora") for t in FAMILIES for s in FAMILIES] + [
    (t, s, kind)
    for kind in ("seq_bn", "double_seq_bn", "ah_lora")
    for t in ADAPTERHUB_FAMILIES
    for s in ADAPTERHUB_FAMILIES
]


@pytest.fixture(scope="session")
def teacher_module(tiny_model, tmp_path_factory):
    """``teacher_module(family, kind)`` -> module directory made by peft / AdapterHub (cached)."""
    cache: dict[tuple[str, str], Path] = {}

    def build(family: str, kind: str) -> Path:
        if (family, kind) not in cache:
            out = tmp_path_factory.mktemp(f"teacher-{family}-{kind}") / "module"
            model = tiny_model(family, TEACHER_LAYERS)
            made = make_peft_lora(model, family, out) if kind == "peft_lora" else make_adapterhub(model, kind, out)
            cache[(family, kind)] = made
        return cache[(family, kind)]

    return build


def _student_params_peft(student_dir: Path, out: Path) -> tuple[torch.nn.Module, list[str], list[str]]:
    model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(str(student_dir)), str(out))
    result = model.load_adapter(str(out), adapter_name="check")
    missing = [k for k in result.missing_keys if ".check." in k and "lora_" in k]
    return model.base_model.model, missing, list(result.unexpected_keys)


def _student_params_adapterhub(student_dir: Path, out: Path) -> tuple[torch.nn.Module, list[str], list[str]]:
    model = AutoModel.from_pretrained(str(student_dir))
    adapters.init(model)
    info: dict = {}
    model.load_adapter(str(out), loading_info=info)
    missing = [k for k in info["missing_keys"] if ".task." in k]
    return model, missing, list(info.get("unexpected_keys", []))


def _library_tensor(model: torch.nn.Module, family: str, slot: str, layer: int, role: str, kind: str) -> torch.Tensor:
    """The tensor as the library placed it in the student model."""
    spec = spec_by_name(family)
    base = getattr(model, spec.base_prefix) if hasattr(model, spec.base_prefix) else model
    module = base.get_submodule(spec.module_path(slot, layer))
    if kind == "peft_lora":
        return getattr(module, role)["default"].weight
    if kind == "ah_lora":
        return getattr(module.loras["task"], role)
    adapter = module.adapters["task"]
    part, param = role.split(".")
    linear = {"down": adapter.adapter_down[0], "up": adapter.adapter_up}[part]
    return getattr(linear, param)


@pytest.mark.parametrize("layer_map", ["skip", "avg"])
@pytest.mark.parametrize(("teacher", "student", "kind"), CASES)
def test_transfer_loads_and_matches_the_layer_map(
    teacher, student, kind, layer_map, tiny_model, teacher_module, cli, tmp_path
):
    module_dir = teacher_module(teacher, kind)
    student_dir = tiny_model(student, STUDENT_LAYERS)
    out = tmp_path / "student-module"
    result = cli(
        "transfer",
        "--teacher",
        tiny_model(teacher, TEACHER_LAYERS),
        "--student",
        student_dir,
        "--module",
        module_dir,
        "--layer-map",
        layer_map,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output

    loader = _student_params_peft if kind == "peft_lora" else _student_params_adapterhub
    model, missing, unexpected = loader(student_dir, out)
    assert missing == [] and unexpected == []

    source = load_module(module_dir)
    checked = 0
    for layer, group in enumerate(GROUPS[layer_map]):
        for slot, roles in source.layers[0].items():
            for role in roles:
                expected = torch.stack([source.layers[t][slot][role] for t in group]).mean(0)
                actual = _library_tensor(model, student, slot, layer, role, kind)
                torch.testing.assert_close(actual.detach(), expected, rtol=0, atol=1e-7)
                checked += 1
    assert checked >= 2 * STUDENT_LAYERS * len(source.slots)
