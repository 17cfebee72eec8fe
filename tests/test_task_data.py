"""Task readers (CoNLL, TSV/CSV/JSONL, thresholds), label encoding and metrics; the real shared data (slow)."""

import gzip
import json
from pathlib import Path

import pytest
from transformers import BertTokenizerFast

from peftport.errors import PeftportError
from peftport.tasks.data import TaskConfig, load_task
from peftport.tasks.encoding import IGNORED, encode_tagged
from peftport.tasks.metrics import accuracy, macro_f1, span_f1
from peftport.tasks.readers import TableColumns, read_conll, read_table
from tiny_tokenizers import save_wordpiece

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_conll_with_index_and_gzip(tmp_path):
    path = tmp_path / "ner.conllu.gz"
    path.write_bytes(gzip.compress(b"0\tMarie\tB-PER\n1\tCurie\tI-PER\n\n# c\n0\tParis\tB-LOC\n"))
    sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [["Marie", "Curie"], ["Paris"]]
    assert sentences[0].tags == ["B-PER", "I-PER"] and read_conll(path, 1) == sentences[:1]


def test_tables_with_header_without_header_thresholded_and_jsonl(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("id\tsentence1\tsentence2\tlabel\n1\tA cat.\tThe cat.\t1\n2\tRain.\tSun.\t0\n")
    examples = read_table(tsv, TableColumns("sentence1", "label", "sentence2"))
    assert [(e.text, e.text_pair, e.label) for e in examples] == [("A cat.", "The cat.", "1"), ("Rain.", "Sun.", "0")]
    sts = tmp_path / "sts.tsv"
    sts.write_text("main\tf\t2012\t1\t4.2\tA man.\tA guy.\textra\nmain\tf\t2012\t2\t0.5\tA.\tB.\n")
    labels = [e.label for e in read_table(sts, TableColumns(5, 4, 6, header=False, threshold=3.0))]
    assert labels == ["1", "0"]
    jsonl = tmp_path / "single.jsonl"
    jsonl.write_text(json.dumps({"text": "good film", "y": "pos"}) + "\n" + json.dumps({"text": "bad", "y": "neg"}))
    assert [e.label for e in read_table(jsonl, TableColumns("text", "y"))] == ["pos", "neg"]
    csv_file = tmp_path / "single.csv"
    csv_file.write_text("text,label\nnice one,1\n")
    assert read_table(csv_file, TableColumns("text", "label"))[0].text == "nice one"


def test_table_errors_name_the_problem(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\nx\t1\n")
    with pytest.raises(PeftportError, match="column 'label' not in"):
        read_table(tsv, TableColumns("a", "label"))
    with pytest.raises(PeftportError, match="is not a number"):
        read_table(tsv, TableColumns("b", "a", threshold=2.0))
    with pytest.raises(PeftportError, match="does not exist"):
        read_table(tmp_path / "missing.tsv", TableColumns("a", "b"))
    with pytest.raises(PeftportError, match="line 1 has 2 columns, need 4"):
        read_table(tsv, TableColumns(0, 3, header=False))


def test_labels_go_to_first_subtokens(tmp_path):
    tokenizer = BertTokenizerFast.from_pretrained(str(save_wordpiece(tmp_path, vocab_size=60)))
    config = TaskConfig(name="ner", kind="token", train="x", test="y")
    assert config.metric == "f1"
    from peftport.tasks.readers import TaggedSentence

    sentence = TaggedSentence(["Orchestra", "Paris"], ["B-ORG", "B-LOC"])
    encoded = encode_tagged(sentence, tokenizer, {"B-LOC": 0, "B-ORG": 1}, 32)
    tokens = tokenizer(sentence.tokens, is_split_into_words=True).word_ids()
    assert len(encoded["labels"]) == len(tokens) and len(tokens) > 4, "words split into several sub-tokens"
    firsts = [i for i, w in enumerate(tokens) if w is not None and (i == 0 or tokens[i - 1] != w)]
    assert [encoded["labels"][i] for i in firsts] == [1, 0]
    assert all(label == IGNORED for i, label in enumerate(encoded["labels"]) if i not in firsts)


def test_metrics_against_hand_computed_values():
    assert span_f1([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]]) == pytest.approx(2 / 3)
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert macro_f1([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert macro_f1([0, 1, 2], [0, 0, 0]) == pytest.approx((0.5 + 0 + 0) / 3)
    with pytest.raises(ValueError):
        accuracy([], [])


def test_pair_task_needs_two_text_columns():
    with pytest.raises(ValueError, match="needs columns.text_pair"):
        TaskConfig(name="p", kind="pair", train="a", test="b")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "language", "size"),
    [
        (
            dict(
                name="ner",
                kind="token",
                train="wikineural/{lang}/val.conllu.gz",
                test="wikineural/{lang}/test.conllu.gz",
            ),
            "de",
            9,
        ),
        (
            dict(
                name="paws",
                kind="pair",
                train="pawsx/{lang}/dev.tsv.gz",
                test="pawsx/{lang}/test.tsv.gz",
                columns={"text": "sentence1", "text_pair": "sentence2", "label": "label"},
            ),
            "de",
            2,
        ),
        (
            dict(
                name="xnli",
                kind="pair",
                train="xnli/{lang}/train.tsv.gz",
                test="xnli/{lang}/test.tsv.gz",
                header=False,
                columns={"text": 0, "text_pair": 1, "label": 2},
            ),
            "de",
            3,
        ),
        (
            dict(
                name="sts",
                kind="pair",
                train="stsb/{lang}/train.tsv.gz",
                test="stsb/{lang}/test.tsv.gz",
                header=False,
                threshold=3.0,
                columns={"text": 5, "text_pair": 6, "label": 4},
            ),
            "en",
            2,
        ),
    ],
)
def test_real_shared_data_loads_unchanged(task, language, size):
    config = TaskConfig.model_validate(
        {**task, "train": str(SHARED / task["train"]), "test": str(SHARED / task["test"]), "train_limit": 500}
    )
    data = load_task(config, language)
    assert len(data.train) == 500 and len(data.test) > 200 and len(data.labels) == size
