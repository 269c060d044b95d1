from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from selcopy.errors import explain
from selcopy.models import TaskShape, count_parameters
from selcopy.models.attention import (
    MIXERS,
    HeadsAttention,
    LinearAttention,
    Mixer,
    dpfp,
    elu_plus_one,
    linear_attention,
)
from selcopy.models.conv import ConvConfig

SHAPE = TaskShape(max_length=64, vocab=256)  # these models take any length


def test_linear_attention_matches_the_formula_by_hand():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, dtype=torch.float64) for _ in range(3))  # (B, L, C)
    out = linear_attention(q, k, v)
    phi = lambda x: F.elu(x) + 1
    expected = torch.zeros_like(v)
    for b in range(2):
        for i in range(3):
            for c in range(4):
                expected[b, i, c] = sum(
                    phi(q[b, i, f]) * phi(k[b, j, f]) * v[b, j, c] for j in range(3) for f in range(4)
                ) / (3 * 4)
    torch.testing.assert_close(out, expected)


def test_linear_attention_sees_every_position():
    q, k, v = torch.zeros(1, 5, 2), torch.zeros(1, 5, 2), torch.zeros(1, 5, 2)
    v[0, 4] = 1.0
    assert (linear_attention(q, k, v)[0, 0] > 0).all()  # the first position sees the last


def test_dpfp_width_values_and_sign():
    x = torch.tensor([1.0, 2.0, -3.0])
    # [relu(x), relu(-x)] = [1, 2, 0, 0, 0, 3]; rolled by one = [3, 1, 2, 0, 0, 0]
    torch.testing.assert_close(dpfp(x), torch.tensor([3.0, 2.0, 0.0, 0.0, 0.0, 0.0]))
    y = dpfp(torch.randn(2, 7, 5))
    assert y.shape == (2, 7, 10) and (y >= 0).all()


def test_dpfp_attention_keeps_value_width():
    q, k, v = torch.randn(2, 6, 4), torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    assert linear_attention(q, k, v, dpfp).shape == (2, 6, 4)


def test_elu_plus_one_is_non_negative():
    assert (elu_plus_one(torch.linspace(-10, 10, 101)) > 0).all()
    assert (elu_plus_one(torch.tensor([-1e4])) >= 0).all()  # rounds to 0 in float32, never below


def test_heads_attention_returns_output_only():
    att = HeadsAttention(8, 2)
    x = torch.randn(3, 5, 8)
    assert att(x, x, x).shape == (3, 5, 8)


def test_the_articles_spellings_name_their_mixers():
    from selcopy.models.attention import mixer_name

    names = [mixer_name(s) for s in (0, False, True, 1, 8, "linear")]
    assert names == [None, None, "linear", "heads", "heads", "linear"]


def test_a_mixer_name_builds_what_its_spelling_builds():
    by_name = ConvConfig(layers=3, kernel_size=13, attention=[0, 0, "linear"]).build(SHAPE)
    assert isinstance(by_name.layers[2].attention, LinearAttention)
    assert count_parameters(by_name) == 229_632  # as [0, 0, true]
    assert ConvConfig(attention="Linear ").attentions() == ["linear"] * 6


@pytest.mark.parametrize(("setting", "message"), [
    ([0, "linaer"], "did you mean 'linear'"),
    ([0, "heads"], "write the number of heads"),
])
def test_bad_mixer_names_are_one_line(setting, message):
    with pytest.raises(ValidationError) as info:
        ConvConfig(layers=2, channels=8, attention=setting)
    assert message in explain(info.value) and "\n" not in explain(info.value)


class MeanOfValues(Mixer):
    """A test-only mixer: every position gets the mean of the conv's values (q, k unused)."""

    def invents(self, cfg):
        return "V"

    def build(self, channels, setting, cfg):
        return MeanModule()


class MeanModule(nn.Module):
    def forward(self, q, k, v):
        return v.mean(1, keepdim=True).expand_as(v)  # (B, 1, C) -> (B, L, C)


def test_a_new_mixer_is_one_entry(monkeypatch, check_model):
    monkeypatch.setitem(MIXERS._entries, "mean", MeanOfValues())
    model = ConvConfig(layers=2, channels=8, kernel_size=3, attention=[0, "mean"]).build(SHAPE)
    assert model.layers[1].conv.out_channels == 8  # the mixer consumes one conv output: V
    assert isinstance(model.layers[1].attention, MeanModule)
    check_model(model, 2, 7)


@pytest.mark.parametrize("name", list(MIXERS))
def test_every_mixer_trains_in_a_conv_layer(check_model, name):
    """Each entry, with its example setting, in a conv layer: forward, backward, every parameter used."""
    model = ConvConfig(layers=2, channels=16, kernel_size=3, attention=[0, MIXERS[name].example]).build(SHAPE)
    assert model.layers[1].mixer is MIXERS[name] and model.layers[0].mixer is None
    assert model.layers[1].conv.out_channels == 16 * MIXERS[name].outputs(model.cfg)
    check_model(model, 2, 7)


class GateOnly(Mixer):
    """A test mixer whose conv makes a part that is none of q, k, v: a gate on the layer input."""

    def invents(self, cfg):
        return "G"

    def build(self, channels, setting, cfg):
        return nn.Sigmoid()

    def mix(self, module, parts, given):
        return given * module(parts["G"])


def test_a_mixer_may_use_parts_other_than_q_k_v(monkeypatch, check_model):
    monkeypatch.setitem(MIXERS._entries, "gate", GateOnly())
    model = ConvConfig(layers=2, channels=8, kernel_size=3, attention=[0, "gate"]).build(SHAPE)
    layer = model.layers[1]
    x = torch.randn(2, 8, 5)  # (B, C, L)
    g = layer.conv(x)  # (B, C, L): the gate part
    expected = x + layer.act(x * torch.sigmoid(g))
    torch.testing.assert_close(layer(x), expected)
    check_model(model, 2, 7)
