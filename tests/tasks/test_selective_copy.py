import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from selcopy.tasks import make_task
from selcopy.tasks.selective_copy import parse


def test_article_example():
    task = make_task("selective-copy", {"area": 13, "num_items": 4})
    task.check("A....D.C..B..:ADCB")
    with pytest.raises(ValueError):
        task.check("A....D.C..B..:ABCD")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.data(), st.integers(0, 2**31))
def test_answers_are_letters_in_position_order(area, data, seed):
    lo = data.draw(st.integers(1, min(area, 26)))
    hi = data.draw(st.integers(lo, min(area, 26)))
    task = make_task("selective-copy", {"area": area, "num_items": [lo, hi]})
    batch = task.sample_batch(50, torch.Generator().manual_seed(seed))
    for text, k in zip(batch.texts(), batch.difficulty.tolist()):
        task.check(task.show(text))
        field, answer = parse(task.show(text))
        assert len(answer.strip()) == k
    assert (batch.masked[:, area + 1 :] == 0).all()
    assert torch.equal(batch.masked[:, : area + 1], batch.text[:, : area + 1])


def test_shown_with_dots_for_the_fields_spaces():
    task = make_task("selective-copy", {"area": 5, "num_items": 2})
    assert task.show("A  B :AB") == "A..B.:AB"


def test_article_settings_width():
    task = make_task("selective-copy", {})
    batch = task.sample_batch(10, torch.Generator().manual_seed(0))
    assert batch.text.shape == (10, 40 + 1 + 10)


@pytest.mark.parametrize(
    "settings, message",
    [({"area": 5, "num_items": 6}, "at most 5"), ({"num_items": [4, 2]}, "lo > hi"), ({"area": 0}, "area")],
)
def test_bad_settings(settings, message):
    with pytest.raises(ValidationError, match=message):
        make_task("selective-copy", settings)
