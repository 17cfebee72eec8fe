"""One probe pass per transfer: a transfer with a CKA layer map, an alignment and a moved head loads each
model once and runs each probe text once through each, with the same statistics as separate passes."""

from __future__ import annotations

import json

import pytest
import torch

from module_factory import make_peft_lora
from peftport.core.layer_maps import LayerMap
from peftport.core.points import FINAL_POINT, ProbePoint
from peftport.errors import PeftportError
from peftport.probing import session as session_module
from peftport.probing.session import ProbePlan, ProbeSession
from peftport.transfers.alignment import compute_alignment, module_points, probe_settings
from peftport.transfers.api import transfer_module
from peftport.transfers.options import transfer_options
from tiny_models import save_tiny_model
from tiny_tokenizers import probe_sentences, save_wordpiece

TEXTS = 150
CKA_TOKENS = 300  # fewer tokens than the texts hold: the CKA phase ends early, so replay and the rest both run


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("session")
    teacher = save_wordpiece(save_tiny_model("bert", 4, root / "teacher", hidden=32, vocab_size=200))
    student = save_wordpiece(save_tiny_model("bert", 2, root / "student", hidden=16, vocab_size=200))
    probe = root / "probe.txt"
    probe.write_text("\n".join(probe_sentences(TEXTS, seed=3)) + "\n")
    module = make_peft_lora(teacher, "bert", root / "lora", slots=["attn_q", "attn_v"])  # SEQ_CLS, with its head
    return {"teacher": str(teacher), "student": str(student), "probe": str(probe), "module": module}


@pytest.fixture(autouse=True)
def short_cka_phase(monkeypatch):
    monkeypatch.setattr(session_module, "CKA_MAX_TOKENS", CKA_TOKENS)


@pytest.fixture
def counted(monkeypatch):
    """Counts model loads per reference and texts run through each loaded model."""
    loads: dict[str, int] = {}
    texts: dict[str, int] = {}
    original = session_module.load_probed

    def load(reference, device):
        loads[reference] = loads.get(reference, 0) + 1
        probed = original(reference, device)

        def count(_module, args, kwargs):
            texts[reference] = texts.get(reference, 0) + kwargs["input_ids"].shape[0]

        probed.model.register_forward_pre_hook(count, with_kwargs=True)
        return probed

    monkeypatch.setattr(session_module, "load_probed", load)
    return loads, texts


def _options(pair, **values):
    return transfer_options(probe_data=pair["probe"], probe_sentences=TEXTS, **values)


def test_cka_align_and_head_load_each_model_once_and_probe_once(pair, counted):
    loads, texts = counted
    options = _options(pair, layer_map="cka", align="correlation", head=True)
    moved = transfer_module(pair["module"], pair["teacher"], pair["student"], options).module
    assert loads == {pair["teacher"]: 1, pair["student"]: 1}
    assert texts == {pair["teacher"]: TEXTS, pair["student"]: TEXTS}
    made = moved.provenance
    assert made["layer_map"]["method"] == "cka" and "similarity" in made["layer_map"]
    assert made["head"]["method"] == "aligned" and made["head"]["tokens"] == made["alignment"]["shared_tokens"]


def test_one_pass_gives_what_separate_passes_give(pair):
    options = _options(pair, layer_map="cka", align="correlation", head=True)
    moved = transfer_module(pair["module"], pair["teacher"], pair["student"], options)
    made = moved.module.provenance
    lmap = LayerMap("cka", tuple(tuple(g) for g in made["layer_map"]["sources"]))
    # separately: the CKA matrix alone, the module's points under the chosen map, and the final layers alone
    cka_only = ProbeSession(pair["teacher"], pair["student"], probe_settings(options)).probe(ProbePlan(None))
    assert cka_only.similarity == made["layer_map"]["similarity"]["matrix"]
    points = module_points(moved.module, "input")
    alone = compute_alignment(pair["teacher"], pair["student"], lmap, points, options)
    for layer in made["alignment"]["layers"]:
        for key, entry in layer["points"].items():
            teacher_layer, point = key.split("/")
            found = alone.get(layer["student_layer"], int(teacher_layer), point)
            assert entry["index"] == found.index.tolist()
            assert entry["mean_matched_correlation"] == pytest.approx(found.quality, abs=1e-5)
    final_map = LayerMap("final", ((), (3,)))
    final = compute_alignment(pair["teacher"], pair["student"], final_map, [FINAL_POINT], options).get(
        1, 3, FINAL_POINT
    )
    assert torch.equal(final.index, moved.final.index)


def test_a_fixed_map_without_head_runs_one_pass_and_no_cka(pair, counted):
    loads, texts = counted
    options = _options(pair, align="projection")
    moved = transfer_module(pair["module"], pair["teacher"], pair["student"], options).module
    assert sum(loads.values()) == 2 and set(texts.values()) == {TEXTS}
    assert "similarity" not in moved.provenance["layer_map"]


def test_a_matching_transfer_loads_no_model(pair, counted, tmp_path):
    loads, _ = counted
    lora = make_peft_lora(pair["teacher"], "bert", tmp_path / "lora", task_model=False)
    transfer_module(lora, pair["teacher"], pair["teacher"], transfer_options(layer_map="identity"))
    assert loads == {}


def test_probe_points_are_typed_and_read_as_their_text():
    point = ProbePoint.parse("adapter_ln:ffn_adapter")
    assert (point.kind, point.slot) == ("adapter_ln", "ffn_adapter") and point == "adapter_ln:ffn_adapter"
    assert json.dumps({point: 1}) == '{"adapter_ln:ffn_adapter": 1}'
    for bad in ("query", "mid:attn_q", "in:"):
        with pytest.raises(PeftportError):
            ProbePoint.parse(bad)
