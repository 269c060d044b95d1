"""`selcopy run --jobs 2` stopped from outside, end to end in a child process (Linux: /proc):
a job killed hard is recorded as failed, SIGTERM to the command stops every job, and nothing
is left running or half written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from selcopy.train import checkpoint

TINY = Path(__file__).parent / "files" / "tiny_grid.yml"

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the jobs through /proc")


def jobs_of(parent: int) -> list[int]:
    """The spawned job processes of `parent` (not multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_job_is_recorded_and_sigterm_stops_the_rest(tmp_path):
    grid = tmp_path / "long.yml"  # runs far longer than the test waits
    grid.write_text(TINY.read_text().replace("max_inputs: 1280, validate_every: 640",
                                             "max_inputs: 100_000_000, validate_every: 3200"))
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "selcopy", "run", str(grid), "--runs", str(runs), "--jobs", "2",
               "--threads", "1", "--device", "cpu"]
    child = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stderr), daemon=True)
    reader.start()

    def wait_for(done) -> None:
        deadline = time.monotonic() + 120
        while not done():
            assert child.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)

    def logged(text: str) -> bool:
        return any(text in line for line in list(lines))

    saved = [runs / "tiny" / f"trial-{trial}" / "checkpoints" / "latest.pt" for trial in (1, 2)]
    try:
        wait_for(lambda: all(path.exists() for path in saved))  # both jobs train and have saved a checkpoint
        jobs = jobs_of(child.pid)
        assert len(jobs) == 2, jobs
        os.kill(jobs[0], signal.SIGKILL)
        wait_for(lambda: logged("failed: its process was killed by SIGKILL"))  # logged once recorded
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=120) == 130
    finally:
        if child.poll() is None:
            child.kill()
    reader.join(timeout=10)
    err = "".join(lines)
    assert "Traceback" not in err and "leaked" not in err, err
    assert err.strip().splitlines()[-1].startswith("selcopy: interrupted;")
    assert not any(alive(pid) for pid in jobs)

    results = [json.loads(p.read_text()) for p in runs.glob("tiny/*/result.json")]
    assert [r["status"] for r in results] == ["failed"]
    assert results[0]["error"] == "its process was killed by SIGKILL"
    stopped = runs / ("tiny/trial-2" if results[0]["run"] == "tiny/trial-1" else "tiny/trial-1")
    assert not list(stopped.rglob(".*.tmp-*"))  # the job stopped by SIGTERM removed its temporary files
    for folder in runs.glob("tiny/trial-*"):  # both can resume (a kill mid-rotation leaves previous.pt)
        assert checkpoint.load_newest(folder / "checkpoints", warn=pytest.fail)["inputs"] >= 3200
