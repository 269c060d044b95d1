"""The training loop: knows a model, a data split and its settings, nothing about files.

Callers observe it through `on_validation(trainer, metrics)`: the experiment layer writes
logs, images and checkpoints there. A run resumed from `state_dict()` continues the same
data stream, lr schedule and random streams, so it ends with the same numbers as a run
that was never interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from selcopy.errors import SelcopyError
from selcopy.models.base import count_parameters
from selcopy.tasks.base import Batch
from selcopy.tasks.split import DataSplit
from selcopy.train.config import TrainConfig
from selcopy.train.device import bf16_refusal
from selcopy.train.metrics import LOSSES, batch_stats, new_stats, summarize
from selcopy.train.schedule import lr_factor

Hook = Callable[["Trainer", dict[str, float]], None]
MEASURED = "float32"  # the precision of validation and test metrics, whatever the run trains in


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of a training epoch's generator: fresh data every epoch, reproducible per run."""
    return seed * 1_000_003 + epoch + 1


class TrainStream:
    """Training samples as one endless stream of epochs, cut into batches.

    A batch may span the end of one epoch and the start of the next, so every batch has
    `batch_size` samples and the stream position alone (`inputs`) says where we are.
    """

    def __init__(self, split: DataSplit, seed: int, batch_size: int, inputs: int = 0):
        self.split, self.seed, self.batch_size, self.inputs = split, seed, batch_size, inputs
        self._epoch_index, self._epoch = -1, None

    def _samples(self, epoch: int) -> Batch:
        if epoch != self._epoch_index:
            self._epoch_index, self._epoch = epoch, self.split.epoch(epoch_seed(self.seed, epoch))
        return self._epoch

    def next(self) -> Batch:
        n = self.split.train_count
        parts, need = [], self.batch_size
        while need:
            epoch, offset = divmod(self.inputs, n)
            take = min(need, n - offset)
            parts.append(self._samples(epoch).select(slice(offset, offset + take)))
            self.inputs += take
            need -= take
        return parts[0] if len(parts) == 1 else Batch.cat(parts)

    @property
    def epoch(self) -> int:
        return self.inputs // self.split.train_count


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        split: DataSplit,
        config: TrainConfig,
        seed: int,
        device: torch.device,
        on_validation: Hook | None = None,
        progress: Callable[[int, dict[str, float]], None] | None = None,
    ):
        if refusal := bf16_refusal(model, config.precision, device):
            raise SelcopyError(refusal)
        self.model, self.split, self.config, self.seed, self.device = model.to(device), split, config, seed, device
        torch.manual_seed(seed)  # dropout draws from the global generator: make it the run's own
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=device.type in ("cpu", "cuda")
        )
        self.loss_fn = LOSSES[config.loss]
        self.stream = TrainStream(split, seed, config.batch_size)
        self.step = 0
        self.train_time = 0.0  # seconds of wall time spent in this run, across resumes
        self.best: dict[str, float] = {}
        self.on_validation = on_validation
        self.progress = progress
        self.params = count_parameters(model)
        self._validation = split.validation.to(device)
        self._test = split.test.to(device) if split.test is not None else None
        self._forward = torch.compile(self._forward_loss, dynamic=True) if config.compile else self._forward_loss

    # --- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "inputs": self.stream.inputs,
            "step": self.step,
            "train_time": self.train_time,
            "best": dict(self.best),
            "rng": torch.get_rng_state(),
            "seed": self.seed,
            **({"cuda_rng": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seed") != self.seed:
            raise ValueError(f"checkpoint belongs to seed {state.get('seed')}, this run has seed {self.seed}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.stream.inputs, self.step = int(state["inputs"]), int(state["step"])
        self.train_time, self.best = float(state["train_time"]), dict(state["best"])
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and self.device.type == "cuda":  # dropout on the GPU draws from its own generator
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    @property
    def inputs(self) -> int:
        return self.stream.inputs

    @property
    def finished(self) -> bool:
        return self.inputs >= self.config.max_inputs

    # --- the loop -----------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train until `max_inputs`, validating every `validate_every`; the final metrics."""
        cfg = self.config
        warmup = -(-cfg.warmup_inputs // cfg.batch_size)
        stats = new_stats(self.device)
        metrics: dict[str, float] = {}
        started = time.perf_counter() - self.train_time
        self.model.train()
        while not self.finished:
            before = self.inputs
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(self.step, cfg.total_steps, warmup, cfg.scheduler)
            stats += self._train_step(self.stream.next())
            self.step += 1
            if self.progress:
                self.progress(self.inputs - before, stats)
            if self.inputs // cfg.validate_every > before // cfg.validate_every or self.finished:
                self.train_time = time.perf_counter() - started
                metrics = self._validate(stats)
                stats = new_stats(self.device)
                started = time.perf_counter() - self.train_time
        return metrics

    def _train_step(self, batch: Batch) -> torch.Tensor:
        batch = batch.to(self.device)
        masked, text = batch.masked.long(), batch.text.long()  # bytes are stored as uint8
        logits, loss = self._forward(masked, text)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return batch_stats(logits.detach(), text, masked, batch.difficulty, loss.detach())

    def _logits(self, masked: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model, masked, self.config.precision)

    def _forward_loss(self, masked: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self._logits(masked)
        return logits, self.loss_fn(logits, text)

    def _validate(self, train_stats: torch.Tensor) -> dict[str, float]:
        metrics = {"inputs": self.inputs, "epoch": self.stream.epoch, "lr": self.optimizer.param_groups[0]["lr"]}
        per = self.split.train_task.difficulty_column
        metrics.update(summarize(self.evaluate(self._validation), "validation_", per))
        metrics.update(summarize(train_stats, "train_", per))
        if self.finished and self._test is not None:  # the test set counts once, at the end
            metrics.update(summarize(self.evaluate(self._test), "test_", per))
        metrics.update(
            model_params=self.params,
            train_time=self.train_time,
            throughput=self.inputs / max(self.train_time, 1e-9),
        )
        if not self.best or metrics["validation_sample_error%"] <= self.best["validation_sample_error%"]:
            self.best = {k: metrics[k] for k in ("inputs", "validation_sample_error%", "validation_loss")}
            metrics["is_best"] = 1
        if self.on_validation:
            self.on_validation(self, metrics)
        return metrics

    def evaluate(self, data: Batch) -> torch.Tensor:
        """Counts over a whole set, in chunks of `validation_batch_size`, all at full width."""
        return evaluate(self.model, data, self.config, self.device)

    @torch.no_grad()
    def predict(self, data: Batch) -> torch.Tensor:
        """Argmax bytes (B, L) for a batch (example images), computed as validation computes them."""
        was_training = self.model.training
        self.model.eval()
        out = logits_of(self.model, data.masked.to(self.device).long(), MEASURED).argmax(-1)
        self.model.train(was_training)
        return out


def logits_of(model: nn.Module, masked: torch.Tensor, precision: str) -> torch.Tensor:
    """(B, L, V) float32 logits, the model run under `precision` (float32 | bfloat16 autocast)."""
    with torch.autocast(masked.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        return model(masked).float()


@torch.no_grad()
def evaluate(model: nn.Module, data: Batch, config: TrainConfig, device: torch.device,
             precision: str = MEASURED) -> torch.Tensor:
    """Metric counts (see `metrics.summarize`) of `model` on a whole set, in eval mode, in chunks of
    `config.validation_batch_size`, with the run's loss, in float32 whatever precision the run
    trains in (`MEASURED`: as the article trained and measured, so that rows compare with it),
    unless `precision` asks for bfloat16 autocast (`selcopy eval --precision`)."""
    if refusal := bf16_refusal(model, precision, device):
        raise SelcopyError(refusal)
    was_training = model.training
    model.eval()
    stats = new_stats(device)
    size, loss_fn = config.validation_batch_size, LOSSES[config.loss]
    for start in range(0, len(data), size):  # at the set's full width, as every chunk of it
        text = data.text[start : start + size].to(device).long()
        masked = data.masked[start : start + size].to(device).long()
        logits = logits_of(model, masked, precision)
        difficulty = data.difficulty[start : start + size].to(device)
        stats += batch_stats(logits, text, masked, difficulty, loss_fn(logits, text))
    model.train(was_training)
    return stats
