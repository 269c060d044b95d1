"""Validation example images, as the article shows them: what the model answers, cell by cell.

Each sample is three rows of one-character cells:

       EJACQ:1>2 -1 +3:EAJCQ   the text
       EJACQ:1>2 -1 +3:█████   the model's input: answer bytes (0) drawn as dark empty cells
     2 EJACQ:1>2 -1 +3:EAJQC   the model's output, green where right, red where wrong,
                               after the number of wrong characters

Samples are sorted from worst (most wrong characters) to best and laid out top to bottom
in columns of `SAMPLES_PER_COLUMN`. Drawing is array indexing into a glyph atlas (no
per-character draw calls), so a 64-sample image takes about 0.1 s: it is written at every validation.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from selcopy.files import atomic_write
from selcopy.report.font import glyph_atlas
from selcopy.vocab import MASK, SPACE

EXAMPLES = 64  # validation samples per image
CELL_W, CELL_H = 8, 12  # pixels per character
ROWS = 3  # text, masked input, output
SAMPLE_GAP = 4  # pixels between two samples
SAMPLE_H = ROWS * CELL_H + SAMPLE_GAP
GUTTER = 3  # cells left of a sample: its count of wrong characters
SAMPLES_PER_COLUMN = 32
COLUMN_GAP = 3 * CELL_W
MARGIN = 6
HEADER_H = 2 * CELL_H + 8  # two lines: caption; error summary and colour key
MIN_WIDTH = 60  # cells: room for the header lines

# colours (RGB)
PAPER = (255, 255, 255)
INK = (25, 25, 30)
CELL = (234, 235, 238)  # background of a text or input cell
MASK_CELL = (72, 76, 92)  # an answer cell the model cannot see
RIGHT = (120, 200, 125)  # output right inside the mask
RIGHT_PLAIN = (212, 236, 212)  # output right outside the mask (copying the question)
WRONG = (232, 78, 70)
FAINT = (130, 130, 138)  # glyphs of the copied question in the output row


def sample_order(text: torch.Tensor, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample indices from most to fewest wrong characters (ties keep their order), and the counts."""
    wrong = (torch.as_tensor(output) != torch.as_tensor(text)).sum(1)
    order = torch.sort(wrong, descending=True, stable=True).indices
    return order, wrong[order]


def image_size(samples: int, length: int) -> tuple[int, int]:
    """(width, height) in pixels of an image of `samples` samples of `length` characters."""
    columns = max(1, -(-samples // SAMPLES_PER_COLUMN))
    per_column = min(samples, SAMPLES_PER_COLUMN)
    column_w = (GUTTER + length) * CELL_W
    width = max(columns * column_w + (columns - 1) * COLUMN_GAP, MIN_WIDTH * CELL_W) + 2 * MARGIN
    height = 2 * MARGIN + HEADER_H + max(per_column * SAMPLE_H - SAMPLE_GAP, 0)
    return width, height


def sample_origin(index: int, length: int) -> tuple[int, int]:
    """(x, y) pixel of the first text cell of the `index`-th sample shown (0 = worst)."""
    column, row = divmod(index, SAMPLES_PER_COLUMN)
    x = MARGIN + column * ((GUTTER + length) * CELL_W + COLUMN_GAP) + GUTTER * CELL_W
    return x, MARGIN + HEADER_H + row * SAMPLE_H


def render_examples(
    text: torch.Tensor, masked: torch.Tensor, output: torch.Tensor, caption: str = "validation examples"
) -> Image.Image:
    """An RGB image of (B, L) text, masked input and model output bytes, worst sample first.

    The header is `caption`, then a line with the count of wrong samples and the colour key.
    """
    text, masked, output = (torch.as_tensor(t).detach().cpu().long().clamp(0, 255) for t in (text, masked, output))
    order, wrong = sample_order(text, output)
    text, masked, output = text[order].numpy(), masked[order].numpy(), output[order].numpy()
    B, L = text.shape
    blocks = _sample_blocks(text, masked, output, wrong.numpy())  # (B, 3 * CELL_H, (GUTTER + L) * CELL_W, 3)
    width, height = image_size(B, L)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = PAPER
    for i in range(B):
        x, y = sample_origin(i, L)
        x -= GUTTER * CELL_W
        canvas[y : y + ROWS * CELL_H, x : x + blocks.shape[2]] = blocks[i]
    _draw_header(canvas, caption, f"{int((wrong > 0).sum())}/{B} samples wrong, worst first")
    return Image.fromarray(canvas, "RGB")


def _sample_blocks(text: np.ndarray, masked: np.ndarray, output: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """Pixels of every sample's three rows, gutter included: (B, 3 * CELL_H, (GUTTER + L) * CELL_W, 3)."""
    B, L = text.shape
    is_mask = masked == MASK
    is_wrong = output != text
    glyphs = np.stack([text, masked, output], 1)  # (B, 3, L)
    bg = np.empty((B, ROWS, L, 3), dtype=np.float32)
    bg[:, :2] = CELL
    bg[:, 1][is_mask] = MASK_CELL
    bg[:, 2] = np.where(is_mask[..., None], RIGHT, RIGHT_PLAIN)
    bg[:, 2][is_wrong] = WRONG
    fg = np.empty_like(bg)
    fg[:] = INK
    fg[:, 2][~is_mask & ~is_wrong] = FAINT
    blank = np.zeros((B, ROWS, L), dtype=bool)
    blank[:, 1] = is_mask  # the mask is an empty cell
    gutter = _gutter(wrong)  # (B, 3, GUTTER) bytes, 0 = blank
    glyphs = np.concatenate([gutter, glyphs], 2)  # (B, 3, G + L)
    blank = np.concatenate([gutter == 0, blank], 2)
    bg = np.concatenate([np.broadcast_to(np.float32(PAPER), (B, ROWS, GUTTER, 3)), bg], 2)
    fg = np.concatenate([np.broadcast_to(np.float32(WRONG), (B, ROWS, GUTTER, 3)), fg], 2)
    return _compose(glyphs, blank, bg, fg).reshape(B, ROWS * CELL_H, (GUTTER + L) * CELL_W, 3)


def _compose(glyphs: np.ndarray, blank: np.ndarray, bg: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Cells (..., R, C) of bytes with background and glyph colours -> pixels (..., R * CELL_H, C * CELL_W, 3)."""
    a = glyph_atlas(CELL_W, CELL_H)[glyphs] * ~blank[..., None, None]  # (..., R, C, CELL_H, CELL_W)
    a = a[..., None]
    pixels = bg[..., None, None, :] * (1 - a) + fg[..., None, None, :] * a  # (..., R, C, CELL_H, CELL_W, 3)
    pixels = np.swapaxes(pixels, -4, -3)  # (..., R, CELL_H, C, CELL_W, 3)
    *lead, R, _, C, _, _ = pixels.shape
    return pixels.reshape(*lead, R * CELL_H, C * CELL_W, 3).round().astype(np.uint8)


def _gutter(wrong: np.ndarray) -> np.ndarray:
    """The wrong-character count, right-aligned beside the output row (blank when all right)."""
    cells = np.zeros((len(wrong), ROWS, GUTTER), dtype=np.int64)
    for i, n in enumerate(wrong.tolist()):
        if n:
            digits = list(str(min(n, 10 ** (GUTTER - 1) - 1)).encode())
            cells[i, 2, GUTTER - 1 - len(digits) : GUTTER - 1] = digits
    return cells


def _draw_header(canvas: np.ndarray, caption: str, summary: str) -> None:
    """The caption, then the summary and a colour key, in cells like the samples' (clipped to the width)."""
    glyphs, bg = list(summary.encode("latin-1", "replace")), [PAPER] * len(summary)
    for colour, name in [(MASK_CELL, "mask"), (RIGHT, "right"), (WRONG, "wrong")]:
        glyphs += [SPACE, SPACE, MASK, *f" {name}".encode()]
        bg += [PAPER, PAPER, colour] + [PAPER] * (len(name) + 1)
    lines = [(list(caption.encode("latin-1", "replace")), [PAPER] * len(caption)), (glyphs, bg)]
    cells = (canvas.shape[1] - 2 * MARGIN) // CELL_W
    for i, (glyphs, bg) in enumerate(lines):
        glyphs, bg = np.array(glyphs[:cells], dtype=np.int64), np.array(bg[:cells], dtype=np.float32).reshape(-1, 3)
        fg = np.broadcast_to(np.float32(INK), bg.shape)
        pixels = _compose(glyphs[None], np.isin(glyphs, [MASK, SPACE])[None], bg[None], fg[None])
        y = MARGIN + i * CELL_H
        canvas[y : y + CELL_H, MARGIN : MARGIN + pixels.shape[1]] = pixels


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)  # fast: this runs at every validation
    return buffer.getvalue()


def write_examples(
    batch: Any, output: torch.Tensor, folder: Path, writer: Any, step: int, best: bool = False, every: bool = False
) -> Path:
    """Draw the model's answers `output` (B, L) to the validation samples `batch`; save and log the image.

    Writes `validation-latest.png` in `folder` (atomically), also `validation-best.png` when
    this validation is the run's best so far, and `validation-<step>.png` with `every` (the
    history is in TensorBoard, where the image is added as `validation_examples`). Returns the
    path of the latest image.
    """
    return save_examples(examples_png(batch, output, step), folder, writer, step, best, every)


def examples_png(batch: Any, output: torch.Tensor, step: int) -> bytes:
    """The PNG bytes of `write_examples`' image: what a run on another machine sends to the store."""
    caption = f"validation examples at {step:,} inputs"
    return encode_png(render_examples(batch.text, batch.masked, output, caption=caption))


def save_examples(png: bytes, folder: Path, writer: Any, step: int, best: bool = False, every: bool = False) -> Path:
    """Store an image of `examples_png` as `write_examples` says; the latest image's path."""
    folder = Path(folder)
    names = ["validation-latest.png"] + ["validation-best.png"] * best + [f"validation-{step:09d}.png"] * every
    for name in names:
        atomic_write(folder / name, png)
    if writer is not None:  # the pixels again, from the PNG (lossless)
        writer.add_image("validation_examples", np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), step,
                         dataformats="HWC")
    return folder / names[0]
