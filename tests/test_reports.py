"""Experiment reports from result records: cells joined by seed and training variant, paper methods told
apart, zero-step scores, and learning curves that average only a cell's own runs."""

from __future__ import annotations

import pytest

from peftport.errors import PeftportError
from peftport.experiments.config import TransferConfig
from peftport.experiments.report.plots import curve_groups, learning_curves
from peftport.experiments.report.summary import HEADER, is_paper_method, not_learnt, summarise, table_rows
from peftport.experiments.runner import finished_line


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


@pytest.mark.parametrize(
    ("fields", "label"),
    [
        ({"align": "projection", "head": "teacher", "recover_steps": 25}, "skip+proj+head+rec25"),
        ({"align": "projection", "recover_steps": 25, "recover_lr": 0.003}, "skip+proj+rec25(lr0.003)"),
        ({"recover_lr": 0.003}, "skip"),  # no recovery, so its rate changes nothing
    ],
)
def test_transfer_labels_tell_recovery_rates_apart(fields, label):
    assert TransferConfig(**fields).label == label


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


def _curve_run(kind, seed, curve, transfer=None):
    """A run of one cell with a full learning curve (steps, F1) ending at its final score."""
    record = _record(kind, curve[-1][1], transfer=transfer)
    return {
        **record,
        "id": f"{kind}-{seed}",
        "seed": seed,
        "steps": curve[-1][0],
        "curve": [{"step": step, "f1": f1} for step, f1 in curve],
    }


def _reaching_cell() -> list[dict]:
    """Three seeds over 100 steps; the transferred students reach their baseline's final 0.5 at step 20, at step 60
    and never."""
    base = [(0, 0.0), (20, 0.2), (60, 0.4), (100, 0.5)]
    moved = [
        [(0, 0.1), (20, 0.5), (60, 0.6), (100, 0.7)],
        [(0, 0.1), (20, 0.3), (60, 0.5), (100, 0.55)],
        [(0, 0.1), (20, 0.2), (60, 0.3), (100, 0.4)],
    ]
    runs = [_record("teacher", 0.9)]
    for seed, curve in enumerate(moved):
        runs += [_curve_run("baseline", seed, base), _curve_run("transferred", seed, curve, "skip")]
    return runs


def test_steps_to_baseline_are_a_median_with_never_counted_and_a_share_of_the_budget():
    from peftport.experiments.report.summary import steps_saved

    (cell,) = summarise(_reaching_cell())
    assert cell.steps_to_baseline_median == 60 and cell.budget == 100
    assert cell.steps_to_baseline is None  # the mean needs every seed to reach it
    assert cell.reach_shares == (0.2, 0.6, float("inf"))
    (row,) = table_rows([cell])
    assert row[HEADER.index("steps to baseline")] == "60 (60%)"
    assert steps_saved([cell]).startswith("Transferred students reach their baseline's final score after a median 60%")
    assert "2 of 3 cases" in steps_saved([cell])


def test_steps_to_the_baseline_are_also_read_between_evaluations():
    from peftport.experiments.report.summary import steps_saved

    runs = _reaching_cell()
    runs[4]["curve"][2]["f1"] = 0.7  # seed 1: 0.3 at step 20, 0.7 at step 60, so the line crosses 0.5 at step 40
    (cell,) = summarise(runs)
    assert cell.reach_shares == (0.2, 0.6, float("inf"))  # the first evaluation at or above: unchanged
    assert cell.reach_shares_between == (0.2, 0.4, float("inf"))
    assert steps_saved([cell]).endswith(
        "Read between evaluations (a straight line from the last one below), the median is 40%."
    )
    (unchanged,) = summarise(_reaching_cell())  # the line meets the evaluations there: one sentence, as before
    assert unchanged.reach_shares_between == (0.2, 0.6, float("inf")) and "between" not in steps_saved([unchanged])


def test_area_under_the_curve_and_gap_to_the_teacher_are_reported():
    (cell,) = summarise(_reaching_cell())
    # baseline: (20*0.1 + 40*0.3 + 40*0.45) / 100 = 0.32; seed 0: (20*0.3 + 40*0.55 + 40*0.65) / 100 = 0.54
    assert cell.baseline_auc == pytest.approx(0.32)
    assert cell.auc == pytest.approx((0.54 + 0.42 + 0.26) / 3)
    (row,) = table_rows([cell])
    assert row[HEADER.index("AUC (base)")] == "40.7 (32.0)"
    assert row[HEADER.index("gap to teacher")] == f"{100 * (0.9 - (0.7 + 0.55 + 0.4) / 3):.1f}"


def test_a_cell_whose_median_seed_never_reaches_the_baseline_shows_a_dash():
    runs = _reaching_cell()
    for point in runs[4]["curve"][2:]:  # seed 1 now stays below the baseline's final score
        point["f1"] = 0.45
    (cell,) = summarise(runs)
    assert cell.steps_to_baseline_median is None
    assert table_rows([cell])[0][HEADER.index("steps to baseline")] == "-"


def test_runs_that_did_not_learn_are_named_in_the_report_and_the_run_log():
    records = [
        _record("teacher", 0.9, zero=0.01),
        _record("baseline", 0.4, zero=0.01),
        {**_record("transferred", 0.0, transfer="skip", zero=0.017), "id": "transferred-stuck"},
        _record("transferred", 0.01, transfer="avg", zero=0.01),  # ends where it started: also nothing learnt
    ]
    lines = not_learnt(records)
    assert lines == [
        "transferred student ner/en lora-r8 skip seed 0 (transferred-stuck): f1 1.7 before training, 0.0 after",
        "transferred student ner/en lora-r8 avg seed 0 (transferred-0.01): f1 1.0 before training, 1.0 after",
    ]
    stuck = {**records[2], "wall_seconds": 12.0}
    warned = "done x (transferred-stuck): f1 0.0 in 12 s; did not learn (before training: 1.7)"
    assert finished_line("x", stuck) == warned
    assert finished_line("x", {**records[1], "wall_seconds": 3.0}) == "done x (baseline-0.4): f1 40.0 in 3 s"
    assert not_learnt([{k: v for k, v in records[2].items() if k != "zero_step"}]) == []  # older records: no claim


def test_two_runs_filling_one_cell_are_refused_not_merged():
    records = [_record("teacher", 0.9), _record("baseline", 0.2), _record("transferred", 0.3, transfer="skip")]
    other_rate = {**_record("baseline", 0.4), "id": "baseline-at-another-rate"}
    with pytest.raises(PeftportError, match="runs baseline-0.2 and baseline-at-another-rate fill one report cell"):
        summarise([*records, other_rate])
    assert len(summarise(records + [records[1]])) == 1  # the same run twice is one run


def test_the_win_rate_comes_with_its_interval_per_cell_and_per_seed():
    from dataclasses import replace

    from peftport.experiments.report.summary import cell_wins, evidence

    (cell,) = summarise(_reaching_cell())
    # 11 cells of 3 seeds: 10 cells ahead on the mean; 25 of the 33 seeds ahead (4 x 3/3, 6 x 2/3, 1 x 1/3)
    shares = [1.0] * 4 + [2 / 3] * 6 + [1 / 3]
    cells = [replace(cell, delta=0.01 if i < 10 else -0.02, positive_share=s) for i, s in enumerate(shares)]
    cells.append(replace(cell, delta=float("nan"), positive_share=float("nan")))  # no baseline: not counted
    assert cell_wins(cells) == (10, 11)
    sentence = evidence(cells)
    # Wilson 10/11: centre (10/11 + 1.92/11) / (1 + 3.84/11); by hand 0.623-0.984. Sign test 25 of 33:
    # 2 * sum(C(33, k), k <= 8) / 2**33 = 0.00455
    assert "10 of 11 won (90.9%, 95% interval 62-98%)" in sentence
    assert "Per seed: 95% interval 59-87%, sign test against no effect p = 0.0046" in sentence
    assert "Seeds of a cell share one teacher" in sentence  # every seed of the cell starts from teacher-0.9
    assert "share one teacher" not in evidence([replace(c, teacher_runs=3) for c in cells])
    assert evidence([cells[-1]]) == ""
