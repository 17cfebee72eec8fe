"""Decoder LLM families (llama, mistral, qwen2, gemma): LoRA on every projection, matching and aligned transfer.

Tiny random models with grouped-query attention (4 query heads, 2 key/value heads of 16 dims).
The transferred module loads in peft on the student with no missing or unexpected keys; aligned
transfer matches attention heads as whole blocks.
"""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModel

from module_factory import make_peft_lora
from peftport.architectures.models import describe_model
from peftport.formats.registry import load_module
from tiny_models import DECODER_CONFIGS as CONFIGS
from tiny_tokenizers import probe_sentences, save_metaspace_bpe, save_wordpiece

SLOTS = ["attn_q", "attn_k", "attn_v", "attn_out", "ffn_gate", "ffn_in", "ffn_out"]


def _save(family, directory, layers, hidden, heads, kv_heads, head_dim=16, seed=0):
    config = CONFIGS[family](
        hidden_size=hidden, intermediate_size=hidden + hidden // 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, vocab_size=200,
        max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module", params=list(CONFIGS))
def family(request, tmp_path_factory):
    name, root = request.param, tmp_path_factory.mktemp(request.param)
    teacher = save_wordpiece(_save(name, root / "teacher", 4, 64, 4, 2))
    probe = root / "probe.txt"
    probe.write_text("\n".join(probe_sentences(120, seed=9)) + "\n")
    module = make_peft_lora(teacher, name, root / "lora", task_model=False, slots=SLOTS)
    return {"name": name, "root": root, "teacher": teacher, "module": module, "probe": probe}


def _loads_cleanly(student, out):
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(student)), str(out))
    check = model.load_adapter(str(out), adapter_name="check")
    assert [k for k in check.missing_keys if ".check." in k] == [] and check.unexpected_keys == []
    return model


def test_specs_read_grouped_query_widths(family):
    dims = describe_model(str(family["teacher"])).dims
    assert (dims.num_heads, dims.num_kv_heads, dims.head_dim) == (4, 2, 16)
    assert (dims.width("query"), dims.width("kv"), dims.width("intermediate")) == (64, 32, 96)


@pytest.mark.parametrize("layer_map", ["skip", "avg", "cka"])
def test_matching_transfer_of_lora_on_every_projection(family, cli, tmp_path, layer_map):
    student = save_wordpiece(_save(family["name"], tmp_path / "student", 2, 64, 4, 2, seed=1))
    out = tmp_path / "out"
    result = cli("transfer", "--teacher", family["teacher"], "--student", student, "--module", family["module"],
                 "--layer-map", layer_map, "--probe-data", family["probe"], "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    _loads_cleanly(student, out)
    teacher, moved = load_module(family["module"]), load_module(out)
    assert sorted(moved.slots) == sorted(SLOTS)
    sources = json.loads((out / "peftport_manifest.json").read_text())["layer_map"]["sources"]
    expected_sources = {"skip": [[0], [2]], "avg": [[0, 1], [2, 3]]}.get(layer_map)
    assert sources == expected_sources if expected_sources else sources[0][0] < sources[1][0]
    for layer, group in enumerate(sources):
        for slot in SLOTS:
            expected = torch.stack([teacher.layers[t][slot]["lora_B"] for t in group]).mean(0)
            assert torch.allclose(moved.layers[layer][slot]["lora_B"], expected, atol=1e-6)


def test_aligned_transfer_keeps_attention_heads_whole(family, cli, tmp_path):
    student = save_metaspace_bpe(_save(family["name"], tmp_path / "narrow", 2, 32, 2, 1, seed=2))
    out = tmp_path / "out"
    result = cli(
        "transfer", "--teacher", family["teacher"], "--student", student, "--module", family["module"],
        "--align", "correlation", "--probe-data", family["probe"], "--lora-b", "output", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _loads_cleanly(student, out)
    manifest = json.loads((out / "peftport_manifest.json").read_text())
    points = manifest["alignment"]["layers"][1]["points"]
    for point, heads in (("out:attn_q", 2), ("out:attn_k", 1), ("out:attn_v", 1), ("in:attn_out", 2)):
        index = torch.tensor(points[f"2/{point}"]["index"]).reshape(heads, 16)
        starts = index[:, :1]
        assert torch.equal(index, starts + torch.arange(16)), point  # each student head is one teacher head
        assert (starts % 16 == 0).all() and len(set(starts.flatten().tolist())) == heads
    ffn = points["2/out:ffn_in"]["index"]
    assert len(set(ffn)) == 48 and max(ffn) < 96  # no heads in the feed-forward space: plain permutation


def test_aligned_transfer_refuses_heads_of_different_sizes(family, cli, tmp_path):
    student = save_wordpiece(_save(family["name"], tmp_path / "small-heads", 2, 32, 4, 2, head_dim=8, seed=3))
    out = tmp_path / "out"
    result = cli(
        "transfer", "--teacher", family["teacher"], "--student", student, "--module", family["module"],
        "--align", "correlation", "--probe-data", family["probe"], "--lora-b", "output", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 2 and "attention heads differ in size (teacher 16, student 8)" in result.stderr
    assert not out.exists()
