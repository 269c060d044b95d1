"""`selcopy run --executor ray` on a local Ray cluster of two 1-CPU worker nodes (and a head node
with no CPU, where the driver and its mailbox live): a grid ends exactly as with the serial
executor, a worker or node killed mid-run costs only the work since the last checkpoint, locks
hold, a worker without selcopy or with other versions fails its run in one line, Ctrl-C stops
every task, and no Ray process is left behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from selcopy.cli import main
from selcopy.experiments.store import RunStore
from selcopy.train import checkpoint
from selcopy.train.loop import Trainer

TINY = Path(__file__).parent / "files" / "tiny_grid.yml"  # two runs, validations at 640 and 1,280 inputs
RUNS = ("tiny/trial-1", "tiny/trial-2")
TIMES = ("train_time", "throughput", "finished_at")
NODE = {"num_cpus": 1, "object_store_memory": 80 << 20}
FAST_DEATH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_timeout_ms": 500,
              "health_check_failure_threshold": 2,  # a removed node is known dead in about a second
              "worker_niceness": 0}  # as selcopy's own Ray: workers not starved by a busy machine's other work

pytestmark = [pytest.mark.ray, pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds Ray's "
                                                  "processes through /proc")]


def ray_processes(marker: str) -> list[int]:
    """Live Ray processes started with `RAY_TMPDIR=marker` in their environment: the cluster's,
    wherever they were reparented (a zombie has no environment left)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            ours = f"RAY_TMPDIR={marker}".encode() in environ.read_bytes().split(b"\0")
            command = (environ.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if ours and (b"ray::" in command or b"/ray/" in command):  # Ray's, not e.g. multiprocessing's
            found.append(int(environ.parent.name))
    return found


class LocalCluster:
    """Two worker nodes of 1 CPU and a head node without CPUs, all on this machine, in a temporary
    folder of their own (RAY_TMPDIR), so that nothing reaches another Ray on the machine."""

    def __init__(self) -> None:
        from ray.cluster_utils import Cluster

        self.temp = tempfile.mkdtemp(prefix="selray", dir="/tmp")  # short: Ray's socket paths live in it
        self.before = os.environ.get("RAY_TMPDIR")
        os.environ["RAY_TMPDIR"] = self.temp
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "object_store_memory": 80 << 20, "include_dashboard": False, "_system_config": FAST_DEATH})
        for _ in range(2):
            self.cluster.add_node(**NODE)
        self.cluster.wait_for_nodes()
        self.address = self.cluster.address
        self.closed = False

    def node_of(self, node_id: str):
        return next(node for node in self.cluster.worker_nodes if node.node_id == node_id)

    def close(self) -> list[int]:
        """Shut the cluster down; the pids of its processes still alive 30 s later."""
        if self.closed:
            return []
        import ray

        self.closed = True
        ray.shutdown()
        self.cluster.shutdown()
        if self.before is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = self.before
        deadline = time.monotonic() + 30
        while (left := ray_processes(self.temp)) and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(self.temp, ignore_errors=True)
        return left


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    made = LocalCluster()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def serial(tmp_path_factory, train_here) -> Path:
    """The tiny grid trained by the serial executor, one thread, in this process: the runs folder."""
    return train_here(TINY, tmp_path_factory.mktemp("serial") / "runs")


def on_ray(cluster: LocalCluster, runs: Path, *flags: str, grid: Path = TINY) -> list[str]:
    return ["run", str(grid), "--runs", str(runs), "--executor", "ray", "--address", cluster.address,
            "--threads", "1", *flags]


def without_times(row: dict) -> dict:
    return {k: without_times(v) if k == "metrics" else v for k, v in row.items() if k not in TIMES}


def files(folder: Path) -> list[str]:
    """The files of a run folder, TensorBoard's event files as one (a resumed run writes one more)."""
    names = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]
    return sorted({name.split(".out.tfevents")[0] if "tfevents" in name else name for name in names})


def assert_same_runs(runs: Path, serial: Path) -> None:
    for run in RUNS:
        a, b = RunStore(serial, run), RunStore(runs, run)
        assert files(b.folder) == files(a.folder)
        assert without_times(b.result()) == without_times(a.result())
        assert b.result()["threads"] == 1 and b.result()["device"] == "cpu"
        assert [without_times(row) for row in b.metrics()] == [without_times(row) for row in a.metrics()]
        assert [row["inputs"] for row in b.metrics()] == [640, 1280]
        for name in ("validation-latest.png", "validation-best.png"):
            assert (b.examples / name).read_bytes() == (a.examples / name).read_bytes()
        for name in ("latest.pt", "best.pt"):
            mine, theirs = (checkpoint.load(store.checkpoints / name) for store in (b, a))
            assert mine["inputs"] == theirs["inputs"] and mine["threads"] == theirs["threads"] == 1
            assert all(torch.equal(mine["model"][k], theirs["model"][k]) for k in theirs["model"])
        assert scalars(b.folder) == scalars(a.folder)


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
            if tag not in TIMES}


def test_a_grid_on_two_nodes_ends_as_with_the_serial_executor(cluster, serial, tmp_path, monkeypatch, capsys):
    """Three runs on two 1-CPU nodes: never more than two train at once (a run waiting for the driver
    keeps its CPU), and the two the serial executor also trained end exactly as there."""
    from selcopy.experiments.executors.ray import Driver

    training: set[str] = set()
    at_once: list[int] = []
    resume, release = Driver._resume, Driver._release

    def resumed(self, out, where):
        training.add(out.job.spec.name)
        at_once.append(len(training))
        return resume(self, out, where)

    def released(self, out):
        training.discard(out.job.spec.name)
        release(self, out)

    monkeypatch.setattr(Driver, "_resume", resumed)
    monkeypatch.setattr(Driver, "_release", released)
    grid = tmp_path / "three.yml"
    grid.write_text(TINY.read_text().replace("trial: [1, 2]", "trial: [1, 2, 3]"))
    runs = tmp_path / "runs"
    assert main(on_ray(cluster, runs, grid=grid)) == 0
    err = capsys.readouterr().err
    assert "Ray: 3 nodes, 2 CPUs, 0 GPUs; each run asks for 1 CPU" in err
    for prefix in ("[1/3] tiny/trial-1", "[2/3] tiny/trial-2", "[3/3] tiny/trial-3"):  # the progress display of --jobs
        assert f"{prefix}: 640 of 1,280 inputs, validation sample error" in err
        assert f"{prefix}: 1,280 of 1,280 inputs, validation sample error" in err
    assert max(at_once) == 2 and len(at_once) == 3, at_once
    assert_same_runs(runs, serial)
    assert main(on_ray(cluster, runs, "--skip-existing", grid=grid)) == 0  # settled here: nothing is sent
    assert capsys.readouterr().err.count("finished before, skipped") == 3


def test_a_worker_or_node_that_dies_costs_only_the_work_since_the_last_checkpoint(cluster, serial, tmp_path,
                                                                                   monkeypatch, capsys):
    """trial-1's worker process is killed, trial-2's whole node removed (and a new node added), each
    right after the store took its first checkpoint and before the worker heard so: Ray runs both
    again, they resume from the store's checkpoint and end as the serial runs did."""
    from selcopy.experiments.executors.ray import Driver

    stored = Driver._validated
    killed: dict[str, dict] = {}

    def validated(self, out, validation):
        answer = stored(self, out, validation)
        run = out.job.spec.name
        if run not in killed:
            killed[run] = dict(out.where)
            if run == "tiny/trial-1":
                os.kill(out.where["pid"], signal.SIGKILL)
            else:
                cluster.cluster.remove_node(cluster.node_of(out.where["node"]), allow_graceful=False)
                cluster.cluster.add_node(**NODE)
        return answer

    monkeypatch.setattr(Driver, "_validated", validated)
    runs = tmp_path / "runs"
    assert main(on_ray(cluster, runs)) == 0
    err = capsys.readouterr().err
    assert sorted(killed) == list(RUNS)
    for prefix in ("[1/2] tiny/trial-1", "[2/2] tiny/trial-2"):
        assert f"{prefix}: resuming at 640 inputs on " in err and ", attempt 2 of 4" in err, err
    assert_same_runs(runs, serial)


def test_runs_that_cannot_go_out_fail_in_one_line_each(cluster, tmp_path, capsys):
    """One run is held by another command; the other trained with 2 threads, more CPUs than any node has
    (Ray would wait for such a node for ever). Neither is sent."""
    from selcopy.experiments import load_experiment

    runs = tmp_path / "runs"
    spec = load_experiment(TINY).runs[1]
    store = RunStore(runs, spec.name)
    store.write_config(spec.config_dict())
    trainer = Trainer(spec.build_model(), spec.build_split(), spec.train_config(), spec.seed, torch.device("cpu"))
    checkpoint.save(store.checkpoints / "latest.pt", {**trainer.state_dict(), "threads": 2})  # a run's checkpoint
    with RunStore(runs, "tiny/trial-1").lock():  # as a second command on the same grid sees the first
        assert main(on_ray(cluster, runs)) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if ": failed: " in line]
    assert len(failed) == 2, failed
    assert failed[0].startswith("[1/2] tiny/trial-1: failed: ") and "another selcopy process is working on this " \
        "run" in failed[0]
    assert failed[1] == ("[2/2] tiny/trial-2: failed: it trained with 2 torch threads, and no node of the cluster has "
                         "2 CPUs (the largest: 1): resume it where one has, or move its folder away to start over")
    assert not RunStore(runs, "tiny/trial-1").trained() and store.result()["status"] == "failed"


def test_a_worker_with_other_versions_or_without_selcopy_fails_its_runs_in_one_line(cluster, tmp_path, monkeypatch,
                                                                                   capsys):
    from selcopy.experiments.executors import ray as executor

    real = executor.versions()
    monkeypatch.setattr(executor, "versions", lambda: {**real, "torch": "2.0.0"})  # what the driver says it has
    assert main(on_ray(cluster, tmp_path / "a")) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if ": failed: " in line]
    assert len(failed) == 2
    assert failed[0].endswith(f"has torch {real['torch']}, not 2.0.0 as on the driver: install the driver's "
                              "versions there"), failed
    assert RunStore(tmp_path / "a", "tiny/trial-1").result()["status"] == "failed"

    monkeypatch.setattr(executor, "versions", lambda: real)
    monkeypatch.setattr(executor, "WORKER_MODULE", "selcopy_not_installed")  # as a node without selcopy
    assert main(on_ray(cluster, tmp_path / "b")) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if ": failed: " in line]
    assert len(failed) == 2
    assert "cannot import selcopy (No module named 'selcopy_not_installed'): install selcopy " in failed[0], failed


def test_the_command_holds_its_runs_and_ctrl_c_stops_every_task(cluster, tmp_path, capsys):
    """A second command on the grid fails the runs the Ray command has out; Ctrl-C on the Ray
    command cancels its tasks (the cluster's CPUs are free again) and leaves each run resumable."""
    import ray

    grid = tmp_path / "long.yml"  # runs far longer than the test waits
    grid.write_text(TINY.read_text().replace("max_inputs: 1280, validate_every: 640",
                                             "max_inputs: 100_000_000, validate_every: 1280"))
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "selcopy", *on_ray(cluster, runs, grid=grid)]
    child = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stderr), daemon=True)
    reader.start()
    saved = [RunStore(runs, run).checkpoints / "latest.pt" for run in RUNS]
    try:
        deadline = time.monotonic() + 120
        while not all(path.exists() for path in saved):
            assert child.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        assert main(["run", str(grid), "--runs", str(runs), "--threads", "1", "--device", "cpu"]) == 1
        err = capsys.readouterr().err
        assert err.count("another selcopy process is working on this run") == 2, err
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 130
    finally:
        if child.poll() is None:
            child.kill()
    reader.join(timeout=10)
    err = "".join(lines)
    assert "Traceback" not in err and "(raylet)" not in err, err  # no report of a failure that Ray would retry
    assert err.strip().splitlines()[-1].startswith("selcopy: interrupted;"), err
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        deadline = time.monotonic() + 30
        while ray.available_resources().get("CPU", 0) < 2:  # every task was stopped
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.2)
    finally:
        ray.shutdown()
    for run in RUNS:
        store = RunStore(runs, run)
        assert not store.finished() and not list(store.folder.rglob(".*.tmp-*"))
        assert checkpoint.load_newest(store.checkpoints, warn=pytest.fail)["inputs"] >= 1280


STACK = Path(__file__).parent / "files" / "stack_grid.yml"  # stack/trial-1..3: validations every 400 of 1,600
STACKED = tuple(f"stack/trial-{trial}" for trial in (1, 2, 3))


@pytest.fixture(scope="module")
def stacked_here(tmp_path_factory, train_here) -> Path:
    """The stack grid trained here as one stack (`--stack`), one thread: the runs folder."""
    return train_here(STACK, tmp_path_factory.mktemp("stacked") / "runs", "--stack")


def assert_same_stack(runs: Path, here: Path) -> None:
    """Each member of a stack trained on the cluster ends exactly as the same stack trained here."""
    for run in STACKED:
        a, b = RunStore(here, run), RunStore(runs, run)
        assert files(b.folder) == files(a.folder)
        assert without_times(b.result()) == without_times(a.result())
        assert [without_times(row) for row in b.metrics()] == [without_times(row) for row in a.metrics()]
        assert [row["inputs"] for row in b.metrics()] == [400, 800, 1200, 1600]
        for name in ("latest.pt", "best.pt"):
            mine, theirs = (checkpoint.load(store.checkpoints / name) for store in (b, a))
            assert mine["inputs"] == theirs["inputs"] and mine["threads"] == theirs["threads"] == 1
            assert all(torch.equal(mine["model"][k], theirs["model"][k]) for k in theirs["model"])
        latest = "validation-latest.png"
        assert (b.examples / latest).read_bytes() == (a.examples / latest).read_bytes()


def test_stacked_trials_go_out_as_one_actor_and_end_as_a_stack_here(cluster, stacked_here, tmp_path, monkeypatch,
                                                                      capsys):
    """`--stack` on the cluster: the three trials train as one stack in one actor (one CPU), each
    member writes its own folder, exactly as the same stack trained here; `--skip-existing` then
    sends nothing."""
    from selcopy.experiments.executors.ray import Driver

    stacks: list[list[str]] = []
    submit = Driver._submit_stack
    monkeypatch.setattr(Driver, "_submit_stack", lambda self, unit: (stacks.append([job.spec.name for job in unit]),
                                                                     submit(self, unit))[1])
    runs = tmp_path / "runs"
    assert main(on_ray(cluster, runs, "--stack", grid=STACK)) == 0
    err = capsys.readouterr().err
    assert stacks == [list(STACKED)]
    assert "each run or stack asks for 1 CPU" in err
    assert "[1/3] stack/trial-1: started, stacked with 2 more on " in err
    assert "[3/3] stack/trial-3: validation sample error" in err and "3 stacked)" in err
    assert_same_stack(runs, stacked_here)
    assert main(on_ray(cluster, runs, "--stack", "--skip-existing", grid=STACK)) == 0
    assert capsys.readouterr().err.count("finished before, skipped") == 3


def test_a_stack_whose_worker_dies_resumes_from_the_store_and_ends_as_uninterrupted(cluster, stacked_here, tmp_path,
                                                                                     monkeypatch, capsys):
    """The stack's worker process is killed once every member's first checkpoint is stored: Ray
    calls it again, it resumes every member from the store's checkpoint, as one stack, and the
    members end exactly as an uninterrupted stack does. A stack split by `--stack-max` goes out
    as two actors."""
    from selcopy.experiments.executors.ray import Driver

    request = Driver._stack_request
    stored: list[str] = []

    def answered(self, out, kind, payload):
        answer = request(self, out, kind, payload)
        if kind == "validation":
            stored.append(payload[0])
            if len(stored) == len(STACKED):  # every member's first validation is in the store
                os.kill(out.where["pid"], signal.SIGKILL)
        return answer

    monkeypatch.setattr(Driver, "_stack_request", answered)
    runs = tmp_path / "runs"
    assert main(on_ray(cluster, runs, "--stack", grid=STACK)) == 0
    err = capsys.readouterr().err
    for prefix in ("[1/3] stack/trial-1", "[2/3] stack/trial-2", "[3/3] stack/trial-3"):
        assert f"{prefix}: resuming at 400 inputs, stacked with 2 more on " in err, err
    assert ", attempt 2 of 4" in err
    assert_same_stack(runs, stacked_here)

    monkeypatch.setattr(Driver, "_stack_request", request)
    split = tmp_path / "split"
    assert main(on_ray(cluster, split, "--stack", "--stack-max", "2", grid=STACK)) == 0
    err = capsys.readouterr().err
    assert "[1/3] stack/trial-1: started, stacked with 1 more on " in err
    assert "[3/3] stack/trial-3: started on " in err  # alone: the solo path
    assert all(RunStore(split, run).finished() for run in STACKED)


def test_the_overhead_benchmark_measures_on_a_cluster(cluster, monkeypatch):
    """`benchmarks/ray_overhead.py` keeps its JSON contract (its figures are not tested)."""
    import importlib.util

    monkeypatch.setattr(sys, "path", list(sys.path))  # the script adds benchmarks/ to it
    for name in ("ray_overhead", "throughput", "datagen"):  # and imports its neighbours as top-level modules
        monkeypatch.delitem(sys.modules, name, raising=False)
    path = Path(__file__).parents[2] / "benchmarks" / "ray_overhead.py"
    spec = importlib.util.spec_from_file_location("ray_overhead", path)
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "ray_overhead", benchmark)  # its spawned process imports it again
    spec.loader.exec_module(benchmark)
    row = benchmark.measure("conv6", validations=2, starts=1, address=cluster.address)
    assert row["checkpoint_bytes"] > 2_000_000 and row["image_bytes"] > 0 and row["ray_start_s"] > 0
    assert set(row["run_start_s"]) == {"ray_actor", "spawn"}
    assert all(value > 0 for value in [*row["run_start_s"].values(), *row["transfer_s"].values()])


def test_no_ray_process_is_left_behind(cluster):
    assert ray_processes(cluster.temp)  # the check sees the cluster's processes while it runs
    assert cluster.close() == []


def test_without_ray_the_executor_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as where it is not installed
    assert main(["run", str(TINY), "--runs", str(tmp_path / "runs"), "--executor", "ray"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "selcopy: error: --executor ray: Ray is not installed; pip install 'selcopy[ray]'\n"
    assert not (tmp_path / "runs" / "tiny").exists()


@pytest.mark.parametrize("flags, error", [
    (["--address", "auto"], "--address: only with --executor ray"),
    (["--gpus-per-run", "0.5", "--jobs", "2"], "--gpus-per-run: only with --executor ray"),
    (["--executor", "ray", "--jobs", "2"], "--jobs: not with --executor ray, which runs as many runs as the cluster "
                                           "has room for"),
])
def test_flags_that_do_not_go_together_are_one_line_errors(flags, error, tmp_path, capsys):
    if "ray" in flags:
        pytest.importorskip("ray")
    assert main(["run", str(TINY), "--runs", str(tmp_path / "runs"), *flags]) == 2
    assert capsys.readouterr().err == f"selcopy: error: {error}\n"


def test_its_own_ray_runs_its_workers_at_the_priority_of_other_runs(tmp_path, monkeypatch):
    """The Ray that `--executor ray` starts for itself does not nice its workers (Ray's default: 15),
    under which a machine's other work, a `--jobs` grid say, would starve them."""
    ray = pytest.importorskip("ray")
    from selcopy.experiments.executors.ray import Ray
    from selcopy.experiments.runner import GridSettings

    seen = {}
    monkeypatch.setattr(ray, "init", lambda **kwargs: seen.update(kwargs))
    Ray(GridSettings(tmp_path, torch.device("cpu")))._connect(ray)
    assert seen["address"] == "local" and seen["_system_config"] == {"worker_niceness": 0}
