"""The module kinds of ``core.kinds``: each definition is complete, and the code asks the definition."""

from __future__ import annotations

import pytest
import torch

from peftport.core.kinds import BOTTLENECK, KINDS, LORA
from peftport.core.module import BottleneckSettings, LoraSettings, PeftModule
from peftport.core.pruning import ROLE_AXES


@pytest.mark.parametrize("name", list(KINDS))
def test_a_kind_definition_is_complete(name):
    kind = KINDS[name]
    assert kind.name == name and set(kind.role_axes) <= set(kind.roles)
    assert all(side in ("in", "out") for axes in kind.role_axes.values() for side in axes.values())
    for lora_b in ("input", "output"):
        candidates = kind.candidate_points("slot", lora_b)
        settings = LoraSettings(4, 8) if name == LORA else BottleneckSettings({"original_ln_before": True})
        assert set(kind.probe_points(settings, "slot", lora_b)) <= set(candidates)
    assert kind.library in ("peft", "adapters")


def test_role_axes_are_the_kinds_axes():
    assert ROLE_AXES["lora_A"] == {1: "in"} and ROLE_AXES["up.weight"] == {0: "out"}
    assert set(ROLE_AXES) == {role for kind in KINDS.values() for role in kind.role_axes}


def test_lora_b_alignment_reads_and_writes_by_kind():
    lora = KINDS[LORA]
    assert lora.reads_and_writes(LoraSettings(4, 8), "attn_q", "input") == ("in:attn_q", "in:attn_q")
    assert lora.reads_and_writes(LoraSettings(4, 8), "attn_q", "output") == ("in:attn_q", "out:attn_q")
    adapter = KINDS[BOTTLENECK]
    normed, raw = BottleneckSettings({"original_ln_before": True}), BottleneckSettings({})
    assert adapter.reads_and_writes(normed, "ffn_adapter", "output") == ("adapter_ln:ffn_adapter",) * 2
    assert adapter.reads_and_writes(raw, "ffn_adapter", "input") == ("adapter:ffn_adapter",) * 2


def test_a_module_of_an_unknown_kind_or_the_wrong_settings_is_refused():
    layers = {0: {"attn_q": {"lora_A": torch.zeros(2, 4), "lora_B": torch.zeros(4, 2)}}}
    with pytest.raises(ValueError, match="unknown module kind 'prefix'"):
        PeftModule("prefix", LoraSettings(2, 4), "bert", layers)
    with pytest.raises(ValueError, match="a lora module needs LoraSettings"):
        PeftModule(LORA, BottleneckSettings({}), "bert", layers)
    assert PeftModule(LORA, LoraSettings(2, 4), "bert", layers).spec is KINDS[LORA]
