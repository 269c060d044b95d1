from __future__ import annotations

import pytest
from pydantic import ValidationError

from selcopy.errors import explain
from selcopy.models import (
    MODELS,
    ConvConfig,
    LSTMConfig,
    MambaConfig,
    TransformerConfig,
    build_model,
    describe_models,
    model_config,
)
from selcopy.registry import UnknownName


def test_names_match_config_classes():
    assert list(MODELS) == ["conv", "lstm", "mamba", "transformer"]
    assert all(MODELS[name].name == name for name in MODELS)


def test_model_config_looks_up_and_validates():
    assert model_config({}) == ConvConfig()
    assert model_config({"name": "conv", "layers": 3}) == ConvConfig(layers=3)
    assert isinstance(model_config({"name": "lstm"}), LSTMConfig)
    assert isinstance(model_config({"name": "mamba", "scan": "sequential"}), MambaConfig)
    assert isinstance(model_config({"name": "transformer"}), TransformerConfig)


def test_model_config_does_not_change_its_argument():
    settings = {"name": "lstm", "layers": 2}
    model_config(settings)
    assert settings == {"name": "lstm", "layers": 2}


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownName, match="did you mean 'mamba'") as info:
        model_config({"name": "mambo"})
    assert "available: conv, lstm, mamba, transformer" in str(info.value)


def test_unknown_setting_is_one_clear_line():
    with pytest.raises(ValidationError) as info:
        model_config({"name": "conv", "layer": 3})
    assert explain(info.value, "exp.yml: model") == "exp.yml: model: layer: unknown setting"


def test_configs_are_frozen():
    with pytest.raises(ValidationError):
        ConvConfig().layers = 3


def test_build_model():
    assert build_model({"name": "lstm", "layers": 1, "channels": 4}).lstm.num_layers == 1


def test_describe_models():
    described = {name: (text, defaults) for name, text, defaults in describe_models()}
    assert list(described) == list(MODELS)
    assert all(text and "\n" not in text for text, _ in described.values())
    assert described["conv"][1]["kernel_size"] == 9 and described["conv"][1]["attention"] == 0
    assert described["mamba"][1] == {
        "layers": 6,
        "d_model": 32,
        "d_state": 16,
        "expand": 2,
        "d_conv": 4,
        "scan": "parallel",
    }
    assert described["transformer"][1]["feedforward"] == 256
    assert described["lstm"][1] == {"layers": 6, "channels": 64, "dropout": 0.0}


@pytest.mark.parametrize("name", list(MODELS))
def test_builds_on_meta_device_and_round_trips_through_json(name):
    """`selcopy show` counts parameters on the meta device and stores settings as JSON."""
    import torch

    from selcopy.models import count_parameters

    config = model_config({"name": name})
    with torch.device("meta"):
        model = config.build()
    assert count_parameters(model) == count_parameters(config.build())
    assert model_config({"name": name, **config.model_dump(mode="json")}) == config
