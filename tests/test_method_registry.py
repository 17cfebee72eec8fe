"""An alignment method registered here, in the test file alone, works end to end: the CLI flag, a YAML grid
and the Python API, with its label, checks and manifest record, and nothing else in peftport names it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from grid_setup import NER, pair_of, write_experiment
from module_factory import make_peft_lora
from peftport.architectures.models import describe_model
from peftport.core.alignment import Alignment, PointAlignment
from peftport.formats.registry import load_module
from peftport.transfers import methods
from peftport.transfers.alignment_methods import point_space

SOURCE = Path(__file__).resolve().parents[1] / "src" / "peftport"


def first_dimensions(teacher: str, student: str, lmap, points) -> Alignment:
    """A data-free toy: every student dimension takes the teacher dimension of the same number."""
    t_info, s_info = describe_model(teacher), describe_model(student)
    found = {}
    for point in points:
        index = torch.arange(s_info.dims.width(point_space(t_info.spec, point)))
        for i, group in enumerate(lmap.sources):
            for layer in group:
                found[(i, layer, point)] = PointAlignment(index, 0, float("nan"), float("nan"))
    return Alignment(teacher, student, found, {})


FIRST = methods.AlignMethod("first", "the student's first dimensions (a toy)", select=first_dimensions)


@pytest.fixture
def first(monkeypatch):
    monkeypatch.setitem(methods.METHODS, FIRST.name, FIRST)
    return FIRST


@pytest.fixture(scope="module")
def wide_lora(grid):
    root, models = grid
    return make_peft_lora(models["wide"], "bert", root / "wide-lora", task_model=False, slots=["attn_q", "attn_v"])


def _expected(module_dir: Path, student_layer: int, teacher_layer: int, width: int) -> dict[str, torch.Tensor]:
    source = load_module(module_dir).layers[teacher_layer]["attn_q"]
    return {"lora_A": source["lora_A"][:, :width], "lora_B": source["lora_B"][:width]}


def _check_first(moved, module_dir: Path) -> None:
    for student_layer, teacher_layer in enumerate([0, 2]):  # the skip map of 4 -> 2 layers
        expected = _expected(module_dir, student_layer, teacher_layer, 32)
        for role, tensor in expected.items():
            assert torch.equal(moved.layers[student_layer]["attn_q"][role], tensor), role


def test_a_registered_method_runs_through_the_python_api(grid, wide_lora, first):
    import peftport

    root, models = grid
    moved = peftport.transfer(wide_lora, str(models["wide"]), str(models["student"]), align="first")
    assert moved.provenance["alignment"]["method"] == "first"
    _check_first(moved, wide_lora)
    assert moved.provenance["layer_map"]["sources"] == [[0], [2]]


def test_a_registered_method_runs_through_the_cli_flag(grid, wide_lora, first, cli, tmp_path):
    root, models = grid
    out = tmp_path / "first"
    args = ["--teacher", models["wide"], "--student", models["student"], "--module", wide_lora, "--out", out]
    result = cli("transfer", *args, "--align", "first")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "peftport_manifest.json").read_text())["alignment"]["method"] == "first"
    _check_first(load_module(out), wide_lora)
    shown = cli("inspect", out)
    assert shown.exit_code == 0 and "First selection (data-free)" in shown.stdout
    bad = cli("transfer", *args[:-1], tmp_path / "bad", "--align", "frist")
    assert bad.exit_code == 2 and "unknown alignment 'frist'" in bad.output and "first" in bad.output


def test_a_registered_method_runs_in_a_yaml_grid(grid, first):
    from peftport.experiments import runner
    from peftport.experiments.config import load_config
    from peftport.experiments.store import read_index

    root, models = grid
    path = write_experiment(root, "toy-method", pairs=pair_of(models, "wide", "student"), tasks=[NER],
                            transfers=[{"align": "first"}])  # fmt: skip
    config = load_config(path)
    assert config.transfers[0].label == "skip+first"
    runner.run_experiment(config, root / "toy-out")
    moved = [r for r in read_index(root / "toy-out") if r["kind"] == "transferred"]
    assert [r["transfer"] for r in moved] == ["skip+first"] and moved[0]["final"]


def test_an_unregistered_method_is_refused_everywhere(grid):
    from peftport.errors import PeftportError
    from peftport.experiments.config import load_config

    root, models = grid
    path = write_experiment(root, "no-toy", pairs=pair_of(models), tasks=[NER], transfers=[{"align": "first"}])
    with pytest.raises(PeftportError, match="unknown alignment 'first': use none, correlation"):
        load_config(path)


def files_naming(name: str) -> list[str]:
    """Source files holding ``name`` as a whole string literal (words inside longer texts do not count)."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.Constant) and node.value == name for node in ast.walk(tree)):
            found.append(str(path.relative_to(SOURCE)))
    return found


@pytest.mark.parametrize("name", [m for m in methods.METHODS if m != methods.NO_ALIGNMENT])
def test_a_method_is_named_in_few_files(name):
    """The registry names it; at most two other files hold it as a JSON key or a field name."""
    assert "transfers/methods.py" in files_naming(name) and len(files_naming(name)) <= 3, files_naming(name)
