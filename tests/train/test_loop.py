import copy

import pytest
import torch
from torch import nn

from selcopy.models import MODELS, TaskShape, build_model
from selcopy.tasks import make_task
from selcopy.tasks.split import DataSplit
from selcopy.train.config import TrainConfig
from selcopy.train.loop import Trainer, TrainStream

SHAPE = TaskShape(max_length=64, vocab=256)  # these models take any length


class Tiny(nn.Module):
    """Any model maps (B, L) bytes to (B, L, 256) logits; the loop needs nothing else."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(256, 16)
        self.conv = nn.Conv1d(16, 16, 5, padding=2)
        self.drop = nn.Dropout(0.1)  # exercises the saved global RNG

    def forward(self, ids):
        h = self.embed(ids).transpose(1, 2)  # (B, C, L)
        h = self.drop(torch.relu(self.conv(h))).transpose(1, 2)  # (B, L, C)
        return h @ self.embed.weight.T


def _split(train_count=300):
    task = make_task("program", {"input_length": 4, "num_items": 6, "num_operations": [1, 2]})
    return DataSplit(task, task, train_count=train_count, validation_count=200, validation_seed=23)


def _trainer(split, **kw):
    torch.manual_seed(5)
    cfg = TrainConfig(max_inputs=1600, validate_every=400, batch_size=32, **kw)
    return Trainer(Tiny(), split, cfg, seed=5, device=torch.device("cpu"))


def test_stream_batches_span_epochs_and_resume_exactly():
    split = _split(train_count=100)
    stream = TrainStream(split, seed=1, batch_size=64)
    batches = [stream.next() for _ in range(5)]
    assert all(len(b) == 64 for b in batches) and stream.inputs == 320 and stream.epoch == 3
    resumed = TrainStream(split, seed=1, batch_size=64, inputs=128)
    assert resumed.next().texts() == batches[2].texts()


def test_resume_equals_uninterrupted():
    split = _split()
    seen = []
    whole = _trainer(split)
    whole.on_validation = lambda t, m: seen.append(m)
    final = whole.fit()
    assert [m["inputs"] for m in seen] == [416, 800, 1216, 1600]

    first = _trainer(split)
    states = []  # what a checkpoint at 800 inputs holds; the run is then "killed" and resumed
    first.on_validation = lambda t, m: states.append(copy.deepcopy(t.state_dict())) if m["inputs"] == 800 else None
    first.fit()
    second = _trainer(split)
    second.load_state_dict(states[0])
    resumed = second.fit()
    for key in ("validation_loss", "validation_sample_error%", "train_loss", "lr"):
        assert resumed[key] == final[key], key
    for a, b in zip(whole.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_resumes_as_uninterrupted(name):
    split = _split()

    def trainer() -> Trainer:
        torch.manual_seed(5)
        cfg = TrainConfig(max_inputs=192, validate_every=96, batch_size=32)
        return Trainer(build_model({"name": name}, SHAPE), split, cfg, seed=5, device=torch.device("cpu"))

    whole = trainer()
    final = whole.fit()
    first, states = trainer(), []
    first.on_validation = lambda t, m: states.append(copy.deepcopy(t.state_dict())) if m["inputs"] == 96 else None
    first.fit()
    second = trainer()
    second.load_state_dict(states[0])
    assert second.fit()["validation_loss"] == final["validation_loss"]
    for a, b in zip(whole.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


def test_both_losses_train():
    split = _split()
    for loss in ("token", "sequence"):
        m = _trainer(split, loss=loss).fit()
        assert m["validation_loss"] > 0 and 0 <= m["validation_sample_error%"] <= 100


def test_test_set_is_evaluated_once_at_the_end():
    train = make_task("program", {"input_length": 4, "num_items": 6, "num_operations": [1, 2]})
    longer = make_task("program", {"input_length": 4, "num_items": 6, "num_operations": [3, 4]})
    split = DataSplit(train, train, train_count=300, validation_count=200, validation_seed=23, test=(longer, 96, 29))
    seen = []
    trainer = _trainer(split)
    trainer.on_validation = lambda t, m: seen.append(m)
    final = trainer.fit()
    assert [any(k.startswith("test_") for k in m) for m in seen] == [False, False, False, True]
    assert 0 <= final["test_sample_error%"] <= 100 and final["test_loss"] > 0
    assert {k for k in final if k.startswith("test_sample_error%_ops")} == {
        "test_sample_error%_ops3", "test_sample_error%_ops4"}
    # what evaluate() gives on the test set by hand, after training
    expected = trainer.evaluate(split.test)
    from selcopy.train.metrics import summarize

    assert summarize(expected, "test_")["test_sample_error%"] == final["test_sample_error%"]


def test_the_breakdown_by_difficulty_is_named_by_the_task():
    task = make_task("selective-copy", {"area": 12, "num_items": [2, 3]})
    split = DataSplit(task, task, train_count=300, validation_count=100, validation_seed=23)
    final = _trainer(split).fit()
    assert {k for k in final if k.startswith("validation_sample_error%_")} == {
        "validation_sample_error%_letters2", "validation_sample_error%_letters3"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's own use of torch.jit
def test_compiled_step_trains_as_the_eager_one():
    # train.compile runs the same model and loss through torch.compile: the same numbers up to float rounding
    split, results = _split(), []
    for compile in (False, True):
        torch.manual_seed(5)
        model = build_model({"name": "conv", "layers": 2, "channels": 16, "kernel_size": 3, "dilation": [1, 2]}, SHAPE)
        cfg = TrainConfig(max_inputs=320, validate_every=320, batch_size=32, compile=compile)
        trainer = Trainer(model, split, cfg, seed=5, device=torch.device("cpu"))
        results.append((trainer.fit(), [p.detach().clone() for p in model.parameters()]))
    (eager, eager_params), (compiled, compiled_params) = results
    for key in ("validation_loss", "train_loss"):
        assert abs(compiled[key] - eager[key]) <= 1e-4 * abs(eager[key]), key
    for a, b in zip(eager_params, compiled_params):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_validation_is_measured_in_float32_whatever_the_run_trains_in():
    """A run that autocasts to bfloat16 is validated in float32, as the article measured."""
    from selcopy.train.loop import evaluate

    split = _split()
    torch.manual_seed(5)
    model = Tiny()
    cpu = torch.device("cpu")
    bf16 = evaluate(model, split.validation, TrainConfig(precision="bfloat16"), cpu)
    f32 = evaluate(model, split.validation, TrainConfig(precision="float32"), cpu)
    assert torch.equal(bf16, f32)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what measuring in bfloat16 would have given
        logits = model(split.validation.masked.long()).float()
    exact = torch.nn.functional.cross_entropy(model(split.validation.masked.long()).flatten(0, 1),
                                              split.validation.text.long().flatten())
    assert not torch.allclose(torch.nn.functional.cross_entropy(logits.flatten(0, 1),
                                                                split.validation.text.long().flatten()), exact)
