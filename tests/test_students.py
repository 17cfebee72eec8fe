"""Layer-reduced students: keeping every layer reproduces the teacher; keeping some shortens it."""

import pytest
import torch
from transformers import AutoModel

from peftport.errors import LayerMapError
from peftport.zoo.students import make_layer_reduced
from tiny_models import input_ids


def _hidden(model_dir):
    with torch.no_grad():
        return AutoModel.from_pretrained(str(model_dir)).eval()(input_ids=input_ids()).last_hidden_state


@pytest.mark.parametrize("family", ["bert", "distilbert", "mpnet"])
def test_keep_all_layers_is_the_same_model(family, tiny_model, tmp_path):
    teacher = tiny_model(family, 3)
    student = make_layer_reduced(teacher, [0, 1, 2], tmp_path / "copy")
    torch.testing.assert_close(_hidden(student), _hidden(teacher))


def test_keep_some_layers(tiny_model, tmp_path):
    teacher = tiny_model("bert", 4)
    student = make_layer_reduced(teacher, [0, 2], tmp_path / "half")
    model = AutoModel.from_pretrained(str(student))
    original = AutoModel.from_pretrained(str(teacher))
    assert model.config.num_hidden_layers == 2 and len(model.encoder.layer) == 2
    assert torch.equal(
        model.encoder.layer[1].attention.self.query.weight, original.encoder.layer[2].attention.self.query.weight
    )
    with pytest.raises(LayerMapError, match=r"cannot keep layers \[0, 9\]"):
        make_layer_reduced(teacher, [0, 9], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
