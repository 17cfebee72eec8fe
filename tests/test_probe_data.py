"""Probe texts from text, CoNLL and TSV files (gzip too), and from the real shared task data (slow)."""

import gzip
import sys
from pathlib import Path

import pytest

from peftport.errors import PeftportError
from peftport.probing.texts import read_probe_texts

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_plain_text_one_per_line(tmp_path):
    path = tmp_path / "probe.txt"
    path.write_text("First sentence here.\n\n  Second one.  \nThird.\n")
    assert read_probe_texts(path, 10) == ["First sentence here.", "Second one.", "Third."]
    assert read_probe_texts(path, 2) == ["First sentence here.", "Second one."]


def test_conll_with_and_without_index_gzipped(tmp_path):
    indexed = tmp_path / "ner.conllu.gz"
    indexed.write_bytes(gzip.compress(b"0\tMarie\tB-PER\n1\tCurie\tI-PER\n\n0\tParis\tB-LOC\n1\t.\tO\n"))
    assert read_probe_texts(indexed, 10) == ["Marie Curie", "Paris ."]
    plain = tmp_path / "ner.conll"
    plain.write_text("# comment\nEU B-ORG\nrejects O\n\nGerman B-MISC\n")
    assert read_probe_texts(plain, 10) == ["EU rejects", "German"]


def test_tsv_takes_sentence_cells_only(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text(
        "id\tsentence1\tsentence2\tlabel\n1\tA cat sat.\tThe cat sat down.\t1\n2\tIt rains.\tIt pours.\t0\n"
    )
    assert read_probe_texts(path, 10) == ["A cat sat.", "The cat sat down.", "It rains.", "It pours."]


def test_bad_probe_sources(tmp_path):
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(PeftportError, match="holds no texts"):
        read_probe_texts(tmp_path / "empty.txt", 10)
    with pytest.raises(PeftportError, match="does not exist"):
        read_probe_texts(tmp_path / "missing.tsv", 10)
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PeftportError, match=r"not \(gzipped\) UTF-8"):
        read_probe_texts(tmp_path / "binary.txt", 10)


class _FakeDatasets:
    """Stands in for the ``datasets`` package (not installed here, and the hub is offline)."""

    def __init__(self):
        self.calls = []

    def load_dataset(self, path, config, split):
        self.calls.append((path, config, split))
        if path == "offline/none":
            raise ConnectionError("Couldn't reach 'offline/none' on the Hub (LocalEntryNotFoundError)")
        return _FakeSplit()


class _FakeSplit:
    features = {"id": type("F", (), {"dtype": "int64"})(), "text": type("F", (), {"dtype": "string"})()}

    def __iter__(self):
        return iter([{"id": 1, "text": "One text."}, {"id": 2, "text": "Two."}])


def test_hub_dataset_names_take_a_config_and_fail_in_one_line(monkeypatch):
    fake = _FakeDatasets()
    monkeypatch.setitem(sys.modules, "datasets", fake)
    assert read_probe_texts("glue:mrpc", 5) == ["One text.", "Two."]
    assert fake.calls == [("glue", "mrpc", "train[:5]")]
    with pytest.raises(PeftportError, match="cannot load dataset 'offline/none': Couldn't reach") as caught:
        read_probe_texts("offline/none", 5)
    assert "\n" not in str(caught.value)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(PeftportError, match="pip install datasets"):
        read_probe_texts("some/dataset", 5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "relative",
    [
        "wikineural/en/val.conllu.gz",
        "wikineural/de/test.conllu.gz",
        "pawsx/de/dev.tsv.gz",
        "xnli/de/train.tsv.gz",
        "stsb/en/train.tsv.gz",
    ],
)
def test_real_shared_data(relative):
    path = SHARED / relative
    if not path.is_file():
        pytest.fail(f"shared data missing: {path} (the checkout needs ../shared beside it)")
    texts = read_probe_texts(path, 1000)
    assert len(texts) == 1000
    assert all(" " in t for t in texts[:50]), texts[:3]
    assert not any(t.replace(".", "").isdigit() for t in texts)
