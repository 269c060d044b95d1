"""Train/validation data: a fixed validation set, fresh training epochs, no leakage.

The validation set is drawn once from its own seed (and possibly its own settings); so is the
optional test set. Every training epoch is drawn anew and filtered by question key against the
keys of both, so a validation or test question can never appear in training, however many
epochs run. Within one set or epoch no question repeats.
"""

from __future__ import annotations

import torch

from selcopy.errors import SelcopyError
from selcopy.tasks.base import Batch, Task

MAX_ROUNDS = 100
MAX_SAMPLES = 10_000_000  # in one set or epoch, drawn and held whole (the article's: 10,000 and 100,000); more
#   is a typo, and 10^7 samples of even the shortest texts take GBs


def check_count(count: int, what: str = "sample count") -> int:
    """`count` if it is a number of samples one draw may hold, else a one-line SelcopyError."""
    if not 1 <= count <= MAX_SAMPLES:
        bound = "positive" if count < 1 else f"at most {MAX_SAMPLES:,}"
        raise SelcopyError(f"{what}: must be {bound}, got {count}")
    return count


def unique_samples(
    task: Task, count: int, generator: torch.Generator, exclude: torch.Tensor | None = None
) -> Batch:
    """`count` samples with pairwise different questions, none whose key is in `exclude`.

    exclude: sorted int64 keys. Draws in rounds until enough distinct questions were found;
    a setting with fewer distinct questions than `count` is an error, not an endless loop.
    """
    check_count(count)
    parts: list[Batch] = []
    seen = [exclude] if exclude is not None else []  # sorted key tensors
    have, draw = 0, count + count // 32 + 16
    cap = 8 * count + 1024  # never more per round, whatever the yield
    for _ in range(MAX_ROUNDS):
        need = count - have
        batch = task.sample_batch(draw, generator)
        index, fresh_keys = _fresh(batch.key, seen)
        if len(index):
            part = batch.select(index[:need])
            parts.append(part)
            have += len(part)
            if have == count:
                return Batch.cat(parts) if len(parts) > 1 else parts[0]
            seen.append(fresh_keys)  # all of them were taken: the round fell short
        elif draw >= cap:  # even the largest draw found nothing new: the settings are exhausted
            break
        # enough for what is missing at the yield just seen, with a margin, within the cap
        draw = min(int((count - have) * draw / max(len(index), 1) * 1.2) + 64, cap)
    fixed = f" besides the {len(exclude):,} of the fixed sets" if exclude is not None and len(exclude) else ""
    raise SelcopyError(
        f"task '{task.name}' yields only about {have} distinct questions under these settings{fixed}, "
        f"{count} were asked for: widen the settings or lower the count"
    )


def _fresh(key: torch.Tensor, seen: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (ascending) of the rows whose key is new: not in any of the sorted `seen`
    tensors and not in an earlier row. Also their keys, sorted. One stable sort of `key`,
    then a binary search per seen tensor."""
    ordered, order = torch.sort(key, stable=True)  # equal keys keep their row order
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[1:] = ordered[1:] != ordered[:-1]
    for known in seen:
        if len(known):
            at = torch.searchsorted(known, ordered).clamp_(max=len(known) - 1)
            first &= known[at] != ordered
    return order[first].sort().values, ordered[first]


class DataSplit:
    """The validation set (built once), an optional test set, and the training epochs of one run.

    test: (task, count, seed) of a fixed test set (e.g. longer programs than trained on), drawn
    once like the validation set and apart from it. Training epochs exclude the questions of both.
    """

    def __init__(
        self,
        train: Task,
        validation: Task,
        train_count: int,
        validation_count: int,
        validation_seed: int,
        test: tuple[Task, int, int] | None = None,
    ):
        self.train_task = train
        self.train_count = train_count
        g = torch.Generator().manual_seed(validation_seed)
        self.validation = unique_samples(validation, validation_count, g)
        self._exclude = self.validation.key.sort().values
        self.test: Batch | None = None
        if test is not None:
            task, count, seed = test
            self.test = unique_samples(task, count, torch.Generator().manual_seed(seed), exclude=self._exclude)
            self._exclude = torch.cat([self._exclude, self.test.key]).sort().values

    def epoch(self, seed: int) -> Batch:
        """`train_count` fresh training samples for one epoch, drawn from `seed`."""
        g = torch.Generator().manual_seed(seed)
        return unique_samples(self.train_task, self.train_count, g, exclude=self._exclude)
