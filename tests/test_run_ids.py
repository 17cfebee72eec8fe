"""Run ids: the hash of a run's resolved config, so every field counts, and the published studies keep theirs."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import pytest

from peftport.experiments.config import load_config
from peftport.experiments.grid import Run, expand
from peftport.experiments.store import read_index

SPEC = {
    "task": {"name": "ner", "kind": "token", "train": "/data/ner-train.conll", "test": "hf:wikiann:en"},
    "language": "en",
    "module": {"type": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "targets": ["attn_q", "attn_v"]},
    "seed": 0,
    "model": "zoo:paraphrase-MiniLM-L3-v2",
    "training": {"learning_rate": 0.001, "batch_size": 16, "max_steps": 75},
    "teacher": "zoo:all-MiniLM-L6-v2",
    "teacher_run": "teacher-0123456789ab",
    "transfer": {"layer_map": "skip", "align": "none"},
    "head": "random",
}


def _reference_id(kind: str, spec: dict, out: str) -> str:
    """What a run id is, written out independently: sha256 of kind + spec (local data paths relative to the
    output folder, hub names kept), keys sorted, first 12 hex digits."""
    task = dict(spec["task"])
    for key in ("train", "test"):
        if not task[key].startswith("hf:"):
            task[key] = os.path.relpath(os.path.abspath(task[key]), os.path.abspath(out))
    text = json.dumps({"kind": kind, **spec, "task": task}, sort_keys=True)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, (*path, key))
    else:
        yield path


def _changed(spec: dict, path: tuple) -> dict:
    changed = copy.deepcopy(spec)
    holder = changed
    for key in path[:-1]:
        holder = holder[key]
    old = holder[path[-1]]
    holder[path[-1]] = (
        old + 1 if isinstance(old, (int, float)) else (old + ["x"] if isinstance(old, list) else f"{old}x")
    )
    return changed


def test_a_run_id_is_the_hash_of_kind_and_portable_spec():
    for kind in ("teacher", "baseline", "transferred"):
        assert Run(kind, SPEC, out="/results/study").id == _reference_id(kind, SPEC, "/results/study")


@pytest.mark.parametrize("path", list(_leaves(SPEC)), ids=lambda p: ".".join(p))
def test_every_field_of_the_spec_changes_the_id(path):
    assert Run("transferred", _changed(SPEC, path), out="/r").id != Run("transferred", SPEC, out="/r").id


def test_kind_and_data_place_change_the_id_and_key_order_does_not():
    base = Run("baseline", SPEC, out="/r").id
    assert Run("transferred", SPEC, out="/r").id != base
    assert Run("baseline", SPEC, out="/r/deeper").id != base  # local data, seen from another folder
    assert Run("baseline", dict(reversed(list(SPEC.items()))), out="/r").id == base
    hub = {**SPEC, "task": {**SPEC["task"], "train": "hf:wikiann:en"}}  # both splits from the hub
    assert Run("baseline", hub, out="/r").id == Run("baseline", hub, out="/elsewhere").id


PUBLISHED = {
    **dict.fromkeys(
        ["matching", "matching-sentence", "incompatible", "beyond", "beyond-incompatible", "beyond-distill"], "study"
    ),
    **dict.fromkeys(["widths", "widths-matching", "widths-de", "widths-l3"], "widths"),
    "widths-compute": "widths-compute",
    "converging-teacher-lr": "converging-teacher-lr",
    "converging-widths-lr3e-3": "converging-widths-lr3e-3",
    "checks-incompatible": "checks-incompatible",
    **dict.fromkeys(["converging-xnli-en", "converging-pawsx-en"], "converging-sentence-en"),
    **dict.fromkeys(["converging-dense-lora", "converging-dense-seqbn"], "converging-dense"),
    **dict.fromkeys(
        ["converging-teachers-lora", "converging-teachers-lora-de", "converging-teachers-seqbn"], "converging-teachers"
    ),
    **dict.fromkeys(
        ["converging-lora", "converging-lora-de", "converging-seqbn", "converging-best", "converging-stsb"],
        "converging",
    ),
}


@pytest.mark.parametrize(("name", "folder"), sorted(PUBLISHED.items()))
def test_the_published_study_keeps_its_run_ids(name, folder):
    """Options added later stay out of run ids at their defaults, so the committed studies still resume, and
    every run of every published config has its record committed."""
    study = Path(__file__).resolve().parents[1] / "docs" / "results"
    by_id = {record["id"]: record for record in read_index(study / folder)}
    runs = expand(load_config(study / f"{name}.yaml"), study / folder)
    assert runs and [r.id for r in runs if r.id not in by_id] == []

    for run in runs:  # each published record is the run its id names: kind, cell and seed agree
        record = by_id[run.id]
        assert (record["kind"], record["seed"], record["language"]) == (
            run.kind,
            run.spec["seed"],
            run.spec["language"],
        )
        assert (record["model"], record["task"]) == (run.spec["model"], run.spec["task"]["name"])


def test_options_left_out_at_their_default_are_the_published_ones():
    """Derived from the ``LATER`` marker on each field; the lists earlier versions wrote by hand."""
    from peftport.experiments.grid import LATER_OPTIONS, LATER_TRAINING

    published = {
        "matcher": "hungarian", "min_quality": None, "lora_svd": False,
        "recover_steps": 0, "recover_lr": None, "calibrate": True,
    }  # fmt: skip
    assert published.items() <= LATER_OPTIONS.items() and LATER_OPTIONS["min_fidelity"] is None
    assert LATER_TRAINING == {"distill": None, "head_learning_rate": None, "eval_log": None, "precision": "auto"}


def _config(transfers: list[dict]):
    from peftport.experiments.config import ExperimentConfig

    task = {"name": "ner", "kind": "token", "train": "/data/train.conll", "test": "/data/test.conll"}
    return ExperimentConfig(pairs=[{"teacher": "t", "student": "s"}], tasks=[task], transfers=transfers)


def test_a_name_tells_apart_transfers_the_label_would_merge():
    from peftport.errors import PeftportError
    from peftport.experiments.checks import _check_labels

    probes = [{"layer_map": "skip", "align": "correlation", "probe_sentences": n} for n in (100, 3000)]
    with pytest.raises(PeftportError, match=r"share the report label 'skip\+corr\(offsets,input\)'.*a name"):
        _check_labels(_config(probes))
    named = _config([{**t, "name": f"corr p{t['probe_sentences']}"} for t in probes])
    _check_labels(named)
    assert [t.label for t in named.transfers] == ["corr p100", "corr p3000"]


def test_a_name_and_partial_layers_enter_labels_and_ids_only_when_set():
    plain = {"layer_map": "skip", "align": "correlation"}
    config = _config([plain, {**plain, "transfer_layers": "first-half"}, {**plain, "name": "corr"}])
    assert [t.label for t in config.transfers] == [
        "skip+corr(offsets,input)", "skip+corr(offsets,input)+layers(first-half)", "corr"
    ]  # fmt: skip
    runs = [r for r in expand(config, Path("/tmp/out")) if r.kind == "transferred"]
    specs = [r.spec["transfer"] for r in runs]
    assert "transfer_layers" not in specs[0] and "name" not in specs[0]
    assert specs[1]["transfer_layers"] == "first-half" and specs[2]["name"] == "corr"
    assert len({r.id for r in runs}) == 3
