"""The small interface every task implements, and the batch it produces.

A task turns a seeded `torch.Generator` into a `Batch` of whole samples at once:
tensor operations over the batch, never a Python loop per sample.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Annotated, Any, ClassVar

import torch
from pydantic import BeforeValidator

from selcopy.registry import EntryConfig
from selcopy.vocab import SPACE


def _as_range(value: Any) -> Any:
    """`5` -> (5, 5); `[2, 5]` or "2,5" -> (2, 5). Anything else is left to pydantic to reject."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, str) and "," in value:
        return tuple(part.strip() for part in value.split(","))
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return (int(value), int(value))
    if isinstance(value, list):
        return tuple(value)
    return value


IntRange = Annotated[tuple[int, int], BeforeValidator(_as_range)]
"""An inclusive range `[lo, hi]`, written as a number (lo = hi) or a two-element list."""


def check_range(
    name: str, value: tuple[int, int], lo: int, hi: int | None = None, hi_name: str = ""
) -> tuple[int, int]:
    """`hi_name` says where an upper bound comes from (`num_items`); `name` starts the message
    (none in a field's own validator, whose error pydantic places at the field)."""
    prefix = f"{name}: " if name else ""
    if value[0] > value[1]:
        raise ValueError(f"{prefix}range has lo > hi, got [{value[0]}, {value[1]}]")
    if value[0] < lo:
        raise ValueError(f"{prefix}must be at least {lo:,}, got {value[0]}")
    if hi is not None and value[1] > hi:
        bound = f"{hi_name} ({hi})" if hi_name else f"{hi:,}"
        raise ValueError(f"{prefix}must be at most {bound}, got {value[1]}")
    return value


class TaskConfig(EntryConfig):
    """Settings of one generator (an entry of `TASKS`); `build()` makes the generator."""

    def build(self) -> Task:
        raise NotImplementedError


@dataclass(frozen=True)
class Batch:
    """Samples as tensors, right-padded with spaces to the longest text.

    text:    (B, L) uint8 bytes of the full text `question:answer`
    masked:  (B, L) uint8, the same with every answer byte replaced by 0
    length:  (B,)   unpadded text length
    difficulty: (B,) how hard each sample is, in the task's own unit (`Task.difficulty`)
    key:     (B,)   62-bit hash of the question; equal questions always have equal keys
    """

    text: torch.Tensor
    masked: torch.Tensor
    length: torch.Tensor
    difficulty: torch.Tensor
    key: torch.Tensor

    def __len__(self) -> int:
        return self.text.shape[0]

    def select(self, index: torch.Tensor | slice) -> Batch:
        """Rows by index or slice, trimmed to the longest selected text."""
        rows = {f.name: getattr(self, f.name)[index] for f in fields(self)}
        width = int(rows["length"].max()) if rows["length"].numel() else 0
        rows["text"] = rows["text"][:, :width]
        rows["masked"] = rows["masked"][:, :width]
        return Batch(**rows)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @staticmethod
    def cat(batches: list[Batch]) -> Batch:
        width = max(b.text.shape[1] for b in batches)

        def pad(t: torch.Tensor, value: int) -> torch.Tensor:
            return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

        return Batch(
            text=torch.cat([pad(b.text, SPACE) for b in batches]),
            masked=torch.cat([pad(b.masked, SPACE) for b in batches]),
            length=torch.cat([b.length for b in batches]),
            difficulty=torch.cat([b.difficulty for b in batches]),
            key=torch.cat([b.key for b in batches]),
        )

    def texts(self) -> list[str]:
        """Decode to strings (for printing and tests, not for the training path)."""
        return [bytes(row[:n].tolist()).decode("latin-1") for row, n in zip(self.text, self.length.tolist())]


def row_key(parts: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
    """64-bit key of each row from small non-negative int values; 0 values count as absent.

    parts: (values (N, D), offset): value j of a part sits at position offset + j, so a
    part can be narrower in one setting than another and still give the same key.
    The key is sum_j value_j * R_j over fixed random 64-bit multipliers R (arithmetic
    wraps modulo 2^64): one pass over the values. It is a function of the values alone, so
    equal rows always share a key; a collision of different rows can only make the split
    drop a training sample, never let one leak.
    """
    key = torch.zeros(parts[0][0].shape[0], dtype=torch.int64)
    table = _multipliers(max(offset + values.shape[1] for values, offset in parts))
    for values, offset in parts:
        multipliers = table[offset : offset + values.shape[1]]
        key += (values.long() * multipliers).sum(1)
    return key


def _multipliers(count: int) -> torch.Tensor:
    """At least `count` multipliers; the table only grows, so every prefix stays the same."""
    global _MULTIPLIERS
    if len(_MULTIPLIERS) < count:
        _MULTIPLIERS = torch.tensor(_splitmix64(1 << (count - 1).bit_length()), dtype=torch.int64)
    return _MULTIPLIERS


def _splitmix64(count: int, state: int = 0x5E1C0) -> list[int]:
    """Fixed odd 64-bit multipliers (SplitMix64), the same on every machine and torch version."""
    out = []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) % 2**64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
        z = (z ^ (z >> 31)) | 1
        out.append(z - 2**64 if z >= 2**63 else z)
    return out


_MULTIPLIERS = torch.tensor(_splitmix64(256), dtype=torch.int64)


def draw_distinct(count: int, pool: int, width: int, g: torch.Generator) -> torch.Tensor:
    """(N, width) distinct values of range(pool) per row, uniformly: a partial Fisher-Yates
    shuffle, `width` column swaps over the whole batch instead of a sort per row."""
    dtype = torch.uint8 if pool <= 256 else torch.int64
    deck = torch.arange(pool, dtype=dtype).expand(count, pool).clone()
    for i in range(width):
        pick = i + (torch.rand(count, generator=g) * (pool - i)).long().clamp(max=pool - i - 1)
        here, there = deck[:, i].clone(), deck.gather(1, pick[:, None])
        deck[:, i] = there[:, 0]
        deck.scatter_(1, pick[:, None], here[:, None])
    return deck[:, :width]


class Task(ABC):
    """A generator of question/answer texts, made by its config's `build()`."""

    difficulty: ClassVar[str]  # what `Batch.difficulty` counts, e.g. "operations in the program"
    difficulty_column: ClassVar[str]  # its metric columns: `sample_error%_<column>K`

    def __init__(self, config: TaskConfig):
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def show(self, text: str) -> str:
        """How `selcopy sample` prints a text (`--raw` prints it as it is)."""
        return text

    @abstractmethod
    def sample_batch(self, count: int, generator: torch.Generator) -> Batch:
        """`count` independent samples (duplicates possible) drawn with `generator`."""

    @abstractmethod
    def max_length(self) -> int:
        """The longest text this configuration can produce."""

    def draw_bytes(self) -> int:
        """Bytes one sample takes at the peak of drawing a batch (its tensors and the generator's
        working ones): an estimate for the memory check before a draw, here 16 per byte of the
        longest text; a generator that needs more says so."""
        return 16 * self.max_length()

    @abstractmethod
    def check(self, line: str) -> None:
        """Raise ValueError if `line` is not a correct sample of this task (an independent check)."""
