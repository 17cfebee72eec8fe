"""Layer maps and remapping: pure functions, checked against hand-computed tables."""

import pytest
import torch

from peftport.core.layer_maps import (
    LAYER_MAPS,
    avg_map,
    build_layer_map,
    explicit_map,
    groups,
    skip_last_map,
    skip_map,
    skip_uniform_map,
)
from peftport.core.remap import mean_tensors, remap_layers
from peftport.errors import LayerMapError


@pytest.mark.parametrize(
    ("teacher", "student", "skip", "skip_last", "uniform", "avg"),
    [
        (
            12,
            6,
            [0, 2, 4, 6, 8, 10],
            [1, 3, 5, 7, 9, 11],
            [0, 2, 4, 7, 9, 11],
            [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]],
        ),
        (6, 3, [0, 2, 4], [1, 3, 5], [0, 3, 5], [[0, 1], [2, 3], [4, 5]]),
        (24, 6, [0, 4, 8, 12, 16, 20], [3, 7, 11, 15, 19, 23], [0, 5, 9, 14, 18, 23], None),
        (5, 2, [0, 2], [1, 4], [0, 4], [[0, 1], [2, 3, 4]]),
        (4, 4, [0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [[0], [1], [2], [3]]),
        (7, 1, [0], [6], [0], [[0, 1, 2, 3, 4, 5, 6]]),
    ],
)
def test_named_maps(teacher, student, skip, skip_last, uniform, avg):
    assert [g[0] for g in skip_map(teacher, student).sources] == skip
    assert [g[0] for g in skip_last_map(teacher, student).sources] == skip_last
    assert [g[0] for g in skip_uniform_map(teacher, student).sources] == uniform
    if avg is not None:
        assert [list(g) for g in avg_map(teacher, student).sources] == avg


@pytest.mark.parametrize(("teacher", "student"), [(t, s) for t in range(1, 13) for s in range(1, t + 1)])
def test_groups_partition_the_teacher(teacher, student):
    parts = groups(teacher, student)
    assert [t for g in parts for t in g] == list(range(teacher))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    if teacher % student == 0:
        k = teacher // student
        assert parts == [list(range(i * k, i * k + k)) for i in range(student)]


@pytest.mark.parametrize("method", ["skip", "skip-last", "skip-uniform", "avg"])
def test_student_deeper_than_teacher_is_rejected(method):
    with pytest.raises(LayerMapError, match="more layers"):
        LAYER_MAPS[method](3, 6)


def test_explicit_map_parses_groups_and_checks_ranges():
    assert explicit_map("0,2+3,5", 6, 3).sources == ((0,), (2, 3), (5,))
    assert explicit_map("0,0,1,1", 2, 4).sources == ((0,), (0,), (1,), (1,))
    with pytest.raises(LayerMapError, match=r"out of range 0..5"):
        explicit_map("0,6,2", 6, 3)
    with pytest.raises(LayerMapError, match="names 2 student layers, the student has 3"):
        explicit_map("0,2", 6, 3)
    with pytest.raises(LayerMapError, match="cannot read"):
        explicit_map("0,a,2", 6, 3)


def test_build_layer_map_dispatch_and_unknown_name():
    assert build_layer_map("avg", 4, 2).method == "avg"
    assert build_layer_map("1,3", 4, 2).sources == ((1,), (3,))
    assert build_layer_map("identity", 3, 3).describe() == "0,1,2"
    with pytest.raises(LayerMapError, match="unknown layer map 'middle'"):
        build_layer_map("middle", 4, 2)
    with pytest.raises(LayerMapError, match="equal depths"):
        build_layer_map("identity", 4, 2)


def test_mean_is_the_true_mean_not_the_reference_code():
    """The reference sums layers 0..k-2 of a group and divides by k, never adding the last one."""
    layers = [torch.full((2,), float(v)) for v in (1, 2, 3, 4)]
    true_mean = mean_tensors(layers)
    reference = (layers[0] + layers[1] + layers[2]) / 4  # what the reference computes for k=4
    assert torch.allclose(true_mean, torch.full((2,), 2.5))
    assert not torch.allclose(true_mean, reference)


def test_remap_layers_copies_skip_and_averages_avg():
    teacher = {
        i: {"attn_q": {"lora_A": torch.full((2, 3), float(i)), "lora_B": torch.full((3, 2), 10.0 * i)}}
        for i in range(4)
    }
    skip = remap_layers(teacher, skip_map(4, 2))
    assert torch.equal(skip[1]["attn_q"]["lora_A"], teacher[2]["attn_q"]["lora_A"])
    avg = remap_layers(teacher, avg_map(4, 2))
    assert torch.allclose(avg[0]["attn_q"]["lora_B"], torch.full((3, 2), 5.0))
    assert torch.allclose(avg[1]["attn_q"]["lora_A"], torch.full((2, 3), 2.5))
    skip[0]["attn_q"]["lora_A"].add_(1.0)
    assert teacher[0]["attn_q"]["lora_A"].sum() == 0, "a copied tensor must not alias the teacher's"


def test_remap_layers_rejects_a_group_with_partial_modules():
    teacher = {0: {"attn_q": {"lora_A": torch.zeros(1)}}, 1: {}}
    with pytest.raises(LayerMapError, match=r"teacher layer\(s\) \[1\] carry no 'attn_q'"):
        remap_layers(teacher, avg_map(2, 1))
