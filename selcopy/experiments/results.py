"""A grid's result table from its stored runs (`selcopy results`, `run --table`): the store hands
the runs' results to the report's table."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selcopy.errors import SelcopyError, did_you_mean
from selcopy.experiments.store import RunStore, check_stored
from selcopy.names import TRIAL
from selcopy.report import tables


def print_results(exp: Any, root: Path, file: str, average: str | None = None, std: Sequence[str] = (),
                  sort: Sequence[str] = (), include: Sequence[str] = (), exclude: Sequence[str] = (),
                  as_json: bool = False, unfinished: bool = False) -> None:
    """Print the article-style table of `exp`'s stored runs under `root` (`selcopy results`)."""
    check_stored(exp.runs, root, file)
    stores = [RunStore(root, r.name) for r in exp.runs]
    stored = [(r.variables, store.result()) for r, store in zip(exp.runs, stores)]
    latest = None
    if unfinished:  # runs still training (no result yet) at their latest validation; failed ones stay out
        latest = [None if store.result() else (store.metrics() or [None])[-1] for store in stores]
    rows = tables.collect(stored, latest)
    missing = len(exp.runs) - len(rows)
    if not rows:
        what = "logged metrics" if unfinished else "finished runs"
        raise SelcopyError(f"{file}: no {what} under {root}/ yet (run `selcopy run {file}`)")
    if average and average not in exp.variables:
        hint = did_you_mean(average, exp.variables, show=str, known="matrix variables", list_always=True)
        raise SelcopyError(f"--average {average}: not a matrix variable of {file}{hint}")
    rows, columns = tables.table(rows, exp.variables, TRIAL if average is None else average, std, include, exclude,
                                 sort, unfinished)
    if as_json:
        print(json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=1))
    else:
        print(tables.markdown(rows, columns))
    if missing:
        what = "have logged nothing" if unfinished else "not finished"
        print(f"({missing} of {len(exp.runs)} runs {what}, left out)", file=sys.stderr)
