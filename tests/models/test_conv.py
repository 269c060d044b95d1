from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from selcopy.errors import explain
from selcopy.models import TaskShape, build_model
from selcopy.models.attention import HeadsAttention, LinearAttention
from selcopy.models.conv import ConvConfig, ConvModel

SHAPE = TaskShape(max_length=64, vocab=256)  # these models take any length

SMALL = {"layers": 3, "channels": 16, "kernel_size": [3, 5, 3], "dilation": [1, 2, 3]}


@pytest.mark.parametrize(("batch", "length"), [(1, 1), (2, 7), (3, 32), (2, 2)])
def test_shapes_and_gradients(check_model, batch, length):
    check_model(build_model({**SMALL, "attention": [0, True, 4]}, SHAPE), batch, length)


@pytest.mark.parametrize("invention", ["QK", "QV", "KV", "QKV", "Q", "K", "V"])
@pytest.mark.parametrize("attention", [True, 1, 4])
@pytest.mark.parametrize("phi", ["elu+1", "dpfp"])
def test_attention_variants_run(check_model, invention, attention, phi):
    settings = {**SMALL, "attention": [0, 0, attention], "attention_invention": invention}
    check_model(build_model({**settings, "attention_activation": phi}, SHAPE), 2, 9)


@pytest.mark.parametrize("activation", ["gelu", "relu", "silu", "tanh", "elu", "sigmoid", "leaky_relu"])
def test_activations(check_model, activation):
    check_model(build_model({**SMALL, "activation": activation}, SHAPE), 2, 5)


def test_true_means_linear_attention_and_1_means_one_head():
    model = ConvConfig(layers=4, channels=8, attention=[True, 1, 0, False]).build(SHAPE)
    kinds = [type(layer.attention) for layer in model.layers]
    assert kinds == [LinearAttention, HeadsAttention, type(None), type(None)]
    assert model.layers[1].attention.num_heads == 1
    assert ConvConfig(attention=True).attentions() == [True] * 6
    assert ConvConfig(attention=1).attentions() == [1] * 6
    assert ConvConfig(attention=["true", "1"], layers=2).attentions() == [True, 1]


def test_scalar_settings_apply_to_every_layer():
    cfg = ConvConfig(layers=3, kernel_size=5, dilation=2)
    assert cfg.kernel_sizes() == [5, 5, 5] and cfg.dilations() == [2, 2, 2] and cfg.attentions() == [0, 0, 0]
    conv = ConvModel(cfg, SHAPE).layers[0].conv
    assert conv.kernel_size == (5,) and conv.dilation == (2,) and conv.padding == (4,)


def test_invention_splits_conv_output_in_letter_order():
    """QV: the first C conv channels are the queries, the second C the values; keys are the input."""
    torch.manual_seed(0)
    cfg = ConvConfig(layers=1, channels=4, kernel_size=1, attention=True, attention_invention="QV")
    layer = cfg.build(SHAPE).layers[0]
    seen = {}
    layer.attention.forward = lambda q, k, v: seen.update(q=q, k=k, v=v) or q
    x = torch.randn(2, 4, 5)  # (B, C, L)
    layer(x)
    y = layer.conv(x).transpose(1, 2)  # (B, L, 2C)
    torch.testing.assert_close(seen["q"], y[..., :4])
    torch.testing.assert_close(seen["v"], y[..., 4:])
    torch.testing.assert_close(seen["k"], x.transpose(1, 2))


def test_layer_without_attention_is_residual_conv():
    torch.manual_seed(0)
    layer = ConvConfig(layers=1, channels=4, kernel_size=3).build(SHAPE).layers[0]
    x = torch.randn(2, 4, 6)
    torch.testing.assert_close(layer(x), x + torch.nn.functional.gelu(layer.conv(x)))


def test_position_embedding_adds_no_parameters_and_changes_output():
    torch.manual_seed(0)
    plain = ConvConfig(**SMALL).build(SHAPE)
    pos = ConvConfig(**SMALL, position_embedding=True).build(SHAPE)
    pos.load_state_dict(plain.state_dict())
    ids = torch.randint(0, 256, (2, 11))
    assert not torch.allclose(plain(ids), pos(ids))
    assert pos(torch.randint(0, 256, (1, 1000))).shape == (1, 1000, 256)


@pytest.mark.parametrize("position_embedding", [False, True])
def test_every_layer_takes_channels_last_memory(position_embedding):
    """The conv layers run over (B, L, C) memory, seen as (B, C, 1, L): oneDNN's blocked kernels on
    the CPU, without a copy, and without asking for a layout (which torch.func.vmap cannot answer)."""
    model = ConvConfig(**SMALL, position_embedding=position_embedding).build(SHAPE)
    seen = []
    for layer in model.layers:
        layer.register_forward_pre_hook(lambda _, args: seen.append(args[0].is_contiguous(
            memory_format=torch.channels_last)))
    model(torch.randint(0, 256, (2, 11)))
    assert seen == [True] * 3


def _error(**settings) -> str:
    with pytest.raises(ValidationError) as info:
        ConvConfig(**settings)
    return explain(info.value)


@pytest.mark.parametrize("setting", ["kernel_size", "dilation", "attention"])
def test_per_layer_list_of_wrong_length(setting):
    value = [True, 0] if setting == "attention" else [3, 3]
    message = _error(layers=3, **{setting: value})
    assert setting in message and "2 values" in message and "layers is 3" in message


def test_heads_must_divide_channels():
    message = _error(layers=2, channels=64, attention=[0, 5])
    assert "attention" in message and "5 heads" in message and "64" in message


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"attention_invention": "QQ"}, "attention_invention"),
        ({"attention_activation": "softmax"}, "attention_activation"),
        ({"activation": "swish"}, "activation"),
        ({"layers": 0}, "layers"),
        ({"channels": -1}, "channels"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": [3, 3, 3, 3, 3, -1]}, "kernel_size"),
        ({"dilation": 0}, "dilation"),
        ({"kernel_size": True}, "kernel_size"),
        ({"attention": -2}, "attention"),
        ({"attention": 1.5}, "attention"),
        ({"kernel": 9}, "kernel"),
    ],
)
def test_bad_settings_name_the_setting(settings, name):
    assert name in _error(**settings)


def test_even_kernel_is_rejected_with_reason():
    message = _error(kernel_size=[9, 9, 8, 9, 9, 9])
    assert "kernel_size" in message and "8" in message and "odd" in message
