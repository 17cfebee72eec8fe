"""Experiment grids that stop, share a folder or get bad input: resuming loses only the run in flight,
claims keep processes from doing a run twice, bad experiment files are rejected before any training, and
run ids do not depend on the working directory."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from grid_setup import NER, pair_of, write_experiment
from peftport.errors import PeftportError
from peftport.experiments import runner
from peftport.experiments.config import load_config
from peftport.experiments.grid import expand
from peftport.experiments.store import claim, read_index, release


def test_resume_after_a_stop_loses_only_the_run_in_flight(grid, monkeypatch):
    root, models = grid
    config = load_config(
        write_experiment(
            root,
            "resume",
            pairs=pair_of(models),
            tasks=[NER],
            seeds=[0, 1],
        )
    )
    out, real, calls = root / "resume-out", runner.train_module, []

    def stopping(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a stop in the middle of the third run
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "train_module", stopping)
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(config, out)
    assert len(read_index(out)) == 2
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(r["id"] for r in read_index(out))
    third = expand(config, out)[2]
    (out / "runs" / f".{third.id}.partial-killed").mkdir()  # what a hard kill leaves behind
    calls.clear()
    monkeypatch.setattr(runner, "train_module", lambda *a, **k: (calls.append(a), real(*a, **k))[1])
    done = runner.run_experiment(config, out)
    assert len(done) == len(calls) == 4 and len(read_index(out)) == 6
    assert not list((out / "runs").glob(".*partial*"))


def test_claims_keep_processes_sharing_a_folder_from_doing_a_run_twice(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "runs").mkdir()
        (tmp_path / "runs" / ".r1.claim").write_text(f"{socket.gethostname()} {other.pid}")
        assert not claim(tmp_path, "r1")  # a live process holds it
        assert claim(tmp_path, "r2") and not claim(tmp_path, "r2")
    finally:
        other.kill()
        other.wait()
    assert claim(tmp_path, "r1")  # its holder died: the claim was stale
    release(tmp_path, "r1")
    assert not (tmp_path / "runs" / ".r1.claim").exists()


def test_a_run_claimed_elsewhere_is_waited_for_not_repeated(grid, monkeypatch):
    root, models = grid
    config = load_config(
        write_experiment(
            root,
            "shared",
            pairs=pair_of(models),
            tasks=[NER],
        )
    )
    out = root / "shared-out"
    teacher = expand(config, out)[0]
    assert teacher.kind == "teacher" and claim(out, teacher.id)  # "another process" is training the teacher
    done_elsewhere = {}

    def other_process_finishes(_seconds):  # while we wait, the other process completes the teacher
        release(out, teacher.id)
        done_elsewhere.update(runner.execute(teacher, out, runner.DataCache()))

    monkeypatch.setattr(runner.time, "sleep", other_process_finishes)
    done = runner.run_experiment(config, out)
    assert [r.kind for r in done] == ["baseline", "transferred"] and done_elsewhere["kind"] == "teacher"
    assert sorted(r["kind"] for r in read_index(out)) == ["baseline", "teacher", "transferred"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tasks": [{**NER, "trian": "x"}]}, "tasks.0.trian: Extra inputs are not permitted"),
        ({"tasks": [{**NER, "train": "missing.conll"}]}, "tasks[0]: task 'ner' (en): train file"),
        ({"modules": [{"type": "prefix"}]}, "modules.0.type"),
        ({"training": {"learning_rate": -1}}, "training.learning_rate"),
        (
            {"pairs": [{"teacher": "student", "student": "wide"}]},
            "pairs[0]: the student is wider (64) than the teacher (32)",
        ),
        (
            {"pairs": [{"teacher": "wide", "student": "student"}]},
            "transfers[0]: hidden sizes differ in pairs[0] (64 -> 32)",
        ),
        ({"transfers": [{"layer_map": "0,9"}]}, "transfers[0].layer_map"),
        ({"modules": [{"targets": ["attn_x"]}]}, "modules[0].targets"),
        (
            {"transfers": [{"layer_map": "skip", "probe_sentences": 50}, {"layer_map": "skip"}]},
            "transfers[0] and transfers[1] share the report label 'skip'",
        ),
        ({"modules": [{"r": 4, "alpha": 8}, {"r": 4, "alpha": 16}]}, "modules[0] and modules[1] share"),
    ],
)
def test_bad_experiments_are_rejected_before_training(grid, cli, change, message):
    root, models = grid
    fields = {"pairs": [{"teacher": "teacher", "student": "student"}], "tasks": [NER], **change}
    for pair in fields["pairs"]:
        pair.update({k: str(models[v]) for k, v in pair.items()})
    out = root / "bad-out"
    result = cli("run", write_experiment(root, "bad", **fields), "--out", out)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_unreadable_experiment_files(tmp_path, cli):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    for name, message in [
        ("list.yaml", "must hold a mapping"),
        ("broken.yaml", "is not valid YAML"),
        ("none.yaml", "does not exist"),
    ]:
        result = cli("run", tmp_path / name, "--out", tmp_path / "out")
        assert result.exit_code == 2 and message in result.stderr
    with pytest.raises(PeftportError, match="no finished runs"):
        from peftport.experiments.report.files import write_report

        write_report(tmp_path)


def test_run_ids_do_not_depend_on_the_working_directory(grid, monkeypatch):
    root, models = grid
    config_file = write_experiment(root, "where", pairs=pair_of(models), tasks=[NER])
    monkeypatch.chdir(root)
    here = [r.id for r in expand(load_config(config_file.relative_to(root)), root / "where-out")]
    monkeypatch.chdir(root.parent)
    there = [r.id for r in expand(load_config(config_file), Path(root.name) / "where-out")]
    assert here == there and len(set(here)) == len(here) == 3
    moved = [r.id for r in expand(load_config(config_file), root / "elsewhere" / "out")]
    assert not set(moved) & set(here)  # the data lies elsewhere relative to that folder: other runs


def test_a_folder_shared_without_student_runs_resumes_without_retraining_them(grid, monkeypatch):
    """What docs/results commits: the index and the teachers' folders, not the students' modules."""
    import shutil

    root, models = grid
    config = load_config(write_experiment(root, "shared", pairs=pair_of(models), tasks=[NER], seeds=[0]))
    out = root / "shared-out"
    runner.run_experiment(config, out)
    index = (out / "results.jsonl").read_bytes()
    for student in [*(out / "runs").glob("baseline-*"), *(out / "runs").glob("transferred-*")]:
        shutil.rmtree(student)
    teacher = next((out / "runs").glob("teacher-*"))
    shutil.rmtree(teacher)  # a teacher's module is read by its transfers: without it, it is trained again
    calls = []
    real = runner.train_module
    monkeypatch.setattr(runner, "train_module", lambda *a, **k: (calls.append(a), real(*a, **k))[1])
    runner.run_experiment(config, out)
    assert len(calls) == 1 and (out / "runs" / teacher.name).is_dir()
    assert (out / "results.jsonl").read_bytes().startswith(index)
    records = read_index(out)
    assert sorted(r["id"] for r in records) == sorted(r.id for r in expand(config, out))  # the teacher once
    again = json.loads((out / "results.jsonl").read_text().splitlines()[-1])
    assert again["kind"] == "teacher" and next(r for r in records if r["kind"] == "teacher") == again
