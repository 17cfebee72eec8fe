"""Beyond the paper, end to end on tiny models: CKA layer maps, per-layer fallback, other matchers, SVD merge."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModel, AutoTokenizer

from module_factory import make_adapterhub, make_peft_lora
from peftport.formats.registry import load_module
from tiny_models import save_tiny_model
from tiny_tokenizers import probe_sentences, save_metaspace_bpe, save_wordpiece


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("options")
    teacher = save_wordpiece(save_tiny_model("bert", 4, root / "teacher", hidden=32, vocab_size=200))
    # the teacher's first two layers: its layer outputs equal the teacher's layers 0 and 1
    truncated = AutoModel.from_pretrained(str(teacher))
    truncated.encoder.layer = truncated.encoder.layer[:2]
    truncated.config.num_hidden_layers = 2
    prefix = root / "prefix"
    truncated.save_pretrained(str(prefix))
    AutoTokenizer.from_pretrained(str(teacher)).save_pretrained(str(prefix))
    narrow = save_metaspace_bpe(save_tiny_model("distilbert", 2, root / "narrow", hidden=16, vocab_size=200))
    wide = save_wordpiece(save_tiny_model("bert", 4, root / "wide", hidden=64, vocab_size=200))
    probe = root / "probe.txt"
    probe.write_text("\n".join(probe_sentences(120, seed=3)) + "\n")
    lora = make_peft_lora(teacher, "bert", root / "lora", task_model=False, slots=["attn_q", "attn_v"])
    wide_lora = make_peft_lora(wide, "bert", root / "wide-lora", task_model=False, slots=["attn_q", "attn_v"])
    return {
        "teacher": teacher, "prefix": prefix, "narrow": narrow, "wide": wide, "probe": probe,
        "lora": lora, "wide_lora": wide_lora, "root": root,
    }  # fmt: skip


def _run(cli, teacher, student, module, out, *extra):
    result = cli("transfer", "--teacher", teacher, "--student", student, "--module", module, "--out", out, *extra)
    return result, (json.loads((out / "peftport_manifest.json").read_text()) if result.exit_code == 0 else None)


def test_cka_layer_map_finds_the_layers_a_student_was_cut_from(models, cli, tmp_path):
    result, manifest = _run(
        cli, models["teacher"], models["prefix"], models["lora"], tmp_path / "out",
        "--layer-map", "cka", "--probe-data", models["probe"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    layer_map = manifest["layer_map"]
    assert layer_map["method"] == "cka" and layer_map["sources"] == [[0], [1]]  # SKIP would say 0, 2
    matrix = torch.tensor(layer_map["similarity"]["matrix"])
    assert matrix.shape == (2, 4) and matrix[0, 0] == pytest.approx(1.0) and matrix[1, 1] == pytest.approx(1.0)
    assert matrix[0].argmax() == 0 and matrix[1].argmax() == 1
    teacher, student = load_module(models["lora"]), load_module(tmp_path / "out")
    assert torch.equal(student.layers[1]["attn_q"]["lora_A"], teacher.layers[1]["attn_q"]["lora_A"])
    plot = tmp_path / "similarity.png"
    shown = cli("inspect", tmp_path / "out", "--plot", plot)
    assert shown.exit_code == 0 and "layer CKA" in shown.stdout and plot.read_bytes()[:4] == b"\x89PNG"


def test_cka_layer_map_needs_probe_texts(models, cli, tmp_path):
    result, _ = _run(cli, models["teacher"], models["prefix"], models["lora"], tmp_path / "out", "--layer-map", "cka")
    assert result.exit_code == 2 and "give --probe-data" in result.stderr and not (tmp_path / "out").exists()


def test_layers_below_the_quality_threshold_keep_a_fresh_initialisation(models, cli, tmp_path):
    how = ("--align", "correlation", "--probe-data", models["probe"], "--lora-b", "output")
    result, manifest = _run(
        cli, models["wide"], models["narrow"], models["wide_lora"], tmp_path / "all", *how, "--min-quality", -1
    )
    assert result.exit_code == 0, result.output
    quality = manifest["layers"]["quality"]
    assert manifest["layers"]["measure"] == "mean_matched_correlation" and manifest["layers"]["default_init"] == []
    low = min(range(2), key=lambda i: quality[i])
    threshold = sum(quality) / 2  # between the two layers' qualities
    for value, fresh in ((threshold, [low]), (2.0, [0, 1])):
        out = tmp_path / f"at-{value}"
        result, manifest = _run(cli, models["wide"], models["narrow"], models["wide_lora"], out, *how,
                                "--min-quality", value)  # fmt: skip
        assert result.exit_code == 0, result.output
        assert manifest["layers"]["default_init"] == fresh
        assert f"fresh init {fresh}" in cli("inspect", out).stdout
        assert manifest["layers"]["transferred"] == [i for i in (0, 1) if i not in fresh]
        student, kept = load_module(out), load_module(tmp_path / "all")
        for layer in range(2):
            b = student.layers[layer]["attn_v"]["lora_B"]
            assert bool(b.eq(0).all()) == (layer in fresh)
            assert torch.equal(b, kept.layers[layer]["attn_v"]["lora_B"]) == (layer not in fresh)


CHOICES = [("first-half", [2, 3]), ("second-half", [0, 1]), ("every-other", [1, 3]), ("1", [0, 2, 3])]


@pytest.mark.parametrize(("chosen", "fresh"), CHOICES)
def test_only_the_chosen_layers_take_the_transfer(models, cli, tmp_path, chosen, fresh):
    # teacher -> itself with SKIP (identity): a layer either holds the teacher's tensors or a fresh init
    out = tmp_path / "out"
    result, manifest = _run(cli, models["teacher"], models["teacher"], models["lora"], out, "--transfer-layers", chosen)
    assert result.exit_code == 0, result.output
    assert manifest["layers"] == {
        "transfer_layers": chosen,
        "transferred": [i for i in range(4) if i not in fresh],
        "default_init": fresh,
    }
    assert f"fresh init {fresh}" in cli("inspect", out).stdout
    teacher, student = load_module(models["lora"]), load_module(out)
    for layer in range(4):
        b = student.layers[layer]["attn_v"]["lora_B"]
        assert bool(b.eq(0).all()) == (layer in fresh)  # peft's fresh init: B = 0
        assert torch.equal(b, teacher.layers[layer]["attn_v"]["lora_B"]) == (layer not in fresh)
    assert "--transfer-layers " + chosen in manifest["command"]


@pytest.mark.parametrize(("value", "message"), [("firsthalf", "cannot read transfer layers 'firsthalf'"),
                                                ("7", "transfer layers [7] are out of range"),
                                                ("1,1", "must be distinct")])  # fmt: skip
def test_impossible_transfer_layers_are_refused(models, cli, tmp_path, value, message):
    how = ("--transfer-layers", value)
    result, _ = _run(cli, models["teacher"], models["teacher"], models["lora"], tmp_path / "o", *how)
    assert result.exit_code == 2 and message in result.stderr and not (tmp_path / "o").exists()
    assert len(result.stderr.strip().splitlines()) == 1


def test_fallback_without_a_quality_measure_is_refused(models, cli, tmp_path):
    result, _ = _run(cli, models["teacher"], models["prefix"], models["lora"], tmp_path / "o", "--min-quality", "0.5")
    assert result.exit_code == 2 and "--min-quality needs a per-layer quality" in result.stderr


@pytest.mark.parametrize("matcher", ["procrustes", "sinkhorn"])
def test_soft_and_rotation_matchers_project_and_load(models, cli, tmp_path, matcher):
    how = ("--align", "correlation", "--probe-data", models["probe"], "--matcher", matcher, "--lora-b", "output")
    result, manifest = _run(cli, models["wide"], models["narrow"], models["wide_lora"], tmp_path / "out", *how)
    assert result.exit_code == 0, result.output
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(models["narrow"])), str(tmp_path / "out"))
    check = model.load_adapter(str(tmp_path / "out"), adapter_name="check")
    assert [k for k in check.missing_keys if ".check." in k] == [] and check.unexpected_keys == []
    point = manifest["alignment"]["layers"][0]["points"]["0/in:attn_q"]
    assert point["projection"] == [16, 64] and manifest["alignment"]["matcher"] == matcher
    # a saved alignment keeps its matrices: reusing it gives the same module
    saved = cli(
        "align", "--teacher", models["wide"], "--student", models["narrow"], "--probe-data", models["probe"],
        "--matcher", matcher, "--lora-b", "output", "--out", tmp_path / "alignment",
    )  # fmt: skip
    assert saved.exit_code == 0 and (tmp_path / "alignment" / "projections.safetensors").is_file()
    again, _ = _run(
        cli, models["wide"], models["narrow"], models["wide_lora"], tmp_path / "again", "--alignment",
        tmp_path / "alignment",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    first, second = load_module(tmp_path / "out"), load_module(tmp_path / "again")
    for layer in range(2):
        for role in ("lora_A", "lora_B"):
            assert torch.allclose(first.layers[layer]["attn_q"][role], second.layers[layer]["attn_q"][role])


def test_unknown_matcher_is_refused(models, cli, tmp_path):
    how = ("--align", "correlation", "--probe-data", models["probe"], "--matcher", "greedy")
    result, _ = _run(cli, models["wide"], models["narrow"], models["wide_lora"], tmp_path / "out", *how)
    assert result.exit_code == 2 and "unknown matcher 'greedy'" in result.stderr


def test_svd_merge_gives_the_best_rank_r_factors_of_the_mean_update(models, cli, tmp_path):
    result, _ = _run(
        cli, models["teacher"], models["prefix"], models["lora"], tmp_path / "out", "--layer-map", "avg", "--lora-svd"
    )
    assert result.exit_code == 0, result.output
    teacher, student = load_module(models["lora"]), load_module(tmp_path / "out")
    for layer, group in enumerate(([0, 1], [2, 3])):
        roles = [teacher.layers[t]["attn_q"] for t in group]
        mean_update = sum(r["lora_B"].double() @ r["lora_A"].double() for r in roles) / 2
        merged = student.layers[layer]["attn_q"]
        assert merged["lora_A"].shape == (4, 32) and merged["lora_B"].shape == (32, 4)
        best = torch.linalg.svdvals(mean_update)[4:].norm()  # what rank 4 must leave out
        error = torch.linalg.norm(mean_update - merged["lora_B"].double() @ merged["lora_A"].double())
        assert error == pytest.approx(float(best), abs=1e-5)


def test_svd_merge_is_for_lora_only(models, cli, tmp_path):
    module = make_adapterhub(models["teacher"], "seq_bn", tmp_path / "bn")
    result, _ = _run(cli, models["teacher"], models["prefix"], module, tmp_path / "out", "--lora-svd")
    assert result.exit_code == 2 and "--lora-svd re-factors LoRA updates" in result.stderr


def test_inspect_plot_needs_a_similarity_matrix(models, cli, tmp_path):
    result, _ = _run(cli, models["teacher"], models["prefix"], models["lora"], tmp_path / "out")
    assert result.exit_code == 0
    shown = cli("inspect", tmp_path / "out", "--plot", tmp_path / "x.png")
    assert shown.exit_code == 2 and "no layer similarity to plot" in shown.stderr and not (tmp_path / "x.png").exists()


@pytest.fixture(scope="module")
def headed(models):
    """peft LoRA modules saved from SEQ_CLS task models, so with their heads (modules_to_save)."""
    root = models["root"]
    return {
        "same": make_peft_lora(models["teacher"], "bert", root / "cls-lora", slots=["attn_q", "attn_v"]),
        "wide": make_peft_lora(models["wide"], "bert", root / "wide-cls-lora", slots=["attn_q", "attn_v"]),
    }


def _head_after_loading(student, module_dir):
    from transformers import AutoModelForSequenceClassification

    model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(str(student)), str(module_dir))
    return model.base_model.model.classifier.modules_to_save["default"].weight.detach()


def test_head_is_copied_for_equal_widths_and_loads_in_peft(models, headed, cli, tmp_path):
    out = tmp_path / "copied"
    result, manifest = _run(cli, models["teacher"], models["prefix"], headed["same"], out, "--head")
    assert result.exit_code == 0, result.output
    assert manifest["head"] == {"method": "copied"} and manifest["dropped"] == []
    teacher_weight = load_module(headed["same"]).extras["base_model.model.classifier.weight"]
    assert torch.equal(_head_after_loading(models["prefix"], out), teacher_weight)


def test_a_moved_head_is_never_dropped_by_an_adapterhub_output(models, headed, tmp_path):
    import peftport
    from peftport.errors import ModuleFormatError

    moved = peftport.transfer(headed["same"], teacher=str(models["teacher"]), student=str(models["prefix"]), head=True)
    assert moved.provenance["head"] == {"method": "copied"} and moved.extras
    with pytest.raises(ModuleFormatError, match="moved task head"):
        peftport.save_module(moved, tmp_path / "ah", format="adapterhub")
    assert not (tmp_path / "ah").exists()
    peftport.save_module(moved, tmp_path / "peft", format="peft")
    assert torch.equal(
        _head_after_loading(models["prefix"], tmp_path / "peft"), moved.extras["base_model.model.classifier.weight"]
    )


def test_head_is_aligned_for_a_narrower_student(models, headed, cli, tmp_path):
    out = tmp_path / "aligned"
    extra = ("--align", "correlation", "--probe-data", models["probe"], "--probe-sentences", "60", "--head")
    result, manifest = _run(cli, models["wide"], models["teacher"], headed["wide"], out, *extra)
    assert result.exit_code == 0, result.output
    assert manifest["head"]["method"] == "aligned" and manifest["head"]["mean_matched_correlation"] is not None
    weight = _head_after_loading(models["teacher"], out)
    teacher_weight = load_module(headed["wide"]).extras["base_model.model.classifier.weight"]
    assert weight.shape == (2, 32) and teacher_weight.shape == (2, 64)
    # pruning keeps 32 of the teacher's 64 input columns
    kept = [j for j in range(64) if any(torch.equal(teacher_weight[:, j], weight[:, i]) for i in range(32))]
    assert len(kept) == 32


def test_without_head_it_is_dropped_and_named(models, headed, cli, tmp_path):
    result, manifest = _run(cli, models["teacher"], models["prefix"], headed["same"], tmp_path / "plain")
    assert result.exit_code == 0 and "--head" in result.output
    assert "base_model.model.classifier.weight" in manifest["dropped"] and manifest["head"].startswith("not")


@pytest.mark.parametrize(
    ("module", "extra", "message"),
    [
        ("lora", (), "saved with its task head"),
        ("same", ("--format", "adapterhub"), "--format peft"),
    ],
)
def test_head_transfer_refuses_what_it_cannot_do(models, headed, cli, tmp_path, module, extra, message):
    source = models["lora"] if module == "lora" else headed[module]
    out = tmp_path / "refused"
    result, _ = _run(cli, models["teacher"], models["prefix"], source, out, "--head", *extra)
    assert result.exit_code == 2 and message in result.output and not out.exists()


def test_a_min_quality_no_layer_reaches_is_warned_about(models, cli, tmp_path):
    result, manifest = _run(
        cli, models["teacher"], models["prefix"], models["lora"], tmp_path / "out",
        "--layer-map", "cka", "--probe-data", models["probe"], "--min-quality", "5",
    )  # fmt: skip
    assert result.exit_code == 0 and manifest["layers"]["transferred"] == []
    assert "warning: no student layer reached --min-quality 5 (best linear_cka 1.000)" in result.stderr
    assert manifest["layers"]["warning"].startswith("no student layer reached --min-quality 5")
    strict, _ = _run(
        cli, models["teacher"], models["prefix"], models["lora"], tmp_path / "strict",
        "--layer-map", "cka", "--probe-data", models["probe"], "--min-quality", "5", "--strict",
    )  # fmt: skip
    assert strict.exit_code == 2 and "(--strict)" in strict.stderr and not (tmp_path / "strict").exists()
    assert len(strict.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("given, expected", [("skip", "skip"), (None, "avg"), ("skip-last", "skip-last")])
def test_an_explicit_layer_map_wins_over_the_options(models, given, expected):
    import peftport
    from peftport.transfers.options import TransferOptions

    keywords = {} if given is None else {"layer_map": given}
    teacher, student = str(models["teacher"]), str(models["prefix"])
    options = TransferOptions(layer_map="avg")
    moved = peftport.transfer(models["lora"], teacher, student, options=options, **keywords)
    assert moved.provenance["layer_map"]["method"] == expected
