"""A trained run's checkpoint measured again: on its own validation or test set, or on a new
draw with other task settings (`selcopy eval`, e.g. longer programs than it trained on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from selcopy.errors import SelcopyError
from selcopy.experiments.memory import estimate_eval
from selcopy.experiments.spec import RunSpec
from selcopy.experiments.store import RunStore
from selcopy.tasks import make_task
from selcopy.tasks.split import unique_samples
from selcopy.train import checkpoint
from selcopy.train.loop import MEASURED, evaluate
from selcopy.train.metrics import summarize


def load_run(folder: Path) -> RunSpec:
    """The run stored in `folder`, from its config.yaml (read through the run store)."""
    store = RunStore(folder.parent, folder.name)
    data = store.stored_config()
    if data is None:
        raise SelcopyError(f"{folder}: not a run folder (no config.yaml)")
    return RunSpec.from_config_dict(data, str(store.config_path))


def evaluate_run(spec: RunSpec, folder: Path, which: str, part: str, changes: dict[str, Any], count: int,
                 seed: int | None, device: torch.device, precision: str = MEASURED) -> dict[str, Any]:
    """Metrics of the `which` checkpoint (best | latest | previous) of the run `spec` stored in
    `folder`, on its `part` set (validation | test) or, with task `changes`, a `count` or a
    `seed`, on a new draw of it; measured in `precision` (float32, as training validates, or
    bfloat16 autocast)."""
    if part == "test" and not spec.has_test:
        raise SelcopyError(f"--data test: {folder / 'config.yaml'} defines no test set (no test_<setting> in its task)")
    name, settings = spec.task_settings(part)
    task = make_task(name, {**settings, **changes})  # bad or oversized settings: refused before any work
    new_draw = bool(changes or count or seed is not None)  # else the run's own fixed set, exactly
    count = count or spec.task[f"{part}_count"]
    estimate_eval(spec, task, count).check(f"eval of {count:,} samples")
    path = folder / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        raise SelcopyError(f"{path}: no such checkpoint (the run has not validated yet?)")
    try:
        state = checkpoint.load_state(path)
    except (checkpoint.CorruptCheckpoint, OSError) as error:
        raise SelcopyError(str(error)) from None
    model = spec.build_model()
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise SelcopyError(f"{path}: does not fit the model of {folder / 'config.yaml'}: "
                           f"{str(error).strip().splitlines()[-1].strip()}") from None
    model.to(device)
    if new_draw:  # it may hold training questions
        seed = spec.task[f"{part}_seed"] if seed is None else seed
        data = unique_samples(task, count, torch.Generator().manual_seed(seed))
        flags = [f"--{k.replace('_', '-')} {v}" for k, v in changes.items()]
        described = f"drawn from seed {seed}" + "".join(f", {f}" for f in flags)
    else:  # the run's own fixed set, exactly
        split = spec.build_split()
        data = split.validation if part == "validation" else split.test
        described = f"the run's {part} set"
    metrics = summarize(evaluate(model, data, spec.train_config(), device, precision), "", task.difficulty_column)
    return {"run": spec.name, "checkpoint": which, "inputs": int(state["inputs"]), "samples": len(data),
            "data": described, "precision": precision, "task": {"name": name, **task.config.model_dump(mode="json")},
            "metrics": metrics}
