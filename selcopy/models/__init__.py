"""Model architectures, by the name users write after `model: name:`.

Every model maps byte ids (B, L) to logits (B, L, 256). A model is one file holding its
config (a `ModelConfig` whose `build()` makes the module) and its file's name in `selcopy.catalog.MODEL_FILES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from selcopy.catalog import MODEL_FILES
from selcopy.models.base import ModelConfig, TaskShape, count_parameters
from selcopy.registry import Registry

MODELS: Registry[type[ModelConfig]] = Registry.of_modules("model", __name__, ModelConfig, MODEL_FILES)

DEFAULT_MODEL = "conv"


def model_config(settings: Mapping[str, Any], strict: bool = False) -> ModelConfig:
    """`{"name": "conv", "layers": 3, ...}` -> a validated config (name defaults to conv).

    Raises `UnknownName` (did you mean ...?) for a bad name and `pydantic.ValidationError`
    for bad settings; `selcopy.errors.explain` turns the latter into one line. `strict`: no
    coercion (`true` is no layer count, `64.0` no batch size), as for experiment files.
    """
    settings = dict(settings)
    cls = MODELS[settings.pop("name", DEFAULT_MODEL)]
    return cls.model_validate(settings, strict=strict)


def build_model(settings: Mapping[str, Any], shape: TaskShape) -> nn.Module:
    """Validate the settings and build the (randomly initialised) model for a task of `shape`."""
    return model_config(settings).build(shape)


__all__ = [
    "MODELS",
    "ModelConfig",
    "TaskShape",
    "build_model",
    "count_parameters",
    "model_config",
]
