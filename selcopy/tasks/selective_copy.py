"""Selective Copying (the Mamba paper's toy task): copy the letters of a sparse field in order.

    A....D.C..B..:ADCB

An `area`-wide field of spaces (printed here as dots) holds the letters A, B, ... in random
cells; the answer is the letters in order of position, right-padded with spaces to the
largest number of letters. The model sees the answer masked with byte 0.
"""

from __future__ import annotations

import string
from typing import ClassVar

import torch
from pydantic import Field, model_validator

from selcopy.tasks.base import Batch, IntRange, Task, TaskConfig, check_range, draw_distinct, row_key
from selcopy.vocab import MASK, SPACE

LETTERS = string.ascii_uppercase
BLANK_SHOWN = "."  # how the field's spaces are printed
MAX_AREA = 65_536  # 16 x the Mamba paper's 4,096; drawing a sample takes ~30 bytes per cell of its field, so
#   10,000 samples of the widest field take ~20 GB: wider is no run a laptop (or most servers) can draw


class SelectiveCopyConfig(TaskConfig):
    name: ClassVar[str] = "selective-copy"
    description: ClassVar[str] = (
        "Selective Copying (the Mamba paper's toy task): copy the letters of a sparse field in order."
    )

    area: int = Field(40, ge=1, le=MAX_AREA, description="width of the field")
    num_items: IntRange = Field((10, 10), description="letters in the field, number or [lo, hi]")

    @model_validator(mode="after")
    def _consistent(self) -> SelectiveCopyConfig:
        check_range("num_items", self.num_items, 1, min(self.area, len(LETTERS)))
        return self

    def build(self) -> SelectiveCopyTask:
        return SelectiveCopyTask(self)


class SelectiveCopyTask(Task):
    difficulty: ClassVar[str] = "letters to copy"
    difficulty_column: ClassVar[str] = "letters"
    config: SelectiveCopyConfig

    def max_length(self) -> int:
        return self.config.area + 1 + self.config.num_items[1]

    def draw_bytes(self) -> int:
        """Measured: ~22-27 bytes per byte of the text at the peak of a draw; the field's cells are
        shuffled (and placed) as int64."""
        return 24 * self.max_length()

    def sample_batch(self, count: int, generator: torch.Generator) -> Batch:
        A, (lo, hi) = self.config.area, self.config.num_items
        k = torch.randint(lo, hi + 1, (count,), generator=generator)
        cells = draw_distinct(count, A, hi, generator).long()  # letter j sits in cells[:, j]
        rank = torch.arange(hi)
        present = rank < k[:, None]
        field = torch.full((count, A + 1), SPACE, dtype=torch.uint8)
        field.scatter_(1, torch.where(present, cells, A), (rank + ord("A")).to(torch.uint8).expand(count, hi))
        by_position = torch.where(present, cells, A + rank).argsort(1)  # letters in field order
        answer = torch.where(present, by_position + ord("A"), SPACE).to(torch.uint8)
        field[:, A] = ord(":")
        text = torch.cat([field, answer], 1)
        length = torch.full((count,), A + 1 + hi)
        return Batch(
            text=text,
            masked=torch.cat([field, torch.full_like(answer, MASK)], 1),
            length=length,
            difficulty=k,
            key=row_key([(torch.where(field[:, :A] == SPACE, 0, field[:, :A]), 0)]),
        )

    def check(self, line: str) -> None:
        field, answer = parse(line)
        area, (lo, hi) = self.config.area, self.config.num_items
        if len(field) != area:
            raise ValueError(f"field width {len(field)} != area {area}")
        letters = [c for c in field if c != " "]
        if sorted(letters) != list(LETTERS[: len(letters)]) or not lo <= len(letters) <= hi:
            raise ValueError(f"field letters {''.join(letters)!r} are not A.. with {lo}..{hi} letters")
        if answer != "".join(letters).ljust(hi):
            raise ValueError(f"answer {answer!r} != {''.join(letters).ljust(hi)!r}")

    def show(self, text: str) -> str:
        """The article's printed form: the field's spaces as dots (`parse` reads it back)."""
        field, _, answer = text.partition(":")
        return field.replace(" ", BLANK_SHOWN) + ":" + answer


def parse(line: str) -> tuple[str, str]:
    """`A..B:AB` -> ("A  B", "AB"): the field with dots read as spaces, and the answer."""
    parts = line.rstrip("\n").split(":")
    if len(parts) != 2:
        raise ValueError(f"expected 'field:answer', got {line!r}")
    return parts[0].replace(BLANK_SHOWN, " "), parts[1]
