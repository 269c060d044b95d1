"""The batched program generator behind the `program` task: tables and one loop over op steps.

Each sample's memory is one row of bytes, `[cells (W) | stack (W) | 0]`. Every operation is
a fixed rearrangement of that row, decided by (kind, x, y, cells n, stack size s) alone, so
all of them are precomputed as gather indices: one step of a whole batch is a handful of
(N,) tensor operations plus one table lookup and one `gather`. Which op is drawn depends
only on n and s, never on the letters.

Glossary: N samples, W max input length (= cells = stack slots), S = 2W + 1 row width,
K max operations, M alphabet size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from selcopy.vocab import SPACE

SWAP, REMOVE, INSERT = 0, 1, 2
OP_KEY_BASE = 32  # op key = kind * 32 * 32 + x * 32 + y: independent of W, so keys compare across settings
NO_OP = 3 * OP_KEY_BASE * OP_KEY_BASE  # the table row of "no operation": empty text
OP_WIDTH = 6  # longest op text with its trailing space: "12>13 "
COLON = ord(":")


@dataclass(frozen=True)
class Tables:
    moves: torch.Tensor  # (rows, S) gather index of each (kind, x, y, n, s) rearrangement
    remove_at: int  # first row of the remove block; insert block follows
    insert_at: int
    op_text: torch.Tensor  # (NO_OP + 1, OP_WIDTH) uint8 text of each op key, trailing space included
    op_len: torch.Tensor  # (NO_OP + 1,) its length


def build_tables(W: int, stack: str) -> Tables:
    """All rearrangements for memories of W cells; `stack` is "lifo" or "fifo"."""
    S, Z = 2 * W + 1, 2 * W  # Z: the always-zero slot, i.e. "empty"
    j = torch.arange(S)
    x, y, jj = torch.arange(W).view(W, 1, 1), torch.arange(W).view(1, W, 1), j.view(1, 1, S)
    swap = torch.where(jj == x, y, torch.where(jj == y, x, jj)).reshape(W * W, S)

    x = torch.arange(W).view(W, 1, 1, 1)
    n = torch.arange(W + 1).view(1, W + 1, 1, 1)
    s = torch.arange(W + 1).view(1, 1, W + 1, 1)
    jj = j.view(1, 1, 1, S)
    cell, slot, k = jj < W, (jj >= W) & (jj < Z), jj - W  # k: stack position
    removed_cells = torch.where(jj < n - 1, jj + (jj >= x).long(), Z)
    removed_stack = torch.where(k < s, jj, torch.where(k == s, x, Z))  # push the removed cell
    remove = torch.where(cell, removed_cells, torch.where(slot, removed_stack, Z))
    if stack == "lifo":
        value, rest = W + s - 1, torch.where(k < s - 1, jj, Z)
    else:
        value, rest = torch.full_like(s, W), torch.where(k < s - 1, jj + 1, Z)
    inserted = torch.where(jj < x, jj, torch.where(jj == x, value, torch.where(jj <= n, jj - 1, Z)))
    insert = torch.where(cell, inserted, torch.where(slot, rest, Z))

    block = W * (W + 1) * (W + 1)
    moves = torch.cat([j[None], swap, remove.reshape(block, S), insert.reshape(block, S)])
    text, length = _op_texts()
    return Tables(moves, 1 + W * W, 1 + W * W + block, text, length)


def _op_texts() -> tuple[torch.Tensor, torch.Tensor]:
    text = torch.full((NO_OP + 1, OP_WIDTH), SPACE, dtype=torch.uint8)
    length = torch.zeros(NO_OP + 1, dtype=torch.int32)
    B = OP_KEY_BASE
    for x in range(26):
        for y in range(26):
            words = {SWAP * B * B + x * B + y: f"{x + 1}>{y + 1} ", REMOVE * B * B + x * B: f"-{x + 1} ",
                     INSERT * B * B + x * B: f"+{x + 1} "}
            for key, word in words.items():
                text[key, : len(word)] = torch.tensor(list(word.encode()), dtype=torch.uint8)
                length[key] = len(word)
    return text, length


def run_programs(
    cells: torch.Tensor,
    n: torch.Tensor,
    num_ops: torch.Tensor,
    weights: tuple[float, float, float],
    tables: Tables,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw and run a program per row. cells (N, W) uint8, 0 = empty; n (N,) filled cells.

    An op that cannot apply is never drawn (the same as redrawing it); a program whose cells
    were all removed stops early. Returns the final cells (N, W) and op keys (N, K), -1 = none.
    """
    N, W = cells.shape
    K = int(num_ops.max())
    state = torch.cat([cells, torch.zeros(N, W + 1, dtype=torch.uint8)], 1)  # (N, S)
    n, num_ops = n.int(), num_ops.int()  # int32 arithmetic: half the memory traffic of int64
    s = torch.zeros(N, dtype=torch.int32)
    keys = torch.full((N, K), -1, dtype=torch.int32)
    w_swap, w_rem, w_ins = weights
    uniform = torch.rand(K, 3, N, generator=g)  # all draws at once: (K, 3, N)
    for t in range(K):
        active = (t < num_ops) & (n > 0)
        u = uniform[t]
        c0 = w_swap * (n >= 2)
        c1 = c0 + w_rem
        c2 = c1 + w_ins * (s >= 1)
        r = u[0] * c2
        kind = torch.minimum((r >= c0).int() + (r >= c1).int(), _cap(w_rem, w_ins, s))
        x = torch.minimum((u[1] * n).int(), n - 1).clamp_(min=0)
        y = torch.minimum((u[2] * (n - 1)).int(), n - 2).clamp_(min=0)
        y += y >= x  # y != x
        y.clamp_(max=W - 1)  # only rows that do not swap (n < 2) reach W
        is_swap, is_rem, is_ins = kind == SWAP, kind == REMOVE, kind == INSERT
        stacked = (x * (W + 1) + n) * (W + 1) + s + torch.where(is_rem, tables.remove_at, tables.insert_at)
        row = torch.where(is_swap, 1 + x * W + y, stacked) * active
        state = state.gather(1, tables.moves.index_select(0, row))
        grow, shrink = (active & is_ins).int(), (active & is_rem).int()
        n = n + grow - shrink
        s = s - grow + shrink
        op_key = kind * OP_KEY_BASE**2 + x * OP_KEY_BASE + y * is_swap
        keys[:, t] = (op_key + 1) * active - 1
    return state[:, :W], keys


def _cap(w_rem: float, w_ins: float, s: torch.Tensor) -> torch.Tensor:
    """The highest op kind a row may draw, so that a product `u * c2` rounded up to `c2`
    still lands on an op that applies: insert needs a weight and a filled stack."""
    ins = (s >= 1).int() * INSERT if w_ins > 0 else torch.zeros_like(s)
    return torch.maximum(ins, torch.full_like(s, REMOVE if w_rem > 0 else SWAP))


def render(
    letters: torch.Tensor, length_in: torch.Tensor, cells: torch.Tensor, keys: torch.Tensor, tables: Tables
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Texts `input:ops:answer` (N, T) uint8 space-padded, their lengths, and answer starts.

    Each op's text is written whole (trailing spaces included) at its start, first op first,
    so the next op overwrites the previous one's padding; the last op's trailing space
    becomes the second ':'.
    """
    N, W = letters.shape
    K = keys.shape[1]
    row = torch.where(keys >= 0, keys, NO_OP).view(-1)
    chars = tables.op_text.index_select(0, row).view(N, K, OP_WIDTH)
    starts = tables.op_len.index_select(0, row).view(N, K).cumsum(1, dtype=torch.int32)  # op ends
    answer_start = (length_in + 1 + starts[:, -1]).long()
    starts = starts.roll(1, 1)
    starts[:, 0] = 0
    starts += (length_in + 1)[:, None]
    text = torch.full((N, W + 2 + K * OP_WIDTH + W), SPACE, dtype=torch.uint8)
    text[:, :W] = torch.where(torch.arange(W) < length_in[:, None], letters, SPACE)
    text.scatter_(1, length_in[:, None].long(), COLON)
    col = torch.arange(OP_WIDTH, dtype=torch.int32)
    for t in range(K):
        text.scatter_(1, (starts[:, t, None] + col).long(), chars[:, t])
    text.scatter_(1, (answer_start - 1)[:, None], COLON)
    answer = torch.where(cells > 0, cells, SPACE)
    text.scatter_(1, answer_start[:, None] + torch.arange(W), answer)
    length = answer_start + W
    return text[:, : int(length.max())], length, answer_start
