"""Checkpoints written atomically, verified by checksum, loaded without arbitrary unpickling.

File layout: 8-byte magic, 32-byte SHA-256 of the payload, payload (`torch.save` of plain
tensors, numbers, strings, lists and dicts). Loading uses `torch.load(weights_only=True)`,
which refuses any other object. `latest.pt` is rotated to `previous.pt` before a new one is
written, so a kill at any moment leaves at least one good checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from selcopy.files import atomic_write, first_free

MAGIC = b"SELCKPT1"
ROTATING = ("latest.pt", "previous.pt")  # newest first
# What a checkpoint holds to resume a run (Trainer.state_dict; "format" and "cuda_rng" may be absent).
FIELDS: dict[str, type | tuple[type, ...]] = {
    "model": dict, "optimizer": dict, "inputs": int, "step": int, "train_time": (int, float), "best": dict,
    "rng": torch.Tensor, "seed": int,
}


class CorruptCheckpoint(Exception):
    pass


def encode(state: dict[str, Any]) -> bytes:
    """A checkpoint file's bytes (header, checksum, payload): what `save` writes, and what travels
    between machines when a run trains on a cluster (`executors/ray.py`)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode(data: bytes, where: str = "checkpoint", map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state in a checkpoint's bytes; CorruptCheckpoint (naming `where`) if truncated, altered or not one."""
    if len(data) < 40 or data[:8] != MAGIC:
        raise CorruptCheckpoint(f"{where}: not a selcopy checkpoint (bad header)")
    payload = data[40:]
    if hashlib.sha256(payload).digest() != data[8:40]:
        raise CorruptCheckpoint(f"{where}: checksum mismatch (truncated or altered)")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # a payload that passes the checksum but holds foreign objects
        raise CorruptCheckpoint(f"{where}: cannot be loaded safely: {e}") from e


def save(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, encode(state))


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state in `path`; CorruptCheckpoint if truncated, altered or not a checkpoint."""
    return decode(Path(path).read_bytes(), str(path), map_location)


def load_state(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A training state from `path` (`load`, then every field of FIELDS, of its type);
    CorruptCheckpoint if the file passes its checksum but holds something else."""
    state = load(path, map_location)
    if not isinstance(state, dict):
        raise CorruptCheckpoint(f"{path}: holds a {type(state).__name__}, not a training state")
    missing = [key for key in FIELDS if key not in state]
    if missing:
        raise CorruptCheckpoint(f"{path}: not a training state: no {', '.join(map(repr, missing))}")
    for key, kind in FIELDS.items():
        if isinstance(state[key], bool) or not isinstance(state[key], kind):
            raise CorruptCheckpoint(f"{path}: not a training state: {key!r} is a {type(state[key]).__name__}")
    return state


def save_rotating(folder: Path, state: dict[str, Any]) -> None:
    write_rotating(folder, encode(state))


def write_rotating(folder: Path, data: bytes) -> None:
    """Write `latest.pt` (a checkpoint's bytes, `encode`), keeping the one before as `previous.pt` if it
    was good (a training state), else as `latest.pt.bad-N` (a bad file is set aside, never overwritten)."""
    latest = folder / "latest.pt"
    if latest.exists():
        if _is_good(latest):
            os.replace(latest, folder / "previous.pt")
        else:
            os.replace(latest, first_free(latest, ".bad-"))
    atomic_write(latest, data)


def _is_good(path: Path) -> bool:
    try:
        load_state(path)
    except (CorruptCheckpoint, OSError):
        return False
    return True


def load_newest(folder: Path, warn) -> dict[str, Any] | None:
    """The newest good checkpoint in `folder` (latest, else previous), or None.

    A bad file (truncated, altered, or not a training state) is reported through `warn` in one
    line and skipped, never deleted.
    """
    for name in ROTATING:
        path = folder / name
        if not path.exists():
            continue
        try:
            return load_state(path)
        except (CorruptCheckpoint, OSError) as e:
            warn(f"skipping checkpoint: {e}")
    return None
