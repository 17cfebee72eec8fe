"""Projection and uniform alignment end to end on tiny models.

The exact twin is the teacher with its hidden (residual) dimensions permuted: the same function in
another basis. A projection transfer must carry the module over exactly, so the student with the moved
module computes the teacher-with-module's hidden states in the permuted basis, and with ``--head`` the
same logits.
"""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertModel

from module_factory import make_adapterhub, make_peft_lora
from peftport.core.selection import uniform_index
from peftport.errors import PeftportError
from peftport.formats.alignment_files import load_alignment
from peftport.formats.registry import load_module
from tiny_models import save_tiny_model
from tiny_tokenizers import probe_sentences, save_wordpiece

HIDDEN = 32


def _permute_residual(model: BertModel, perm: torch.Tensor) -> None:
    """Rewrite a BERT so that its residual stream is ``old[..., perm]`` (attention and FFN insides unchanged)."""
    with torch.no_grad():
        emb = model.embeddings
        for table in (emb.word_embeddings, emb.position_embeddings, emb.token_type_embeddings):
            table.weight.copy_(table.weight[:, perm])
        norms = [emb.LayerNorm]
        for layer in model.encoder.layer:
            for reader in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value,
                           layer.intermediate.dense):  # fmt: skip
                reader.weight.copy_(reader.weight[:, perm])
            for writer in (layer.attention.output.dense, layer.output.dense):
                writer.weight.copy_(writer.weight[perm, :])
                writer.bias.copy_(writer.bias[perm])
            norms += [layer.attention.output.LayerNorm, layer.output.LayerNorm]
        for norm in norms:
            norm.weight.copy_(norm.weight[perm])
            norm.bias.copy_(norm.bias[perm])
        model.pooler.dense.weight.copy_(model.pooler.dense.weight[perm][:, perm])
        model.pooler.dense.bias.copy_(model.pooler.dense.bias[perm])


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    teacher_dir = save_wordpiece(save_tiny_model("bert", 2, root / "teacher", hidden=HIDDEN, vocab_size=200))
    teacher = AutoModel.from_pretrained(str(teacher_dir))
    with torch.no_grad():
        # non-zero norm biases: hidden states then span all 32 dimensions; orthogonal linear weights: no
        # output direction is nearly empty, so float32 activations determine the output maps exactly
        generator = torch.Generator().manual_seed(5)
        for name, param in teacher.named_parameters():
            if "LayerNorm.bias" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
            elif name.startswith("encoder.") and name.endswith(".weight") and param.dim() == 2:
                q, _ = torch.linalg.qr(torch.randn(max(param.shape), min(param.shape), generator=generator))
                param.copy_(q if q.shape == param.shape else q.T)
    teacher.save_pretrained(str(teacher_dir))
    perm = torch.randperm(HIDDEN, generator=torch.Generator().manual_seed(9))
    _permute_residual(teacher, perm)
    twin_dir = root / "twin"
    teacher.save_pretrained(str(twin_dir))
    AutoTokenizer.from_pretrained(str(teacher_dir)).save_pretrained(str(twin_dir))
    wide = save_wordpiece(save_tiny_model("bert", 2, root / "wide", hidden=64, vocab_size=200))
    probe = root / "probe.txt"
    probe.write_text("\n".join(probe_sentences(200, seed=11)) + "\n")
    return {"teacher": teacher_dir, "twin": twin_dir, "wide": wide, "perm": perm, "probe": probe, "root": root}


def _transfer(cli, teacher, student, module, out, *extra):
    result = cli("transfer", "--teacher", teacher, "--student", student, "--module", module, "--out", out, *extra)
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "peftport_manifest.json").read_text())


def _hidden(model_dir, module_dir):
    ids = torch.randint(5, 150, (3, 9), generator=torch.Generator().manual_seed(1))
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(model_dir)), str(module_dir)).eval()
    with torch.no_grad():
        return model(input_ids=ids).last_hidden_state


def test_the_twin_sanity_check_is_a_permuted_copy(twins):
    ids = torch.randint(5, 150, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        t = AutoModel.from_pretrained(str(twins["teacher"]))(input_ids=ids).last_hidden_state
        s = AutoModel.from_pretrained(str(twins["twin"]))(input_ids=ids).last_hidden_state
    torch.testing.assert_close(s, t[..., twins["perm"]], atol=1e-5, rtol=1e-5)


def test_projection_moves_a_lora_to_an_exact_twin_exactly(twins, cli, tmp_path):
    module = make_peft_lora(twins["teacher"], "bert", tmp_path / "lora", task_model=False,
                            slots=["attn_q", "attn_v", "ffn_out"])  # fmt: skip
    result, manifest = _transfer(
        cli, twins["teacher"], twins["twin"], module, tmp_path / "out", "--align", "projection",
        "--probe-data", twins["probe"], "--probe-sentences", "200",
    )  # fmt: skip
    assert "held-out R^2" in result.stdout
    record = manifest["alignment"]
    assert record["method"] == "projection" and record["quality_measure"] == "heldout_r2"
    assert record["lora_b"] == "output" and record["mean_r2_to_teacher"] > 0.999
    point = record["layers"][1]["points"]["1/in:attn_q"]["fit"]
    assert point["r2_to_teacher"] > 0.999 and point["ridge_to_teacher"] <= 1e-4
    gains = record["calibration"]["gains"]
    assert record["calibration"]["calibrated"] and len(gains) == 6  # 2 layers x 3 slots
    assert all(g == pytest.approx(1.0, abs=1e-3) for g in gains.values()), "a twin needs no calibration"
    teacher, student = load_module(module), load_module(tmp_path / "out")
    perm = twins["perm"]
    for layer in range(2):  # readers of the residual take permuted columns, writers permuted rows
        t, s = teacher.layers[layer], student.layers[layer]
        torch.testing.assert_close(s["attn_q"]["lora_A"], t["attn_q"]["lora_A"][:, perm], atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(s["attn_q"]["lora_B"], t["attn_q"]["lora_B"], atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(s["ffn_out"]["lora_A"], t["ffn_out"]["lora_A"], atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(s["ffn_out"]["lora_B"], t["ffn_out"]["lora_B"][perm, :], atol=1e-4, rtol=1e-3)
    with_module = _hidden(twins["teacher"], module)
    bare = AutoModel.from_pretrained(str(twins["teacher"]))(input_ids=torch.randint(5, 150, (3, 9),
                                     generator=torch.Generator().manual_seed(1))).last_hidden_state  # fmt: skip
    assert (with_module - bare).abs().max() > 1e-2, "the module changes the teacher's output"
    torch.testing.assert_close(_hidden(twins["twin"], tmp_path / "out"), with_module[..., perm], atol=1e-3, rtol=1e-3)


def test_projection_moves_the_head_through_the_final_map(twins, cli, tmp_path):
    module = make_peft_lora(twins["teacher"], "bert", tmp_path / "cls", slots=["attn_q", "attn_v"])
    _, manifest = _transfer(
        cli, twins["teacher"], twins["twin"], module, tmp_path / "out", "--align", "projection",
        "--probe-data", twins["probe"], "--head",
    )  # fmt: skip
    head = manifest["head"]
    assert head["method"] == "aligned" and head["alignment"] == "projection" and head["fit"]["r2_to_teacher"] > 0.999
    ids = torch.randint(5, 150, (4, 8), generator=torch.Generator().manual_seed(2))
    logits = []
    for model_dir, module_dir in ((twins["teacher"], module), (twins["twin"], tmp_path / "out")):
        base = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
        with torch.no_grad():
            logits.append(PeftModel.from_pretrained(base, str(module_dir)).eval()(input_ids=ids).logits)
    torch.testing.assert_close(logits[1], logits[0], atol=1e-3, rtol=1e-3)


def test_projection_reaches_a_wider_student_and_loads(twins, cli, tmp_path):
    module = make_peft_lora(twins["teacher"], "bert", tmp_path / "lora", task_model=False, slots=["attn_v"])
    _, manifest = _transfer(
        cli, twins["teacher"], twins["wide"], module, tmp_path / "out", "--align", "projection",
        "--probe-data", twins["probe"],
    )  # fmt: skip
    assert manifest["student"]["hidden_size"] == 64
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(twins["wide"])), str(tmp_path / "out"))
    linear = model.base_model.model.encoder.layer[0].attention.self.value
    assert linear.lora_A["default"].weight.shape == (4, 64) and linear.lora_B["default"].weight.shape == (64, 4)
    assert torch.isfinite(linear.lora_A["default"].weight).all()
    refused = cli("transfer", "--teacher", twins["teacher"], "--student", twins["wide"], "--module", module,
                  "--out", tmp_path / "refused", "--align", "uniform")  # fmt: skip
    assert refused.exit_code == 2 and "exceeds the teacher's" in refused.stderr and not (tmp_path / "refused").exists()


def test_projection_maps_a_bottleneck_adapter(twins, cli, tmp_path):
    module = make_adapterhub(twins["teacher"], "seq_bn", tmp_path / "adapter")
    _transfer(cli, twins["teacher"], twins["twin"], module, tmp_path / "out", "--align", "projection",
              "--probe-data", twins["probe"])  # fmt: skip
    teacher, student = load_module(module), load_module(tmp_path / "out")
    t, s = teacher.layers[1]["ffn_adapter"], student.layers[1]["ffn_adapter"]
    perm = twins["perm"]
    torch.testing.assert_close(s["down.weight"], t["down.weight"][:, perm], atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(s["up.weight"], t["up.weight"][perm, :], atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(s["up.bias"], t["up.bias"][perm], atol=1e-4, rtol=1e-3)


def test_uniform_selects_evenly_spaced_dimensions_without_probe_data(twins, cli, tmp_path):
    module = make_peft_lora(twins["wide"], "bert", tmp_path / "lora", task_model=False, slots=["attn_q", "ffn_out"])
    result, manifest = _transfer(cli, twins["wide"], twins["teacher"], module, tmp_path / "out", "--align", "uniform")
    assert manifest["alignment"]["method"] == "uniform"
    index = torch.tensor(manifest["alignment"]["layers"][0]["points"]["0/in:attn_q"]["index"])
    assert torch.equal(index, uniform_index(64, 32))
    teacher, student = load_module(module), load_module(tmp_path / "out")
    ffn = uniform_index(128, 64)  # the FFN's intermediate space: 2 x hidden
    assert torch.equal(student.layers[1]["attn_q"]["lora_A"], teacher.layers[1]["attn_q"]["lora_A"][:, index])
    assert torch.equal(student.layers[1]["ffn_out"]["lora_A"], teacher.layers[1]["ffn_out"]["lora_A"][:, ffn])
    assert torch.equal(student.layers[1]["ffn_out"]["lora_B"], teacher.layers[1]["ffn_out"]["lora_B"][index, :])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--align", "projection"], "projection alignment needs probe texts"),
        (["--align", "bogus"], "unknown alignment 'bogus': use none, correlation, projection, uniform"),
        (["--align", "uniform", "--recover-steps", "-1"], "recovery needs steps >= 0"),
        (["--align", "uniform", "--recover-steps", "2", "--recover-lr", "0"], "a positive learning rate"),
    ],
)
def test_alignment_option_errors(twins, cli, tmp_path, extra, message):
    module = make_peft_lora(twins["wide"], "bert", tmp_path / "lora", task_model=False, slots=["attn_q"])
    result = cli("transfer", "--teacher", twins["wide"], "--student", twins["teacher"], "--module", module,
                 "--out", tmp_path / "out", *extra)  # fmt: skip
    assert result.exit_code == 2 and message in result.stderr and not (tmp_path / "out").exists()


def test_a_saved_projection_alignment_is_reused_with_both_maps(twins, cli, tmp_path):
    saved = cli("align", "--teacher", twins["teacher"], "--student", twins["twin"], "--probe-data", twins["probe"],
                "--method", "projection", "--out", tmp_path / "alignment")  # fmt: skip
    assert saved.exit_code == 0, saved.output
    alignment = json.loads((tmp_path / "alignment" / "alignment.json").read_text())
    assert alignment["details"]["method"] == "projection" and alignment["details"]["lora_b"] == "output"
    loaded = load_alignment(tmp_path / "alignment").get(1, 1, "in:attn_v")
    assert loaded.lift is not None and loaded.lift.shape == (HIDDEN, HIDDEN) and loaded.projection is not None
    assert loaded.fit["r2_to_teacher"] > 0.999
    module = make_peft_lora(twins["teacher"], "bert", tmp_path / "lora", task_model=False, slots=["attn_v"])
    _transfer(cli, twins["teacher"], twins["twin"], module, tmp_path / "fresh", "--align", "projection",
              "--probe-data", twins["probe"])  # fmt: skip
    _, manifest = _transfer(cli, twins["teacher"], twins["twin"], module, tmp_path / "reused",
                            "--alignment", tmp_path / "alignment")  # fmt: skip
    assert manifest["alignment"]["method"] == "projection"
    fresh, reused = load_module(tmp_path / "fresh"), load_module(tmp_path / "reused")
    for role in ("lora_A", "lora_B"):
        torch.testing.assert_close(reused.layers[1]["attn_v"][role], fresh.layers[1]["attn_v"][role])


def test_recovery_from_an_exact_transfer_starts_at_zero_loss(twins, cli, tmp_path):
    module = make_peft_lora(twins["teacher"], "bert", tmp_path / "cls", slots=["attn_q", "attn_v"])
    result, manifest = _transfer(
        cli, twins["teacher"], twins["twin"], module, tmp_path / "out", "--align", "projection",
        "--probe-data", twins["probe"], "--head", "--recover-steps", "3",
    )  # fmt: skip
    record = manifest["recovery"]
    assert record["target"] == "logits" and record["steps"] == 3 and "recovered 3 steps on logits" in result.stdout
    assert record["first_loss"] < 1e-5, "the twin already computes the teacher's logits"
    exact = record["fidelity"]["transferred"]  # held-out texts, never trained on
    assert exact["texts"] > 0 and exact["agreement"] == 1.0 and exact["kl"] < 1e-6
    assert "held-out fidelity on" in result.stdout and "agreement 1.000 after the transfer" in result.stdout
    model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(str(twins["twin"])),
                                      str(tmp_path / "out"))  # fmt: skip
    assert model.base_model.model.classifier.modules_to_save["default"].weight.shape == (2, HIDDEN)


def test_recovery_pulls_a_narrower_student_towards_the_teacher_and_loads(twins, cli, tmp_path):
    module = make_peft_lora(twins["wide"], "bert", tmp_path / "lora", task_model=False, slots=["attn_q", "attn_v"])
    _, plain = _transfer(cli, twins["wide"], twins["teacher"], module, tmp_path / "plain", "--align", "projection",
                         "--probe-data", twins["probe"])  # fmt: skip
    _, manifest = _transfer(
        cli, twins["wide"], twins["teacher"], module, tmp_path / "out", "--align", "projection",
        "--probe-data", twins["probe"], "--recover-steps", "15", "--recover-lr", "0.01",
    )  # fmt: skip
    record = manifest["recovery"]
    assert record["target"] == "hidden" and record["last_loss"] < record["first_loss"]
    fidelity = record["fidelity"]
    assert fidelity["recovered"]["r2"] > fidelity["transferred"]["r2"], "recovery raised the held-out R^2"
    assert fidelity["recovered"]["texts"] + record["texts"] <= 200 and "warning" not in record
    shown = cli("inspect", tmp_path / "out")
    assert shown.exit_code == 0 and "Projection alignment (fitted maps)" in shown.stdout
    assert "held-out R² s->t" in shown.stdout and "15 steps on hidden" in shown.stdout and "B gains" in shown.stdout
    assert "held out: " in shown.stdout and "r2 " in shown.stdout
    before, after = load_module(tmp_path / "plain"), load_module(tmp_path / "out")
    assert not torch.allclose(before.layers[0]["attn_q"]["lora_A"], after.layers[0]["attn_q"]["lora_A"])
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(twins["teacher"])), str(tmp_path / "out"))
    assert model.base_model.model.encoder.layer[1].attention.self.query.lora_A["default"].weight.shape == (4, HIDDEN)
    assert "recovery" not in plain


def test_a_fidelity_below_the_minimum_is_warned_about_or_refused(twins, cli, tmp_path):
    module = make_peft_lora(twins["teacher"], "bert", tmp_path / "cls", slots=["attn_q"])
    args = ["--align", "projection", "--probe-data", twins["probe"], "--head", "--recover-steps", "1"]
    warned, manifest = _transfer(cli, twins["teacher"], twins["twin"], module, tmp_path / "warned", *args,
                                 "--min-fidelity", "1.01")  # fmt: skip
    assert "below --min-fidelity 1.01" in warned.stderr and "below --min-fidelity" in manifest["recovery"]["warning"]
    refused = cli("transfer", "--teacher", twins["teacher"], "--student", twins["twin"], "--module", module,
                  "--out", tmp_path / "refused", *args, "--min-fidelity", "1.01", "--strict")  # fmt: skip
    assert refused.exit_code == 2 and "(--strict)" in refused.stderr and not (tmp_path / "refused").exists()
    alone = cli("transfer", "--teacher", twins["teacher"], "--student", twins["twin"], "--module", module,
                "--out", tmp_path / "alone", "--min-fidelity", "0.5")  # fmt: skip
    assert alone.exit_code == 2 and "give --recover-steps" in alone.stderr


def test_the_fresh_control_is_distilled_alike_and_compared(twins, cli, tmp_path):
    module = make_peft_lora(twins["teacher"], "bert", tmp_path / "cls", slots=["attn_q"])
    args = ["--align", "projection", "--probe-data", twins["probe"], "--head", "--recover-steps", "2"]
    result, manifest = _transfer(cli, twins["teacher"], twins["twin"], module, tmp_path / "out", *args,
                                 "--compare-fresh")  # fmt: skip
    record = manifest["recovery"]
    control = record["fresh_control"]
    assert control["steps"] == 2 and control["fidelity"]["texts"] == record["fidelity"]["recovered"]["texts"]
    # the twin's transfer is exact; a fresh module with a random head after two steps is not
    assert record["fidelity"]["recovered"]["agreement"] == 1.0 > control["fidelity"]["agreement"] - 1e-9
    assert "warning" not in record and "fresh control (a fresh module distilled alike): held-out" in result.stdout
    alone = cli("transfer", "--teacher", twins["teacher"], "--student", twins["twin"], "--module", module,
                "--out", tmp_path / "alone", "--align", "projection", "--probe-data", twins["probe"],
                "--compare-fresh")  # fmt: skip
    assert alone.exit_code == 2 and "--compare-fresh needs --recover-steps N and --head" in alone.stderr


def test_a_recovery_below_the_fresh_control_is_warned_about_or_refused():
    from peftport.transfers.options import TransferOptions
    from peftport.transfers.verdict import judge_fidelity

    def record():
        return {"fidelity": {"transferred": {"agreement": 0.4}, "recovered": {"agreement": 0.6}},
                "fresh_control": {"fidelity": {"agreement": 0.7}}}  # fmt: skip

    options = {"probe_data": "t.txt", "head": True, "recover_steps": 2, "compare_fresh": True}
    warned = record()
    judge_fidelity(warned, TransferOptions(**options))
    assert warned["warning"].startswith("held-out agreement 0.600 after recovery is below the fresh control's 0.700")
    with pytest.raises(PeftportError, match=r"below the fresh control's 0.700 .*\(--strict\)"):
        judge_fidelity(record(), TransferOptions(**options, strict=True))
    ahead = record()
    ahead["fresh_control"]["fidelity"]["agreement"] = 0.5
    judge_fidelity(ahead, TransferOptions(**options, strict=True))
    assert "warning" not in ahead


def test_recovery_needs_probe_texts(twins, cli, tmp_path):
    module = make_peft_lora(twins["teacher"], "bert", tmp_path / "lora", task_model=False, slots=["attn_q"])
    result = cli("transfer", "--teacher", twins["teacher"], "--student", twins["twin"], "--module", module,
                 "--out", tmp_path / "out", "--recover-steps", "2")  # fmt: skip
    assert result.exit_code == 2 and "recovery trains on probe texts" in result.stderr
    assert not (tmp_path / "out").exists()


def test_calibration_gives_each_lora_update_the_teachers_relative_size(twins, cli, tmp_path):
    module = make_peft_lora(twins["wide"], "bert", tmp_path / "lora", task_model=False, slots=["attn_q", "attn_v"])
    common = ("--align", "projection", "--probe-data", twins["probe"])
    _, raw = _transfer(cli, twins["wide"], twins["teacher"], module, tmp_path / "raw", *common, "--no-calibrate")
    _, calibrated = _transfer(cli, twins["wide"], twins["teacher"], module, tmp_path / "cal", *common)
    assert raw["alignment"]["calibration"] == {"calibrated": False, "gains": {}}
    gains = calibrated["alignment"]["calibration"]["gains"]
    assert len(gains) == 4 and any(abs(g - 1) > 1e-3 for g in gains.values())
    before, after = load_module(tmp_path / "raw"), load_module(tmp_path / "cal")
    for key, gain in gains.items():
        layer, _, slot = key.split("/")
        roles_b, roles_a = before.layers[int(layer)][slot], after.layers[int(layer)][slot]
        torch.testing.assert_close(roles_a["lora_A"], roles_b["lora_A"])
        torch.testing.assert_close(roles_a["lora_B"], roles_b["lora_B"] * gain, rtol=1e-4, atol=1e-6)


def test_the_python_api_takes_projection_and_recovery(twins, tmp_path):
    import peftport

    module = make_peft_lora(twins["teacher"], "bert", tmp_path / "lora", task_model=False, slots=["attn_v"])
    moved = peftport.transfer(
        module,
        teacher=str(twins["teacher"]),
        student=str(twins["wide"]),
        align="projection",
        probe_data=str(twins["probe"]),
        probe_sentences=100,
        recover_steps=2,
        recover_lr=1e-3,
    )
    assert moved.hidden_size == 64 and moved.provenance["recovery"]["steps"] == 2
    assert moved.provenance["alignment"]["method"] == "projection"
    assert moved.layers[0]["attn_v"]["lora_A"].shape == (4, 64)
