"""Every architecture spec is checked against a real (tiny random) model of its family."""

import adapters
import pytest
import torch
from transformers import AutoModel

from peftport.architectures.models import describe_model
from peftport.architectures.registry import architectures, spec_by_name, spec_for_model_type
from peftport.errors import ArchitectureError
from tiny_models import ADAPTERHUB_FAMILIES, DECODER_FAMILIES, FAMILIES, tiny_config

ALL_FAMILIES = FAMILIES + DECODER_FAMILIES


def test_registry_holds_every_family():
    assert sorted(architectures()) == sorted(ALL_FAMILIES)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_slot_paths_exist_in_the_model(family):
    spec = spec_by_name(family)
    model = AutoModel.from_config(tiny_config(family, 2))
    names = dict(model.named_modules())
    for layer in range(2):
        for slot in spec.slots_of_kind("linear"):
            path = spec.module_path(slot, layer)
            assert path in names, path
            linear = names[path]
            dims = spec.dims(model.config)
            assert (linear.in_features, linear.out_features) == (
                dims.width(spec.slots[slot].in_dim),
                dims.width(spec.slots[slot].out_dim),
            ), slot


@pytest.mark.parametrize("family", ADAPTERHUB_FAMILIES)
def test_bottleneck_slots_host_adapterhub_adapters(family):
    spec = spec_by_name(family)
    model = AutoModel.from_config(tiny_config(family, 2))
    adapters.init(model)
    model.add_adapter("x", config="double_seq_bn")
    names = dict(model.named_modules())
    for slot in spec.slots_of_kind("bottleneck"):
        assert f"{spec.module_path(slot, 1)}.adapters.x" in names, slot
        layer = spec.layer_template.format(layer=1)
        probe, normed = spec.slots[slot].probe, spec.slots[slot].probe_normed
        assert probe and isinstance(names[f"{layer}.{probe}"], torch.nn.Linear), slot
        assert normed and isinstance(names[f"{layer}.{normed}"], torch.nn.LayerNorm), slot


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_config_keys_and_base_prefix(family):
    spec = spec_by_name(family)
    config = tiny_config(family, 3)
    dims = spec.dims(config)
    assert (dims.num_layers, dims.hidden_size, dims.intermediate_size) == (3, 32, 64)
    assert AutoModel.from_config(config).base_model_prefix == spec.base_prefix
    assert spec_for_model_type(config.model_type) is spec


def test_locate_resolves_prefixed_and_plain_paths():
    spec = spec_by_name("distilbert")
    plain = spec.locate("transformer.layer.1.attention.q_lin")
    prefixed = spec.locate("distilbert.transformer.layer.1.attention.q_lin")
    assert (plain.layer, plain.slot, plain.task_model) == (1, "attn_q", False)
    assert (prefixed.layer, prefixed.slot, prefixed.task_model) == (1, "attn_q", True)
    assert spec.locate("bert.encoder.layer.1.attention.self.query") is None


def test_unknown_families_are_rejected_with_the_supported_list():
    with pytest.raises(ArchitectureError, match="unknown model type 'gpt2'.*bert"):
        spec_for_model_type("gpt2")
    with pytest.raises(ArchitectureError, match="unknown model family 't5'"):
        spec_by_name("t5")


def test_describe_model_reads_a_local_directory(tiny_model):
    info = describe_model(str(tiny_model("distilbert", 3)))
    assert (info.spec.name, info.dims.num_layers, info.dims.hidden_size) == ("distilbert", 3, 32)


def test_describe_model_without_config_json(tmp_path):
    with pytest.raises(ArchitectureError, match="has no config.json"):
        describe_model(str(tmp_path))
