"""Ridge maps between hidden spaces and uniform selection: pure functions on synthetic tensors."""

from __future__ import annotations

import pytest
import torch

from peftport.core.alignment import PointAlignment
from peftport.core.projection import MomentAccumulator, calibration_gain, fit_map, relative_update
from peftport.core.selection import uniform_block_index, uniform_index
from peftport.errors import ShapeMismatchError


def _stream(student: torch.Tensor, teacher: torch.Tensor, batch: int = 37) -> MomentAccumulator:
    accumulator = MomentAccumulator(student.shape[1], teacher.shape[1])
    for start in range(0, student.shape[0], batch):
        accumulator.update(student[start : start + batch], teacher[start : start + batch])
    return accumulator


@pytest.mark.parametrize(("d_s", "d_t"), [(6, 10), (8, 8), (10, 6)])
def test_a_known_linear_map_is_recovered_in_both_directions(d_s, d_t):
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(600, d_s, generator=generator, dtype=torch.float64) + 0.5
    lift = torch.randn(d_t, d_s, generator=generator, dtype=torch.float64)
    teacher = student @ lift.T
    accumulator = _stream(student, teacher)
    assert accumulator.count == 600 and accumulator.held_out.count == 120  # every fifth token held out
    to_teacher = fit_map(accumulator, "teacher")
    assert to_teacher.matrix.shape == (d_t, d_s)
    torch.testing.assert_close(to_teacher.matrix, lift, atol=1e-5, rtol=1e-5)
    assert to_teacher.r2 == pytest.approx(1.0, abs=1e-6)
    to_student = fit_map(accumulator, "student")
    assert to_student.matrix.shape == (d_s, d_t)
    recovered = teacher @ to_student.matrix.T
    if d_t >= d_s:  # the student is a function of the teacher exactly when the map is injective
        torch.testing.assert_close(recovered, student, atol=1e-4, rtol=1e-4)
        assert to_student.r2 == pytest.approx(1.0, abs=1e-5)
    else:
        assert to_student.r2 < 0.99


def test_noise_lowers_the_held_out_fit_and_raises_the_chosen_ridge():
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(80, 12, generator=generator, dtype=torch.float64)
    lift = torch.randn(12, 12, generator=generator, dtype=torch.float64)
    clean = fit_map(_stream(student, student @ lift.T), "teacher")
    noisy_teacher = student @ lift.T + 3.0 * torch.randn(80, 12, generator=generator, dtype=torch.float64)
    noisy = fit_map(_stream(student, noisy_teacher), "teacher")
    assert clean.r2 > 0.999 and noisy.r2 < 0.7
    assert noisy.ridge > clean.ridge


def test_a_constant_dimension_does_not_break_the_solve():
    student = torch.randn(200, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    student[:, 2] = 0.0
    fitted = fit_map(_stream(student, student[:, :3] * 2), "teacher")
    assert torch.isfinite(fitted.matrix).all()
    torch.testing.assert_close(fitted.matrix[:, [0, 1]], 2 * torch.eye(3, dtype=torch.float64)[:, [0, 1]])


def test_fit_needs_tokens_and_a_known_side():
    accumulator = MomentAccumulator(2, 2)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        fit_map(accumulator, "teacher")
    accumulator.update(torch.randn(10, 2), torch.randn(10, 2))
    with pytest.raises(ValueError, match="target must be"):
        fit_map(accumulator, "both")
    with pytest.raises(ValueError, match="token counts differ"):
        accumulator.update(torch.randn(3, 2), torch.randn(4, 2))


def test_a_fitted_point_reads_through_the_transposed_lift_and_writes_through_the_projection():
    lift, projection = torch.randn(5, 3), torch.randn(3, 5)
    point = PointAlignment(torch.zeros(3, dtype=torch.long), 10, 0.9, 0.8, projection, lift)
    assert torch.equal(point.input_matrix(5), lift.T) and torch.equal(point.matrix(5), projection)
    selection = PointAlignment(torch.tensor([4, 0, 2]), 10, 0.9, 0.9)
    assert torch.equal(selection.input_matrix(5), selection.matrix(5))


@pytest.mark.parametrize(
    ("teacher", "student", "expected"),
    [(8, 4, [0, 2, 5, 7]), (768, 384, None), (5, 5, [0, 1, 2, 3, 4]), (7, 1, [0])],
)
def test_uniform_index_spreads_evenly_and_keeps_the_ends(teacher, student, expected):
    index = uniform_index(teacher, student)
    assert len(index) == student and len(set(index.tolist())) == student
    assert index.tolist() == sorted(index.tolist()) and int(index.max()) < teacher
    if expected is not None:
        assert index.tolist() == expected
    else:
        assert index[0] == 0 and index[-1] == teacher - 1 and set((index[1:] - index[:-1]).tolist()) <= {2, 3}


def test_uniform_selection_refuses_a_wider_student_and_keeps_whole_heads():
    with pytest.raises(ShapeMismatchError, match="no wider than the teacher"):
        uniform_index(4, 6)
    assert uniform_block_index(12, 6, 3).tolist() == [0, 1, 2, 9, 10, 11]
    with pytest.raises(ShapeMismatchError, match="whole heads"):
        uniform_block_index(12, 5, 3)


def test_relative_update_and_calibration_give_the_student_the_teachers_relative_size():
    generator = torch.Generator().manual_seed(3)
    a_t, b_t = torch.randn(4, 10, generator=generator), torch.randn(12, 4, generator=generator)
    a_s, b_s = torch.randn(4, 6, generator=generator), torch.randn(7, 4, generator=generator) * 30
    gram = lambda d: (lambda x: x.T @ x / 50)(torch.randn(50, d, generator=generator, dtype=torch.float64))  # noqa: E731
    t_in, t_out, s_in, s_out = gram(10), gram(12), gram(6), gram(7)
    x = torch.randn(200, 10, generator=generator, dtype=torch.float64)
    direct = ((x @ (b_t @ a_t).double().T) ** 2).sum(1).mean() / torch.trace(t_out)
    assert relative_update(a_t, b_t, x.T @ x / 200, t_out) == pytest.approx(float(direct))
    teacher, student = relative_update(a_t, b_t, t_in, t_out), relative_update(a_s, b_s, s_in, s_out)
    gain = calibration_gain(teacher, student)
    assert gain < 1 and relative_update(a_s, b_s * gain, s_in, s_out) == pytest.approx(teacher)
    assert calibration_gain(0.0, student) == 1.0 and calibration_gain(teacher, float("nan")) == 1.0


def test_a_rarely_visited_direction_gets_a_ridge_that_keeps_the_map_small():
    """A student dimension that barely varies but carries a sliver of the teacher's signal: the lowest held-out
    error sits at a tiny ridge with a large map (a big coefficient on the rare direction); the chosen ridge fits
    within 1% of it with a far smaller map, the failure a mapped head trained to F1 0 on (mpnet -> MiniLM-L3)."""
    from peftport.core.projection import RIDGE_GRID, RIDGE_TOLERANCE, _r2, _sides, _solve

    generator = torch.Generator().manual_seed(3)
    base = torch.randn(4000, 6, generator=generator, dtype=torch.float64)
    rare = 1e-3 * torch.randn(4000, 1, generator=generator, dtype=torch.float64)
    student = torch.cat([base, rare], 1)
    lift = torch.randn(8, 6, generator=generator, dtype=torch.float64)
    signal = torch.randn(1, 8, generator=generator, dtype=torch.float64)
    teacher = (
        base @ lift.T + 0.05 * (rare / 1e-3) @ signal + torch.randn(4000, 8, generator=generator, dtype=torch.float64)
    )
    accumulator = _stream(student, teacher)
    xx, xy, _, _ = _sides(accumulator.fit, "teacher")
    scores = {ridge: _r2(_solve(xx, xy, ridge), accumulator.held_out, "teacher") for ridge in RIDGE_GRID}
    lowest_error = max(scores, key=scores.get)
    fitted = fit_map(accumulator, "teacher")
    assert fitted.ridge > lowest_error
    assert 1 - fitted.r2 <= (1 + RIDGE_TOLERANCE) * (1 - scores[lowest_error]) + 1e-12
    assert float(_solve(xx, xy, lowest_error).norm()) > 5 * float(fitted.matrix.norm())
