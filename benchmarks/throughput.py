"""Training samples per second: selcopy's training path vs the article's way, side by side.

Both train the same model (built from the same settings), with the same loss, metrics and
batch size, on the article's setting of table 3 (5 letters, 2-5 swaps, validated on 5):

- selcopy: `Trainer.fit`, i.e. batched tensor data generation, the train step, metrics
  accumulated on the device, the lr schedule.
- reference: what the article's trainer does per batch, written independently here:
  samples generated one by one as Python strings, encoded to bytes per batch, one-hot
  targets, the cross-entropy against them, the metrics read back (`.item()`) every step.
- float32 model step alone: forward, loss, backward and optimizer step on one batch made
  beforehand. Both paths pay at least this; its ratio to the reference is the most that any
  work on data, syncs and Python can gain in float32 (bfloat16 changes the model's cost).

    python benchmarks/throughput.py [--models conv6 lstm] [--steps 60] [--json] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from datagen import reference_sample  # noqa: E402

from selcopy.models import build_model  # noqa: E402
from selcopy.tasks import make_task  # noqa: E402
from selcopy.tasks.split import DataSplit  # noqa: E402
from selcopy.train.config import TrainConfig  # noqa: E402
from selcopy.train.device import pick_device  # noqa: E402
from selcopy.train.loop import Trainer  # noqa: E402
from selcopy.train.metrics import LOSSES  # noqa: E402

MODELS = {
    "conv6": {"name": "conv", "layers": 6, "kernel_size": 9, "dilation": [1, 2, 3, 4, 5, 1]},
    "conv6-attn": {"name": "conv", "layers": 6, "kernel_size": 9, "dilation": [1, 2, 3, 4, 5, 1],
                   "attention": [0, 0, 0, 0, 0, True]},
    "conv3-mha8": {"name": "conv", "layers": 3, "kernel_size": 13, "dilation": [3, 5, 1], "attention": [0, 0, 8]},
    "lstm": {"name": "lstm", "layers": 6, "channels": 64},
    "mamba": {"name": "mamba", "layers": 6, "d_model": 32, "d_state": 16, "expand": 2, "d_conv": 4},
}
TASK = {"num_items": 26, "input_length": 5, "num_operations": [2, 5], "operators": {">": 1}}
LR, BATCH = 5e-4, 64


def selcopy_rate(settings: dict, steps: int, warmup: int, device: torch.device, loss: str, compile: bool,
                 precision: str, repeat: int) -> float:
    task = make_task("program", TASK)
    split = DataSplit(task, make_task("program", {**TASK, "num_operations": 5}), 100_000, 64, 23)
    torch.manual_seed(0)
    cfg = TrainConfig(max_inputs=warmup * BATCH, validate_every=10**9, batch_size=BATCH, lr=LR, loss=loss,
                      compile=compile, precision=precision)
    trainer = Trainer(build_model(settings), split, cfg, seed=1, device=device)
    trainer.fit()  # warm-up: first epoch drawn, kernels (and compiled graphs) ready
    best = float("inf")
    for _ in range(repeat):
        trainer.config = cfg.model_copy(update={"max_inputs": trainer.inputs + steps * BATCH})
        _sync(device)
        start = time.perf_counter()
        trainer.fit()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return steps * BATCH / best


def reference_rate(settings: dict, steps: int, warmup: int, device: torch.device, loss: str, repeat: int) -> float:
    torch.manual_seed(0)
    model = build_model(settings).to(device)
    probe = torch.randint(32, 90, (4, 31), device=device)
    with torch.no_grad():  # the reference computes the same function as the product's model
        torch.testing.assert_close(article_forward(model, probe), model(probe), rtol=1e-4, atol=1e-4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    total = warmup + steps * repeat
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    rng = random.Random(1)
    best, start = float("inf"), 0.0
    for i in range(total):
        if i >= warmup and (i - warmup) % steps == 0:
            _sync(device)
            if i > warmup:
                best = min(best, time.perf_counter() - start)
            start = time.perf_counter()
        texts = [reference_sample(rng, TASK) for _ in range(BATCH)]
        masked = [t[:-5] + "\0" * 5 for t in texts]  # the dataset yields text and masked text
        text_batch, masked_batch = _encode(texts, device), _encode(masked, device)
        target = torch.zeros(*text_batch.shape, 256, device=device)
        target.scatter_(-1, text_batch.unsqueeze(-1), 1)  # one-hot targets
        logits = article_forward(model, masked_batch)
        if loss == "sequence":
            value = F.cross_entropy(logits.flatten(1), target.flatten(1))
        else:
            value = F.cross_entropy(logits.reshape(-1, 256), target.reshape(-1, 256))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():  # the article's metrics, read back every step
            mask = masked_batch == 0
            wrong = text_batch != logits.argmax(-1)
            for metric in (value, wrong.float().mean() * 100, (mask & wrong).float().mean() * 100 / mask.float().mean(),
                           wrong.any(-1).float().mean() * 100):
                metric.item()
    _sync(device)
    best = min(best, time.perf_counter() - start)
    return steps * BATCH / best


def model_step_rate(settings: dict, steps: int, warmup: int, device: torch.device, loss: str, repeat: int) -> float:
    """The ceiling of both paths in float32: forward, loss, backward and optimizer step on one
    batch made beforehand (no data, no metrics, no schedule). What the model itself costs."""
    torch.manual_seed(0)
    model = build_model(settings).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, fused=device.type in ("cpu", "cuda"))
    batch = make_task("program", TASK).sample_batch(BATCH, torch.Generator().manual_seed(1)).to(device)
    masked, text = batch.masked.long(), batch.text.long()
    best = float("inf")
    for round_ in range(repeat + 1):  # round 0 warms up
        _sync(device)
        start = time.perf_counter()
        for _ in range(warmup if round_ == 0 else steps):
            value = LOSSES[loss](model(masked), text)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
        _sync(device)
        if round_:
            best = min(best, time.perf_counter() - start)
    return steps * BATCH / best


def _encode(texts: list[str], device: torch.device) -> torch.Tensor:
    """Per batch, as the article's trainer: bytes per text, padded with spaces, stacked."""
    rows = [list(t.encode()) for t in texts]
    width = max(len(r) for r in rows)
    padded = [torch.tensor(r + [32] * (width - len(r)), dtype=torch.int64).unsqueeze(0) for r in rows]
    return torch.cat(padded).to(device)


def article_forward(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The conv model computed the article's way, with the same parameters: Conv1d over
    (B, C, L), transposes around the attention, a linear read-out. Other models as they are."""
    if not hasattr(model, "layers") or not hasattr(model.layers[0], "conv"):
        return model(ids)
    x = model.embed(ids).transpose(1, 2)  # (B, C, L)
    for layer in model.layers:
        y = layer.conv(x)  # (B, C*m, L)
        if layer.attention is not None:
            parts = dict(zip(layer.invention, y.chunk(len(layer.invention), dim=1)))
            q, k, v = (parts.get(letter, x).transpose(1, 2) for letter in "QKV")  # (B, L, C)
            y = layer.attention(q, k, v).transpose(1, 2)
        x = x + layer.act(y)
    return F.linear(x.transpose(1, 2), model.embed.embedding.weight)  # (B, L, V)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=60, help="timed batches per model and path")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds per path; the best counts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--loss", default="token", choices=["token", "sequence"])
    parser.add_argument("--compile", action="store_true", help="selcopy path with train.compile: true")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                        help="selcopy path's train.precision (the reference runs float32, as the article did); "
                             "float32 computes exactly what the reference does")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = pick_device(args.device)
    rows = []
    for name in args.models:
        ours = selcopy_rate(MODELS[name], args.steps, args.warmup, device, args.loss, args.compile, args.precision,
                            args.repeat)
        ref = reference_rate(MODELS[name], args.steps, args.warmup, device, args.loss, args.repeat)
        bound = model_step_rate(MODELS[name], args.steps, args.warmup, device, args.loss, args.repeat)
        rows.append({"model": name, "selcopy_samples_per_s": round(ours, 1), "reference_samples_per_s": round(ref, 1),
                     "ratio": round(ours / ref, 2), "float32_model_step_samples_per_s": round(bound, 1),
                     "float32_ceiling_ratio": round(bound / ref, 2), "device": str(device),
                     "threads": torch.get_num_threads(),
                     "loss": args.loss, "compile": args.compile, "precision": args.precision, "batch_size": BATCH})
        if not args.json:
            print(f"{name:<12} selcopy {ours:>9,.0f}/s   reference {ref:>9,.0f}/s   ratio {ours / ref:5.2f}x   "
                  f"float32 model step alone {bound:>9,.0f}/s ({bound / ref:4.2f}x)", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"(device {device}, {torch.get_num_threads()} threads, batch {BATCH}, best of {args.repeat} x "
              f"{args.steps} timed steps, "
              f"loss {args.loss}, compile {args.compile}, selcopy precision {args.precision})")


if __name__ == "__main__":
    main()
