"""One run's folder: resolved config, metrics log, checkpoints, final result; all writes atomic.

    runs/<experiment>/<slug>/
      config.yaml       the fully resolved run (load it to repeat the run exactly)
      metrics.jsonl     one JSON object per validation
      result.json       {"status": "finished" | "failed", ...}
      checkpoints/      latest.pt, previous.pt, best.pt
      tensorboard/      event files
      examples/         validation example images
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from selcopy.errors import SelcopyError
from selcopy.experiments.yamlfile import BoundedLoader, Unreadable, load_file
from selcopy.files import atomic_write, first_free

Warn = Callable[[str], None]


class RunBusy(SelcopyError):
    """Another process holds the run's lock, or the lock cannot be taken: the run must not train."""


def _warn(message: str) -> None:
    print(f"selcopy: warning: {message}", file=sys.stderr, flush=True)


def _metrics_row(line: bytes) -> dict[str, Any] | None:
    """The metrics row on one line of the log, None if it is not one."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested without end
        return None
    inputs = row.get("inputs") if isinstance(row, dict) else None
    if isinstance(inputs, bool) or not isinstance(inputs, (int, float)):
        return None
    return row


class RunStore:
    def __init__(self, root: Path, run_name: str):
        self.root, self.name = Path(root), run_name
        self.folder = Path(root) / run_name
        self.config_path = self.folder / "config.yaml"
        self.metrics_path = self.folder / "metrics.jsonl"
        self.result_path = self.folder / "result.json"
        self.checkpoints = self.folder / "checkpoints"
        self.tensorboard = self.folder / "tensorboard"
        self.examples = self.folder / "examples"

    def stored_config(self) -> dict[str, Any] | None:
        """The stored `config.yaml`, None if there is none; SelcopyError if it cannot be read."""
        if not self.config_path.exists():
            return None
        try:
            return load_file(self.config_path, BoundedLoader)
        except Unreadable as error:
            raise SelcopyError(f"{self.config_path}: cannot be read: {error}") from None

    def other_settings(self, config: dict[str, Any]) -> str | None:
        """Why the folder is not that of the run `config` (its `config_dict`) describes, or None:
        its config.yaml holds other settings, or it has results but no config.yaml at all.
        A setting added to selcopy after the folder was written counts with its default."""
        nested = self.nested()
        if nested:
            raise SelcopyError(f"{nested}: experiments' folders must not nest (names such as 'x' and 'x/run')")
        stored = self.stored_config()
        if stored is None:
            return f"{self.folder} has results but no config.yaml" if self.trained() else None
        if stored == config:
            return None
        from selcopy.experiments.spec import RunSpec

        try:
            if RunSpec.from_config_dict(stored, str(self.config_path)).config_dict() == config:
                return None
        except (SelcopyError, ValueError):  # a setting that no longer exists or validates
            pass
        return f"{self.config_path} holds other settings"

    def nested(self) -> str | None:
        """Why the folder cannot be this run's because it nests with another experiment's run
        folders (experiments `x` and `x/run`), or None: a folder above it (below the root) is a
        run folder (holds config.yaml), or it holds a folder that is no part of a run."""
        for parent in list(Path(self.name).parents)[:-1]:
            if (self.root / parent / "config.yaml").exists():
                return f"{self.folder} is inside {self.root / parent}, the run folder of another experiment"
        parts = {self.checkpoints.name, self.tensorboard.name, self.examples.name}
        if self.folder.is_dir():
            other = sorted(p.name for p in self.folder.iterdir() if p.is_dir() and p.name not in parts)
            if other:
                return f"{self.folder} holds {other[0]}/, which is no part of a run (another experiment's runs?)"
        return None

    def trained(self) -> bool:
        """Whether anything was trained here: a logged validation, a checkpoint or a finished result."""
        logged = self.metrics_path.exists() and self.metrics_path.stat().st_size > 0
        return logged or any(self.checkpoints.glob("*.pt")) or self.finished()

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write(self.config_path, yaml.safe_dump(config, sort_keys=False).encode())

    def result(self) -> dict[str, Any] | None:
        """The stored `result.json`; None if missing or unreadable. A finished one has its metrics."""
        try:
            result = json.loads(self.result_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(result, dict):
            return None
        if result.get("status") == "finished" and not isinstance(result.get("metrics"), dict):
            return None
        return result

    def write_result(self, result: dict[str, Any]) -> None:
        atomic_write(self.result_path, json.dumps(result, indent=1).encode())

    def finished(self) -> bool:
        result = self.result()
        return bool(result) and result.get("status") == "finished"

    def status(self) -> tuple[str, int | None]:
        """(finished | failed | started | not started, the inputs of the last logged validation or
        None): what `selcopy show --runs` says of the run."""
        result = self.result()
        rows, _ = self._read_metrics()
        inputs = rows[-1]["inputs"] if rows else None
        if result and result.get("status") in ("finished", "failed"):
            return result["status"], inputs
        return ("started" if self.trained() else "not started"), inputs

    def metrics(self, warn: Warn | None = None) -> list[dict[str, Any]]:
        """Every good line of the log: a JSON object with a number `inputs`. A last line cut by a
        kill (no newline after it) is left out silently; any other bad line is left out and
        said in one line through `warn` (default: on stderr), the later lines kept."""
        rows, damaged = self._read_metrics()
        if damaged:
            (warn or _warn)(self._left_out(rows, damaged))
        return rows

    def _read_metrics(self) -> tuple[list[dict[str, Any]], list[int]]:
        """(the good rows, the numbers of the damaged lines)."""
        if not self.metrics_path.exists():
            return [], []
        data = self.metrics_path.read_bytes()
        lines = data.split(b"\n")
        rows, damaged = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row = _metrics_row(line)
            if row is not None:
                rows.append(row)
            elif number < len(lines):  # the last piece, with no newline after it, is a cut line
                damaged.append(number)
        return rows, damaged

    def _left_out(self, rows: list[dict[str, Any]], damaged: list[int]) -> str:
        shown = ", ".join(map(str, damaged[:5])) + (f", ... ({len(damaged)} in all)" if len(damaged) > 5 else "")
        what = "line" if len(damaged) == 1 else "lines"
        return f"{self.metrics_path}: {what} {shown} not a metrics row (damaged?), left out; {len(rows)} good rows kept"

    def append_metrics(self, row: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_metrics(self, inputs: int, warn: Warn | None = None) -> None:
        """Keep the log up to `inputs` (the checkpoint a resumed run continues from). A log with
        damaged lines is first copied aside (`metrics.jsonl.bad-N`), never lost."""
        rows, damaged = self._read_metrics()
        if damaged:
            kept = first_free(self.metrics_path, ".bad-")
            shutil.copy2(self.metrics_path, kept)
            (warn or _warn)(f"{self._left_out(rows, damaged)}; the log as it was is kept as {kept.name}")
        rows = [r for r in rows if r["inputs"] <= inputs]
        atomic_write(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows).encode())

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold `.<slug>.lock` beside the folder while working on the run: a second process
        (another command, a job left running) gets RunBusy instead of writing the same folder.
        The lock ends with the process, even killed. A lock that cannot be taken (no lock file
        can be made, a file system without locks) is RunBusy too: two commands could otherwise
        train the run at once. Only where there are no locks at all (not POSIX) the run goes
        on without one, which is said once."""
        try:
            import fcntl
        except ImportError:
            _no_locks_here()
            yield
            return
        path = self.folder.with_name(f".{self.folder.name}.lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a")
        except OSError as error:
            raise RunBusy(f"{path}: cannot open the run's lock: {error.strerror or error}; "
                          "the run is not trained without it") from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunBusy(f"{self.folder}: another selcopy process is working on this run "
                              f"(it holds {path}); wait for it or stop it") from None
            except OSError as error:  # e.g. ENOLCK on a network file system without a lock service
                raise RunBusy(f"{path}: cannot lock the run: {error.strerror or error}; "
                              "the run is not trained without its lock") from None
            yield

    def backup(self) -> Path:
        """Move the folder aside (`<slug>.prev-N`) so a rerun never overwrites saved results."""
        target = first_free(self.folder, ".prev-")
        os.replace(self.folder, target)
        return target


@functools.cache
def _no_locks_here() -> None:
    """Say once per process that runs are not locked on this platform."""
    print("selcopy: no file locks on this platform: nothing stops two commands from training the same run",
          file=sys.stderr, flush=True)


def check_stored(runs: list[Any], root: Path, file: str) -> None:
    """SelcopyError if a folder under `root` holds results of other settings than `runs` (RunSpecs)
    give it: a table or plot must never show runs of a file as it was before an edit."""
    other = []
    for spec in runs:
        store = RunStore(root, spec.name)
        if store.trained() and (reason := store.other_settings(spec.config_dict())):
            other.append(reason)
    if other:
        also = f" (and {len(other) - 1} more such folders)" if len(other) > 1 else ""
        raise SelcopyError(f"{file}: {other[0]}{also}: not runs of the file as it is now; "
                           "move such folders away or use another --runs folder")


def load_runs(runs: list[Any], root: Path, file: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(matrix values, metrics log) of every run of `runs` (RunSpecs) that has logged a validation;
    SelcopyError (`check_stored`) if a folder holds runs of other settings."""
    check_stored(runs, Path(root), file)
    logged = []
    for spec in runs:
        rows = RunStore(Path(root), spec.name).metrics()
        if rows:
            logged.append((dict(spec.variables), rows))
    return logged
