"""`peftport inspect` and the manifest written next to every transferred module."""

import json

from module_factory import make_adapterhub, make_peft_lora


def test_manifest_records_the_transfer(tiny_model, cli, tmp_path):
    teacher, student = tiny_model("bert", 4), tiny_model("distilbert", 2)
    source = make_peft_lora(teacher, "bert", tmp_path / "teacher")
    out = tmp_path / "student"
    assert (
        cli(
            "transfer",
            "--teacher",
            teacher,
            "--student",
            student,
            "--module",
            source,
            "--layer-map",
            "avg",
            "--out",
            out,
        ).exit_code
        == 0
    )
    manifest = json.loads((out / "peftport_manifest.json").read_text())
    assert manifest["layer_map"] == {"method": "avg", "sources": [[0, 1], [2, 3]]}
    assert manifest["teacher"] == {"model": str(teacher), "family": "bert", "num_layers": 4, "hidden_size": 32}
    assert manifest["student"]["family"] == "distilbert" and manifest["student"]["num_layers"] == 2
    assert manifest["source_module"] == str(source) and manifest["source_format"] == "peft"
    assert manifest["format"] == "peft" and manifest["peftport_version"]
    assert manifest["module"]["rank"] == 4 and manifest["module"]["slots"] == ["attn_q", "attn_v", "ffn_out"]
    assert any("classifier" in k for k in manifest["dropped"]), "the teacher head is reported as not transferred"
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(student) and config["task_type"] is None


def test_inspect_json_and_table(tiny_model, cli, tmp_path):
    teacher, student = tiny_model("bert", 4), tiny_model("bert", 2)
    source = make_adapterhub(teacher, "double_seq_bn", tmp_path / "teacher")
    assert (
        cli(
            "transfer", "--teacher", teacher, "--student", student, "--module", source, "--out", tmp_path / "student"
        ).exit_code
        == 0
    )
    result = cli("inspect", tmp_path / "student", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "adapterhub" and summary["kind"] == "bottleneck"
    assert summary["layers"] == [0, 1] and summary["slots"] == ["attn_adapter", "ffn_adapter"]
    assert summary["shapes"]["ffn_adapter"]["down.weight"] == [8, 32]
    assert summary["settings"]["architecture"] == "double_seq_bn"
    assert summary["parameters"] == 2 * 2 * (8 * 32 + 8 + 32 * 8 + 32)
    assert summary["manifest"]["layer_map"]["sources"] == [[0], [2]]
    table = cli("inspect", tmp_path / "student")
    assert table.exit_code == 0 and "double_seq_bn" in table.stdout and "0<-0, 1<-2" in table.stdout
    assert "made by" in table.stdout and summary["manifest"]["command"].startswith("peftport transfer --teacher")


def test_inspect_a_library_module_without_manifest(tiny_model, cli, tmp_path):
    source = make_peft_lora(tiny_model("mpnet", 2), "mpnet", tmp_path / "m")
    summary = json.loads(cli("inspect", source, "--json").stdout)
    assert (summary["family"], summary["task_model"], summary["manifest"]) == ("mpnet", True, None)
    assert summary["settings"]["scaling"] == 2.0
