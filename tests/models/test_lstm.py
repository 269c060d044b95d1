from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from selcopy.models import TaskShape, build_model
from selcopy.models.lstm import LSTMConfig

SHAPE = TaskShape(max_length=64, vocab=256)  # these models take any length


@pytest.mark.parametrize(("batch", "length"), [(1, 1), (3, 7), (2, 20)])
def test_shapes_and_gradients(check_model, batch, length):
    check_model(build_model({"name": "lstm", "layers": 2, "channels": 16, "dropout": 0.1}, SHAPE), batch, length)


def test_is_causal():
    """Unidirectional: changing a later byte never changes an earlier logit."""
    torch.manual_seed(0)
    model = LSTMConfig(layers=2, channels=8).build(SHAPE)
    ids = torch.randint(0, 256, (1, 10))
    other = ids.clone()
    other[0, 6] = (ids[0, 6] + 1) % 256
    torch.testing.assert_close(model(ids)[:, :6], model(other)[:, :6])


def test_one_layer_with_dropout_builds_without_warning(recwarn):
    LSTMConfig(layers=1, channels=8, dropout=0.5).build(SHAPE)
    assert not [w for w in recwarn if "dropout" in str(w.message)]


@pytest.mark.parametrize(
    ("settings", "name"), [({"layers": 0}, "layers"), ({"dropout": 1.5}, "dropout"), ({"hidden": 3}, "hidden")]
)
def test_bad_settings(settings, name):
    with pytest.raises(ValidationError, match=name):
        LSTMConfig(**settings)
