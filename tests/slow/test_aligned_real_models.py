"""Slow tier: prune and align on real models, all-mpnet-base-v2 (12 x 768) -> all-MiniLM-L6-v2 (6 x 384).

Real probe texts (WikiNEuRal English) from ../shared/data; models installed offline from PyPI.
"""

import json
from pathlib import Path

import pytest
from peft import PeftModel
from transformers import AutoModel

from module_factory import make_peft_lora
from peftport.zoo import minilm_l6_dir, mpnet_base_dir

pytestmark = pytest.mark.slow
PROBE = Path(__file__).resolve().parents[3] / "shared" / "data" / "wikineural" / "en" / "val.conllu.gz"


def test_mpnet_lora_to_minilm(cli, tmp_path):
    teacher, student = mpnet_base_dir(), minilm_l6_dir()
    module = make_peft_lora(teacher, "mpnet", tmp_path / "teacher", task_model=False, slots=["attn_q", "attn_v"])
    out = tmp_path / "student"
    result = cli(
        "transfer",
        "--teacher",
        teacher,
        "--student",
        student,
        "--module",
        module,
        "--align",
        "correlation",
        "--probe-data",
        PROBE,
        "--probe-sentences",
        150,
        "--lora-b",
        "output",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(student)), str(out))
    check = model.load_adapter(str(out), adapter_name="check")
    assert [k for k in check.missing_keys if ".check." in k] == [] and check.unexpected_keys == []
    query = model.base_model.model.encoder.layer[5].attention.self.query
    assert query.lora_A["default"].weight.shape == (4, 384) and query.lora_B["default"].weight.shape == (384, 4)
    record = json.loads((out / "peftport_manifest.json").read_text())["alignment"]
    assert record["texts"] == 150 and record["shared_tokens"] > 2000
    assert [layer["teacher_layers"] for layer in record["layers"]] == [[0], [2], [4], [6], [8], [10]]
    for layer in record["layers"]:
        for point in layer["points"].values():
            # unrelated models still share some structure; the assignment reaches most of the best possible
            assert 0.05 < point["mean_matched_correlation"] <= point["mean_best_correlation"]
            assert point["mean_matched_correlation"] > 0.7 * point["mean_best_correlation"]


def test_cka_layer_map_between_real_models(cli, tmp_path):
    """mpnet (12 layers) -> MiniLM-L6 (6 layers): a monotone map chosen from a measured CKA matrix."""
    teacher, student = mpnet_base_dir(), minilm_l6_dir()
    module = make_peft_lora(teacher, "mpnet", tmp_path / "teacher", task_model=False, slots=["attn_q"])
    out = tmp_path / "student"
    result = cli(
        "transfer", "--teacher", teacher, "--student", student, "--module", module, "--layer-map", "cka",
        "--align", "correlation", "--probe-data", PROBE, "--probe-sentences", 100, "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    layer_map = json.loads((out / "peftport_manifest.json").read_text())["layer_map"]
    chosen = [group[0] for group in layer_map["sources"]]
    assert len(chosen) == 6 and chosen == sorted(set(chosen))  # strictly increasing
    matrix = layer_map["similarity"]["matrix"]
    assert len(matrix) == 6 and all(len(row) == 12 and all(0 <= v <= 1 for v in row) for row in matrix)
    # the DP's total is at least SKIP's total (it maximises over all monotone maps, SKIP among them)
    assert sum(matrix[i][t] for i, t in enumerate(chosen)) >= sum(matrix[i][2 * i] for i in range(6)) - 1e-9
