"""Training settings, as users write them in an experiment file's `train:` section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainConfig(BaseModel):
    """Defaults are the article's: AdamW, lr 5e-4, batch 64, cosine to 0, 4M samples.

    `max_inputs` and `validate_every` count samples (the article's "steps"), not batches.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    batch_size: int = Field(64, gt=0)
    optimizer: Literal["adamw"] = "adamw"
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0, description="AdamW's default, as the article used it")
    scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_inputs: int = Field(0, ge=0, description="linear warm-up (the article had none in effect)")
    loss: Literal["sequence", "token"] = Field(
        "token", description="token: per-position cross-entropy; sequence: the article's softmax over L x 256"
    )
    max_inputs: int = Field(4_000_000, gt=0)
    validate_every: int = Field(100_000, gt=0)
    validation_batch_size: int = Field(1024, gt=0)
    seed: int = Field(0, ge=0, le=9_000_000, description="base seed; each trial derives its own")
    compile: bool = Field(False, description="torch.compile the model's step (same numbers up to float rounding)")
    precision: Literal["float32", "bfloat16"] = Field(
        "float32", description="bfloat16: autocast the model (weights, optimizer and loss stay float32)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.warmup_inputs >= self.max_inputs:
            raise ValueError(f"warmup_inputs ({self.warmup_inputs}) must be below max_inputs ({self.max_inputs})")
        return self

    @property
    def total_steps(self) -> int:
        return -(-self.max_inputs // self.batch_size)
