"""Very Selective Copying: run a tiny program of swaps and stack moves over letters.

    EJACQ:1>2 -1 +3:EAJCQ

`EJACQ` is the input; `1>2` swaps cells 1 and 2 (JEACQ), `-1` removes cell 1 onto the
stack (EACQ, stack J), `+3` pops the stack and inserts before cell 3 (EAJCQ). The answer
is the remaining cells, right-padded with spaces to the longest input; the model sees it
masked with byte 0.
"""

from __future__ import annotations

import re
import string
from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator, model_validator

from selcopy.tasks.base import Batch, IntRange, Task, TaskConfig, check_range, draw_distinct, row_key
from selcopy.tasks.program_engine import Tables, build_tables, render, run_programs
from selcopy.vocab import MASK

LETTERS = string.ascii_uppercase
OPERATORS = (">", "-", "+")  # kind codes 0, 1, 2 in the generator
MAX_LETTERS = len(LETTERS)  # where op values start in the question key, whatever the width
MAX_OPERATIONS = 1_000  # the article's programs have up to 8; a text grows ~4 bytes per operation, and drawing
#   one ~35 bytes per operation and sample: 10,000 programs of 1,000 operations take ~0.4 GB and ~8 s to draw
MAX_WEIGHT = 1e6  # operator weights are relative: only their ratios count, and float32 sums of huge ones overflow


def _parse_operators(value):
    """`">:1,-:0.33"` (command line) -> {">": 1.0, "-": 0.33}; dicts pass through."""
    if isinstance(value, str):
        pairs = [item.rsplit(":", 1) for item in value.split(",") if item.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"expected 'op:weight,...', got {value!r}")
        return {op.strip(): weight for op, weight in pairs}
    return value


class ProgramConfig(TaskConfig):
    name: ClassVar[str] = "program"
    description: ClassVar[str] = "Very Selective Copying: run a tiny program of swaps and stack moves over letters."

    num_items: int = Field(26, description="alphabet size: the first num_items capital letters")
    input_length: IntRange = Field((2, 5), description="input letters per sample, number or [lo, hi]")
    num_operations: IntRange = Field((1, 5), description="ops per program, number or [lo, hi]")
    operators: dict[str, float] = Field(
        {">": 1.0, "-": 1 / 3, "+": 1 / 3}, description="op -> relative weight; ops: > swap, - remove, + insert"
    )
    stack: Literal["lifo", "fifo"] = Field("lifo", description="which removed item '+' inserts")

    @field_validator("operators", mode="before")
    @classmethod
    def _parse(cls, v):
        return _parse_operators(v)

    @field_validator("num_operations")
    @classmethod
    def _operations(cls, v: tuple[int, int]) -> tuple[int, int]:
        return check_range("", v, 1, MAX_OPERATIONS)

    @field_validator("num_items")
    @classmethod
    def _items(cls, v: int) -> int:
        if not 1 <= v <= len(LETTERS):
            raise ValueError(f"must be between 1 and {len(LETTERS)}, got {v}")
        return v

    @field_validator("operators")
    @classmethod
    def _ops(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(OPERATORS))
        if unknown:
            raise ValueError(f"unknown operator {unknown[0]!r}; known: {' '.join(OPERATORS)}")
        if any(w < 0 for w in v.values()) or not any(w > 0 for w in v.values()):
            raise ValueError("weights must be >= 0 with at least one > 0")
        if max(v.values()) > MAX_WEIGHT:
            raise ValueError(f"weights must be at most {MAX_WEIGHT:,.0f} (only their ratios count), "
                             f"got {max(v.values())}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ProgramConfig:
        check_range("input_length", self.input_length, 1, self.num_items, "num_items")
        w = self.weights
        if w[1] == 0 and (w[0] == 0 or self.input_length[0] < 2):
            raise ValueError(
                "operators: no operator can apply to a "
                f"{self.input_length[0]}-letter input ('>' needs 2 letters, '+' needs a '-' before it)"
            )
        return self

    @property
    def weights(self) -> tuple[float, float, float]:
        return tuple(float(self.operators.get(op, 0.0)) for op in OPERATORS)

    def build(self) -> ProgramTask:
        return ProgramTask(self)


class ProgramTask(Task):
    difficulty: ClassVar[str] = "operations the program really runs (fewer if it removed every cell)"
    difficulty_column: ClassVar[str] = "ops"  # sample_error%_ops3: the article's runs are stored so
    config: ProgramConfig

    def __init__(self, config: ProgramConfig):
        super().__init__(config)
        self._tables: Tables | None = None  # built on first use, for this config's width

    def max_length(self) -> int:
        cfg = self.config
        op_chars = 5 if cfg.input_length[1] >= 10 else 3  # "12>13" / "1>2"; a sign op is never longer
        ops = cfg.num_operations[1]
        return 2 * cfg.input_length[1] + 2 + ops * op_chars + (ops - 1)

    def draw_bytes(self) -> int:
        """Measured: 0.5 kB a sample at the peak of a draw of the article's programs, ~8.5 bytes per
        byte of the text for long ones (the draws and op keys of every step, and the text)."""
        return 8 * self.max_length() + 256

    def sample_batch(self, count: int, generator: torch.Generator) -> Batch:
        cfg = self.config
        W = cfg.input_length[1]
        if self._tables is None:
            self._tables = build_tables(W, cfg.stack)
        length_in = _randint(cfg.input_length, count, generator)
        letters = draw_distinct(count, cfg.num_items, W, generator) + ord("A")
        cells = torch.where(torch.arange(W) < length_in[:, None], letters, 0)
        num_ops = _randint(cfg.num_operations, count, generator)
        final, keys = run_programs(cells, length_in, num_ops, cfg.weights, self._tables, generator)
        text, length, answer_start = render(letters, length_in, final, keys, self._tables)
        answer = answer_start[:, None] + torch.arange(W)
        return Batch(
            text=text,
            masked=text.scatter(1, answer, MASK),
            length=length,
            difficulty=(keys >= 0).sum(1),
            key=row_key([(cells, 0), (keys + 1, MAX_LETTERS)]),
        )

    def check(self, line: str) -> None:
        cfg = self.config
        cells, ops, answer = parse(line)
        if len(set(cells)) != len(cells) or any(c not in LETTERS[: cfg.num_items] for c in cells):
            raise ValueError(f"input {cells!r} is not distinct letters of the first {cfg.num_items}")
        lo, hi = cfg.input_length
        if not lo <= len(cells) <= hi:
            raise ValueError(f"input length {len(cells)} outside [{lo}, {hi}]")
        result = interpret(cells, ops, cfg.stack)
        ended_early = result == "" and len(ops) < cfg.num_operations[1]
        if not (cfg.num_operations[0] <= len(ops) <= cfg.num_operations[1] or ended_early):
            raise ValueError(f"{len(ops)} operations outside {list(cfg.num_operations)}")
        if any(cfg.operators.get(op[0], 0) == 0 for op in ops):
            raise ValueError("uses an operator of weight 0")
        if answer != result.ljust(hi):
            raise ValueError(f"answer {answer!r} != {result.ljust(hi)!r}")


def _randint(bounds: tuple[int, int], count: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(bounds[0], bounds[1] + 1, (count,), generator=g)


# --- the reference: a plain interpreter and parser, one sample at a time -------------------

_OP = re.compile(r"^(?:(\d+)>(\d+)|([-+])(\d+))$")


def parse(line: str) -> tuple[str, list[tuple[str, int, int]], str]:
    """`EJACQ:1>2 -1 +3:EAJCQ` -> ("EJACQ", [(">", 1, 2), ("-", 1, 0), ("+", 3, 0)], "EAJCQ")."""
    parts = line.rstrip("\n").split(":")
    if len(parts) != 3:
        raise ValueError(f"expected 'input:ops:answer', got {line!r}")
    cells, program, answer = parts
    ops = []
    for word in program.replace(",", " ").split():
        m = _OP.match(word)
        if not m:
            raise ValueError(f"bad operation {word!r} in {line!r}")
        ops.append((">", int(m[1]), int(m[2])) if m[1] else (m[3], int(m[4]), 0))
    return cells.strip(), ops, answer


def interpret(cells: str, ops: list[tuple[str, int, int]], stack_mode: str = "lifo") -> str:
    """Run a program on its input: `interpret("EJACQ", [(">",1,2), ("-",1,0), ("+",3,0)])` -> "EAJCQ"."""
    memory, stack = list(cells), []
    for op, x, y in ops:
        if not memory:
            raise ValueError("operation after every cell was removed")
        if not 1 <= x <= len(memory) or (op == ">" and (not 1 <= y <= len(memory) or x == y)):
            raise ValueError(f"operation {op}{x} out of range for {''.join(memory)!r}")
        if op == ">":
            memory[x - 1], memory[y - 1] = memory[y - 1], memory[x - 1]
        elif op == "-":
            stack.append(memory.pop(x - 1))
        elif not stack:
            raise ValueError("'+' with an empty stack")
        else:
            memory.insert(x - 1, stack.pop() if stack_mode == "lifo" else stack.pop(0))
    return "".join(memory)
