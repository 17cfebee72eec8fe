"""Token matching across two real tokenizer types (WordPiece vs SentencePiece-style BPE), built locally."""

import pytest
from transformers import AutoTokenizer

from peftport.probing.tokens import match_by_offsets, match_by_strings, normalise_subword
from tiny_tokenizers import save_metaspace_bpe, save_wordpiece

TEXT = "The teacher transfers a small adapter to Paris quickly."


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizers")
    wordpiece = AutoTokenizer.from_pretrained(str(save_wordpiece(root / "wp")))
    bpe = AutoTokenizer.from_pretrained(str(save_metaspace_bpe(root / "bpe")))
    return wordpiece, bpe


def _encode(tokenizer, text):
    return tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)


def test_offsets_match_tokens_at_different_positions(tokenizers):
    wordpiece, bpe = tokenizers
    t, s = _encode(wordpiece, TEXT), _encode(bpe, TEXT)
    match = match_by_offsets(TEXT, t, s)
    t_tokens, s_tokens = wordpiece.convert_ids_to_tokens(t["input_ids"]), bpe.convert_ids_to_tokens(s["input_ids"])
    pairs = [(t_tokens[i], s_tokens[j]) for i, j in zip(match.teacher, match.student, strict=True)]
    assert ("teacher", "▁teacher") in pairs and ("quickly", "▁quickly") in pairs
    assert any(i != j for i, j in zip(match.teacher, match.student, strict=True)), "positions diverge"
    for i, j in zip(match.teacher, match.student, strict=True):
        assert TEXT[t["offset_mapping"][i][0] : t["offset_mapping"][i][1]].strip().lower() == (
            TEXT[s["offset_mapping"][j][0] : s["offset_mapping"][j][1]].strip().lower()
        )
    assert not set(match.teacher) & {0, len(t_tokens) - 1}, "special tokens never match"


def test_strings_need_the_same_position(tokenizers):
    wordpiece, bpe = tokenizers
    t_tokens = wordpiece.convert_ids_to_tokens(wordpiece(TEXT)["input_ids"])
    s_tokens = bpe.convert_ids_to_tokens(bpe(TEXT)["input_ids"])
    offsets = match_by_offsets(TEXT, _encode(wordpiece, TEXT), _encode(bpe, TEXT))
    strings = match_by_strings(t_tokens, s_tokens)
    assert len(strings.teacher) < len(offsets.teacher)
    assert strings.teacher == strings.student


def test_strings_mode_on_identical_tokenizers_matches_every_position(tokenizers):
    wordpiece, _ = tokenizers
    tokens = wordpiece.convert_ids_to_tokens(wordpiece(TEXT)["input_ids"])
    assert match_by_strings(tokens, tokens).teacher == list(range(len(tokens)))


def test_normalisation_of_word_marks():
    # as in the reference, a ▁-side token without the mark is a continuation, so [CLS] becomes ##[CLS]
    assert match_by_strings(["[CLS]", "paris", "##ian"], ["[CLS]", "▁paris", "ian"]).teacher == [1, 2]
    assert normalise_subword("Ġcity", True) == "city"
