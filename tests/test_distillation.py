"""Logit distillation: the loss, word-level matching across tokenizers, and the collator."""

from __future__ import annotations

import pytest
import torch

from peftport.experiments.training.distillation import (
    TEACHER_COUNTS,
    TEACHER_LOGITS,
    DistillConfig,
    TeacherCollator,
    distillation_loss,
    labelled_logits,
    split_rows,
)
from peftport.tasks.encoding import IGNORED


def test_labelled_logits_keep_first_sub_tokens_in_order():
    logits = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    labels = torch.tensor([[IGNORED, 1, IGNORED, 0], [IGNORED, 2, 2, IGNORED]])
    rows = labelled_logits(logits, labels)
    assert [r.shape for r in rows] == [(2, 3), (2, 3)]
    assert torch.equal(rows[0], logits[0, [1, 3]]) and torch.equal(rows[1], logits[1, [1, 2]])
    sentence = labelled_logits(torch.randn(2, 3), torch.tensor([0, 1]))
    assert [r.shape for r in sentence] == [(1, 3), (1, 3)]


def test_distillation_loss_is_zero_on_agreement_and_grows_with_disagreement():
    generator = torch.Generator().manual_seed(0)
    teacher = [torch.randn(3, 5, generator=generator), torch.randn(2, 5, generator=generator)]
    assert distillation_loss([t.clone() for t in teacher], teacher, 2.0) == pytest.approx(0.0, abs=1e-6)
    near = [t + 0.1 * torch.randn(t.shape, generator=generator) for t in teacher]
    far = [-t for t in teacher]
    assert 0 < distillation_loss(near, teacher, 2.0) < distillation_loss(far, teacher, 2.0)
    # a student that kept fewer words (truncation) is compared on the words both kept
    short = [teacher[0][:2].clone(), teacher[1].clone()]
    assert distillation_loss(short, teacher, 2.0) == pytest.approx(0.0, abs=1e-6)


def test_distillation_loss_has_gradients_for_the_student():
    student = [torch.zeros(2, 3, requires_grad=True)]
    loss = distillation_loss(student, [torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 4.0]])], 1.0)
    loss.backward()
    assert student[0].grad is not None and student[0].grad.abs().sum() > 0


def test_collator_carries_teacher_logits_beside_the_padded_batch():
    def base(features):
        return {"labels": torch.tensor([f["labels"] for f in features])}

    features = [{"labels": 0, TEACHER_LOGITS: torch.ones(1, 2)}, {"labels": 1, TEACHER_LOGITS: torch.zeros(1, 2)}]
    batch = TeacherCollator(base)(features)
    assert batch[TEACHER_LOGITS].shape == (2, 2) and batch[TEACHER_COUNTS].tolist() == [1, 1]
    assert [r.tolist() for r in split_rows(batch[TEACHER_LOGITS], batch[TEACHER_COUNTS])] == [[[1, 1]], [[0, 0]]]
    assert TEACHER_LOGITS in features[0]  # the dataset keeps them for the next epoch
    assert TEACHER_LOGITS not in TeacherCollator(base)([{"labels": 0}])  # evaluation batches have none


def test_distill_settings_are_validated():
    with pytest.raises(ValueError, match="weight"):
        DistillConfig(weight=0)
    with pytest.raises(ValueError, match="temperature"):
        DistillConfig(temperature=-1)
