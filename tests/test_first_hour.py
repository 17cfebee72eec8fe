"""What a newcomer sees and shares (issue 33): provenance a reader can fetch, no staging paths in outputs,
terminal tables that fit, expected library warnings silenced."""

from __future__ import annotations

import json

import pytest

import peftport.zoo as zoo
from module_factory import make_peft_lora
from tiny_models import save_tiny_model
from tiny_tokenizers import save_wordpiece


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    teacher = save_wordpiece(save_tiny_model("bert", 4, root / "cache" / "l6", vocab_size=200))
    student = save_wordpiece(save_tiny_model("bert", 2, root / "cache" / "l3", vocab_size=200))
    module = make_peft_lora(teacher, "bert", root / "lora", task_model=False)
    return {"root": root, "teacher": teacher, "student": student, "module": module}


@pytest.fixture
def zoo_names(tiny_zoo, monkeypatch):
    """zoo:all-MiniLM-L6-v2 and zoo:paraphrase-MiniLM-L3-v2 served by tiny models."""
    monkeypatch.setitem(zoo.ZOO, "all-MiniLM-L6-v2", lambda: tiny_zoo["teacher"])
    monkeypatch.setitem(zoo.ZOO, "paraphrase-MiniLM-L3-v2", lambda: tiny_zoo["student"])
    return tiny_zoo


def _written_text(folder):
    return {p.name: p.read_text() for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".md")}


def test_a_transfer_from_zoo_names_records_the_public_names(zoo_names, cli, tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "out"
    result = cli("transfer", "--teacher", "zoo:all-MiniLM-L6-v2", "--student", "zoo:paraphrase-MiniLM-L3-v2",
                 "--module", zoo_names["module"], "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "peftport_manifest.json").read_text())
    assert manifest["teacher"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["teacher"]["zoo"] == "all-MiniLM-L6-v2"
    assert manifest["student"] == {**manifest["student"], "model": "sentence-transformers/paraphrase-MiniLM-L3-v2",
                                   "zoo": "paraphrase-MiniLM-L3-v2"}  # fmt: skip
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "sentence-transformers/paraphrase-MiniLM-L3-v2"
    assert ModelCard.load(out / "README.md").data.base_model == "sentence-transformers/paraphrase-MiniLM-L3-v2"
    assert "--teacher zoo:all-MiniLM-L6-v2 --student zoo:paraphrase-MiniLM-L3-v2" in manifest["command"]
    for name, text in _written_text(out).items():  # no folder of this machine's zoo cache anywhere
        assert str(zoo_names["root"] / "cache") not in text, name


def test_no_staging_path_is_left_in_any_written_file(tiny_zoo, tmp_path):
    import peftport
    from peftport.formats.atomic import atomic_directory

    target = tmp_path / "bundle"
    with atomic_directory(target) as staging:
        source = make_peft_lora(tiny_zoo["teacher"], "bert", staging / "teacher-lora", task_model=False)
        moved = peftport.transfer(source, teacher=str(tiny_zoo["teacher"]), student=str(tiny_zoo["student"]))
        peftport.save_module(moved, staging / "student")
        (staging / "summary.json").write_text(json.dumps({"output": str(staging / "student")}))
    texts = _written_text(target)
    assert texts and not any(".partial" in text for text in texts.values())
    manifest = json.loads((target / "student" / "peftport_manifest.json").read_text())
    assert manifest["source_module"] == str(target / "teacher-lora")
    assert json.loads(texts["summary.json"])["output"] == str(target / "student")


def _cells():
    from peftport.experiments.report.cells import CellSummary

    common = dict(task="ner", language="en", metric="f1", seeds=3, teacher=0.807, teacher_std=0.0, baseline=0.502,
                  baseline_std=0.011, transferred=0.681, transferred_std=0.123, delta=0.179, delta_std=0.118,
                  positive_share=2 / 3, zero_step=0.1, steps_to_baseline=None)  # fmt: skip
    return [
        CellSummary("zoo:all-mpnet-base-v2", "zoo:paraphrase-MiniLM-L3-v2", module="lora-r8",
                    transfer="skip+proj+head+rec25(lr0.003)", **common),
        CellSummary("zoo:all-MiniLM-L6-v2", "zoo:paraphrase-MiniLM-L3-v2", module="seq_bn", transfer="avg",
                    **{**common, "delta": -0.021}),
    ]  # fmt: skip


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("pairs", [1, 2])
def test_the_compact_table_fits_the_width_and_cuts_no_number(width, pairs):
    import io

    from rich.console import Console

    from peftport.experiments.report.render import COMPACT_HEADER, compact_rows, rich_table

    cells = _cells()[:pairs]
    buffer = io.StringIO()
    Console(file=buffer, width=width).print(rich_table(cells, width=width))
    printed = buffer.getvalue()
    assert max(len(line) for line in printed.splitlines()) <= width
    lines = printed.splitlines()
    for row in compact_rows(cells):
        numbers = row[COMPACT_HEADER.index("teacher") :]
        assert any(all(number in line for number in numbers) for line in lines), (numbers, printed)
    assert ("all-mpnet-base-v2 -> paraphrase-MiniLM-L3-v2" in printed) == (pairs == 1)  # one pair: in the title


def test_the_wide_table_keeps_every_column_and_the_width_follows_columns(monkeypatch):
    from peftport.cli.common import output_width
    from peftport.experiments.report.render import HEADER, rich_table

    assert [c.header for c in rich_table(_cells(), wide=True).columns] == HEADER
    monkeypatch.setenv("COLUMNS", "93")
    assert output_width() == 93


def test_a_new_task_head_is_not_warned_about_but_a_missing_encoder_weight_is(tiny_zoo):
    import logging

    import transformers

    from peftport.experiments.training.trainable import task_model
    from peftport.library_logs import NEW_HEAD_WEIGHTS

    head_only = (
        "Some weights of BertForTokenClassification were not initialized from the model checkpoint at x "
        "and are newly initialized: ['classifier.bias', 'classifier.weight']\nYou should probably TRAIN this model"
    )
    encoder = head_only.replace("'classifier.bias'", "'bert.encoder.layer.0.output.dense.weight'")
    assert NEW_HEAD_WEIGHTS.matches(head_only) and not NEW_HEAD_WEIGHTS.matches(encoder)
    assert NEW_HEAD_WEIGHTS.matches(head_only.replace("'classifier.bias'", "'bert.pooler.dense.weight'"))

    class Data:
        kind, labels = "token", ["O", "B-PER", "I-PER"]

    class Kept(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    kept, library = Kept(), logging.getLogger(NEW_HEAD_WEIGHTS.logger)
    library.addHandler(kept)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_warning()
    try:
        task_model(str(tiny_zoo["student"]), Data())
        filtered = list(kept.messages)
        transformers.AutoModelForTokenClassification.from_pretrained(str(tiny_zoo["student"]), num_labels=3)
    finally:
        transformers.logging.set_verbosity(verbosity)
        library.removeHandler(kept)
    assert not any("were not initialized" in m for m in filtered)
    assert any("were not initialized" in m for m in kept.messages[len(filtered) :])  # unfiltered, it is printed


def _seeded_records(deltas=(0.05, 0.04, 0.06), cached=(False, True, True)):
    """A teacher, and per seed a baseline and a transferred student (``deltas`` apart)."""
    records = [{"id": "teacher-0", "kind": "teacher", "model": "zoo:all-mpnet-base-v2", "teacher": None, "task": "ner",
                "language": "en", "module": "lora-r8", "seed": 0, "metric": "f1", "transfer": None,
                "final": {"f1": 0.8}, "zero_step": {"f1": 0.0}, "steps": 10, "samples_per_second": 50.0,
                "curve": [{"step": 0, "f1": 0.0}, {"step": 10, "f1": 0.8}]}]  # fmt: skip
    for seed, (delta, reused) in enumerate(zip(deltas, cached, strict=True)):
        common = {"model": "zoo:all-MiniLM-L6-v2", "task": "ner", "language": "en", "module": "lora-r8", "seed": seed,
                  "metric": "f1", "steps": 10, "samples_per_second": 90.0, "device": "cpu"}  # fmt: skip
        base = 0.5 + 0.01 * seed
        records.append({**common, "id": f"baseline-{seed}", "kind": "baseline", "teacher": None, "transfer": None,
                        "final": {"f1": base}, "zero_step": {"f1": 0.0},
                        "curve": [{"step": 0, "f1": 0.0}, {"step": 10, "f1": base}]})  # fmt: skip
        records.append({**common, "id": f"transferred-{seed}", "kind": "transferred",
                        "teacher": "zoo:all-mpnet-base-v2", "transfer": "skip", "teacher_run": "teacher-0",
                        "final": {"f1": base + delta},
                        "zero_step": {"f1": 0.1}, "transfer_cached": reused, "transfer_seconds": 2.0,
                        "curve": [{"step": 0, "f1": 0.1}, {"step": 10, "f1": base + delta}]})  # fmt: skip
    return records


def _report(tmp_path, records):
    from peftport.experiments.report.files import write_report
    from peftport.experiments.store import append_index as append_record

    tmp_path.mkdir(parents=True, exist_ok=True)
    for record in records:
        append_record(tmp_path, record)
    config = {"name": "tiny", "pairs": [{"teacher": "zoo:all-mpnet-base-v2", "student": "zoo:all-MiniLM-L6-v2"}],
              "tasks": [{"name": "ner", "languages": ["en"], "train_limit": 2000, "test_limit": 250}],
              "modules": [{"type": "lora", "r": 8, "alpha": 16, "targets": ["attn_q", "attn_v"]}], "seeds": [0, 1, 2],
              "training": {"learning_rate": 0.003, "batch_size": 16, "max_steps": 10},
              "teacher_training": {"learning_rate": 0.003, "batch_size": 16, "max_steps": 10}}  # fmt: skip
    (tmp_path / "experiment-tiny.json").write_text(json.dumps(config))
    path, cells = write_report(tmp_path)
    return path.read_text(), cells


def test_the_report_explains_itself_setup_seeds_verdicts_and_true_cost_notes(tmp_path):
    text, _ = _report(tmp_path / "a", _seeded_records())
    assert "## Setup" in text and "LoRA r8 (alpha 16) on attn_q, attn_v" in text and "2000 training / 250 test" in text
    assert "students: 10 steps, lr 0.003, batch 16" in text and "seeds [0, 1, 2]" in text
    assert "## Per seed" in text
    for seed, (base, moved) in enumerate(((50.0, 55.0), (51.0, 55.0), (52.0, 58.0))):
        assert f"| skip | {seed} | {base:.1f} | {moved:.1f} | {moved - base:+.1f} |" in text
    assert "transferred ahead: +5.0 ± 1.0 points, 3 of 3 seeds ahead" in text
    assert "## By factor" not in text  # one cell: no factor varies
    assert "2 of 3 transferred runs reused a transfer" in text
    spread, _ = _report(tmp_path / "b", _seeded_records(deltas=(0.03, -0.02, 0.01), cached=(False, False, False)))
    assert "within the seeds' spread: +0.7 ± 2.5 points, 2 of 3 seeds ahead" in spread
    assert "every transferred run made its own transfer" in spread


def test_results_csv_has_one_unit_no_empty_beside_filled_columns_and_json_lists(tmp_path):
    import csv

    _report(tmp_path, _seeded_records())
    (row,) = csv.DictReader((tmp_path / "report" / "results.csv").open())
    assert float(row["baseline"]) == pytest.approx(51.0) and float(row["positive_share"]) == pytest.approx(100.0)
    assert "steps_to_baseline" not in row and row["steps_to_baseline_median"] != ""
    assert json.loads(row["reach_shares"]) == [100.0, 100.0, 100.0]
    assert json.loads(row["transferred_by_seed"]) == pytest.approx([55.0, 55.0, 58.0])
    assert json.loads(row["seed_numbers"]) == [0, 1, 2]


def test_plots_show_the_teacher_a_band_over_seeds_and_each_seeds_delta(tmp_path, monkeypatch):
    import matplotlib.axes

    drawn = {"fill": 0, "teacher": [], "legend": [], "titles": [], "points": 0}
    plain = {name: getattr(matplotlib.axes.Axes, name) for name in ("fill_between", "axhline", "scatter", "set")}

    def fill(self, *a, **k):
        drawn["fill"] += 1
        return plain["fill_between"](self, *a, **k)

    def hline(self, y=0, *a, **k):
        drawn["teacher"] += [y] if k.get("label") == "teacher (final)" else []
        return plain["axhline"](self, y, *a, **k)

    def scatter(self, x, y, *a, **k):
        drawn["points"] += len(y)
        return plain["scatter"](self, x, y, *a, **k)

    def titled(self, **k):
        drawn["titles"] += [k["title"]] if "title" in k else []
        return plain["set"](self, **k)

    for name, replacement in (("fill_between", fill), ("axhline", hline), ("scatter", scatter), ("set", titled)):
        monkeypatch.setattr(matplotlib.axes.Axes, name, replacement)
    _report(tmp_path, _seeded_records())
    assert drawn["fill"] == 2 and drawn["teacher"] == [pytest.approx(80.0)] and drawn["points"] == 3
    assert all(title.startswith("all-mpnet-base-v2 -> all-MiniLM-L6-v2") for title in drawn["titles"])
    assert len(drawn["titles"]) == 2


def test_a_zero_step_equal_to_the_baselines_is_explained_only_where_it_happens(tmp_path):
    text, _ = _report(tmp_path / "a", _seeded_records())
    assert "zero-step score equals the baseline's" not in text
    same = [{**r, "zero_step": {"f1": 0.0}} for r in _seeded_records()]
    text, _ = _report(tmp_path / "b", same)
    assert "In 1 of 1 cells the transferred student's zero-step score equals the baseline's" in text


def test_the_report_says_what_a_fidelity_figure_is_worth_where_runs_recovered(tmp_path):
    records = _seeded_records()
    text, _ = _report(tmp_path / "none", records)
    assert "Fidelity without labels" not in text  # no run recovered: no section
    cells = []
    for transfer, shift in (
        ("skip+proj+head+rec25", 0.0),
        ("skip+proj+head+rec75", 0.1),
        ("skip+proj+head+rec150", 0.2),
    ):
        for r in records:
            if r["kind"] == "transferred":
                agreement = 0.3 + shift + 0.01 * r["seed"]
                fidelity = {"recovered": {"balanced_agreement": agreement, "texts": 200}}
                cells.append({**r, "id": f"{r['id']}-{transfer}", "transfer": transfer,
                              "recovery": {"fidelity": fidelity},
                              "zero_step": {"f1": 0.2 + shift + 0.01 * r["seed"]}})  # fmt: skip
    text, _ = _report(tmp_path / "some", [r for r in records if r["kind"] != "transferred"] + cells)
    assert "## Fidelity without labels against the task score" in text
    assert "over 9 runs in 3 cells: across cells Spearman 1.00, across runs Spearman 1.00" in text
    assert "it can choose between them without labels" in text
    assert (tmp_path / "some" / "report" / "plots" / "fidelity-vs-score.png").is_file()


def test_the_report_sets_label_free_students_beside_the_baseline_given_their_seconds(tmp_path):
    from peftport.experiments.report.compute import equal_compute_points

    records = _seeded_records()
    assert equal_compute_points(records) == []  # no run recovered: no section
    text, _ = _report(tmp_path / "none", records)
    assert "at equal compute" not in text
    for r in records:
        if r["kind"] == "baseline":
            r["train_seconds"] = 20.0  # 2 s a step over its 10 steps: the curve goes 0 -> 50 + seed points
        if r["kind"] == "transferred":
            r.update(transfer="skip+proj+head+rec25", recovery={"seconds": 10.0}, zero_step={"f1": 0.4})
    points = equal_compute_points(records)
    assert [round(p["steps"], 6) for p in points] == [5.0] * 3  # 10 s of recovery buy 5 supervised steps
    assert [round(p["supervised"], 6) for p in points] == [25.0, 25.5, 26.0]  # half-way up each baseline's curve
    text, _ = _report(tmp_path / "some", records)
    assert "## Label-free against supervised at equal compute" in text
    cell = "all-mpnet-base-v2 -> all-MiniLM-L6-v2 ner/en lora-r8 skip+proj+head+rec25"
    assert f"| {cell} | 3 | 40.0 | 10 | 5 | 25.5 | +14.5 |" in text
