"""Modules as people publish them (issue 32), rebuilt on tiny random models from the real configs: DistilBERT
classifiers with ``pre_classifier``, Llama and Qwen2 LoRAs, ``layers_to_transform``, ``bias``, ``fan_in_fan_out``,
CAUSAL_LM task types, Git LFS pointers and configs without ``model_type``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from module_factory import make_peft_lora
from peftport.formats.registry import load_module
from tiny_models import save_tiny_model, tiny_config
from tiny_tokenizers import probe_sentences, save_wordpiece

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 1234\n".format("0" * 64)


@pytest.fixture(scope="module")
def wild(tmp_path_factory):
    root = tmp_path_factory.mktemp("wild")
    probe = root / "probe.txt"
    probe.write_text("\n".join(probe_sentences(120, seed=3)) + "\n")
    models = {
        "distil": save_wordpiece(save_tiny_model("distilbert", 2, root / "distil", vocab_size=200)),
        "distil_small": save_wordpiece(save_tiny_model("distilbert", 2, root / "distil-small", 16, vocab_size=200)),
        "bert4": save_wordpiece(save_tiny_model("bert", 4, root / "bert4", vocab_size=200)),
        "bert2": save_wordpiece(save_tiny_model("bert", 2, root / "bert2", vocab_size=200)),
    }
    # decoder bases in folders whose names do not say the family
    decoders = (("llama", "llama", 2, "base-a"), ("llama_small", "llama", 1, "base-c"),
                ("qwen2", "qwen2", 2, "base-b"), ("qwen2_small", "qwen2", 1, "base-d"))  # fmt: skip
    for name, family, layers, folder in decoders:
        torch.manual_seed(0)
        config = tiny_config(family, layers, vocab_size=200)
        AutoModelForCausalLM.from_config(config).save_pretrained(str(root / folder))
        models[name] = save_wordpiece(root / folder)
    return {"root": root, "probe": probe, **models}


def _peft(model, out: Path, seed: int = 0, **config) -> Path:
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, **config))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    peft_model.save_pretrained(str(out))
    return out


def _edit_config(module: Path, **changes) -> Path:
    path = module / "adapter_config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, **changes}))
    return module


def _transfer(cli, teacher, student, module, out, *extra):
    result = cli("transfer", "--teacher", teacher, "--student", student, "--module", module, "--out", out, *extra)
    manifest = out / "peftport_manifest.json"
    return result, (json.loads(manifest.read_text()) if result.exit_code == 0 else None)


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, RuntimeError))


# 1. DistilBERT sequence classifiers: modules_to_save ["pre_classifier", "classifier"], or peft's default
@pytest.mark.parametrize("saved", [["pre_classifier", "classifier"], None])
def test_a_distilbert_classifier_head_with_pre_classifier_moves_and_loads(wild, cli, tmp_path, saved):
    model = AutoModelForSequenceClassification.from_pretrained(str(wild["distil"]), num_labels=6)
    module = _peft(model, tmp_path / "teacher", target_modules=["q_lin", "v_lin"], task_type="SEQ_CLS",
                   modules_to_save=saved)  # fmt: skip
    out = tmp_path / "out"
    result, manifest = _transfer(
        cli, wild["distil"], wild["distil_small"], module, out, "--head", "--align", "projection",
        "--probe-data", wild["probe"],
    )  # fmt: skip
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert manifest["dropped"] == [] and manifest["loads_on"]["model_class"] == "AutoModelForSequenceClassification"
    student = AutoModelForSequenceClassification.from_pretrained(str(wild["distil_small"]), num_labels=6)
    loaded = PeftModel.from_pretrained(student, str(out)).eval()
    assert loaded.base_model.model.pre_classifier.modules_to_save["default"].weight.shape == (16, 16)
    assert loaded.base_model.model.classifier.modules_to_save["default"].weight.shape == (6, 16)


def test_peft_matches_modules_to_save_by_suffix_and_so_does_the_head_reader(wild, tmp_path):
    from peftport.formats.peft_lora import task_head

    model = AutoModelForSequenceClassification.from_pretrained(str(wild["distil"]), num_labels=3)
    module = load_module(_peft(model, tmp_path / "m", target_modules=["q_lin"], modules_to_save=["classifier"]))
    assert sorted(task_head(module)) == [
        "classifier.bias", "classifier.weight", "pre_classifier.bias", "pre_classifier.weight",
    ]  # fmt: skip


# 2. family detection: the config's model_type and the base model's name before slot-name matching
@pytest.mark.parametrize(("family", "hub_name"), [("llama", "meta-llama/Llama-3.2-1B"), ("qwen2", "Qwen/Qwen2.5-0.5B")])
def test_llama_and_qwen2_loras_are_not_called_gemma(wild, cli, tmp_path, family, hub_name):
    model = AutoModelForCausalLM.from_pretrained(str(wild[family]))
    module = _peft(model, tmp_path / "m", target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    assert load_module(module).family == family  # base_model_name_or_path: a local folder, its config says
    _edit_config(module, base_model_name_or_path=hub_name)  # and by the hub name alone
    shown = cli("inspect", module, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["family"] == family


# 4. bias="all" / "lora_only": trained biases peftport cannot carry are refused by name
@pytest.mark.parametrize("bias", ["all", "lora_only"])
def test_a_module_that_trains_biases_is_refused_by_name(wild, cli, tmp_path, bias):
    model = AutoModelForSequenceClassification.from_pretrained(str(wild["bert2"]))
    module = _peft(model, tmp_path / "m", target_modules=["query", "value"], bias=bias)
    for args in (("inspect", module), ("convert", module, "--to", "adapterhub", "--out", tmp_path / "c")):
        result = cli(*args)
        assert result.exit_code == 2 and f"bias='{bias}'" in result.output and len(result.output.splitlines()) == 1
    assert not (tmp_path / "c").exists()


# 5. layers_to_transform: a module on some layers stays on those layers
@pytest.fixture
def first_half(wild, tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(str(wild["bert4"]))
    module = _peft(model, tmp_path / "half", target_modules=["query", "value"], layers_to_transform=[0, 1])
    return _edit_config(module, base_model_name_or_path=str(wild["bert4"]))


def _clean_peft_load(model, module_dir):
    wrapped = PeftModel.from_pretrained(model, str(module_dir))
    check = wrapped.load_adapter(str(module_dir), adapter_name="check")
    return [k for k in check.missing_keys if ".check." in k], list(check.unexpected_keys), wrapped


def test_layers_to_transform_survive_convert_to_peft_and_adapterhub(wild, cli, tmp_path, first_half):
    import adapters
    from transformers import AutoModel

    to_peft = cli("convert", first_half, "--to", "peft", "--out", tmp_path / "p")
    assert to_peft.exit_code == 0, to_peft.output
    model = AutoModelForSequenceClassification.from_pretrained(str(wild["bert4"]))
    missing, unexpected, wrapped = _clean_peft_load(model, tmp_path / "p")
    assert missing == [] and unexpected == []
    layered = {name.split(".layer.")[1].split(".")[0] for name, _ in wrapped.named_modules() if "lora_A" in name}
    assert layered == {"0", "1"}
    to_ah = cli("convert", first_half, "--to", "adapterhub", "--out", tmp_path / "a")
    assert to_ah.exit_code == 0, to_ah.output
    assert json.loads((tmp_path / "a" / "adapter_config.json").read_text())["config"]["leave_out"] == [2, 3]
    base = AutoModel.from_pretrained(str(wild["bert4"]))
    adapters.init(base)
    info: dict = {}
    name = base.load_adapter(str(tmp_path / "a"), loading_info=info)
    assert [k for k in info["missing_keys"] if f".{name}." in k] == []


def test_layers_to_transform_transfer_to_a_shallower_student_loads(wild, cli, tmp_path, first_half):
    result, manifest = _transfer(cli, wild["bert4"], wild["bert2"], first_half, tmp_path / "out", "--layer-map", "skip")
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    student = AutoModelForSequenceClassification.from_pretrained(str(wild["bert2"]))
    missing, unexpected, _ = _clean_peft_load(student, tmp_path / "out")
    assert missing == [] and unexpected == []


def test_layers_to_transform_without_a_known_layer_count_is_refused_for_adapterhub(cli, tmp_path, first_half):
    _edit_config(first_half, base_model_name_or_path="someone/unreachable-model")
    result = cli("convert", first_half, "--to", "adapterhub", "--out", tmp_path / "a")
    assert result.exit_code == 2 and "layers_to_transform" in result.output and not (tmp_path / "a").exists()


# 6. task types: a CAUSAL_LM module stays one, and its base model is a name that loads
def test_a_causal_lm_transfer_keeps_its_task_type_and_an_absolute_base_model(wild, cli, tmp_path, monkeypatch):
    model = AutoModelForCausalLM.from_pretrained(str(wild["llama"]))
    module = _peft(model, tmp_path / "m", target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    monkeypatch.chdir(wild["root"])
    out = tmp_path / "out"
    result, manifest = _transfer(cli, wild["llama"], "base-c", module, out)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and manifest["loads_on"]["model_class"] == "AutoModelForCausalLM"
    assert Path(config["base_model_name_or_path"]).is_absolute() and Path(config["base_model_name_or_path"]).is_dir()
    assert "AutoModelForCausalLM" in result.output


# 7. Git LFS pointers and configs without model_type
@pytest.mark.parametrize("file", ["adapter_model.safetensors", "adapter_config.json"])
def test_a_git_lfs_pointer_is_named_as_one(wild, cli, tmp_path, file):
    module = make_peft_lora(wild["bert2"], "bert", tmp_path / "m", task_model=False)
    (module / file).write_text(LFS_POINTER)
    result = cli("inspect", module)
    assert result.exit_code == 2 and "Git LFS pointer" in result.output and file in result.output


def test_a_model_whose_weights_are_an_lfs_pointer_is_named_as_one(wild, cli, tmp_path):
    import shutil

    student = shutil.copytree(wild["bert2"], tmp_path / "student")
    (student / "model.safetensors").write_text(LFS_POINTER)
    module = make_peft_lora(wild["bert2"], "bert", tmp_path / "m", task_model=False)
    result, _ = _transfer(cli, wild["bert2"], student, module, tmp_path / "out")
    assert result.exit_code == 2 and "Git LFS pointer" in result.output and not (tmp_path / "out").exists()


def test_a_local_config_without_model_type_is_read_by_its_architectures(wild, cli, tmp_path):
    import shutil

    from peftport.architectures.models import describe_model

    student = shutil.copytree(wild["bert2"], tmp_path / "some-model")
    config = json.loads((student / "config.json").read_text())
    config.pop("model_type")
    (student / "config.json").write_text(json.dumps({**config, "architectures": ["BertForMaskedLM"]}))
    assert describe_model(str(student)).spec.name == "bert"
    config.pop("architectures", None)
    (student / "config.json").write_text(json.dumps(config))
    module = make_peft_lora(wild["bert2"], "bert", tmp_path / "m", task_model=False)
    result, _ = _transfer(cli, wild["bert2"], student, module, tmp_path / "out")
    assert result.exit_code == 2 and "model_type" in result.output and len(result.output.splitlines()) == 1


# 8. fan_in_fan_out on nn.Linear layers has no effect in peft: accepted, and the output loads unchanged
def test_fan_in_fan_out_on_linear_layers_is_accepted(wild, cli, tmp_path):
    module = make_peft_lora(wild["bert2"], "bert", tmp_path / "m", task_model=False)
    _edit_config(module, fan_in_fan_out=True)
    result = cli("convert", module, "--to", "peft", "--out", tmp_path / "c")
    assert result.exit_code == 0, result.output
    from transformers import AutoModel

    ids = torch.randint(5, 150, (2, 7), generator=torch.Generator().manual_seed(1))
    outputs = []
    for directory in (module, tmp_path / "c"):
        model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(wild["bert2"])), str(directory)).eval()
        with torch.no_grad():
            outputs.append(model(input_ids=ids).last_hidden_state)
    assert torch.allclose(outputs[0], outputs[1])


# 3. task heads in conversions: carried where the format holds them, else named as dropped
def test_a_peft_task_head_converted_to_adapterhub_is_named_as_dropped(wild, cli, tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(str(wild["bert2"]), num_labels=3)
    module = _peft(model, tmp_path / "m", target_modules=["query", "value"], task_type="SEQ_CLS")
    result = cli("convert", module, "--to", "adapterhub", "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    dropped = json.loads((tmp_path / "a" / "peftport_manifest.json").read_text())["conversion"]["dropped"]
    assert dropped == ["base_model.model.classifier.bias", "base_model.model.classifier.weight"]
    assert "not converted" in result.output and "classifier.weight" in result.output
    kept = cli("convert", module, "--to", "peft", "--out", tmp_path / "p")
    assert kept.exit_code == 0 and "not converted" not in kept.output


def test_an_adapterhub_prediction_head_travels_with_an_adapterhub_conversion(wild, cli, tmp_path):
    from adapters import AutoAdapterModel

    model = AutoAdapterModel.from_pretrained(str(wild["bert2"]))
    model.add_adapter("task", config="seq_bn")
    model.add_classification_head("task", num_labels=3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "heads.task" in name:
                param.add_(1.0)
    model.save_adapter(str(tmp_path / "ah"), "task")
    result = cli("convert", tmp_path / "ah", "--to", "adapterhub", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "head_config.json").is_file() and (tmp_path / "out" / "pytorch_model_head.bin").is_file()
    reloaded = AutoAdapterModel.from_pretrained(str(wild["bert2"]))
    reloaded.load_adapter(str(tmp_path / "out"))
    assert torch.equal(reloaded.heads["task"][1].weight, model.heads["task"][1].weight)
    shown = cli("inspect", tmp_path / "ah", "--json")
    assert any(key.startswith("adapterhub_head:") for key in json.loads(shown.output)["extras"])


# 8. an AdapterHub load check is silent about the adapter it activates a moment later; other messages stay
def test_attaching_an_adapterhub_module_logs_no_inactive_adapter_warning(wild, tmp_path, caplog):
    import logging

    from transformers import AutoModel

    from module_factory import make_adapterhub
    from peftport.formats.loading import attach
    from peftport.library_logs import ADAPTERS_NOT_ACTIVE, expected_messages

    module = make_adapterhub(wild["bert2"], "seq_bn", tmp_path / "ah")
    library = logging.getLogger("adapters")
    level, library.level = library.level, logging.WARNING
    try:
        with caplog.at_level(logging.WARNING):
            attach(AutoModel.from_pretrained(str(wild["bert2"])), module)
            with expected_messages(ADAPTERS_NOT_ACTIVE):
                logging.getLogger(ADAPTERS_NOT_ACTIVE.logger).warning("something else went wrong")
    finally:
        library.setLevel(level)
    messages = [record.getMessage() for record in caplog.records]
    assert "something else went wrong" in messages
    assert not any("none are activated" in message for message in messages)


# model cards: next to every output, read back
def test_a_transfer_writes_a_model_card_that_says_what_moved_and_how_to_load_it(wild, cli, tmp_path):
    from huggingface_hub import ModelCard

    model = AutoModelForSequenceClassification.from_pretrained(str(wild["distil"]), num_labels=6)
    module = _peft(model, tmp_path / "teacher", target_modules=["q_lin", "v_lin"], task_type="SEQ_CLS")
    out = tmp_path / "out"
    result, manifest = _transfer(
        cli, wild["distil"], wild["distil_small"], module, out, "--head", "--align", "projection",
        "--probe-data", wild["probe"], "--recover-steps", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "peft" and "peftport" in card.data.tags and card.data.base_model is None
    text = card.text
    assert str(wild["distil"]) in text and "projection" in text and "held-out R²" in text
    assert "balanced_agreement" in text  # the fidelity after recovery
    command = next(line for line in text.splitlines() if line.startswith("peftport transfer"))
    assert "--head" in command and "--recover-steps 2" in command and command.endswith("--out out")
    snippet = text.split("```python\n")[1].split("```")[0].replace("THIS_FOLDER", str(out))
    namespace: dict = {}
    exec(snippet, namespace)  # the card's load snippet runs as written
    assert namespace["model"].base_model.model.classifier.modules_to_save["default"].weight.shape == (6, 16)
    assert manifest["loads_on"]["num_labels"] == 6


def test_a_card_names_a_hub_student_as_its_base_model_and_a_conversion_gets_one_too(wild, cli, tmp_path):
    from huggingface_hub import ModelCard

    from peftport.formats.card import card_text, hub_name

    assert hub_name("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_name(str(wild["bert2"])) is None and hub_name("a b/c") is None
    module = make_peft_lora(wild["bert2"], "bert", tmp_path / "m", task_model=False)
    result = cli("convert", module, "--to", "adapterhub", "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    card = ModelCard.load(tmp_path / "a" / "README.md")
    assert card.data.library_name == "adapters" and "converted" in card.data.tags
    manifest = json.loads((tmp_path / "a" / "peftport_manifest.json").read_text())
    assert "converted by peftport" in card_text(manifest, tmp_path / "a")
    from peftport.formats.card import write_card

    made = {"format": "peft", "teacher": {"model": "t"}, "student": {"model": "sentence-transformers/all-MiniLM-L6-v2"}}
    write_card(made, tmp_path, tmp_path / "out")
    assert ModelCard.load(tmp_path / "README.md").data.base_model == "sentence-transformers/all-MiniLM-L6-v2"


# many modules at once: probed once, one output each, a bad one reported while the others go through
def test_several_modules_go_through_one_command_and_a_bad_one_is_reported(wild, cli, tmp_path, monkeypatch):
    import peftport.transfers.batch as batch

    folder = tmp_path / "modules"
    for name, seed in (("alpha", 1), ("beta", 2)):
        make_peft_lora(wild["bert4"], "bert", folder / name, task_model=False, seed=seed, slots=["attn_q", "attn_v"])
    (folder / "broken").mkdir()
    (folder / "broken" / "adapter_config.json").write_text("{not json")
    probes = []
    real = batch.align_models
    monkeypatch.setattr(batch, "align_models", lambda *a, **k: probes.append(1) or real(*a, **k))
    out = tmp_path / "out"
    result = cli(
        "transfer", "--teacher", wild["bert4"], "--student", wild["bert2"], "--module", folder, "--out", out,
        "--align", "correlation", "--probe-data", wild["probe"],
    )  # fmt: skip
    _no_traceback(result)
    assert result.exit_code == 2 and "1 of 3 modules failed" in result.output
    assert probes == [1]  # one probe pass for both good modules
    assert sorted(p.name for p in out.iterdir()) == ["alpha", "beta"]
    for name in ("alpha", "beta"):
        manifest = json.loads((out / name / "peftport_manifest.json").read_text())
        assert manifest["source_module"].endswith(name) and manifest["alignment"]["method"] == "correlation"
        assert (out / name / "README.md").is_file()
    table = result.output
    assert "broken" in table and "failed" in table and table.count("written") == 3  # two rows, and the closing line
    a, b = load_module(out / "alpha"), load_module(out / "beta")
    assert not torch.equal(a.layers[0]["attn_q"]["lora_A"], b.layers[0]["attn_q"]["lora_A"])


def test_repeated_module_flags_and_a_single_module_keep_their_meaning(wild, cli, tmp_path):
    first = make_peft_lora(wild["bert2"], "bert", tmp_path / "m1" / "lora", task_model=False, seed=1)
    second = make_peft_lora(wild["bert2"], "bert", tmp_path / "m2" / "other", task_model=False, seed=2)
    twice = cli("transfer", "--teacher", wild["bert2"], "--student", wild["bert2"], "--module", first,
                "--module", second, "--out", tmp_path / "many")  # fmt: skip
    assert twice.exit_code == 0, twice.output
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["lora", "other"]
    single = cli("transfer", "--teacher", wild["bert2"], "--student", wild["bert2"], "--module", first,
                 "--out", tmp_path / "one")  # fmt: skip
    assert single.exit_code == 0 and (tmp_path / "one" / "adapter_config.json").is_file()
    same_name = cli("transfer", "--teacher", wild["bert2"], "--student", wild["bert2"], "--module", first,
                    "--module", first, "--out", tmp_path / "dup")  # fmt: skip
    assert same_name.exit_code == 2 and "same output folder" in same_name.output and not (tmp_path / "dup").exists()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"use_dora": True}, "use_dora"),
        ({"layer_replication": [[0, 2]]}, "layer_replication"),
        ({"trainable_token_indices": [5, 6]}, "trainable_token_indices"),
        ({"init_lora_weights": "pissa"}, "init_lora_weights='pissa'"),
    ],
)
def test_options_that_change_what_a_module_computes_are_refused_by_name(wild, cli, tmp_path, change, named):
    module = _edit_config(make_peft_lora(wild["bert2"], "bert", tmp_path / "m", task_model=False), **change)
    result = cli("convert", module, "--to", "peft", "--out", tmp_path / "c")
    assert result.exit_code == 2 and named in result.output and not (tmp_path / "c").exists()
    assert len(result.output.strip().splitlines()) == 1


def test_a_classifier_module_moved_without_its_head_is_checked_on_the_classifier_class(wild, cli, tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(str(wild["bert4"]), num_labels=3)
    module = _peft(model, tmp_path / "m", target_modules=["query", "value"], task_type="SEQ_CLS")
    result, manifest = _transfer(cli, wild["bert4"], wild["bert2"], module, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert manifest["loads_on"]["model_class"] == "AutoModelForSequenceClassification"
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["task_type"] is None
    student = AutoModelForSequenceClassification.from_pretrained(str(wild["bert2"]), num_labels=5)
    missing, unexpected, _ = _clean_peft_load(student, tmp_path / "out")
    assert missing == [] and unexpected == []


def test_a_grid_adds_its_bottleneck_adapters_without_the_inactive_adapter_line(wild, caplog):
    import logging

    from transformers import AutoModel

    from peftport.architectures.registry import spec_by_name
    from peftport.experiments.training.options import ModuleConfig
    from peftport.experiments.training.trainable import attach_module

    library = logging.getLogger("adapters")
    level, library.level = library.level, logging.WARNING
    try:
        with caplog.at_level(logging.WARNING):
            model = AutoModel.from_pretrained(str(wild["bert2"]))
            attach_module(model, spec_by_name("bert"), ModuleConfig(type="seq_bn", reduction_factor=4))
    finally:
        library.setLevel(level)
    assert not any("none are activated" in record.getMessage() for record in caplog.records)
