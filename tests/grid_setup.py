"""A tiny experiment setting shared by the grid tests: random models, CoNLL and paraphrase data, and helpers
that write experiment files (JSON, which is YAML). The ``grid`` fixture (conftest) builds it once per module."""

from __future__ import annotations

import json
import random

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


def make_grid_setting(tmp_path_factory):
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


def pair_of(models, teacher="teacher", student="student"):
    """The experiment's one pair, from the fixture's tiny models."""
    return [{"teacher": str(models[teacher]), "student": str(models[student])}]


def write_experiment(root, name, **fields):
    path = root / f"{name}.yaml"
    path.write_text(json.dumps({"name": name, "training": TRAINING, **fields}))  # JSON is YAML
    return path
