import time

import numpy as np
import pytest
import torch
from PIL import Image

from selcopy.report import examples as ex
from selcopy.report.examples import image_size, render_examples, sample_order, write_examples
from selcopy.tasks import make_task

PAPER = np.array(ex.PAPER)


def _data(count=40, seed=1):
    task = make_task("program", {"input_length": [2, 5], "num_items": 26, "num_operations": [1, 4]})
    return task.sample_batch(count, torch.Generator().manual_seed(seed))


def _wrong_answers(batch, wrong_per_sample):
    """Output = text with the first `n` answer characters of sample i replaced (n from the list)."""
    output = batch.text.clone().long()
    for i, n in enumerate(wrong_per_sample):
        answer = (batch.masked[i] == 0).nonzero().flatten()[:n]
        output[i, answer] = ord("#")
    return output


def _colour_share(cell: np.ndarray, colour) -> float:
    return float((np.abs(cell.astype(int) - np.array(colour)).sum(-1) < 12).mean())


def _cell(img: np.ndarray, sample: int, row: int, col: int, length: int) -> np.ndarray:
    x, y = ex.sample_origin(sample, length)
    y += row * ex.CELL_H
    x += col * ex.CELL_W
    return img[y : y + ex.CELL_H, x : x + ex.CELL_W]


def _bands(column: np.ndarray) -> list[int]:
    """Heights of the runs of non-paper pixels down a pixel column."""
    inked = (column != PAPER).any(-1)
    heights, run = [], 0
    for on in inked:
        if on:
            run += 1
        elif run:
            heights.append(run)
            run = 0
    return heights + ([run] if run else [])


def test_sample_order_puts_the_worst_first_and_keeps_ties_in_order():
    text = torch.zeros(4, 3, dtype=torch.long)
    output = torch.tensor([[0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 0, 0]])
    order, wrong = sample_order(text, output)
    assert order.tolist() == [1, 0, 3, 2]
    assert wrong.tolist() == [3, 1, 1, 0]


def test_image_has_one_band_of_three_rows_per_sample_in_two_columns():
    batch = _data(40)
    img = np.asarray(render_examples(batch.text, batch.masked, batch.text))
    L = batch.text.shape[1]
    assert (img.shape[1], img.shape[0]) == image_size(40, L)
    top = ex.MARGIN + ex.HEADER_H
    for column, samples in ((0, ex.SAMPLES_PER_COLUMN), (1, 40 - ex.SAMPLES_PER_COLUMN)):
        x = ex.sample_origin(column * ex.SAMPLES_PER_COLUMN, L)[0] + 1
        assert _bands(img[top:, x]) == [ex.ROWS * ex.CELL_H] * samples


def test_output_cells_are_green_when_right_red_when_wrong_and_the_mask_is_dark():
    batch = _data(6)
    wrong = [0, 1, 3, 0, 2, 0]
    img = np.asarray(render_examples(batch.text, batch.masked, _wrong_answers(batch, wrong)))
    L = batch.text.shape[1]
    worst = 2  # original index of the sample with 3 wrong characters: shown first
    first_answer = int((batch.masked[worst] == 0).nonzero()[0])
    assert _colour_share(_cell(img, 0, 2, first_answer, L), ex.WRONG) > 0.4
    assert _colour_share(_cell(img, 0, 1, first_answer, L), ex.MASK_CELL) == 1.0  # an empty dark cell
    last_answer = int((batch.masked[0] == 0).nonzero()[-1])
    shown_last = 3  # shown order: 2, 4, 1, then the right ones in their order: 0, 3, 5
    assert _colour_share(_cell(img, shown_last, 2, last_answer, L), ex.RIGHT) > 0.4
    assert _colour_share(_cell(img, shown_last, 2, last_answer, L), ex.WRONG) == 0


def test_worst_sample_is_drawn_first_with_its_count_of_wrong_characters():
    batch = _data(6)
    wrong = [0, 1, 3, 0, 2, 0]
    img = np.asarray(render_examples(batch.text, batch.masked, _wrong_answers(batch, wrong)))
    L = batch.text.shape[1]
    red_cells = [sum(_colour_share(_cell(img, s, 2, c, L), ex.WRONG) > 0.4 for c in range(L)) for s in range(6)]
    assert red_cells == sorted(wrong, reverse=True)
    gutter = _cell(img, 0, 2, -2, L)  # the count "3", in red ink, left of the output row
    assert _colour_share(gutter, PAPER) < 1.0


def test_any_byte_renders_and_the_image_is_cheap():
    batch = _data(64)
    output = torch.randint(0, 256, batch.text.shape)
    render_examples(batch.text, batch.masked, output)  # builds the glyph atlas once
    start = time.perf_counter()
    img = render_examples(batch.text, batch.masked, output, caption="x: ")
    assert time.perf_counter() - start < 1.0
    assert img.mode == "RGB" and img.size == image_size(64, batch.text.shape[1])


class FakeWriter:
    def __init__(self):
        self.images = []

    def add_image(self, tag, array, step, dataformats):
        self.images.append((tag, array, step, dataformats))


def _answers(count=64):
    """The first validation samples and wrong answers to them (0, 1, 2 wrong characters in turn)."""
    batch = _data(count, seed=3)
    return batch, _wrong_answers(batch, [i % 3 for i in range(len(batch))])


def test_write_examples_keeps_the_latest_image_and_logs_it(tmp_path):
    writer = FakeWriter()
    folder = tmp_path / "examples"
    batch, output = _answers()
    path = write_examples(batch, output, folder, writer, 12_800)
    assert path == folder / "validation-latest.png"
    assert [p.name for p in folder.iterdir()] == [path.name]  # no step file, no temporary files left
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        size = img.size
    ((tag, array, step, formats),) = writer.images
    assert (tag, step, formats) == ("validation_examples", 12_800, "HWC")
    assert array.dtype == np.uint8 and array.shape == (size[1], size[0], 3)
    assert size[1] == image_size(ex.EXAMPLES, 1)[1]


def test_write_examples_keeps_the_best_and_on_request_every_step(tmp_path):
    folder = tmp_path / "examples"
    batch, output = _answers(10)
    write_examples(batch, output, folder, None, 5, best=True)
    write_examples(batch, batch.text, folder, None, 10)  # a later validation that is not the best
    assert sorted(p.name for p in folder.iterdir()) == ["validation-best.png", "validation-latest.png"]
    assert (folder / "validation-best.png").read_bytes() != (folder / "validation-latest.png").read_bytes()
    write_examples(batch, output, folder, None, 15, every=True)
    assert (folder / "validation-000000015.png").read_bytes() == (folder / "validation-latest.png").read_bytes()


def test_write_examples_works_with_a_real_summary_writer(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    batch, output = _answers(10)
    with SummaryWriter(str(tmp_path / "tb")) as writer:
        write_examples(batch, output, tmp_path / "examples", writer, 5)
    assert any((tmp_path / "tb").iterdir())
    assert (tmp_path / "examples" / "validation-latest.png").exists()


@pytest.mark.parametrize("count", [1, 33])
def test_small_and_odd_batches(count):
    batch = _data(count)
    img = render_examples(batch.text, batch.masked, batch.text)
    assert img.size == image_size(count, batch.text.shape[1])
