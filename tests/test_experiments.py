"""Experiments end to end on tiny random models: YAML -> runs -> results index -> report with table and PNGs.

Also: resuming after a stop loses only the run in flight, and bad experiment files are rejected
before any training with a message naming the field.
"""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from peftport.errors import PeftportError
from peftport.experiments import runner
from peftport.experiments.config import load_config
from peftport.experiments.grid import expand
from peftport.experiments.report.files import write_report
from peftport.experiments.report.summary import summarise
from peftport.experiments.store import TRANSFERS_DIR, claim, read_index, release
from tiny_models import save_tiny_model
from tiny_tokenizers import WORDS, probe_sentences, save_metaspace_bpe, save_wordpiece

TRAINING = {"learning_rate": 0.01, "batch_size": 8, "max_steps": 4, "eval_every": 2}
PLACES = ("paris", "berlin", "valley", "river", "city")


def _conll(path, count, seed):
    rng, lines = random.Random(seed), []
    for _ in range(count):
        for i, word in enumerate(rng.choice(WORDS) for _ in range(rng.randint(4, 9))):
            lines.append(f"{i}\t{word}\t{'B-LOC' if word in PLACES else 'O'}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def _pairs(path, count, seed):
    rng, rows = random.Random(seed), ["sentence1\tsentence2\tlabel"]
    for _ in range(count):
        first = " ".join(rng.choice(WORDS) for _ in range(5))
        same = rng.random() < 0.5
        rows.append(f"{first}\t{first if same else ' '.join(rng.sample(WORDS, 5))}\t{int(same)}")
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    models = {
        "teacher": save_wordpiece(save_tiny_model("bert", 4, root / "teacher", hidden=32, vocab_size=200)),
        "student": save_wordpiece(save_tiny_model("bert", 2, root / "student", hidden=32, vocab_size=200)),
        "wide": save_wordpiece(save_tiny_model("bert", 4, root / "wide", hidden=64, vocab_size=200)),
        "narrow": save_metaspace_bpe(save_tiny_model("distilbert", 2, root / "narrow", hidden=32, vocab_size=200)),
    }
    (root / "probe.txt").write_text("\n".join(probe_sentences(120, seed=5)) + "\n")
    _conll(root / "ner-train.conll", 24, 1)
    _conll(root / "ner-test.conll", 12, 2)
    _pairs(root / "para-train.tsv", 24, 3)
    _pairs(root / "para-test.tsv", 12, 4)
    return root, models


NER = {"name": "ner", "kind": "token", "train": "ner-train.conll", "test": "ner-test.conll"}
PARA = {
    "name": "para",
    "kind": "pair",
    "train": "para-train.tsv",
    "test": "para-test.tsv",
    "columns": {"text": "sentence1", "text_pair": "sentence2", "label": "label"},
}


def _pair_of(models, teacher="teacher", student="student"):
    """The experiment's one pair, from the fixture's tiny models."""
    return [{"teacher": str(models[teacher]), "student": str(models[student])}]


def _write(root, name, **fields):
    path = root / f"{name}.yaml"
    path.write_text(json.dumps({"name": name, "training": TRAINING, **fields}))  # JSON is YAML
    return path


def test_grid_runs_and_reports_through_the_cli(setup, cli):
    root, models = setup
    config = _write(root, "grid", pairs=_pair_of(models), tasks=[NER, PARA])
    out = root / "grid-out"
    result = cli("run", config, "--out", out)
    assert result.exit_code == 0, result.output
    records = read_index(out)
    assert sorted(r["kind"] for r in records) == ["baseline"] * 2 + ["teacher"] * 2 + ["transferred"] * 2
    for record in records:
        assert record["git"] is None or re.fullmatch("[0-9a-f]{4,40}", record["git"])  # no git: None, not a failure
        assert record["versions"]["torch"].startswith("2.13")
        assert record["steps"] == 4 and [p["step"] for p in record["curve"]] == [0, 2, 4]
        assert record["metric"] in record["final"] and record["wall_seconds"] > 0
        run = out / "runs" / record["id"]
        assert (run / "config.json").is_file() and (run / "module" / "adapter_config.json").is_file()
    manifests = sorted((out / TRANSFERS_DIR).glob("*/module/peftport_manifest.json"))
    assert len(manifests) == 2  # one transfer per task
    for manifest in manifests:
        assert json.loads(manifest.read_text())["layer_map"]["sources"] == [[0], [2]]
    report = (out / "report" / "report.md").read_text()
    assert "| teacher -> student | ner | en | lora-r8 | skip | 1 |" in report
    assert "| teacher -> student | para | en | lora-r8 | skip | 1 |" in report
    assert "- teacher -> student: Transferred > baseline in" in report and "### module" in report
    cost = next(line for line in report.splitlines() if line.startswith("| teacher -> student | ") and "n=" in line)
    assert cost.count("(n=2)") == 3  # two transfers (one per task), two teacher runs, two student runs
    pngs = sorted((out / "report" / "plots").glob("*.png"))
    assert len(pngs) == 4 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert len((out / "report" / "results.csv").read_text().splitlines()) == 3
    again = cli("run", config, "--out", out)
    assert again.exit_code == 0 and "0 runs done now" in again.stdout and len(read_index(out)) == 6


def test_aligned_bottleneck_grid_shares_one_teacher_and_one_transfer(setup):
    root, models = setup
    aligned = {"layer_map": "skip", "align": "correlation", "probe_data": str(root / "probe.txt")}
    config = load_config(
        _write(
            root,
            "aligned",
            pairs=_pair_of(models, "wide", "narrow"),
            tasks=[NER],
            modules=[{"type": "seq_bn", "reduction_factor": 4}],
            # lora_b means nothing for a bottleneck adapter: the two transfers are one run per seed
            transfers=[{**aligned, "lora_b": "input"}, {**aligned, "lora_b": "output"}],
            seeds=[0, 1],
            teacher_seed=0,
        )
    )
    out = root / "aligned-out"
    done = runner.run_experiment(config, out)
    assert [r.kind for r in done] == ["teacher", "baseline", "transferred", "baseline", "transferred"]
    records = read_index(out)
    teacher = next(r for r in records if r["kind"] == "teacher")
    moved = [r for r in records if r["kind"] == "transferred"]
    assert [m["transfer"] for m in moved] == ["skip+corr(offsets,input)"] * 2 and -1 <= moved[0]["alignment"] <= 1
    assert [m["teacher_run"] for m in moved] == [teacher["id"]] * 2 and teacher["seed"] == 0
    assert [m["transfer_cached"] for m in moved] == [False, True]
    assert moved[0]["transfer_seconds"] == moved[1]["transfer_seconds"] > 0
    assert len(list((out / TRANSFERS_DIR).iterdir())) == 1
    (cell,) = summarise(records)
    assert cell.seeds == 2 and cell.teacher == teacher["final"]["f1"] and cell.teacher_std == 0


def test_grid_compares_new_transfer_options(setup):
    root, models = setup
    config = load_config(
        _write(
            root,
            "options",
            pairs=_pair_of(models),
            tasks=[NER],
            transfers=[
                {"layer_map": "cka", "probe_data": str(root / "probe.txt"), "min_quality": -1},
                {"layer_map": "avg", "lora_svd": True},
                {"layer_map": "skip"},
            ],
        )
    )
    out = root / "options-out"
    done = runner.run_experiment(config, out)
    assert [r.kind for r in done] == ["teacher", "baseline", "transferred", "transferred", "transferred"]
    labels = {r["transfer"] for r in read_index(out) if r["kind"] == "transferred"}
    assert labels == {"cka+min-1", "avg+svd", "skip"}
    manifests = [json.loads(p.read_text()) for p in (out / TRANSFERS_DIR).glob("*/module/peftport_manifest.json")]
    cka = next(m for m in manifests if m["layer_map"]["method"] == "cka")
    assert len(cka["layer_map"]["similarity"]["matrix"]) == 2 and cka["layers"]["min_quality"] == -1
    plain = next(r for r in done if r.kind == "transferred" and r.spec["transfer"]["layer_map"] == "skip")
    assert "matcher" not in plain.spec["transfer"]  # defaults of later options stay out of the run id
    report_path, cells = write_report(out)
    paper_line = next(line for line in report_path.read_text().splitlines() if line.startswith("The paper's"))
    (skip,) = [c for c in cells if c.transfer == "skip"]
    assert f"of {skip.seeds} cases" in paper_line and "points in 1 cell." in paper_line and "±" not in paper_line


@pytest.mark.parametrize(
    ("pair", "task"), [(("teacher", "student"), NER), (("wide", "narrow"), NER), (("teacher", "student"), PARA)]
)
def test_students_can_distil_from_the_teacher(setup, monkeypatch, pair, task):
    root, models = setup
    transfer = (
        {"layer_map": "skip"}
        if pair[0] == "teacher"
        else {"align": "correlation", "probe_data": str(root / "probe.txt")}
    )
    name = f"distil-{pair[0]}-{task['name']}"
    config = load_config(
        _write(
            root,
            name,
            pairs=_pair_of(models, *pair),
            tasks=[task],
            transfers=[transfer],
            training={**TRAINING, "distill": {"weight": 0.7, "temperature": 2.0}},
            teacher_training=TRAINING,
        )
    )
    runs = expand(config, root / f"{name}-out")
    assert runs[1].kind == "baseline" and runs[1].needs == (runs[0].id,)  # baselines distil from the teacher too
    calls, real = [], runner.train_module
    monkeypatch.setattr(runner, "train_module", lambda *a, **k: (calls.append(k.get("teacher")), real(*a, **k))[1])
    runner.run_experiment(config, root / f"{name}-out")
    assert calls[0] is None and all(c is not None and c.module_dir.is_dir() for c in calls[1:])
    records = read_index(root / f"{name}-out")
    assert len(records) == 3 and all(r["final"] for r in records)
    assert [r.get("variant") for r in records] == [None, "distill(w0.7,T2)", "distill(w0.7,T2)"]
    (cell,) = summarise(records)
    assert cell.transfer.endswith("+distill(w0.7,T2)") and cell.seeds == 1


def test_resume_after_a_stop_loses_only_the_run_in_flight(setup, monkeypatch):
    root, models = setup
    config = load_config(
        _write(
            root,
            "resume",
            pairs=_pair_of(models),
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


def test_a_run_claimed_elsewhere_is_waited_for_not_repeated(setup, monkeypatch):
    root, models = setup
    config = load_config(
        _write(
            root,
            "shared",
            pairs=_pair_of(models),
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
    ],
)
def test_bad_experiments_are_rejected_before_training(setup, cli, change, message):
    root, models = setup
    fields = {"pairs": [{"teacher": "teacher", "student": "student"}], "tasks": [NER], **change}
    for pair in fields["pairs"]:
        pair.update({k: str(models[v]) for k, v in pair.items()})
    out = root / "bad-out"
    result = cli("run", _write(root, "bad", **fields), "--out", out)
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


def test_head_from_the_teacher(setup):
    from peftport.experiments.training.trainable import read_head

    root, models = setup
    still = {**TRAINING, "learning_rate": 1e-9}  # students barely move: their saved head is their initial head
    config = load_config(
        _write(
            root,
            "head",
            pairs=_pair_of(models),
            tasks=[NER],
            transfers=[{"layer_map": "skip", "head": "teacher"}],
            training=still,
            teacher_training={**TRAINING, "learning_rate": 0.5},
        )
    )
    runner.run_experiment(config, root / "head-out")
    runs = {r["kind"]: r for r in read_index(root / "head-out")}
    assert runs["transferred"]["head"] == "teacher" and runs["transferred"]["transfer"] == "skip+head"
    heads = {kind: read_head(root / "head-out" / "runs" / r["id"] / "module") for kind, r in runs.items()}
    for key, tensor in heads["teacher"].items():
        assert torch.allclose(heads["transferred"][key], tensor, atol=1e-6)
        assert not torch.allclose(heads["baseline"][key], tensor, atol=1e-3)
    aligned = load_config(
        _write(
            root,
            "head-aligned",
            pairs=_pair_of(models, "wide", "narrow"),
            tasks=[NER],
            transfers=[{"align": "correlation", "probe_data": str(root / "probe.txt"), "head": "teacher"}],
            training=still,
            teacher_training={**TRAINING, "learning_rate": 0.5},
        )
    )
    runner.run_experiment(aligned, root / "head-aligned-out")
    runs = {r["kind"]: r for r in read_index(root / "head-aligned-out")}
    assert runs["transferred"]["transfer"] == "skip+corr(offsets,input)+head"
    assert runs["transferred"]["head_alignment"]["point"] == "layer:output"
    heads = {k: read_head(root / "head-aligned-out" / "runs" / r["id"] / "module") for k, r in runs.items()}
    teacher, moved = heads["teacher"]["classifier.weight"], heads["transferred"]["classifier.weight"]
    assert teacher.shape[1] == 64 and moved.shape[1] == 32
    columns = [next(i for i in range(64) if torch.allclose(moved[:, j], teacher[:, i], atol=1e-6)) for j in range(32)]
    assert len(set(columns)) == 32  # each student column is a distinct teacher column


def test_run_ids_do_not_depend_on_the_working_directory(setup, monkeypatch):
    root, models = setup
    config_file = _write(root, "where", pairs=_pair_of(models), tasks=[NER])
    monkeypatch.chdir(root)
    here = [r.id for r in expand(load_config(config_file.relative_to(root)), root / "where-out")]
    monkeypatch.chdir(root.parent)
    there = [r.id for r in expand(load_config(config_file), Path(root.name) / "where-out")]
    assert here == there and len(set(here)) == len(here) == 3
    moved = [r.id for r in expand(load_config(config_file), root / "elsewhere" / "out")]
    assert not set(moved) & set(here)  # the data lies elsewhere relative to that folder: other runs


def test_grid_runs_projection_and_uniform_transfers_across_widths(setup):
    from peftport.experiments.training.trainable import read_head

    root, models = setup
    projection = {"align": "projection", "probe_data": str(root / "probe.txt")}
    config = load_config(
        _write(
            root,
            "widths",
            pairs=_pair_of(models, "wide", "student"),
            tasks=[NER],
            transfers=[{**projection, "head": "teacher"}, projection, {"align": "uniform"}],
        )
    )
    out = root / "widths-out"
    runner.run_experiment(config, out)
    moved = {r["transfer"]: r for r in read_index(out) if r["kind"] == "transferred"}
    assert set(moved) == {"skip+proj+head", "skip+proj", "skip+uniform"}
    assert 0 < moved["skip+proj"]["alignment"] <= 1  # the held-out R^2 of the student -> teacher maps
    assert moved["skip+proj+head"]["head_alignment"]["alignment"] == "projection"
    assert moved["skip+uniform"]["alignment"] != moved["skip+uniform"]["alignment"]  # NaN: nothing was measured
    head = read_head(out / "runs" / moved["skip+proj+head"]["id"] / "module")
    assert head["classifier.weight"].shape[1] == 32


@pytest.mark.parametrize(
    ("pair", "transfer", "target"),
    [
        (("teacher", "student"), {"layer_map": "skip", "head": "teacher"}, "logits"),
        (("wide", "student"), {"align": "projection", "probe_sentences": 60}, "hidden"),
    ],
)
def test_recovery_trains_the_transferred_module_towards_the_teacher(setup, pair, transfer, target):
    from safetensors.torch import load_file

    root, models = setup
    recovery = {"recover_steps": 12, "recover_lr": 0.01}
    config = load_config(
        _write(
            root,
            f"recover-{target}",
            pairs=_pair_of(models, *pair),
            tasks=[NER],
            transfers=[transfer, {**transfer, **recovery}],
        )
    )
    out = root / f"recover-{target}-out"
    runner.run_experiment(config, out)
    moved = {r["transfer"]: r for r in read_index(out) if r["kind"] == "transferred"}
    plain, recovered = sorted(moved, key=len)
    assert recovered.endswith("+rec12") and plain == recovered.removesuffix("+rec12")
    record = moved[recovered]["recovery"]
    assert record["steps"] == 12 and record["target"] == target and record["seconds"] > 0
    assert record["last_loss"] < record["first_loss"]
    caches = {
        json.loads((d / "transfer.json").read_text()).get("recovery") is not None: d
        for d in (out / TRANSFERS_DIR).iterdir()
    }
    before, after = (load_file(str(caches[k] / "module" / "adapter_model.safetensors")) for k in (False, True))
    lora = [k for k in before if "lora_A" in k]
    assert lora and all(k in after for k in lora)
    assert any(not torch.allclose(before[k], after[k]) for k in lora), "recovery moved the module"
    assert (caches[True] / "module" / "peftport_manifest.json").is_file()
    assert (caches[True] / "head.safetensors").is_file() == (target == "logits")
