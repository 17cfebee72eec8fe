"""Prune and align end to end: a 64-wide bert teacher with WordPiece -> a 32-wide distilbert student with BPE.

The result loads in peft / AdapterHub on the student with no missing or unexpected keys and its
tensors are exactly the teacher's rows/columns named by the alignment in the manifest.
"""

from __future__ import annotations

import json

import adapters
import pytest
import torch
from peft import PeftModel
from transformers import AutoModel

from module_factory import make_adapterhub, make_peft_lora
from peftport.formats.registry import load_module
from tiny_models import save_tiny_model
from tiny_tokenizers import probe_sentences, save_metaspace_bpe, save_wordpiece


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("aligned")
    teacher = save_wordpiece(save_tiny_model("bert", 4, root / "teacher", hidden=64, vocab_size=200))
    student = save_metaspace_bpe(save_tiny_model("distilbert", 2, root / "student", hidden=32, vocab_size=200))
    probe = root / "probe.txt"
    probe.write_text("\n".join(probe_sentences(120, seed=7)) + "\n")
    return {"teacher": teacher, "student": student, "probe": probe, "root": root}


def _transfer(cli, pair, module, out, *extra, how=None):
    """Transfer through the CLI (default: probe now with the pair's probe texts); returns the manifest."""
    how = how or ("--align", "correlation", "--probe-data", pair["probe"])
    result = cli(
        "transfer", "--teacher", pair["teacher"], "--student", pair["student"], "--module", module, *how,
        "--out", out, *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads((out / "peftport_manifest.json").read_text())


def _index(manifest, layer, point):
    (teacher_layer,) = manifest["alignment"]["layers"][layer]["teacher_layers"]
    return teacher_layer, torch.tensor(
        manifest["alignment"]["layers"][layer]["points"][f"{teacher_layer}/{point}"]["index"]
    )


@pytest.mark.parametrize("lora_b", ["input", "output"])
def test_lora_is_pruned_to_the_aligned_rows_and_columns(pair, cli, tmp_path, lora_b):
    module = make_peft_lora(pair["teacher"], "bert", tmp_path / "teacher", task_model=False, slots=["attn_q", "attn_v"])
    manifest = _transfer(cli, pair, module, tmp_path / "student", "--lora-b", lora_b)
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(pair["student"])), str(tmp_path / "student"))
    check = model.load_adapter(str(tmp_path / "student"), adapter_name="check")
    assert [k for k in check.missing_keys if ".check." in k] == [] and check.unexpected_keys == []
    teacher = load_module(module)
    for layer in range(2):
        for slot, path in (("attn_q", "attention.q_lin"), ("attn_v", "attention.v_lin")):
            t_layer, index_in = _index(manifest, layer, f"in:{slot}")
            index_out = index_in if lora_b == "input" else _index(manifest, layer, f"out:{slot}")[1]
            linear = model.base_model.model.get_submodule(f"transformer.layer.{layer}.{path}")
            a, b = linear.lora_A["default"].weight, linear.lora_B["default"].weight
            assert a.shape == (4, 32) and b.shape == (32, 4)
            assert torch.equal(a, teacher.layers[t_layer][slot]["lora_A"][:, index_in])
            assert torch.equal(b, teacher.layers[t_layer][slot]["lora_B"][index_out, :])
    shown = cli("inspect", tmp_path / "student")
    assert shown.exit_code == 0 and "Correlation alignment" in shown.stdout and "in:attn_q" in shown.stdout
    record = manifest["alignment"]
    assert record["texts"] == 120 and record["shared_tokens"] >= 100 and record["lora_b"] == lora_b
    point = record["layers"][0]["points"]["0/in:attn_q"]
    assert len(set(point["index"])) == 32 and max(point["index"]) < 64
    assert -1 <= point["mean_matched_correlation"] <= point["mean_best_correlation"] <= 1


@pytest.mark.parametrize(
    ("kind", "point"), [("seq_bn", "adapter_ln:ffn_adapter"), ("double_seq_bn", "adapter:ffn_adapter")]
)
def test_bottleneck_adapter_is_pruned_and_loads(pair, cli, tmp_path, kind, point):
    module = make_adapterhub(pair["teacher"], kind, tmp_path / "teacher")
    manifest = _transfer(cli, pair, module, tmp_path / "student", "--layer-map", "skip-last")
    model = AutoModel.from_pretrained(str(pair["student"]))
    adapters.init(model)
    info: dict = {}
    model.load_adapter(str(tmp_path / "student"), loading_info=info)
    assert [k for k in info["missing_keys"] if ".task." in k] == [] and not info.get("unexpected_keys")
    teacher = load_module(module)
    for layer in range(2):
        t_layer, index = _index(manifest, layer, point)
        assert t_layer == [1, 3][layer]
        adapter = model.transformer.layer[layer].output_adapters.adapters["task"]
        source = teacher.layers[t_layer]["ffn_adapter"]
        assert adapter.adapter_down[0].weight.shape == (16, 32), "bottleneck width kept (64/4 = 16)"
        assert torch.equal(adapter.adapter_down[0].weight, source["down.weight"][:, index])
        assert torch.equal(adapter.adapter_down[0].bias, source["down.bias"])
        assert torch.equal(adapter.adapter_up.weight, source["up.weight"][index, :])
        assert torch.equal(adapter.adapter_up.bias, source["up.bias"][index])
    config = json.loads((tmp_path / "student" / "adapter_config.json").read_text())
    assert config["hidden_size"] == 32 and config["config"]["reduction_factor"] == 2


def test_saved_alignment_is_reused(pair, cli, tmp_path):
    result = cli(
        "align",
        "--teacher",
        pair["teacher"],
        "--student",
        pair["student"],
        "--probe-data",
        pair["probe"],
        "--out",
        tmp_path / "alignment",
    )
    assert result.exit_code == 0, result.output
    module = make_peft_lora(pair["teacher"], "bert", tmp_path / "teacher", task_model=False, slots=["attn_q"])
    fresh = _transfer(cli, pair, module, tmp_path / "fresh")
    again = _transfer(cli, pair, module, tmp_path / "reused", how=("--alignment", tmp_path / "alignment"))
    assert again["alignment"]["layers"] == fresh["alignment"]["layers"]
    assert torch.equal(
        load_module(tmp_path / "reused").layers[1]["attn_q"]["lora_A"],
        load_module(tmp_path / "fresh").layers[1]["attn_q"]["lora_A"],
    )


def test_avg_prunes_each_teacher_layer_with_its_own_alignment(pair, cli, tmp_path):
    module = make_peft_lora(pair["teacher"], "bert", tmp_path / "teacher", task_model=False, slots=["attn_v"])
    manifest = _transfer(cli, pair, module, tmp_path / "student", "--layer-map", "avg")
    teacher, student = load_module(module), load_module(tmp_path / "student")
    layer = manifest["alignment"]["layers"][1]
    assert layer["teacher_layers"] == [2, 3]
    parts = [
        teacher.layers[t]["attn_v"]["lora_A"][:, torch.tensor(layer["points"][f"{t}/in:attn_v"]["index"])]
        for t in (2, 3)
    ]
    torch.testing.assert_close(student.layers[1]["attn_v"]["lora_A"], (parts[0] + parts[1]) / 2)
