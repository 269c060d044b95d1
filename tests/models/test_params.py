"""Parameter counts an exact implementation of the article's models reproduces."""

from __future__ import annotations

import pytest

from selcopy.models import MODELS, TaskShape, build_model, count_parameters

SHAPE = TaskShape(max_length=64, vocab=256)  # these models take any length

CASES = [
    ({"layers": 6, "kernel_size": 9}, 237_952),
    ({"layers": 12, "kernel_size": 9}, 459_520),
    ({"layers": 18, "kernel_size": 9}, 681_088),
    ({"layers": 6, "channels": 128, "kernel_size": 9}, 918_272),
    ({"layers": 12, "channels": 128, "kernel_size": 9}, 1_803_776),
    ({"layers": 3, "kernel_size": 13, "attention": [0, 0, True]}, 229_632),
    ({"layers": 3, "kernel_size": 13, "attention": [0, 0, 8]}, 246_272),
    ({"layers": 3, "kernel_size": 13, "attention": [0, 0, True], "attention_invention": "QKV"}, 282_944),
    ({"layers": 3, "kernel_size": 13, "attention": [0, 0, 0]}, 176_320),
    ({"layers": 6, "kernel_size": 13, "attention": [0, 0, 0, 0, 0, True]}, 389_568),
    ({"layers": 5, "kernel_size": 13, "attention": [0, 0, 0, 0, True]}, 336_256),
    ({"name": "lstm", "layers": 6, "channels": 64}, 216_064),
    ({"name": "mamba", "d_model": 32, "layers": 6, "d_state": 16, "expand": 2, "d_conv": 4}, 67_936),
]


@pytest.mark.parametrize(("settings", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_article_parameter_counts(settings, expected):
    assert count_parameters(build_model(settings, SHAPE)) == expected


@pytest.mark.parametrize("name", list(MODELS))
def test_defaults_build(name):
    assert count_parameters(build_model({"name": name}, SHAPE)) > 0


def test_other_inventions_cost_as_much_as_qk():
    base = {"layers": 3, "kernel_size": 13, "attention": [0, 0, True]}
    for invention in ("QV", "KV"):
        assert count_parameters(build_model({**base, "attention_invention": invention}, SHAPE)) == 229_632


def test_one_invented_part_costs_no_more_than_no_attention():
    """`attention_invention: Q` (or K, V): the conv makes one part, so the 6-layer conv with
    attention in its last layer keeps the article's 237,952 parameters."""
    base = {"layers": 6, "kernel_size": 9, "dilation": [1, 2, 3, 4, 5, 1]}
    for invention in ("Q", "K", "V"):
        model = build_model({**base, "attention": [0, 0, 0, 0, 0, True], "attention_invention": invention}, SHAPE)
        assert count_parameters(model) == 237_952


def test_read_out_is_tied():
    model = build_model({"layers": 1, "channels": 8, "kernel_size": 1}, SHAPE)
    assert count_parameters(model) == 256 * 8 + 8 * 8 + 8
