"""The Ray backend: a tiny grid on a local Ray with 2 workers gives the default backend's run ids and
scores, a second call resumes and runs nothing, and a failing run is reported by id without stopping
the others."""

from __future__ import annotations

import shutil

import pytest

from grid_setup import NER, pair_of, write_experiment
from peftport.experiments.config import load_config
from peftport.experiments.ray_backend import RayOptions, run_on_ray
from peftport.experiments.runner import run_experiment
from peftport.experiments.store import read_index

pytest.importorskip("ray", reason="the Ray backend is tested where peftport[ray] is installed (the test extra)")
LOCAL = RayOptions(workers=2)


def _scores(out):
    return {r["id"]: (r["kind"], r["final"][r["metric"]], r["steps"]) for r in read_index(out)}


@pytest.fixture(scope="module")
def both(grid):
    """The same grid run by the default backend and on Ray, into two folders."""
    root, models = grid
    config = write_experiment(root, "ray", pairs=pair_of(models), tasks=[NER], seeds=[0, 1])
    plain, on_ray = root / "plain-out", root / "ray-out"
    run_experiment(load_config(config), plain)
    outcome = run_on_ray(load_config(config), on_ray, LOCAL)
    return config, plain, on_ray, outcome


def test_ray_gives_the_default_backends_runs_and_scores(both):
    _, plain, on_ray, outcome = both
    assert outcome.failed == {} and len(outcome.done) == 6  # per seed: a teacher, a baseline, a transfer
    sequential, distributed = _scores(plain), _scores(on_ray)
    assert sorted(sequential) == sorted(distributed)
    for run_id, (kind, score, steps) in sequential.items():
        assert distributed[run_id][0] == kind and distributed[run_id][2] == steps
        assert distributed[run_id][1] == pytest.approx(score, abs=0.02), run_id  # float noise only


def test_a_second_ray_call_resumes_and_runs_nothing(both):
    config, _, on_ray, _ = both
    before = (on_ray / "results.jsonl").read_text()
    outcome = run_on_ray(load_config(config), on_ray, LOCAL)
    assert outcome.done == [] and outcome.failed == {}
    assert (on_ray / "results.jsonl").read_text() == before


def test_a_failing_run_is_reported_by_id_and_the_others_go_on(grid, cli):
    root, models = grid
    broken = root / "broken-student"
    shutil.copytree(models["student"], broken)
    for weights in broken.glob("*.safetensors"):
        weights.unlink()  # the config still reads; loading the model fails when training starts
    pairs = pair_of(models) + [{"teacher": str(models["teacher"]), "student": str(broken)}]
    config = write_experiment(root, "ray-broken", pairs=pairs, tasks=[NER])
    out = root / "broken-out"
    result = cli("run", config, "--out", out, "--backend", "ray", "--workers", "2")
    assert result.exit_code == 1, result.output
    records = read_index(out)
    assert sorted(r["kind"] for r in records) == ["baseline", "teacher", "transferred"]  # the good pair
    failures = [line for line in result.stderr.splitlines() if " failed: " in line and line.startswith("run ")]
    assert len(failures) == 2 and all(r["id"] not in "".join(failures) for r in records)
    done = [line for line in result.stderr.splitlines() if line.startswith("done ")]  # one line per finished run
    assert len(done) == len(records)
    for r in records:
        assert sum(line.startswith(f"done {r['kind']} ner/en seed 0 ({r['id']}): f1 ") for line in done) == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: 2 runs failed: ")


def test_ray_flags_need_the_ray_backend(grid, cli, tmp_path):
    root, models = grid
    config = write_experiment(root, "flags", pairs=pair_of(models), tasks=[NER])
    result = cli("run", config, "--out", tmp_path / "out", "--workers", "2")
    assert result.exit_code == 2 and "go with --backend ray" in result.stderr
    bad = cli("run", config, "--out", tmp_path / "out", "--backend", "spark")
    assert bad.exit_code == 2 and "unknown backend 'spark'" in bad.stderr and not (tmp_path / "out").exists()
