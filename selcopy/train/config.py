"""Training settings, as users write them in an experiment file's `train:` section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Limits far beyond the article's settings, each a typo rather than a plan past it.
MAX_BATCH = 65_536  # samples per step (the article's: 64); the activations of a step grow with it
MAX_INPUTS = 10**12  # samples (the article's: 4M); ~3 years at 10,000 samples/s
MAX_LR = 10.0  # an AdamW step moves each weight by about lr (the article's: 5e-4)
MAX_WEIGHT_DECAY = 100.0  # AdamW's default and the article's: 0.01


class TrainConfig(BaseModel):
    """Defaults are the article's: AdamW, lr 5e-4, batch 64, cosine to 0, 4M samples.

    `max_inputs` and `validate_every` count samples (the article's "steps"), not batches.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    batch_size: int = Field(64, gt=0, le=MAX_BATCH)
    optimizer: Literal["adamw"] = "adamw"
    lr: float = Field(5e-4, gt=0, le=MAX_LR)
    weight_decay: float = Field(0.01, ge=0, le=MAX_WEIGHT_DECAY, description="AdamW's default, as the article used it")
    scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_inputs: int = Field(0, ge=0, le=MAX_INPUTS, description="linear warm-up (the article had none in effect)")
    loss: Literal["sequence", "token"] = Field(
        "token", description="token: per-position cross-entropy; sequence: the article's softmax over L x 256"
    )
    max_inputs: int = Field(4_000_000, gt=0, le=MAX_INPUTS)
    validate_every: int = Field(100_000, gt=0, le=MAX_INPUTS)
    validation_batch_size: int = Field(1024, gt=0, le=MAX_BATCH)
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
