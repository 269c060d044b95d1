from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from selcopy.errors import explain
from selcopy.models import MODELS, TaskShape, build_model, count_parameters, model_config
from selcopy.models.conv import ConvConfig
from selcopy.models.lstm import LSTMConfig
from selcopy.models.mamba import MambaConfig
from selcopy.models.transformer import TransformerConfig
from selcopy.registry import UnknownName

SHAPE = TaskShape(max_length=64, vocab=256)  # these models take any length


@pytest.mark.parametrize("name", list(MODELS))
def test_default_model_runs_forward_and_backward(check_model, name):
    check_model(model_config({"name": name}).build(SHAPE), 2, 12)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_reads_out_the_vocabulary_of_its_task(name):
    model = model_config({"name": name}).build(TaskShape(max_length=9, vocab=40))
    assert model(torch.randint(0, 40, (2, 9))).shape == (2, 9, 40)


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
    assert all(name in str(info.value) for name in MODELS)


def test_unknown_setting_is_one_clear_line():
    with pytest.raises(ValidationError) as info:
        model_config({"name": "conv", "layer": 3})
    assert explain(info.value, "exp.yml: model") == "exp.yml: model: layer: unknown setting"


def test_configs_are_frozen():
    with pytest.raises(ValidationError):
        ConvConfig().layers = 3


def test_build_model():
    assert build_model({"name": "lstm", "layers": 1, "channels": 4}, SHAPE).lstm.num_layers == 1


def test_settings_are_the_defaults_in_declaration_order():
    defaults = {key: default for key, default, _ in ConvConfig.settings()}
    assert list(defaults)[:3] == ["layers", "channels", "kernel_size"]
    assert defaults["kernel_size"] == 9 and defaults["attention"] == 0
    assert {key: default for key, default, _ in LSTMConfig.settings()} == {"layers": 6, "channels": 64, "dropout": 0.0}
    assert {key: default for key, default, _ in TransformerConfig.settings()}["feedforward"] == 256


@pytest.mark.parametrize("name", list(MODELS))
def test_builds_on_meta_device_and_round_trips_through_json(name):
    """`selcopy show` counts parameters on the meta device and stores settings as JSON."""
    config = model_config({"name": name})
    with torch.device("meta"):
        model = config.build(SHAPE)
    assert count_parameters(model) == count_parameters(config.build(SHAPE))
    assert model_config({"name": name, **config.model_dump(mode="json")}) == config


def test_a_registry_takes_the_one_named_config_of_each_module():
    from selcopy.models.base import ModelConfig
    from selcopy.registry import Registry

    table = Registry.of_modules("model", "selcopy.models", ModelConfig, ["lstm", "conv"])
    assert list(table) == ["lstm", "conv"] and table["conv"] is ConvConfig
    with pytest.raises(TypeError, match="selcopy.models.base defines 0 ModelConfig with a name, not one"):
        Registry.of_modules("model", "selcopy.models", ModelConfig, ["base"])
