"""Modules whose files disagree are refused by every command that reads them (transfer, convert, inspect):
one stderr line naming the file, the tensor and the numbers, exit code 2, nothing written."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from module_factory import make_adapterhub, make_peft_lora

LORA_FILE, AH_FILE, CONFIG = "adapter_model.safetensors", "pytorch_adapter.bin", "adapter_config.json"


def _edit_config(directory, change):
    config = json.loads((directory / CONFIG).read_text())
    change(config)
    (directory / CONFIG).write_text(json.dumps(config))


def _edit_lora(directory, change):
    tensors = {key: tensor.clone() for key, tensor in load_file(str(directory / LORA_FILE)).items()}
    change(tensors)
    save_file(tensors, str(directory / LORA_FILE))


def _edit_adapter(directory, change):
    tensors = torch.load(directory / AH_FILE, weights_only=True)
    change(tensors)
    torch.save(tensors, directory / AH_FILE)


def _first(tensors, part):
    return next(k for k in sorted(tensors) if part in k)


def _lora_cases(tiny_model, root):
    """name -> (module directory, message regex)."""
    teacher = tiny_model("bert", 4)
    cases = {}

    def broken(name, change, message, edit=_edit_lora, slots=("attn_q", "attn_v")):
        directory = make_peft_lora(teacher, "bert", root / name, task_model=False, slots=list(slots))
        edit(directory, change)
        cases[name] = (directory, message)

    broken("rank", lambda c: c.update(r=8), r"config says r=8, layer 0 attn_q lora_A has rank 4", _edit_config)
    broken("no_lora_b", lambda t: t.pop(_first(t, "query.lora_B")), "layer 0 attn_q lora_A has no lora_B beside it")
    cut = _first(
        load_file(str(make_peft_lora(teacher, "bert", root / "probe", task_model=False) / LORA_FILE)), "lora_A"
    )
    broken(
        "cut_short",
        lambda t: t.update({cut: t[cut][:, :20].contiguous()}),
        "layer 0 attn_q lora_A is 20 wide where layer 1 attn_q lora_A is 32: a tensor is cut short",
    )
    broken("nan", lambda t: t[_first(t, "value.lora_B")].fill_(float("nan")), "attn_v lora_B holds NaN or infinite")
    broken("int_dtype", lambda t: t.update({cut: t[cut].to(torch.int32)}), "has dtype torch.int32, not a float type")
    broken(
        "target_without_tensors",
        lambda c: c.update(target_modules=["query", "key", "value"]),
        r"targets \['key'\], but the weights hold no tensors for it",
        _edit_config,
    )
    return cases


def _adapter_cases(tiny_model, root):
    teacher = tiny_model("bert", 4)
    cases = {}

    def broken(name, change, message, edit=_edit_config, kind="seq_bn"):
        directory = make_adapterhub(teacher, kind, root / name)
        edit(directory, change)
        cases[name] = (directory, message)

    broken(
        "reduction_factor",
        lambda c: c["config"].update(reduction_factor=16),
        r"layer 0 ffn_adapter down.weight is 8 wide: reduction_factor 16 on hidden size 32 means 2",
    )
    broken(
        "placement",
        lambda c: c["config"].update(mh_adapter=True),
        "the config sets mh_adapter=True, but the weights hold no attn_adapter tensors",
    )
    broken("non_linearity", lambda c: c["config"].update(non_linearity="wiggle"), "unknown non_linearity 'wiggle'")
    broken(
        "missing_up",
        lambda t: [t.pop(k) for k in [k for k in t if "layer.1." in k and "adapter_up.weight" in k]],
        "layer 1 ffn_adapter up.weight is missing",
        _edit_adapter,
    )
    return cases


@pytest.fixture(scope="module")
def cases(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    return {**_lora_cases(tiny_model, root), **_adapter_cases(tiny_model, root)}


NAMES = [
    "rank",
    "no_lora_b",
    "cut_short",
    "nan",
    "int_dtype",
    "target_without_tensors",
    "reduction_factor",
    "placement",
    "non_linearity",
    "missing_up",
]


def _commands(module, teacher, out):
    return {
        "transfer": ["transfer", "--teacher", teacher, "--student", teacher, "--module", module, "--out", out],
        "convert": ["convert", module, "--to", "peft" if "lora" not in str(module) else "adapterhub", "--out", out],
        "inspect": ["inspect", module],
    }


@pytest.mark.parametrize("command", ["transfer", "convert", "inspect"])
@pytest.mark.parametrize("name", NAMES)
def test_a_module_whose_files_disagree_is_refused(cases, tiny_model, cli, tmp_path, name, command):
    module, message = cases[name]
    out = tmp_path / "out" / "student"
    result = cli(*_commands(module, tiny_model("bert", 4), out)[command])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(module) in lines[0] and re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_valid_modules_of_every_kind_pass(tiny_model, tmp_path, cli):
    teacher = tiny_model("bert", 4)
    for kind in ("seq_bn", "double_seq_bn", "ah_lora"):
        assert cli("inspect", make_adapterhub(teacher, kind, tmp_path / kind)).exit_code == 0
    assert cli("inspect", make_peft_lora(teacher, "bert", tmp_path / "peft")).exit_code == 0
