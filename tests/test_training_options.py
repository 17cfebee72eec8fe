"""Training options on a tiny random model: the task head's own learning rate."""

from __future__ import annotations

import pytest
import torch
from transformers import set_seed

from peftport.architectures.models import describe_model
from peftport.errors import PeftportError
from peftport.experiments.training.options import ModuleConfig, TrainingConfig
from peftport.experiments.training.train import train_module
from peftport.experiments.training.trainable import attach_module, head_names, read_head, task_model, trainable_groups
from peftport.tasks.data import TaskData
from peftport.tasks.readers import TaggedSentence
from tiny_models import save_tiny_model
from tiny_tokenizers import WORDS, save_wordpiece

PLACES = {"paris", "berlin", "valley"}


def _ner(count: int) -> list[TaggedSentence]:
    sentences = []
    for i in range(count):
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(6)]
        sentences.append(TaggedSentence(words, ["B-LOC" if w in PLACES else "O" for w in words]))
    return sentences


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_wordpiece(save_tiny_model("bert", 2, tmp_path_factory.mktemp("bert"), vocab_size=200)))


@pytest.fixture(scope="module")
def data():
    return TaskData("token", ["B-LOC", "O"], _ner(16), _ner(8))


@pytest.mark.parametrize("module", [ModuleConfig(type="lora", r=2), ModuleConfig(type="seq_bn")])
def test_trainable_parameters_split_into_module_and_head(model_dir, data, module):
    built = task_model(model_dir, data)
    heads = head_names(built)
    head_ids = {id(p) for p in built.classifier.parameters()}
    model = attach_module(built, describe_model(model_dir).spec, module)
    body, head = trainable_groups(model, heads)
    assert sorted(tuple(p.shape) for p in head) == [(2,), (2, 32)]  # classifier bias and weight
    assert body and not {id(p) for p in body} & {id(p) for p in head}
    if module.type == "seq_bn":  # AdapterHub trains the head in place; peft trains a copy
        assert {id(p) for p in head} == head_ids


def test_a_frozen_model_has_no_head_group(model_dir, data):
    model = task_model(model_dir, data)
    for param in model.parameters():
        param.requires_grad = False
    with pytest.raises(PeftportError, match="task head"):
        trainable_groups(model, head_names(model))


def test_head_learning_rate_moves_the_head_further(model_dir, data, tmp_path):
    set_seed(0)
    start = {k: v.clone() for k, v in task_model(model_dir, data).classifier.state_dict().items()}

    def moved(head_lr: float | None) -> float:
        training = TrainingConfig(learning_rate=1e-4, head_learning_rate=head_lr, batch_size=4, max_steps=3)
        out = tmp_path / str(head_lr)
        train_module(model_dir, data, ModuleConfig(type="lora", r=2), training, seed=0, out=out)
        head = read_head(out)
        return float(torch.linalg.norm(head["classifier.weight"] - start["weight"]))

    assert moved(1e-1) > 10 * moved(None)


@pytest.mark.parametrize(
    ("eval_every", "expected"),
    [(None, [0, 1, 2, 5, 10]), (4, [0, 1, 2, 4, 5, 8, 10])],
)
def test_eval_log_evaluates_at_doubling_steps(model_dir, data, tmp_path, eval_every, expected):
    training = TrainingConfig(learning_rate=1e-3, batch_size=4, max_steps=10, eval_log=5, eval_every=eval_every)
    result = train_module(model_dir, data, ModuleConfig(type="lora", r=2), training, seed=0, out=tmp_path)
    assert [point["step"] for point in result.curve] == expected
    assert all("f1" in point for point in result.curve)


def test_eval_log_leaves_run_ids_of_earlier_grids_alone():
    from peftport.experiments.grid import _training_spec

    plain = TrainingConfig(max_steps=10)
    assert "eval_log" not in _training_spec(plain)
    assert _training_spec(TrainingConfig(max_steps=10, eval_log=8))["eval_log"] == 8
    with pytest.raises(ValueError, match="greater than 1"):
        TrainingConfig(eval_log=1)


def test_precision_bf16_trains_under_autocast_and_is_recorded(model_dir, data, tmp_path):
    training = TrainingConfig(learning_rate=1e-3, batch_size=4, max_steps=2, precision="bf16")
    result = train_module(model_dir, data, ModuleConfig(type="lora", r=2), training, seed=0, out=tmp_path / "bf16")
    assert result.precision == "bf16"
    assert result.steps == 2
    plain = TrainingConfig(learning_rate=1e-3, batch_size=4, max_steps=2)
    result = train_module(model_dir, data, ModuleConfig(type="lora", r=2), plain, seed=0, out=tmp_path / "auto")
    if not torch.cuda.is_available():  # auto is fp32 on a CPU, bf16 or fp16 on a GPU
        assert result.precision == "fp32"


def test_precision_enters_run_ids_only_when_set():
    from peftport.experiments.grid import _training_spec

    assert "precision" not in _training_spec(TrainingConfig(max_steps=10))
    assert _training_spec(TrainingConfig(max_steps=10, precision="bf16"))["precision"] == "bf16"
    with pytest.raises(ValueError, match="'auto', 'fp32' or 'bf16'"):
        TrainingConfig(precision="fp8")
