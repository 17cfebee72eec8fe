"""Bad input through the CLI: a one-line error naming the problem, exit code 2, nothing written."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import GPT2Config

from module_factory import make_adapterhub, make_peft_lora
from peftport.formats import registry
from peftport.formats.registry import load_module, save_module
from tiny_tokenizers import save_wordpiece


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("bad-input")
    gpt2 = root / "gpt2"
    GPT2Config(n_layer=2, n_embd=32, n_head=2).save_pretrained(str(gpt2))
    corrupt = root / "corrupt"
    make_peft_lora(tiny_model("bert", 4), "bert", corrupt)
    (corrupt / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 10)
    truncated = make_peft_lora(tiny_model("bert", 4), "bert", root / "truncated")
    weights = (truncated / "adapter_model.safetensors").read_bytes()
    (truncated / "adapter_model.safetensors").write_bytes(weights[: len(weights) - 100])  # a copy cut short
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    bad_json = root / "bad_json"
    bad_json.mkdir()
    (bad_json / "adapter_config.json").write_text("{not json")
    no_config = root / "no_config"
    no_config.mkdir()
    (root / "empty.txt").write_text("\n\n")
    (root / "short.txt").write_text("a b\n")
    save_wordpiece(tiny_model("bert", 4))
    save_wordpiece(tiny_model("distilbert", 2, hidden=16))
    save_wordpiece(tiny_model("distilbert", 2, hidden=64))
    return {
        "EMPTY": root / "empty.txt",
        "SHORT": root / "short.txt",
        "qv_lora": make_peft_lora(tiny_model("bert", 4), "bert", root / "qv_lora", slots=["attn_q", "attn_v"]),
        "ffn_lora": make_peft_lora(tiny_model("bert", 4), "bert", root / "ffn_lora", slots=["ffn_in"]),
        "bert4": tiny_model("bert", 4),
        "bert2": tiny_model("bert", 2),
        "bert8": tiny_model("bert", 8),
        "wide": tiny_model("distilbert", 2, hidden=64),
        "narrow": tiny_model("distilbert", 2, hidden=16),
        "mpnet2": tiny_model("mpnet", 2),
        "gpt2": gpt2,
        "lora": make_peft_lora(tiny_model("bert", 4), "bert", root / "lora"),
        "seq_bn": make_adapterhub(tiny_model("bert", 4), "seq_bn", root / "seq_bn"),
        "distil_lora": make_peft_lora(tiny_model("distilbert", 4), "distilbert", root / "distil_lora"),
        "corrupt": corrupt,
        "truncated": truncated,
        "BINARY": root / "binary.txt",
        "bad_json": bad_json,
        "no_config": no_config,
        "missing": root / "does-not-exist",
    }


BAD_TRANSFERS = [
    ("missing module directory", dict(module="missing"), "module directory '.*does-not-exist' does not exist"),
    ("no adapter_config.json", dict(module="no_config"), "has no adapter_config.json: not a peft or AdapterHub module"),
    ("corrupt config", dict(module="bad_json"), "cannot read .*adapter_config.json"),
    ("corrupt weights", dict(module="corrupt"), "corrupt weights file .*adapter_model.safetensors"),
    ("truncated weights", dict(module="truncated"), "corrupt weights file .*adapter_model.safetensors"),
    ("unknown family", dict(student="gpt2"), "unknown model type 'gpt2'"),
    ("student deeper than teacher", dict(student="bert8"), r"more layers \(8\) than the teacher \(4\)"),
    ("layer out of range", dict(layer_map="0,7"), r"teacher layers \[7\] out of range 0..3"),
    ("wrong number of layers", dict(layer_map="0,1,2"), "names 3 student layers, the student has 2"),
    ("unknown layer map", dict(layer_map="middle"), "unknown layer map 'middle'"),
    ("student wider", dict(student="wide"), r"hidden sizes differ \(teacher 32, student 64\): the student is wider"),
    ("narrower without alignment", dict(student="narrow"), r"\(teacher 32, student 16\).*--align correlation"),
    (
        "slot the student cannot host",
        dict(module="seq_bn", student="mpnet2"),
        r"student family mpnet cannot host module slot\(s\) \['ffn_adapter'\]",
    ),
    ("module for another family", dict(module="distil_lora"), "do not fit a bert model"),
    (
        "teacher shallower than module",
        dict(teacher="bert2", student="bert2"),
        "the module has layer 2, the teacher only 2",
    ),
    ("missing model directory", dict(teacher="./no/such/model"), "model directory './no/such/model' does not exist"),
    ("unknown output format", dict(format="onnx"), "unknown format 'onnx'"),
    ("alignment without probe data", dict(student="narrow", extra=["--align", "correlation"]), "needs probe texts"),
    ("unknown alignment", dict(extra=["--align", "magic"]), "unknown alignment 'magic'"),
    (
        "missing probe file",
        dict(module="qv_lora", student="narrow", extra=["--align", "correlation", "--probe-data", "./no.txt"]),
        "probe file './no.txt' does not exist",
    ),
    (
        "empty probe file",
        dict(module="qv_lora", student="narrow", extra=["--align", "correlation", "--probe-data", "EMPTY"]),
        "holds no texts",
    ),
    (
        "binary probe file",
        dict(module="qv_lora", student="narrow", extra=["--align", "correlation", "--probe-data", "BINARY"]),
        r"binary.txt is not \(gzipped\) UTF-8 text",
    ),
    (
        "too few shared tokens",
        dict(module="qv_lora", student="narrow", extra=["--align", "correlation", "--probe-data", "SHORT"]),
        r"too few shared tokens to estimate correlations: found \d+ over 1 texts, need at least 100",
    ),
    (
        "wider student with alignment",
        dict(student="wide", extra=["--align", "correlation", "--probe-data", "SHORT"]),
        r"the student's hidden size \(64\) exceeds the teacher's \(32\)",
    ),
    (
        "LoRA B in another space",
        dict(module="ffn_lora", student="narrow", extra=["--align", "correlation", "--probe-data", "SHORT"]),
        "LoRA B of slot ffn_in lives in the intermediate space",
    ),
    (
        "unknown token matching",
        dict(student="narrow", extra=["--align", "correlation", "--probe-data", "SHORT", "--token-match", "chars"]),
        "unknown token matching",
    ),
    ("corrupt alignment", dict(student="narrow", extra=["--alignment", "EMPTY"]), "corrupt alignment file"),
    ("unknown matcher without alignment", dict(extra=["--matcher", "bogus"]), "unknown matcher 'bogus'"),
    ("unknown device", dict(extra=["--device", "bogus"]), "unknown device 'bogus': use cpu, cuda or cuda:N"),
    ("negative probe sentences", dict(extra=["--probe-sentences", "0"]), "probe sentences and batch size"),
]


def _args(setup, tmp_path, module="lora", teacher="bert4", student="bert2", layer_map="skip", format=None, extra=()):
    extra = [str(setup.get(e, e)) for e in extra]
    args = [
        "transfer",
        "--teacher",
        setup.get(teacher, teacher),
        "--student",
        setup.get(student, student),
        "--module",
        setup[module],
        "--layer-map",
        layer_map,
        "--out",
        tmp_path / "out" / "student",
    ]
    return args + (["--format", format] if format else []) + extra


@pytest.mark.parametrize(("case", "options", "message"), BAD_TRANSFERS, ids=[c[0] for c in BAD_TRANSFERS])
def test_bad_transfer_input(case, options, message, setup, cli, tmp_path):
    result = cli(*_args(setup, tmp_path, **options))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists(), "no partial output, not even the parent directory"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_one_line_error(setup, cli, tmp_path):
    result = cli(*_args(setup, tmp_path, extra=["--device", "cuda"]))
    assert result.exit_code == 2 and "device 'cuda' asked for, but CUDA is not available" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_existing_output_needs_force(setup, cli, tmp_path):
    out = tmp_path / "out" / "student"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("precious")
    result = cli(*_args(setup, tmp_path))
    assert result.exit_code == 2 and "already exists" in result.stderr and "--force" in result.stderr
    assert (out / "keep.txt").read_text() == "precious"
    result = cli(*_args(setup, tmp_path), "--force")
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists() and (out / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["student"], "no staging or backup left behind"


@pytest.fixture
def broken_peft_writer(monkeypatch):
    """The peft codec, but its writer fails after writing one file (a full disk, say)."""

    def broken_write(module, directory: Path) -> None:
        (directory / "adapter_config.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setitem(registry.CODECS, "peft", dataclasses.replace(registry.CODECS["peft"], write=broken_write))


def test_failed_write_leaves_nothing(setup, tmp_path, broken_peft_writer):
    with pytest.raises(OSError, match="disk full"):
        save_module(load_module(setup["lora"]), tmp_path / "a" / "b" / "out")
    assert not (tmp_path / "a").exists()


def test_failed_forced_write_keeps_the_old_output(setup, tmp_path, monkeypatch):
    out = tmp_path / "out"
    save_module(load_module(setup["lora"]), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken_write(module, directory: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setitem(registry.CODECS, "peft", dataclasses.replace(registry.CODECS["peft"], write=broken_write))
    with pytest.raises(OSError, match="disk full"):
        save_module(load_module(setup["lora"]), out, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_inspect_and_convert_reject_bad_modules(setup, cli, tmp_path):
    for args, message in [
        (["inspect", setup["corrupt"]], "corrupt weights file"),
        (["inspect", setup["missing"]], "does not exist"),
        (["convert", setup["no_config"], "--to", "peft", "--out", tmp_path / "x"], "no adapter_config.json"),
    ]:
        result = cli(*args)
        assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "x").exists()


def test_console_script_exit_code_and_single_line(setup, tmp_path):
    """The installed entry point (not just the in-process runner) exits 2 with one stderr line."""
    command = [sys.executable, "-m", "peftport.cli.main", *map(str, _args(setup, tmp_path, module="missing"))]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr
    assert not (tmp_path / "out").exists()


def test_outputs_follow_the_umask(setup, cli, tmp_path):
    old = os.umask(0o022)
    try:
        result = cli(*_args(setup, tmp_path))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / "student"
    assert out.stat().st_mode & 0o777 == 0o755
    assert {f.name: f.stat().st_mode & 0o777 for f in out.iterdir()} == {f.name: 0o644 for f in out.iterdir()}


def test_staging_left_by_a_killed_transfer_is_cleared_by_the_next_one(setup, cli, tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    parent = tmp_path / "out"
    parent.mkdir()
    left = parent / f".student.partial-{socket.gethostname()}-{dead.stdout.strip()}-abc123"
    live = parent / f".student.partial-{socket.gethostname()}-{os.getpid()}-def456"
    other = parent / ".student.partial-elsewhere-1-ghi789"
    for folder in (left, live, other):
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"half")
    result = cli(*_args(setup, tmp_path))
    assert result.exit_code == 0, result.output
    assert not left.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in parent.iterdir() if not p.name.startswith(".")) == ["student"]


@pytest.mark.parametrize("command", ["transfer", "convert", "report", "run"])
def test_an_output_that_cannot_be_created_is_a_one_line_error(setup, cli, tmp_path, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "out"
    experiment = tmp_path / "x.yaml"
    experiment.write_text(
        f"pairs: [{{teacher: {setup['bert4']}, student: {setup['bert2']}}}]\n"
        f"tasks: [{{name: t, kind: token, train: {setup['EMPTY']}, test: {setup['EMPTY']}}}]\n"
    )
    args = {
        "transfer": _args(setup, tmp_path)[:-2] + ["--out", out],
        "convert": ["convert", setup["lora"], "--to", "adapterhub", "--out", out],
        "report": ["report", out],
        "run": ["run", experiment, "--out", out],
    }[command]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "a-file' is a file, not a folder" in result.stderr or "no finished runs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and blocker.read_text() == "not a folder"
