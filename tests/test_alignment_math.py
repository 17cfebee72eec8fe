"""Correlation, assignment and pruning: synthetic data with known answers, and the reference algorithm."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.feature_selection import r_regression

from peftport.core.assignment import NAN_SCORE, assign
from peftport.core.correlation import CorrelationAccumulator
from peftport.core.pruning import prune_roles
from peftport.errors import ShapeMismatchError


def _reference(teacher: np.ndarray, student: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference implementation: r_regression per student dimension, then Hungarian on -C."""
    corr = np.stack([r_regression(teacher, student[:, i]) for i in range(student.shape[1])])
    rows, cols = linear_sum_assignment(-corr)
    return corr, cols[np.argsort(rows)]


def _correlate(student: torch.Tensor, teacher: torch.Tensor, batch: int) -> CorrelationAccumulator:
    acc = CorrelationAccumulator(student.shape[1], teacher.shape[1])
    for start in range(0, student.shape[0], batch):
        acc.update(student[start : start + batch], teacher[start : start + batch])
    return acc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_reference_correlation_and_assignment(seed):
    generator = torch.Generator().manual_seed(seed)
    teacher = torch.randn(500, 40, generator=generator, dtype=torch.float64)
    student = teacher[:, :24] @ torch.randn(24, 24, generator=generator, dtype=torch.float64) * 0.3
    student += torch.randn(500, 24, generator=generator, dtype=torch.float64)
    corr = _correlate(student, teacher, batch=37).pearson()
    ref_corr, ref_index = _reference(teacher.numpy(), student.numpy())
    np.testing.assert_allclose(corr.numpy(), ref_corr, atol=1e-10)
    assert assign(corr).index.tolist() == ref_index.tolist()


def test_streaming_equals_one_batch_and_float32_inputs():
    generator = torch.Generator().manual_seed(3)
    teacher = torch.randn(300, 16, generator=generator) * 50 + 1000  # large offsets stress the running sums
    student = teacher[:, :8] + torch.randn(300, 8, generator=generator)
    one = _correlate(student, teacher, batch=300).pearson()
    many = _correlate(student, teacher, batch=7).pearson()
    torch.testing.assert_close(one, many, rtol=0, atol=1e-9)
    ref = np.corrcoef(student.double().numpy().T, teacher.double().numpy().T)[:8, 8:]
    np.testing.assert_allclose(one.numpy(), ref, atol=1e-9)


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.5])
def test_recovers_a_known_permutation_with_scaling_and_noise(noise):
    generator = torch.Generator().manual_seed(4)
    teacher = torch.randn(2000, 64, generator=generator)
    chosen = torch.randperm(64, generator=generator)[:48]
    scale = torch.rand(48, generator=generator) * 4 + 0.1
    student = teacher[:, chosen] * scale + noise * torch.randn(2000, 48, generator=generator)
    result = assign(_correlate(student, teacher, batch=128).pearson())
    assert torch.equal(result.index, chosen)
    assert result.mean_matched == pytest.approx(result.mean_best)
    assert result.mean_matched > (0.99 if noise == 0 else 0.85)


def test_constant_dimensions_and_ties_still_give_distinct_indices():
    generator = torch.Generator().manual_seed(5)
    base = torch.randn(200, 3, generator=generator)
    teacher = torch.cat([base, base[:, :1], torch.ones(200, 1)], dim=1)  # column 3 ties column 0; 4 is constant
    student = torch.cat([base[:, :1] * 2, torch.zeros(200, 1), base[:, 2:3]], dim=1)  # student dim 1 is constant
    corr = _correlate(student, teacher, batch=50).pearson()
    assert torch.isnan(corr[1]).all() and torch.isnan(corr[:, 4]).all()
    result = assign(corr)
    assert len(set(result.index.tolist())) == 3
    assert result.index[0] in (0, 3) and result.index[2] == 2
    assert result.mean_matched == pytest.approx(1.0)
    assert NAN_SCORE < -1


def test_student_wider_than_teacher_is_refused():
    with pytest.raises(ShapeMismatchError, match=r"the student is wider \(5\) than the teacher \(3\)"):
        assign(torch.zeros(5, 3))


def test_too_few_tokens():
    acc = CorrelationAccumulator(2, 2)
    acc.update(torch.ones(1, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="at least 2 tokens"):
        acc.pearson()


def test_prune_roles_keeps_the_named_rows_and_columns():
    roles = {
        "lora_A": torch.arange(12.0).reshape(2, 6),
        "lora_B": torch.arange(12.0).reshape(6, 2),
        "down.weight": torch.arange(18.0).reshape(3, 6),
        "down.bias": torch.arange(3.0),
        "up.weight": torch.arange(18.0).reshape(6, 3),
        "up.bias": torch.arange(6.0),
        "norm_before.weight": torch.arange(6.0),
        "gate.weight": torch.arange(6.0).reshape(1, 6),
        "gate.bias": torch.ones(1),
    }
    index_in, index_out = torch.tensor([5, 0, 2]), torch.tensor([1, 3, 4])
    pruned = prune_roles(roles, index_in, index_out)
    assert torch.equal(pruned["lora_A"], roles["lora_A"][:, [5, 0, 2]])
    assert torch.equal(pruned["lora_B"], roles["lora_B"][[1, 3, 4], :])
    assert torch.equal(pruned["down.weight"], roles["down.weight"][:, [5, 0, 2]])
    assert torch.equal(pruned["down.bias"], roles["down.bias"])
    assert torch.equal(pruned["up.weight"], roles["up.weight"][[1, 3, 4]])
    assert torch.equal(pruned["up.bias"], torch.tensor([1.0, 3.0, 4.0]))
    assert torch.equal(pruned["norm_before.weight"], torch.tensor([5.0, 0.0, 2.0]))
    assert torch.equal(pruned["gate.weight"], roles["gate.weight"][:, [5, 0, 2]])
    assert torch.equal(pruned["gate.bias"], roles["gate.bias"])


def test_linear_cka_invariances_and_unrelated_data():
    from peftport.core.similarity import linear_cka

    generator = torch.Generator().manual_seed(6)
    x = torch.randn(400, 12, generator=generator, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(12, 12, generator=generator, dtype=torch.float64))
    assert linear_cka(x, x @ rotation * 5.0) == pytest.approx(1.0)
    assert linear_cka(x, torch.cat([x, x[:, :3]], dim=1)) > 0.9, "widths may differ"
    assert linear_cka(x, torch.randn(400, 7, generator=generator, dtype=torch.float64)) < 0.1
    with pytest.raises(ValueError, match="same items"):
        linear_cka(x, x[:10])
