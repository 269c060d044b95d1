"""What the Ray executor (`selcopy run --executor ray`) adds to a run, against `--jobs`, on one machine.

  ray_start_s    `ray.init()` starting a Ray of its own on this machine (once per command without
                 --address; none with --address, where the cluster is already running)
  run_start_s    from asking for a run's process to its first line after importing selcopy and
                 torch: a Ray actor with one CPU (what the executor starts for every run: Ray's
                 scheduling, a worker process, the imports) against a `spawn` process (what
                 `--jobs` starts for every run)
  transfer_s     a validation of `--model` (its metrics line, example image and checkpoint with
                 AdamW's moments) sent by a worker to the driver through the executor's `Post`,
                 written there as a local run writes it and answered: the worker's wait; against
                 the same writes in the training process (`Recorder.write`, what a local run pays)

    python benchmarks/ray_overhead.py [--model conv6] [--validations 20] [--starts 3] [--address ADDR] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from throughput import BATCH, MODELS, SHAPE, TASK  # noqa: E402

from selcopy.experiments.executors.ray_worker import Post  # noqa: E402
from selcopy.experiments.recorder import Recorder, Validation  # noqa: E402
from selcopy.experiments.store import RunStore  # noqa: E402
from selcopy.models import build_model  # noqa: E402
from selcopy.tasks import make_task  # noqa: E402
from selcopy.tasks.split import DataSplit  # noqa: E402
from selcopy.train.config import TrainConfig  # noqa: E402
from selcopy.train.loop import Trainer  # noqa: E402


def validation_of(model: str) -> Validation:
    """The first validation of `model` on throughput.py's task, after one training batch."""
    task = make_task("program", TASK)
    split = DataSplit(task, make_task("program", {**TASK, "num_operations": 5}), 1_000, 1_000, 23)
    config = TrainConfig(max_inputs=BATCH, validate_every=BATCH)
    trainer = Trainer(build_model(MODELS[model], SHAPE), split, config, 1, torch.device("cpu"))
    made: list[Validation] = []
    trainer.on_validation = lambda at, metrics: made.append(Validation.of(at, metrics))
    trainer.fit()
    return made[0]


def local_writes(validation: Validation, count: int, root: Path) -> list[float]:
    recorder = Recorder(RunStore(root, "local/run"), 0)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        recorder.write(validation)
        times.append(time.perf_counter() - start)
    recorder.close()
    return times


def sender():
    """A task that sends `validation` `count` times and times each wait (by value: no import of this file)."""

    def send(post, validation, count):
        import time

        import ray

        times = []
        for _ in range(count):
            start = time.perf_counter()
            ray.get(post.send.remote("ray/run", 1, "validation", validation))
            times.append(time.perf_counter() - start)
        return times

    return send


def transfers(ray, validation: Validation, count: int, root: Path) -> list[float]:
    """The worker's wait per validation, while this process writes each as the driver does."""
    here = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                                        soft=False)
    post = ray.remote(Post).options(num_cpus=0, scheduling_strategy=here).remote()
    ref = ray.remote(num_cpus=1)(sender()).remote(post, validation, count)
    recorder = Recorder(RunStore(root, "ray/run"), 0)
    while not ray.wait([ref], timeout=0)[0]:
        for number, _, _, _, payload in ray.get(post.collect.remote(0.2)):
            recorder.write(payload)
            post.answer.remote(number, True)
    recorder.close()
    ray.kill(post)
    return ray.get(ref)


def stamp():
    def started():
        import time

        import torch  # noqa: F401

        import selcopy.experiments.executors.ray  # noqa: F401  what a worker imports to train a run

        return time.time()

    return started


def _spawned(queue) -> None:
    queue.put(stamp()())


def actor_class() -> type:
    class Run:  # by value, as the executor's: it names nothing of this file
        def started(self) -> float:
            import time

            import torch  # noqa: F401

            import selcopy.experiments.executors.ray  # noqa: F401  what a run's actor imports

            return time.time()

    return Run


def ray_starts(ray, count: int) -> list[float]:
    """One actor after another, each asked for one CPU and ended once it has answered."""
    run = ray.remote(num_cpus=1)(actor_class())
    times = []
    for _ in range(count):
        start = time.time()
        actor = run.remote()
        times.append(ray.get(actor.started.remote()) - start)
        ray.kill(actor)
    return times


def spawn_starts(count: int) -> list[float]:
    context = multiprocessing.get_context("spawn")
    times = []
    for _ in range(count):
        queue = context.Queue()
        start = time.time()
        process = context.Process(target=_spawned, args=(queue,))
        process.start()
        times.append(queue.get() - start)
        process.join()
    return times


def measure(model: str, validations: int, starts: int, address: str | None = None) -> dict:
    """The figures of one `--model`; with `address`, on that running cluster (ray_start_s: joining it)."""
    import ray

    validation = validation_of(model)
    with tempfile.TemporaryDirectory() as root:
        local = local_writes(validation, validations, Path(root))
        spawned = spawn_starts(starts)
        began = time.perf_counter()
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        ray.init(address=address or "local", **quiet, **({} if address else {"include_dashboard": False}))
        ray_start = time.perf_counter() - began
        try:
            started = ray_starts(ray, starts)
            sent = transfers(ray, validation, validations, Path(root))
        finally:
            ray.shutdown()
    median = lambda values: round(statistics.median(values), 4)  # noqa: E731
    return {"model": model, "checkpoint_bytes": len(validation.checkpoint), "image_bytes": len(validation.examples),
            "ray_start_s": round(ray_start, 3),
            "run_start_s": {"ray_actor": median(started), "spawn": median(spawned)},
            "transfer_s": {"ray": median(sent), "local_write": median(local)}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="conv6", choices=sorted(MODELS))
    parser.add_argument("--validations", type=int, default=20, help="validations sent (medians reported)")
    parser.add_argument("--starts", type=int, default=3, help="run starts of each kind (medians reported)")
    parser.add_argument("--address", help="a running Ray cluster's (default: start a Ray on this machine)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    row = measure(args.model, args.validations, args.starts, args.address)
    if args.json:
        print(json.dumps(row, indent=1))
        return
    start, sent = row["run_start_s"], row["transfer_s"]
    print(f"{row['model']}: checkpoint {row['checkpoint_bytes']:,} bytes, example image {row['image_bytes']:,} bytes")
    print(f"Ray's own start (ray.init, {'joining' if args.address else 'local'}): {row['ray_start_s']:.2f} s")
    print(f"a run's start: Ray actor {start['ray_actor']:.2f} s, spawn (--jobs) {start['spawn']:.2f} s")
    print(f"a validation stored: through Ray {sent['ray'] * 1000:.1f} ms, "
          f"in the training process {sent['local_write'] * 1000:.1f} ms (medians)")


if __name__ == "__main__":
    main()
