"""Two real tokenizer types trained locally: WordPiece (bert-style) and a SentencePiece-style BPE (▁)."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertTokenizerFast, PreTrainedTokenizerFast

WORDS = (
    "the a model student teacher learns transfers small large adapter module layer token text paris berlin "
    "river city music train report budget committee rain valley orchestra profit research quickly slowly "
    "approved delayed reported imitates"
).split()


def probe_sentences(count: int = 200, seed: int = 0) -> list[str]:
    """Deterministic pseudo-random sentences over a small vocabulary."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))).capitalize() + "." for _ in range(count)]


def save_wordpiece(directory: Path, vocab_size: int = 160) -> Path:
    """An uncased WordPiece tokenizer with [CLS]/[SEP], saved as a BertTokenizerFast."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        probe_sentences(), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(str(directory))
    return directory


def save_metaspace_bpe(directory: Path, vocab_size: int = 160) -> Path:
    """A cased BPE tokenizer with SentencePiece's ▁ word marks and <s>/</s>."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    tok.train_from_iterator(
        probe_sentences(seed=1), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials)
    )
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    tok.decoder = decoders.Metaspace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    fast.save_pretrained(str(directory))
    return directory
