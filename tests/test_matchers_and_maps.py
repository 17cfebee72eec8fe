"""Pure functions beyond the paper: monotone layer maps, CKA, Procrustes, Sinkhorn, head blocks, SVD re-factoring."""

from __future__ import annotations

import itertools

import pytest
import torch

from peftport.core.layer_maps import monotone_map
from peftport.core.lowrank import lora_update, refactor
from peftport.core.matchers import block_match, get_matcher, hungarian, one_hot, procrustes, sinkhorn, sinkhorn_plan
from peftport.core.pruning import project_roles, prune_roles
from peftport.core.similarity import linear_cka
from peftport.errors import LayerMapError, PeftportError


def _brute_force(similarity):
    students, teachers = len(similarity), len(similarity[0])
    return max(
        itertools.combinations(range(teachers), students),
        key=lambda combo: sum(similarity[i][t] for i, t in enumerate(combo)),
    )


@pytest.mark.parametrize("seed", range(6))
def test_monotone_map_finds_the_best_order_preserving_map(seed):
    generator = torch.Generator().manual_seed(seed)
    students, teachers = 2 + seed % 3, 6 + seed % 4
    similarity = torch.rand(students, teachers, generator=generator).tolist()
    chosen = tuple(group[0] for group in monotone_map(similarity).sources)
    assert chosen == _brute_force(similarity)
    assert all(a < b for a, b in itertools.pairwise(chosen))


def test_monotone_map_prefers_order_over_greedy_choices():
    # greedy per row would take teacher 2 twice; the best monotone map is 1, 2 (total 1.7) over 2, 3 (1.0)
    similarity = [[0.1, 0.8, 0.9, 0.0], [0.0, 0.1, 0.9, 0.1]]
    assert monotone_map(similarity).describe() == "1,2"
    assert monotone_map(similarity).method == "cka"


@pytest.mark.parametrize(
    ("similarity", "message"),
    [
        ([[0.1], [0.2]], "no monotone map puts 2 student layers on 1 teacher layers"),
        ([[0.1, float("nan")]], "is NaN"),
        ([[0.1, 0.2], [0.3]], "rows of different lengths"),
    ],
)
def test_monotone_map_rejects_impossible_input(similarity, message):
    with pytest.raises(LayerMapError, match=message):
        monotone_map(similarity)


def test_cka_invariances():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 12, generator=generator, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(12, 12, generator=generator, dtype=torch.float64))[0]
    assert linear_cka(x, x @ rotation) == pytest.approx(1.0)
    assert linear_cka(x, 7.5 * x + 3.0) == pytest.approx(1.0)
    y = torch.randn(400, 8, generator=generator, dtype=torch.float64)
    unrelated = linear_cka(x, y)
    assert unrelated < 0.2
    partly = x[:, :8] + 0.5 * y
    assert unrelated < linear_cka(x, partly) < 1.0
    assert linear_cka(x, torch.ones(400, 3, dtype=torch.float64)) != linear_cka(x, x)  # constant: NaN, no error


def test_procrustes_recovers_a_known_rotation():
    generator = torch.Generator().manual_seed(1)
    teacher = torch.randn(2000, 6, generator=generator, dtype=torch.float64)
    teacher = (teacher - teacher.mean(0)) / teacher.std(0)
    rotation = torch.linalg.qr(torch.randn(6, 6, generator=generator, dtype=torch.float64))[0]
    student = teacher @ rotation.T  # student = rotation @ teacher per token
    correlation = (student.T @ teacher) / (len(teacher) - 1)
    match = procrustes(correlation)
    assert torch.allclose(match.projection, rotation, atol=0.05)
    assert torch.allclose(match.projection @ match.projection.T, torch.eye(6, dtype=torch.float64), atol=1e-9)


def test_procrustes_of_a_permutation_is_that_permutation():
    permutation = torch.tensor([3, 0, 4])
    correlation = one_hot(permutation, 5) * 0.9 + 0.01
    assert torch.equal(procrustes(correlation).index, permutation)
    assert torch.equal(hungarian(correlation).index, permutation)


def test_sinkhorn_plan_is_doubly_stochastic_and_sharpens_to_the_permutation():
    generator = torch.Generator().manual_seed(2)
    scores = torch.rand(4, 6, generator=generator, dtype=torch.float64)
    square = sinkhorn_plan(scores[:, :4], temperature=0.1)
    assert torch.allclose(square.sum(1), torch.ones(4, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(square.sum(0), torch.ones(4, dtype=torch.float64), atol=1e-6)
    plan = sinkhorn_plan(scores, temperature=0.1)  # rectangular: each teacher dimension used at most once
    assert torch.allclose(plan.sum(1), torch.ones(4, dtype=torch.float64), atol=1e-6)
    assert (plan.sum(0) <= 1 + 1e-6).all() and plan.sum() == pytest.approx(4)
    clear = one_hot(torch.tensor([5, 2, 0, 3]), 6) * 0.8 + 0.05 * scores
    sharp = sinkhorn(clear)
    assert torch.equal(sharp.index, hungarian(clear).index)
    assert sharp.projection.max(1).values.min() > 0.99  # near one-hot at the default temperature


def test_matchers_reject_bad_input():
    with pytest.raises(PeftportError, match="unknown matcher 'greedy'"):
        get_matcher("greedy")
    with pytest.raises(PeftportError, match="student is wider"):
        procrustes(torch.rand(5, 3))
    with pytest.raises(PeftportError, match="temperature must be positive"):
        sinkhorn_plan(torch.rand(2, 3), temperature=0)


def test_block_match_keeps_heads_together():
    generator = torch.Generator().manual_seed(3)
    # teacher 3 heads x 4 dims; student 2 heads: student head 0 = teacher head 2, student head 1 = teacher head 0
    correlation = 0.05 * torch.rand(8, 12, generator=generator, dtype=torch.float64)
    for s_head, t_head in ((0, 2), (1, 0)):
        for d in range(4):
            correlation[s_head * 4 + d, t_head * 4 + d] = 0.9
    correlation[0, 5] = 0.99  # one strong single dimension elsewhere must not split a head
    match = block_match(correlation, 4, hungarian)
    assert match.index.tolist() == [8, 9, 10, 11, 0, 1, 2, 3]
    with pytest.raises(PeftportError, match="whole numbers of 4-dimension heads"):
        block_match(torch.rand(6, 12), 4, hungarian)


def test_projection_with_a_selection_equals_pruning():
    generator = torch.Generator().manual_seed(4)
    roles = {
        "down.weight": torch.randn(3, 6, generator=generator),
        "up.weight": torch.randn(6, 3, generator=generator),
        "up.bias": torch.randn(6, generator=generator),
        "norm_before.weight": torch.rand(6, generator=generator) + 0.5,
        "down.bias": torch.randn(3, generator=generator),
    }
    index = torch.tensor([4, 0, 2, 5])
    pruned, projected = prune_roles(roles, index, index), project_roles(roles, one_hot(index, 6), one_hot(index, 6))
    for role in roles:
        assert torch.allclose(pruned[role], projected[role], atol=1e-6), role


def test_projected_gains_stay_unit_gains_under_a_rotation():
    rotation = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0][:3]
    out = project_roles({"norm_after.weight": torch.ones(4)}, rotation, rotation)["norm_after.weight"]
    assert torch.allclose(out, torch.ones(3))


def test_svd_refactoring_is_exact_up_to_rank_and_best_below():
    generator = torch.Generator().manual_seed(5)
    b, a = torch.randn(10, 4, generator=generator), torch.randn(4, 7, generator=generator)
    update = lora_update(b, a)
    new_b, new_a = refactor(update, 4)
    assert new_b.shape == (10, 4) and new_a.shape == (4, 7)
    assert torch.allclose(new_b @ new_a, update, atol=1e-9)
    low_b, low_a = refactor(update, 2)
    singular = torch.linalg.svdvals(update)
    assert torch.linalg.norm(update - low_b @ low_a) == pytest.approx(float(singular[2:].norm()), rel=1e-9)
    wide_b, wide_a = refactor(update, 6)  # more rank than the update has: zero-padded factors
    assert wide_b.shape == (10, 6) and torch.allclose(wide_b @ wide_a, update, atol=1e-9)
