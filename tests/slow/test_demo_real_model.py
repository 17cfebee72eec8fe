"""Slow tier: the demo on the real all-MiniLM-L6-v2 (installed offline from PyPI)."""

import json

import pytest

pytestmark = pytest.mark.slow


def test_demo_transfers_real_modules_that_load_and_keep_their_effect(cli, tmp_path):
    result = cli("demo", "--quick", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    again = cli("demo", "--quick", "--out", tmp_path)
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["models", "quick"]
    run = tmp_path / "quick"  # replaced by each call, not one more folder per call
    rows = json.loads((run / "summary.json").read_text())
    assert all(row["output"].startswith(str(run)) for row in rows)
    assert [(r["module"], r["layer_map"]) for r in rows] == [("lora", "skip"), ("lora", "avg"), ("seq_bn", "skip")]
    for row in rows:
        assert row["loads_cleanly"]
        # the transferred module moves the student's embeddings like the teacher's module moves the
        # teacher's, far more than an unrelated random module does
        assert row["cos_transferred"] > row["cos_random"] + 0.1, row
    manifest = json.loads((run / "student-lora-skip" / "peftport_manifest.json").read_text())
    assert manifest["layer_map"]["sources"] == [[0], [2], [4]]
    # provenance a reader can fetch: the zoo teacher by its hub id, and no staging folder in any written file
    assert manifest["teacher"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    teacher_config = json.loads((run / "teacher-lora" / "adapter_config.json").read_text())
    assert teacher_config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    for path in run.rglob("*"):
        if path.suffix in (".json", ".md"):
            text = path.read_text()
            assert ".partial" not in text and "site-packages" not in text, path


def test_demo_experiment_trains_transfers_and_reports(tmp_path):
    from rich.console import Console

    from peftport.demo.experiment import run_demo_experiment

    report, cells = run_demo_experiment(tmp_path, Console(stderr=True), max_steps=4, train_limit=64, seeds=[0])
    (cell,) = cells
    assert (cell.task, cell.language, cell.module, cell.transfer, cell.seeds) == ("ner", "en", "lora-r8", "skip", 1)
    assert 0 <= cell.transferred <= 1 and 0 <= cell.baseline <= 1
    text = report.read_text()
    assert "all-MiniLM-L6-v2 -> paraphrase-MiniLM-L3-v2 | ner | en | lora-r8 | skip | 1 |" in text
    assert len(list((report.parent / "plots").glob("*.png"))) == 2
