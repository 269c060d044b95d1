"""A glyph atlas: every byte drawn once into a fixed-size cell, so images of text are made by
array indexing instead of one `draw.text` call per character.

    atlas = glyph_atlas(8, 12)     # (256, 12, 8) coverage in [0, 1]
    pixels = atlas[byte_values]    # (..., 12, 8): one cell per byte

The font is DejaVu Sans Mono, the monospaced font matplotlib (a dependency) ships with;
without it, Pillow's built-in font. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from selcopy.vocab import SPACE, VOCAB

PRINTABLE = [*range(33, 127), *range(161, VOCAB)]  # ASCII and Latin-1 letters: drawn with the font
CAPS = "ABCDEFGHIJKLMNOPRSTUVWXYZ0123456789"  # centred vertically in the cell
FIT = CAPS + "Qbdfhiklt:>+-"  # must fit the cell whole; rarer glyphs (descenders) may clip
SPACE_DOT = 0.3  # coverage of the faint dot that marks a space (the article prints spaces as dots)


def font_path() -> Path | None:
    """matplotlib's DejaVu Sans Mono, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSansMono.ttf"
        if path.exists():
            return path
    return None


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = font_path()
    if path is not None:
        return ImageFont.truetype(str(path), size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def fitting_font(width: int, height: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, tuple[int, int]]:
    """The largest font whose FIT glyphs fit a cell, and the offset that centres the capitals."""
    best = load_font(6), (0, 0)
    for size in range(6, 4 * height):
        font = load_font(size)
        top, bottom = _extent(font, FIT)
        advance = max(font.getlength(ch) for ch in FIT)
        if advance > width or bottom - top > height:
            break
        cap_top, cap_bottom = _extent(font, CAPS)
        dy = min(max((height - (cap_bottom - cap_top)) // 2 - cap_top, -top), height - bottom)
        best = font, (round((width - advance) / 2), dy)
    return best


def _extent(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, chars: str) -> tuple[int, int]:
    """Top and bottom of the glyphs' ink, relative to where text is drawn."""
    boxes = [font.getbbox(ch) for ch in chars]
    return min(b[1] for b in boxes), max(b[3] for b in boxes)


@functools.lru_cache(maxsize=8)
def glyph_atlas(width: int, height: int) -> np.ndarray:
    """(256, height, width) float32 coverage: byte -> its glyph centred in a cell.

    Printable bytes are drawn with the font, the space is a faint dot, every other byte
    (control codes, the mask byte 0) a small hollow box; callers that draw the mask as an
    empty cell simply ignore its glyph. The result is read-only (it is shared).
    """
    font, (dx, dy) = fitting_font(width, height)
    atlas = np.zeros((VOCAB, height, width), dtype=np.float32)
    for byte in PRINTABLE:
        cell = Image.new("L", (width, height), 0)
        ImageDraw.Draw(cell).text((dx, dy), chr(byte), font=font, fill=255)
        atlas[byte] = np.asarray(cell, dtype=np.float32) / 255
    cx, cy = width // 2, height // 2
    atlas[SPACE, cy : cy + 1, cx - 1 : cx + 1] = SPACE_DOT
    unprintable = [b for b in range(VOCAB) if b != SPACE and b not in PRINTABLE]
    x0, x1, y0, y1 = 1, width - 2, height // 4, height - height // 4 - 1
    box = np.zeros((height, width), dtype=np.float32)
    box[y0 : y1 + 1, [x0, x1]] = 0.8
    box[[y0, y1], x0 : x1 + 1] = 0.8
    atlas[unprintable] = box
    atlas.setflags(write=False)
    return atlas
