import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given

from selcopy.errors import SelcopyError
from selcopy.tasks import make_task
from selcopy.tasks.split import DataSplit, _fresh, unique_samples

TINY = {"num_items": 3, "input_length": 3, "num_operations": 1, "operators": {">": 1}}  # 36 questions


def _questions(batch):
    return [t.rsplit(":", 1)[0] for t in batch.texts()]


def test_no_validation_text_in_any_training_epoch():
    task = make_task("program", TINY)
    split = DataSplit(task, task, train_count=26, validation_count=10, validation_seed=23)
    validation = set(split.validation.texts())
    assert len(validation) == 10
    for epoch in range(60):
        texts = split.epoch(seed=epoch).texts()
        assert len(texts) == len(set(texts)) == 26  # no repeats within an epoch
        assert not validation & set(texts)


def test_no_leakage_with_other_validation_settings():
    train = make_task("program", {"input_length": 5, "num_items": 5, "num_operations": [1, 2], "operators": {">": 1}})
    val = make_task("program", {"input_length": 5, "num_items": 5, "num_operations": 2, "operators": {">": 1}})
    split = DataSplit(train, val, train_count=5000, validation_count=2000, validation_seed=23)
    validation = set(_questions(split.validation))
    seen = 0
    for epoch in range(20):
        questions = _questions(split.epoch(seed=epoch))
        assert not validation & set(questions)
        seen += len(questions)
    assert seen == 100_000


def test_validation_fixed_by_its_seed():
    task = make_task("program", {})
    a = DataSplit(task, task, 10, 100, validation_seed=23).validation
    b = DataSplit(task, task, 10, 100, validation_seed=23).validation
    assert a.texts() == b.texts()


def test_epochs_differ_and_repeat_by_seed():
    task = make_task("program", {})
    split = DataSplit(task, task, 500, 100, validation_seed=23)
    assert split.epoch(1).texts() == split.epoch(1).texts()
    assert split.epoch(1).texts() != split.epoch(2).texts()


def test_too_few_distinct_questions_is_an_error():
    task = make_task("program", TINY)
    with pytest.raises(SelcopyError, match="distinct questions"):
        unique_samples(task, 37, torch.Generator().manual_seed(0))
    split = DataSplit(task, task, train_count=27, validation_count=10, validation_seed=23)
    with pytest.raises(SelcopyError, match="distinct questions"):
        split.epoch(0)


def test_training_never_sees_a_test_question():
    task = make_task("program", TINY)  # 36 questions: every epoch would hit the fixed sets if it could
    split = DataSplit(task, task, train_count=12, validation_count=10, validation_seed=23, test=(task, 8, 29))
    test, validation = set(_questions(split.test)), set(_questions(split.validation))
    assert len(test) == 8 and not test & validation
    for epoch in range(60):
        seen = set(_questions(split.epoch(epoch)))
        assert len(seen) == 12 and not seen & test and not seen & validation
    again = DataSplit(task, task, train_count=12, validation_count=10, validation_seed=23, test=(task, 8, 29))
    assert again.test.texts() == split.test.texts()


@given(
    keys=st.lists(st.integers(-5, 5), max_size=40),
    seen=st.lists(st.lists(st.integers(-5, 5), max_size=8), max_size=3),
)
def test_fresh_keeps_first_occurrences_of_unseen_keys(keys, seen):
    key = torch.tensor(keys, dtype=torch.int64)
    known = [torch.tensor(sorted(s), dtype=torch.int64) for s in seen]
    index, fresh_keys = _fresh(key, known)
    excluded = {k for s in seen for k in s}
    expected = [i for i, k in enumerate(keys) if k not in excluded and k not in keys[:i]]
    assert index.tolist() == expected
    assert fresh_keys.tolist() == sorted(keys[i] for i in expected)
