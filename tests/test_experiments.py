"""Experiments end to end on tiny random models: YAML -> runs -> results index -> report with table and PNGs.

Also: resuming after a stop loses only the run in flight, and bad experiment files are rejected
before any training with a message naming the field.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from grid_setup import NER, PARA, TRAINING, pair_of, write_experiment
from peftport.experiments import runner
from peftport.experiments.config import load_config
from peftport.experiments.grid import expand
from peftport.experiments.report.files import write_report
from peftport.experiments.report.summary import summarise
from peftport.experiments.store import TRANSFERS_DIR, read_index


def test_grid_runs_and_reports_through_the_cli(grid, cli):
    root, models = grid
    config = write_experiment(root, "grid", pairs=pair_of(models), tasks=[NER, PARA])
    out = root / "grid-out"
    result = cli("run", config, "--out", out)
    assert result.exit_code == 0, result.output
    records = read_index(out)
    assert sorted(r["kind"] for r in records) == ["baseline"] * 2 + ["teacher"] * 2 + ["transferred"] * 2
    for record in records:  # one lasting line per finished run, readable in a log without a terminal
        score = f"{record['metric']} {100 * record['final'][record['metric']]:.1f} in "
        assert f"({record['id']}): {score}" in result.output
    assert "done teacher ner/en seed 0 (" in result.output
    assert "start teacher ner/en seed 0" in result.output  # no terminal here: a line when each run starts,
    assert re.search(r"  teacher ner/en seed 0: step \d+ of \d+", result.output)  # and at its quarters
    assert "Per cell (mean over seeds, as the paper counts cases): " in result.output  # the terminal's summary
    for record in records:
        assert record["git"] is None or re.fullmatch("[0-9a-f]{4,40}", record["git"])  # no git: None, not a failure
        assert record["versions"]["torch"].startswith("2.13")
        if not torch.cuda.is_available():  # the CPU model and thread count, e.g. "cpu (AMD EPYC, 2 threads)"
            assert re.fullmatch(r"cpu \(.+, \d+ threads?\)", record["device"]), record["device"]
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
    assert "- teacher -> student: Transferred > baseline in" in report and "### task" in report
    assert "### module" not in report  # one module: no table for a factor that does not vary
    assert "Per cell (mean over seeds, as the paper counts cases): " in report and " of 2 won (" in report
    cost = next(line for line in report.splitlines() if line.startswith("| teacher -> student | ") and "n=" in line)
    assert cost.count("(n=2)") == 3  # two transfers (one per task), two teacher runs, two student runs
    pngs = sorted((out / "report" / "plots").glob("*.png"))
    assert len(pngs) == 4 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert len((out / "report" / "results.csv").read_text().splitlines()) == 3
    again = cli("run", config, "--out", out)
    assert again.exit_code == 0 and "0 runs done now" in again.stdout and len(read_index(out)) == 6


def test_aligned_bottleneck_grid_shares_one_teacher_and_one_transfer(grid):
    root, models = grid
    aligned = {"layer_map": "skip", "align": "correlation", "probe_data": str(root / "probe.txt")}
    config = load_config(
        write_experiment(
            root,
            "aligned",
            pairs=pair_of(models, "wide", "narrow"),
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


def test_grid_compares_new_transfer_options(grid):
    root, models = grid
    config = load_config(
        write_experiment(
            root,
            "options",
            pairs=pair_of(models),
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
    lines = report_path.read_text().splitlines()
    paper_line = next(line for line in lines if line.startswith("The paper's"))
    paper_evidence = lines[lines.index(paper_line) + 2]  # the interval sentence under the paper's line
    assert paper_evidence.startswith("Per cell (") and " of 1 won (" in paper_evidence
    (skip,) = [c for c in cells if c.transfer == "skip"]
    assert f"of {skip.seeds} cases" in paper_line and "points in 1 cell." in paper_line and "±" not in paper_line


@pytest.mark.parametrize(
    ("pair", "task"), [(("teacher", "student"), NER), (("wide", "narrow"), NER), (("teacher", "student"), PARA)]
)
def test_students_can_distil_from_the_teacher(grid, monkeypatch, pair, task):
    root, models = grid
    transfer = (
        {"layer_map": "skip"}
        if pair[0] == "teacher"
        else {"align": "correlation", "probe_data": str(root / "probe.txt")}
    )
    name = f"distil-{pair[0]}-{task['name']}"
    config = load_config(
        write_experiment(
            root,
            name,
            pairs=pair_of(models, *pair),
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


def test_head_from_the_teacher(grid):
    from peftport.experiments.training.trainable import read_head

    root, models = grid
    still = {**TRAINING, "learning_rate": 1e-9}  # students barely move: their saved head is their initial head
    config = load_config(
        write_experiment(
            root,
            "head",
            pairs=pair_of(models),
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
        write_experiment(
            root,
            "head-aligned",
            pairs=pair_of(models, "wide", "narrow"),
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


def test_grid_runs_projection_and_uniform_transfers_across_widths(grid):
    from peftport.experiments.training.trainable import read_head

    root, models = grid
    projection = {"align": "projection", "probe_data": str(root / "probe.txt")}
    config = load_config(
        write_experiment(
            root,
            "widths",
            pairs=pair_of(models, "wide", "student"),
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
def test_recovery_trains_the_transferred_module_towards_the_teacher(grid, pair, transfer, target):
    from safetensors.torch import load_file

    root, models = grid
    recovery = {"recover_steps": 12, "recover_lr": 0.01}
    config = load_config(
        write_experiment(
            root,
            f"recover-{target}",
            pairs=pair_of(models, *pair),
            tasks=[NER],
            transfers=[transfer, {**transfer, **recovery}],
        )
    )
    out = root / f"recover-{target}-out"
    runner.run_experiment(config, out)
    moved = {r["transfer"]: r for r in read_index(out) if r["kind"] == "transferred"}
    plain, recovered = sorted(moved, key=len)
    assert recovered.endswith("+rec12(lr0.01)") and plain == recovered.removesuffix("+rec12(lr0.01)")
    record = moved[recovered]["recovery"]
    assert record["steps"] == 12 and record["target"] == target and record["seconds"] > 0
    assert record["last_loss"] < record["first_loss"]
    figure = "agreement" if target == "logits" else "r2"
    assert record["fidelity"]["recovered"]["texts"] > 0 and figure in record["fidelity"]["transferred"]
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


def test_a_recovered_transfer_is_not_reused_at_another_students_rate(grid):
    """Recovery trains at the students' rate unless ``recover_lr`` is set, so two grids sharing a folder that
    differ only in that rate recover twice; the plain transfer, which no rate touches, is made once."""
    root, models = grid
    rows = [{"layer_map": "skip", "head": "teacher"}, {"layer_map": "skip", "head": "teacher", "recover_steps": 3}]
    out = root / "rates-out"
    for rate in (0.01, 0.001):
        training = {**TRAINING, "learning_rate": rate}
        fields = {"pairs": pair_of(models), "tasks": [NER], "transfers": rows, "training": training}
        fields["teacher_training"] = TRAINING  # one teacher for both grids
        runner.run_experiment(load_config(write_experiment(root, f"rate-{rate}", **fields)), out)
    moved = [r for r in read_index(out) if r["kind"] == "transferred"]
    cached = {(r["transfer"], r["transfer_cached"]) for r in moved}
    assert len(moved) == 4 and cached == {("skip+head", False), ("skip+head", True), ("skip+head+rec3", False)}
    assert len(list((out / TRANSFERS_DIR).iterdir())) == 3
    # the teacher's outputs were computed once, for the recovery texts and the held-out texts, and reused
    assert len(list((out / "teacher_outputs").iterdir())) == 2
    first, second = (r["recovery"] for r in moved if r["transfer"] == "skip+head+rec3")
    assert second["teacher_seconds"] < first["teacher_seconds"] or second["teacher_seconds"] < 0.05


def test_cpu_info_reads_the_model_name_and_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu avx512f avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: Example CPU 9000\nflags\t\t: fpu avx512f avx512_bf16\n"
    )
    from peftport.experiments.environment import cpu_info

    assert cpu_info(info) == ("Example CPU 9000", {"fpu", "avx512f", "avx512_bf16"})
    name, flags = cpu_info(tmp_path / "absent")
    assert name and flags == set()
