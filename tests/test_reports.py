"""Experiment reports from result records: cells joined by seed and training variant, paper methods told
apart, zero-step scores, and learning curves that average only a cell's own runs."""

from __future__ import annotations

import pytest

from peftport.experiments.report.plots import curve_groups, learning_curves
from peftport.experiments.report.summary import HEADER, is_paper_method, summarise, table_rows


@pytest.mark.parametrize(
    ("label", "paper"),
    [
        ("skip", True),
        ("avg+corr(offsets,input)", True),
        ("cka", False),
        ("skip+head", False),
        ("avg+svd", False),
        ("skip+corr(strings,output)+procrustes", False),
    ],
)
def test_paper_methods_are_told_apart_from_additions(label, paper):
    assert is_paper_method(label) is paper


def _record(kind, score, variant=None, transfer=None, zero=0.0):
    record = {
        "id": f"{kind}-{score}",
        "kind": kind,
        "model": "teacher" if kind == "teacher" else "student",
        "teacher": None if kind == "baseline" and not variant else "teacher",
        "task": "ner",
        "language": "en",
        "module": "lora-r8",
        "seed": 0,
        "metric": "f1",
        "transfer": transfer,
        "final": {"f1": score},
        "zero_step": {"f1": zero},
        "curve": [{"step": 10, "f1": score}],
    }
    return {**record, "teacher_run": "teacher-0.9"} | ({"variant": variant} if variant else {})


DISTIL = "distill(w0.5,T2)"


def _plain_and_distilling() -> list[dict]:
    """One cell's runs: plain students and students distilling from the teacher, each with a baseline."""
    return [
        _record("teacher", 0.9),
        _record("baseline", 0.2),
        _record("transferred", 0.3, transfer="skip"),
        _record("baseline", 0.4, DISTIL),
        _record("transferred", 0.35, DISTIL, "skip"),
    ]


def test_distilling_and_plain_students_of_one_cell_are_reported_apart():
    distil, records = DISTIL, _plain_and_distilling()
    cells = {c.transfer: c for c in summarise(records)}
    assert set(cells) == {"skip", f"skip+{distil}"}
    assert cells["skip"].baseline == 0.2 and round(cells["skip"].delta, 6) == 0.1
    assert cells[f"skip+{distil}"].baseline == 0.4 and round(cells[f"skip+{distil}"].delta, 6) == -0.05
    assert all(c.teacher == 0.9 for c in cells.values())


def test_zero_step_scores_of_transferred_and_baseline_students_stand_side_by_side():
    records = [
        _record("teacher", 0.9),
        _record("baseline", 0.2, zero=0.01),
        _record("transferred", 0.3, transfer="skip+proj+head", zero=0.55),
    ]
    (cell,) = summarise(records)
    assert cell.zero_step == pytest.approx(0.55) and cell.baseline_zero_step == pytest.approx(0.01)
    (row,) = table_rows([cell])
    assert row[HEADER.index("zero-step")] == "55.0 (base 1.0)"


def test_learning_curves_keep_plain_and_distilling_students_apart(tmp_path):
    distil, records = DISTIL, _plain_and_distilling()
    cells = {c.transfer: c for c in summarise(records)}
    plain, distilled = curve_groups(records, cells["skip"]), curve_groups(records, cells[f"skip+{distil}"])
    assert [r["final"]["f1"] for r in plain["baseline"]] == [0.2]
    assert [r["final"]["f1"] for r in plain["transferred (skip)"]] == [0.3]
    assert [r["final"]["f1"] for r in distilled["baseline"]] == [0.4]
    assert [r["final"]["f1"] for r in distilled[f"transferred (skip+{distil})"]] == [0.35]
    written = learning_curves(records, list(cells.values()), tmp_path)
    assert len(set(written)) == 2 and all(p.stat().st_size > 0 for p in written)
