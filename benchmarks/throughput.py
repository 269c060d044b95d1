"""Training samples per second: selcopy's training path vs the article's way, side by side.

Both train the same model (built from the same settings), with the same loss, metrics and
batch size, on the article's setting of table 3 (5 letters, 2-5 swaps, validated on 5):

- selcopy: `Trainer.fit`, i.e. batched tensor data generation, the train step, metrics
  accumulated on the device, the lr schedule.
- reference: what the article's trainer does per batch, written independently here:
  samples generated one by one as Python strings, encoded to bytes per batch, one-hot
  targets, the cross-entropy against them, the metrics read back (`.item()`) every step. It
  runs in a process of its own (one for all models) in which glibc's malloc keeps freed memory
  for reuse (`keep_freed_memory`), as selcopy does in a process that trains runs (and as this
  script's own process does for the selcopy path): with
  glibc's defaults its one-hot targets and activations would be faulted in anew every step,
  which cost it 3-12% for the 6-layer conv and up to 53% in some of the LSTM's processes
  (`allocator.py`), and the ratio would flatter selcopy. The JSON row says
  whether it took (`reference_kept_freed_memory_below`: the threshold in bytes, 0 if not).
- model step alone, in float32 and in bfloat16 autocast: forward, loss, backward and optimizer
  step on one batch made beforehand (no data, no metrics, no schedule). The selcopy path pays at
  least this in its precision: its ratio to the reference is the most that any work on data,
  syncs and Python can gain.
- `--validation`: samples/s of validating on the article's 10,000-sample validation set with
  `validation_batch_size` 64 (the training batch) and 1024 (the default), and what that costs a
  run that validates every 100,000 samples, next to its training time.
- `--breakdown`: where the model step's time goes, from a profile of it in `--precision`: the
  time of its convolution, matrix-product and attention kernels (oneDNN / BLAS / cuDNN calls:
  no Python can make them cheaper), their share of the profiled step (a lower bound: the
  profiler's cost per op falls mostly on the small ops), their GFLOP/s (FLOPs counted by
  `torch.utils.flop_counter`; conv models without head attention) and `torch.mm`'s GFLOP/s
  on one product of the same size as one conv layer's.

- `--grid`: a grid of N trials of the 6-layer conv (rows `conv6-grid4`, `conv6-grid8`): the
  aggregate training samples/s of each way `selcopy run` can train them (one at a time; `--jobs`
  processes side by side, the cores divided; stacked in one process, `--stack`; stacks side by
  side), against the reference loop training them one at a time. Side by side, the processes
  time their rounds together (a barrier before each); the aggregate of a round is all their
  samples over the span from the first start to the last end. A way trains in `--precision`
  where it can; a stack in float32 where that precision cannot stack on the device
  (`stack_refusal`: on a CPU, bf16 autocast does not reach a convolution under vmap).
  `selcopy_samples_per_s` is the fastest way's, named in `fastest`.

    python benchmarks/throughput.py [--models conv6 lstm] [--steps 60] [--json] [--device cpu]
                                    [--precision bfloat16] [--breakdown] [--validation]
    python benchmarks/throughput.py --grid [--trials 4 8] [--jobs 2] [--precision bfloat16] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import re
import sys
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from datagen import reference_sample  # noqa: E402

from selcopy.experiments.runner import start_process  # noqa: E402
from selcopy.models import TaskShape, build_model  # noqa: E402
from selcopy.models.attention import mixer_name  # noqa: E402
from selcopy.models.conv import ConvModel  # noqa: E402
from selcopy.tasks import make_task  # noqa: E402
from selcopy.tasks.split import DataSplit  # noqa: E402
from selcopy.train.config import TrainConfig  # noqa: E402
from selcopy.train.device import bf16_refusal, keep_freed_memory, pick_device  # noqa: E402
from selcopy.train.loop import Trainer, evaluate, logits_of  # noqa: E402
from selcopy.train.metrics import LOSSES  # noqa: E402
from selcopy.train.stacked import StackedTrainer, stack_refusal  # noqa: E402
from selcopy.vocab import VOCAB  # noqa: E402

MODELS = {
    "conv6": {"name": "conv", "layers": 6, "kernel_size": 9, "dilation": [1, 2, 3, 4, 5, 1]},
    "conv6-attn": {"name": "conv", "layers": 6, "kernel_size": 9, "dilation": [1, 2, 3, 4, 5, 1],
                   "attention": [0, 0, 0, 0, 0, True]},
    "conv3-mha8": {"name": "conv", "layers": 3, "kernel_size": 13, "dilation": [3, 5, 1], "attention": [0, 0, 8]},
    # the article's 12-layer conv, and the 6-layer candidates of its open question (docs/open-question.md)
    "conv12": {"name": "conv", "layers": 12, "kernel_size": 9, "dilation": [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 1]},
    "conv6-q": {"name": "conv", "layers": 6, "kernel_size": 9, "dilation": [1, 2, 3, 4, 5, 1],
                "attention": [0, 0, 0, 0, 0, True], "attention_invention": "Q"},
    "conv6-qk-k3": {"name": "conv", "layers": 6, "kernel_size": [9, 9, 9, 9, 9, 3], "dilation": [1, 2, 3, 4, 5, 1],
                    "attention": [0, 0, 0, 0, 0, True], "attention_invention": "QK"},
    "conv6-qk-56": {"name": "conv", "layers": 6, "channels": 56, "kernel_size": 9, "dilation": [1, 2, 3, 4, 5, 1],
                    "attention": [0, 0, 0, 0, 0, True], "attention_invention": "QK"},
    "lstm": {"name": "lstm", "layers": 6, "channels": 64},
    "mamba": {"name": "mamba", "layers": 6, "d_model": 32, "d_state": 16, "expand": 2, "d_conv": 4},
}
TASK = {"num_items": 26, "input_length": 5, "num_operations": [2, 5], "operators": {">": 1}}
SHAPE = TaskShape(max_length=make_task("program", TASK).max_length(), vocab=VOCAB)
LR, BATCH = 5e-4, 64


def selcopy_rate(settings: dict, steps: int, warmup: int, device: torch.device, loss: str, compile: bool,
                 precision: str, repeat: int) -> float:
    task = make_task("program", TASK)
    split = DataSplit(task, make_task("program", {**TASK, "num_operations": 5}), 100_000, 64, 23)
    torch.manual_seed(0)
    cfg = TrainConfig(max_inputs=warmup * BATCH, validate_every=10**9, batch_size=BATCH, lr=LR, loss=loss,
                      compile=compile, precision=precision)
    trainer = Trainer(build_model(settings, SHAPE), split, cfg, seed=1, device=device)
    trainer.fit()  # warm-up: first epoch drawn, kernels (and compiled graphs) ready

    def more_steps() -> None:
        trainer.config = cfg.model_copy(update={"max_inputs": trainer.inputs + steps * BATCH})
        trainer.fit()

    return steps * BATCH / _best_seconds(more_steps, repeat, device)


def stacked_rate(settings: dict, trials: int, steps: int, warmup: int, device: torch.device, loss: str,
                 precision: str, repeat: int, barrier=None) -> list[tuple[float, float, int]]:
    """`trials` runs (seeds 1..N) stacked in one `StackedTrainer` (`trials` 1: a lone `Trainer`),
    as `selcopy_rate` trains one: (start, end, samples) of each timed round, each round begun
    after `barrier` (processes side by side) where given."""
    task = make_task("program", TASK)
    split = DataSplit(task, make_task("program", {**TASK, "num_operations": 5}), 100_000, 64, 23)
    cfg = TrainConfig(max_inputs=warmup * BATCH, validate_every=10**9, batch_size=BATCH, lr=LR, loss=loss,
                      precision=precision)
    members = []
    for seed in range(1, trials + 1):
        torch.manual_seed(seed)
        members.append(Trainer(build_model(settings, SHAPE), split, cfg, seed=seed, device=device))
    group = StackedTrainer(members) if trials > 1 else members[0]
    group.fit()  # warm-up: first epochs drawn, kernels ready
    rounds = []
    for _ in range(repeat):
        more = cfg.model_copy(update={"max_inputs": members[0].inputs + steps * BATCH})
        for trainer in [group, *members]:
            trainer.config = more
        if barrier is not None:
            barrier.wait()
        _sync(device)
        start = time.perf_counter()
        group.fit()
        _sync(device)
        rounds.append((start, time.perf_counter(), trials * steps * BATCH))
    return rounds


def side_by_side(pool: Executor, barrier, jobs: list[tuple]) -> float:
    """Aggregate samples/s of `stacked_rate` jobs (its arguments but the barrier) run at once in
    `pool`, one worker each: per round, all their samples over the span from the first start to
    the last end; the best round."""
    futures = [pool.submit(stacked_rate, *args, barrier) for args in jobs]
    rounds = list(zip(*[future.result() for future in futures]))
    return max(sum(n for _, _, n in r) / (max(e for _, e, _ in r) - min(s for s, _, _ in r)) for r in rounds)


def grid_row(args: argparse.Namespace, trials: int, device: torch.device, ref: float,
             side: tuple[Executor, object] | None) -> dict:
    """`conv6-gridN`: the aggregate samples/s of N conv6 trials, each way (see the module's doc)."""
    settings, jobs = MODELS["conv6"], min(args.jobs, trials)
    stack_precision = args.precision
    if stack_refusal(build_model(settings, SHAPE), SHAPE.max_length, TrainConfig(precision=args.precision), device):
        stack_precision = "float32"
    common = (args.steps, args.warmup, device, args.loss)

    def together(stacked: int, precision: str) -> float:
        pool, barrier = side
        return side_by_side(pool, barrier, [(settings, stacked, *common, precision, args.repeat)] * jobs)

    ways = {"alone": ({"precision": args.precision, "jobs": 1, "stacked": 1},
                      lambda: selcopy_rate(settings, *common, False, args.precision, args.repeat)),
            "stacked": ({"precision": stack_precision, "jobs": 1, "stacked": trials},
                        lambda: _rate(stacked_rate(settings, trials, *common, stack_precision, args.repeat)))}
    if jobs > 1 and side is not None:
        per_job = -(-trials // jobs)
        ways["jobs"] = ({"precision": args.precision, "jobs": jobs, "stacked": 1},
                        lambda: together(1, args.precision))
        ways["stacked_jobs"] = ({"precision": stack_precision, "jobs": jobs, "stacked": per_job},
                                lambda: together(per_job, stack_precision))
    measured = {name: {**how, "samples_per_s": round(measure(), 1)} for name, (how, measure) in ways.items()}
    fastest = max(measured, key=lambda name: measured[name]["samples_per_s"])
    best = measured[fastest]["samples_per_s"]
    return {"model": f"conv6-grid{trials}", "trials": trials, "selcopy_samples_per_s": best,
            "reference_samples_per_s": round(ref, 1), "ratio": round(best / ref, 2), "fastest": fastest,
            "ways": measured, "device": str(device), "threads": torch.get_num_threads(), "loss": args.loss,
            "batch_size": BATCH, "steps": args.steps, "repeat": args.repeat}


def _rate(rounds: list[tuple[float, float, int]]) -> float:
    return max(n / (end - start) for start, end, n in rounds)


def reference_rate(settings: dict, steps: int, warmup: int, device: torch.device, loss: str, repeat: int) -> float:
    torch.manual_seed(0)
    model = build_model(settings, SHAPE).to(device)
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


def bare_step(settings: dict, device: torch.device, loss: str, precision: str):
    """Forward (in `precision`), loss, backward and optimizer step on one batch made beforehand:
    what the model itself costs, without data, metrics or schedule."""
    torch.manual_seed(0)
    model = build_model(settings, SHAPE).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, fused=device.type in ("cpu", "cuda"))
    batch = make_task("program", TASK).sample_batch(BATCH, torch.Generator().manual_seed(1)).to(device)
    masked, text = batch.masked.long(), batch.text.long()

    def step() -> None:
        value = LOSSES[loss](logits_of(model, masked, precision), text)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    return step


def model_step_rate(settings: dict, steps: int, warmup: int, device: torch.device, loss: str, repeat: int,
                    precision: str) -> float:
    """The ceiling of the selcopy path in `precision`: samples/s of the bare model step."""
    step = bare_step(settings, device, loss, precision)
    for _ in range(warmup):
        step()
    return steps * BATCH / _best_seconds(lambda: [step() for _ in range(steps)], repeat, device)


def validation_rates(settings: dict, device: torch.device, loss: str, precision: str, repeat: int) -> dict:
    """Samples/s of `evaluate` on a 10,000-sample validation set, per validation batch size."""
    task = make_task("program", TASK)
    split = DataSplit(task, make_task("program", {**TASK, "num_operations": 5}), BATCH, 10_000, 23)
    torch.manual_seed(0)
    model = build_model(settings, SHAPE).to(device)
    data = split.validation.to(device)  # as the trainer keeps it
    rates = {}
    for size in (64, 1024):
        cfg = TrainConfig(validation_batch_size=size, loss=loss, precision=precision)
        evaluate(model, data, cfg, device)  # warm-up
        rates[size] = len(data) / _best_seconds(lambda cfg=cfg: evaluate(model, data, cfg, device), repeat, device)
    return rates


# The ops whose kernels do a model's multiply-adds (oneDNN / BLAS / cuDNN / cuBLAS calls):
# "kernel time" below is the self time of these `aten::` ops.
KERNELS = re.compile(
    r"convolution|conv_depthwise|mkldnn_rnn|_cudnn_rnn|scaled_dot_product|_flash_attention|_efficient_attention"
    r"|\b(addmm|mm|bmm|baddbmm)\b"
)


def breakdown(settings: dict, steps: int, warmup: int, device: torch.device, loss: str, precision: str) -> dict:
    """Where the bare model step's time goes: its convolution, matrix-product and attention
    kernels against the rest, in a profile of `steps` steps. The profiler's own cost per op
    falls mostly on the many small ops, so the kernels' share of the profiled step is a lower
    bound of their share without it."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    step = bare_step(settings, device, loss, precision)
    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    # Ops are CPU events; on CUDA each also carries the device time of the kernels it launched.
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        profiled = (time.perf_counter() - start) / steps * 1e3  # ms per step, under the profiler
    kernels = sum(_self_time(e, device) for e in prof.key_averages()
                  if e.key.startswith("aten::") and KERNELS.search(e.key)) / steps / 1e3
    row = {"profiled_step_ms": round(profiled, 3), "kernel_ms": round(kernels, 3),
           "kernel_share": round(kernels / profiled, 3),
           "gflop_per_step": None, "kernel_gflop_per_s": None, "mm_gflop_per_s": None}
    # The flop counter knows every multiply-add of a conv model without torch's head attention
    # (it has no formula for the CPU attention kernel), not the LSTM's or the scan's.
    conv = build_model(settings, SHAPE).cfg if settings["name"] == "conv" else None
    if conv and "heads" not in [mixer_name(a) for a in conv.attentions()]:
        flops = counter.get_total_flops()
        row.update(gflop_per_step=round(flops / 1e9, 3), kernel_gflop_per_s=round(flops / kernels / 1e6, 1),
                   mm_gflop_per_s=round(mm_rate(settings, device, precision), 1))
    return row


def _self_time(event, device: torch.device) -> float:
    """Microseconds of an op's own kernels: on CUDA those it launched (torch < 2.4 names it
    `self_cuda_time_total`), on CPU its own time."""
    if device.type != "cuda":
        return event.self_cpu_time_total
    return getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0)


def mm_rate(settings: dict, device: torch.device, precision: str) -> float:
    """GFLOP/s of `torch.mm` in `precision` on one product the size of one conv layer's forward
    (B*L x k*C times k*C x C, as an im2col convolution would compute it; the backward's two
    products have the same size, transposed)."""
    length = make_task("program", TASK).max_length()
    cfg = build_model(settings, SHAPE).cfg
    c, k = cfg.channels, cfg.kernel_sizes()[0]
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    a = torch.randn(BATCH * length, k * c, device=device, dtype=dtype)
    b = torch.randn(k * c, c, device=device, dtype=dtype)

    def products() -> None:
        for _ in range(50):
            a @ b

    products()  # warm-up
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] * 50 / _best_seconds(products, 3, device) / 1e9


def _encode(texts: list[str], device: torch.device) -> torch.Tensor:
    """Per batch, as the article's trainer: bytes per text, padded with spaces, stacked."""
    rows = [list(t.encode()) for t in texts]
    width = max(len(r) for r in rows)
    padded = [torch.tensor(r + [32] * (width - len(r)), dtype=torch.int64).unsqueeze(0) for r in rows]
    return torch.cat(padded).to(device)


def article_forward(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The conv model computed the article's way, with the same parameters: Conv1d over
    (B, C, L), transposes around the attention, a linear read-out. Other models as they are."""
    if not isinstance(model, ConvModel):
        return model(ids)
    x = model.embed(ids).transpose(1, 2)  # (B, C, L)
    for layer in model.layers:
        y = layer.conv(x)  # (B, C*m, L)
        if layer.attention is not None:
            parts = {letter: part.transpose(1, 2) for letter, part in  # (B, L, C) each
                     zip(layer.invention, y.chunk(len(layer.invention), dim=1))}
            y = layer.mixer.mix(layer.attention, parts, x.transpose(1, 2)).transpose(1, 2)
        x = x + layer.act(y)
    return F.linear(x.transpose(1, 2), model.embed.embedding.weight)  # (B, L, V)


def _best_seconds(run, repeat: int, device: torch.device) -> float:
    """The shortest of `repeat` timed calls of `run()`, the device synchronized around each."""
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["conv6", "conv6-attn", "conv3-mha8", "lstm", "mamba"],
                        choices=list(MODELS), help="(default: the article's models of tables 3, 4 and 5)")
    parser.add_argument("--steps", type=int, default=60, help="timed batches per model and path")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds per path; the best counts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--loss", default="token", choices=["token", "sequence"])
    parser.add_argument("--compile", action="store_true", help="selcopy path with train.compile: true")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                        help="selcopy path's train.precision (the reference runs float32, as the article did); "
                             "float32 computes exactly what the reference does")
    parser.add_argument("--breakdown", action="store_true",
                        help="also profile the bare model step in --precision: kernel time, share and GFLOP/s")
    parser.add_argument("--validation", action="store_true",
                        help="also time validation on 10,000 samples at validation batch sizes 64 and 1024")
    parser.add_argument("--grid", action="store_true",
                        help="rows conv6-gridN instead: the aggregate rate of N conv6 trials, each way selcopy trains "
                             "them (one at a time, --jobs, --stack, both) against the reference one at a time")
    parser.add_argument("--trials", type=int, nargs="*", default=[4, 8], help="grid sizes N of --grid")
    parser.add_argument("--jobs", type=int, default=2, help="processes side by side in --grid (1: none)")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    device = pick_device(args.device)
    start_process(device)  # the selcopy path in a process set up as `selcopy run` sets up its own
    # one process of its own for all reference loops (idle while the selcopy path runs), freed memory kept
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as reference:
        kept = reference.submit(keep_freed_memory).result()
        if args.grid:
            rows = run_grid_rows(args, device, reference, _job_processes(args, device))
        else:
            rows = run(args, device, reference, kept)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"(device {device}, {torch.get_num_threads()} threads, batch {BATCH}, best of {args.repeat} x "
              f"{args.steps} timed steps, loss {args.loss}, compile {args.compile}, selcopy precision "
              f"{args.precision}; the reference's process " + (f"reuses freed blocks below {kept >> 20} MiB)" if kept
                                                               else "has the platform's default malloc)"))


def _job_processes(args: argparse.Namespace, device: torch.device) -> tuple[Executor, object] | None:
    """`--jobs` fresh processes set up as `selcopy run --jobs` sets up its jobs (the cores divided),
    and the barrier that starts their rounds together; None for `--jobs 1`."""
    if args.jobs < 2:
        return None
    context = multiprocessing.get_context("spawn")
    threads = max(1, torch.get_num_threads() // args.jobs)
    pool = ProcessPoolExecutor(args.jobs, mp_context=context, initializer=start_process, initargs=(device, threads))
    return pool, context.Manager().Barrier(args.jobs)


def run_grid_rows(args: argparse.Namespace, device: torch.device, reference: Executor,
                  side: tuple[Executor, object] | None) -> list[dict]:
    """The `--grid` rows; prints each as it is measured unless `args.json`. The reference loop (one
    run at a time, the same for every N) runs through `reference`, the side-by-side ways through
    `side` (a pool of `--jobs` workers and a barrier for them; threads in tests)."""
    ref = reference.submit(reference_rate, MODELS["conv6"], args.steps, args.warmup, device, args.loss,
                           args.repeat).result()
    rows = []
    for trials in args.trials:
        row = grid_row(args, trials, device, ref, side)
        rows.append(row)
        if not args.json:
            ways = ",  ".join(f"{name} {w['samples_per_s']:>7,.0f}/s ({w['precision']}, {w['jobs']} job"
                              f"{'s' * (w['jobs'] > 1)}, {w['stacked']} stacked)" for name, w in row["ways"].items())
            print(f"{row['model']:<12} selcopy {row['selcopy_samples_per_s']:>9,.0f}/s ({row['fastest']})   reference "
                  f"{ref:>7,.0f}/s one at a time   ratio {row['ratio']:5.2f}x   ways: {ways}", flush=True)
    if side is not None:
        side[0].shutdown()
    return rows


def bare_step_rate(model: dict, args: argparse.Namespace, device: torch.device, precision: str) -> float | None:
    """The model step's rate in `precision`, or None where the processor has no kernel for it (the
    trainer's `bf16_refusal`: oneDNN's LSTM has no bf16 kernel on a CPU without AVX-512)."""
    if bf16_refusal(build_model(model, SHAPE), precision, device):
        return None
    return model_step_rate(model, args.steps, args.warmup, device, args.loss, args.repeat, precision)


def run(args: argparse.Namespace, device: torch.device, reference: Executor, kept: int) -> list[dict]:
    """Every model's row; prints each as it is measured unless `args.json`. The reference loops
    run through `reference` (a process of their own, or any executor in tests)."""
    rows = []
    for name in args.models:
        ours = selcopy_rate(MODELS[name], args.steps, args.warmup, device, args.loss, args.compile, args.precision,
                            args.repeat)
        ref = reference.submit(reference_rate, MODELS[name], args.steps, args.warmup, device, args.loss,
                               args.repeat).result()
        bare = {p: bare_step_rate(MODELS[name], args, device, p) for p in ("float32", "bfloat16")}
        row = {"model": name, "selcopy_samples_per_s": round(ours, 1), "reference_samples_per_s": round(ref, 1),
               "ratio": round(ours / ref, 2)}
        for p, rate in bare.items():  # None: this processor has no kernel for the model in that precision
            row[f"{p}_model_step_samples_per_s"] = None if rate is None else round(rate, 1)
            row[f"{p}_model_step_ratio"] = None if rate is None else round(rate / ref, 2)
        row.update(device=str(device), threads=torch.get_num_threads(), loss=args.loss, compile=args.compile,
                   precision=args.precision, batch_size=BATCH, reference_kept_freed_memory_below=kept)
        if args.validation:
            val = validation_rates(MODELS[name], device, args.loss, args.precision, args.repeat)
            row["validation_samples_per_s"] = {str(k): round(v, 1) for k, v in val.items()}
        if args.breakdown:
            row["breakdown"] = breakdown(MODELS[name], args.steps, args.warmup, device, args.loss, args.precision)
        rows.append(row)
        if not args.json:
            print(f"{name:<12} selcopy {ours:>9,.0f}/s   reference {ref:>9,.0f}/s   ratio {ours / ref:5.2f}x   "
                  "model step alone: " + ",  ".join(f"{p} {r:>6,.0f}/s ({r / ref:4.2f}x)" if r is not None
                                                    else f"{p} none (no kernel on this processor)"
                                                    for p, r in bare.items()),
                  flush=True)
            if args.validation:
                share = {k: 10_000 / v / (10_000 / v + 100_000 / ours) for k, v in val.items()}
                print(f"{'':<12} {args.precision} validation on 10,000 samples: "
                      + ",  ".join(f"batch {k} {v:>7,.0f}/s ({share[k]:.1%} of a run validating every 100,000)"
                                   for k, v in val.items()), flush=True)
            if args.breakdown:
                b = row["breakdown"]
                flops = (f": {b['gflop_per_step']:.2f} GFLOP at {b['kernel_gflop_per_s']:,.0f} GFLOP/s; torch.mm at "
                         f"a conv layer's size {b['mm_gflop_per_s']:,.0f} GFLOP/s" if b["gflop_per_step"] else "")
                print(f"{'':<12} {args.precision} model step {1e3 * BATCH / bare[args.precision]:.2f} ms "
                      f"({b['profiled_step_ms']:.2f} profiled), of which conv/matmul/attention kernels "
                      f"{b['kernel_ms']:.2f} ms ({b['kernel_share']:.0%} of the profiled step){flops}; "
                      f"a 3x speed-up needs <= {1e3 * BATCH / (3 * ref):.2f} ms per step", flush=True)
    return rows


if __name__ == "__main__":
    main()
