"""Writing files so that a kill never leaves half of one, and naming what is set aside.

Every layer that writes (the run store, checkpoints, plots, example images) uses these two.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from selcopy.errors import SelcopyError


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a folder at `path`, an interrupt: leave no half file behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def first_free(path: Path, infix: str) -> Path:
    """`<path's name><infix>N` beside it, for the smallest N from 1 that does not exist: a name
    to set a file or folder aside under without overwriting one set aside before."""
    n = 1
    while (target := path.with_name(f"{path.name}{infix}{n}")).exists():
        n += 1
    return target


def writable_folder(folder: Path, option: str) -> None:
    """SelcopyError unless `folder` exists or can be made, and files can be written in it."""
    if folder.exists() and not folder.is_dir():
        raise SelcopyError(f"{option} {folder}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise SelcopyError(f"{option} {folder}: cannot write there: {error.strerror or error}") from None
