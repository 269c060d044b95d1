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

from selcopy.tasks.base import SPACE, Batch, IntRange, Task, TaskConfig, check_range, compact, mask_answer
from selcopy.tasks.base import question_key

LETTERS = string.ascii_uppercase
OPERATORS = (">", "-", "+")  # kind codes 0, 1, 2 in the generator
_SLOTS = 7  # characters an op can take: " ", sign, x tens, x ones, ">", y tens, y ones


def _parse_operators(value):
    """`">:1,-:0.33"` (command line) -> {">": 1.0, "-": 0.33}; dicts pass through."""
    if isinstance(value, str):
        pairs = [item.rsplit(":", 1) for item in value.split(",") if item.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"operators: expected 'op:weight,...', got {value!r}")
        return {op.strip(): weight for op, weight in pairs}
    return value


class ProgramConfig(TaskConfig):
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
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ProgramConfig:
        check_range("input_length", self.input_length, 1, self.num_items)
        check_range("num_operations", self.num_operations, 1)
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


class ProgramTask(Task):
    name: ClassVar[str] = "program"
    Config: ClassVar[type[ProgramConfig]] = ProgramConfig
    config: ProgramConfig

    def max_length(self) -> int:
        cfg = self.config
        op_chars = 5 if cfg.input_length[1] >= 10 else 3  # "12>13" / "1>2"; a sign op is never longer
        ops = cfg.num_operations[1]
        return 2 * cfg.input_length[1] + 2 + ops * op_chars + (ops - 1)

    def sample_batch(self, count: int, generator: torch.Generator) -> Batch:
        cfg = self.config
        inputs, length_in = self._draw_inputs(count, generator)
        cells, kinds, xs, ys = run_batch(
            inputs, length_in, _randint(cfg.num_operations, count, generator), cfg.weights,
            cfg.stack, generator,
        )
        chars, valid = _render(inputs, length_in, cells, kinds, xs, ys)
        text, length = compact(chars, valid)
        text = text[:, : int(length.max())]
        answer_start = length - cfg.input_length[1]
        return Batch(
            text=text,
            masked=mask_answer(text, answer_start, length),
            length=length,
            num_ops=(kinds >= 0).sum(1),
            key=question_key(text, answer_start),
        )

    def _draw_inputs(self, count: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, W) letters of shuffled alphabets, 0 past each row's input length; and the lengths."""
        W = self.config.input_length[1]
        length_in = _randint(self.config.input_length, count, g)
        letters = torch.rand(count, self.config.num_items, generator=g).argsort(1)[:, :W] + ord("A")
        pos = torch.arange(W)
        return torch.where(pos < length_in[:, None], letters, 0), length_in

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


def run_batch(
    cells: torch.Tensor,
    n: torch.Tensor,
    num_ops: torch.Tensor,
    weights: tuple[float, float, float],
    stack_mode: str,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw and run programs for a whole batch, one op step at a time over all rows.

    cells: (N, W) letter bytes, 0 = empty; n: (N,) filled cells; num_ops: (N,) wanted ops.
    Returns the final cells and the ops as (N, K) kind (-1 = none), x, y (1-based).
    An op that cannot apply is never drawn (equivalent to redrawing it); a program whose
    cells were all removed stops early.
    """
    N, W = cells.shape
    K = int(num_ops.max())
    pos = torch.arange(W)
    stack = torch.zeros_like(cells)
    s = torch.zeros(N, dtype=torch.int64)
    kinds = torch.full((N, K), -1, dtype=torch.int64)
    xs, ys = torch.zeros(N, K, dtype=torch.int64), torch.zeros(N, K, dtype=torch.int64)
    w = torch.tensor(weights, dtype=torch.float64)
    for t in range(K):
        active = (t < num_ops) & (n > 0)
        allowed = torch.stack([n >= 2, n >= 1, s >= 1], 1) & active[:, None]  # (N, 3)
        probs = torch.where(allowed, w, 0.0)
        probs[:, 1] += (~active).double()  # inactive rows draw a dummy that is discarded
        kind = torch.multinomial(probs, 1, generator=g).squeeze(1)
        u = torch.rand(N, 2, generator=g, dtype=torch.float64)
        x = (u[:, 0] * n).long().clamp(max=(n - 1).clamp(min=0))  # (N,) 0-based, in [0, n)
        y = (u[:, 1] * (n - 1)).long().clamp(max=(n - 2).clamp(min=0))
        y = (y + (y >= x).long()).clamp(max=W - 1)  # y != x (clamped rows with n < 2 never swap)
        xi, yi = x[:, None], y[:, None]

        swapped = cells.scatter(1, xi, cells.gather(1, yi)).scatter(1, yi, cells.gather(1, xi))
        removed = torch.where(pos < (n - 1)[:, None], cells.gather(1, (pos + (pos >= xi)).clamp(max=W - 1)), 0)
        pushed = stack.scatter(1, s.clamp(max=W - 1)[:, None], cells.gather(1, xi))
        value, popped = _pop(stack, s, stack_mode)
        shifted = cells.gather(1, (pos - (pos > xi).long()).clamp(min=0))
        inserted = torch.where(pos == xi, value[:, None], shifted)
        inserted = torch.where(pos < (n + 1)[:, None], inserted, 0)

        is_swap, is_rem, is_ins = [(active & (kind == k))[:, None] for k in range(3)]
        cells = torch.where(is_swap, swapped, torch.where(is_rem, removed, torch.where(is_ins, inserted, cells)))
        stack = torch.where(is_rem, pushed, torch.where(is_ins, popped, stack))
        n = n - is_rem[:, 0].long() + is_ins[:, 0].long()
        s = s + is_rem[:, 0].long() - is_ins[:, 0].long()
        kinds[:, t] = torch.where(active, kind, -1)
        xs[:, t], ys[:, t] = x + 1, y + 1
    return cells, kinds, xs, ys


def _pop(stack: torch.Tensor, s: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The value '+' inserts and the stack after it left: last pushed (lifo) or first (fifo)."""
    W = stack.shape[1]
    pos = torch.arange(W)
    if mode == "lifo":
        top = (s - 1).clamp(min=0)[:, None]
        return stack.gather(1, top).squeeze(1), stack.scatter(1, top, 0)
    rest = stack.gather(1, (pos + 1).clamp(max=W - 1)[None].expand_as(stack))
    return stack[:, 0], torch.where(pos < (s - 1)[:, None], rest, 0)


def _render(
    inputs: torch.Tensor,
    length_in: torch.Tensor,
    cells: torch.Tensor,
    kinds: torch.Tensor,
    xs: torch.Tensor,
    ys: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every character the text could hold, and which of them it does: (N, T) each."""
    N, W = inputs.shape
    K = kinds.shape[1]
    col = torch.full((N, 1), ord(":"))
    exists = kinds >= 0
    swap = exists & (kinds == 0)
    sign = torch.where(kinds == 1, ord("-"), ord("+"))
    op_chars = torch.stack(  # (N, K, 7)
        [torch.full_like(kinds, SPACE), sign, xs // 10 + 48, xs % 10 + 48,
         torch.full_like(kinds, ord(">")), ys // 10 + 48, ys % 10 + 48], dim=2,
    )
    first = (torch.arange(K) > 0)[None]
    op_valid = torch.stack(
        [exists & first, exists & ~swap, exists & (xs >= 10), exists, swap, swap & (ys >= 10), swap], dim=2
    )
    answer = torch.where(cells > 0, cells, SPACE)
    chars = torch.cat([inputs, col, op_chars.reshape(N, K * _SLOTS), col, answer], 1)
    valid = torch.cat(
        [
            torch.arange(W)[None] < length_in[:, None],
            torch.ones(N, 1, dtype=torch.bool),
            op_valid.reshape(N, K * _SLOTS),
            torch.ones(N, 1 + W, dtype=torch.bool),
        ],
        1,
    )
    return chars, valid


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
