from __future__ import annotations

import warnings

import pytest
import torch
from pydantic import ValidationError

from selcopy.errors import explain
from selcopy.models import TaskShape, build_model
from selcopy.models.transformer import TransformerConfig

SHAPE = TaskShape(max_length=64, vocab=256)  # these models take any length

SMALL = {"name": "transformer", "layers": 2, "channels": 16, "heads": 2, "feedforward": 32}


@pytest.mark.parametrize(("batch", "length"), [(1, 1), (3, 7), (2, 33)])
def test_shapes_and_gradients(check_model, batch, length):
    check_model(build_model(SMALL, SHAPE), batch, length)


def test_is_bidirectional_and_position_aware():
    torch.manual_seed(0)
    model = build_model(SMALL, SHAPE).eval()
    ids = torch.randint(1, 256, (1, 8))
    later = ids.clone()
    later[0, 7] = 0
    assert not torch.allclose(model(ids)[:, 0], model(later)[:, 0])  # the first position sees the last
    same = torch.full((1, 6), 65)
    out = model(same)
    assert not torch.allclose(out[:, 0], out[:, 3])  # equal bytes at different positions differ


def test_any_length_and_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = build_model(SMALL, SHAPE)
        assert model(torch.randint(0, 256, (1, 600))).shape == (1, 600, 256)
        with torch.no_grad():
            assert model.eval()(torch.randint(0, 256, (2, 5))).shape == (2, 5, 256)


def test_heads_must_divide_channels():
    with pytest.raises(ValidationError) as info:
        TransformerConfig(channels=64, heads=5)
    message = explain(info.value)
    assert "heads" in message and "64" in message


@pytest.mark.parametrize("setting", ["layers", "channels", "heads", "feedforward"])
def test_sizes_must_be_positive(setting):
    with pytest.raises(ValidationError, match=setting):
        TransformerConfig(**{setting: 0})
