"""Slow tier: the English PAWS-X and XNLI files of ../shared/data read through the committed experiment's task
config, as they are (TSV with a ``sentence1 sentence2 label`` header, no quoting; PAWS keeps its quote tokens)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from peftport.experiments.config import load_config
from peftport.tasks.data import load_task

pytestmark = pytest.mark.slow
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


@pytest.fixture(scope="module")
def tasks():
    configs = (load_config(RESULTS / f"converging-{name}-en.yaml") for name in ("pawsx", "xnli"))
    return {task.name: task for config in configs for task in config.tasks}


def test_pawsx_en_reads_real_pairs_with_their_quote_tokens(tasks):
    limited = load_task(tasks["pawsx"].model_copy(update={"train_limit": 2000, "test_limit": 250}), "en")
    assert limited.kind == "pair" and limited.labels == ["0", "1"]
    assert len(limited.train) == 2000 and len(limited.test) == 250
    first = limited.train[0]
    assert first.text.startswith("This was a series of nested angular standards")
    assert first.text_pair.startswith("This was a series of nested polar scales") and first.label == "0"
    every = load_task(tasks["pawsx"], "en")  # the grid reads every pair (converging-pawsx-en.yaml)
    assert len(every.train) == 7977 and len(every.test) == 2000
    assert Counter(e.label for e in every.test)["0"] == 1093  # the majority class: 54.7% of the test split
    assert any("''" in e.text or '"' in e.text for e in every.train)  # kept as written: no quoting


def test_xnli_en_reads_three_labels(tasks):
    data = load_task(tasks["xnli"].model_copy(update={"train_limit": None, "test_limit": None}), "en")
    assert data.labels == ["contradiction", "entailment", "neutral"]
    assert len(data.train) == 2239 and len(data.test) == 5010
    assert data.train[0].text == "And he said, Mama, I'm home." and data.train[0].label == "contradiction"
    assert Counter(e.label for e in data.test) == {"contradiction": 1670, "entailment": 1670, "neutral": 1670}
