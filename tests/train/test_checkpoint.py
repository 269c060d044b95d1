import io
import pickle

import pytest
import torch

from selcopy.train import checkpoint


def test_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(4.0)}, "inputs": 128, "best": {"x": 1.5}, "rng": torch.get_rng_state()}
    checkpoint.save(tmp_path / "a.pt", state)
    loaded = checkpoint.load(tmp_path / "a.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["inputs"] == 128


def test_truncated_and_altered_files_are_detected(tmp_path):
    path = tmp_path / "a.pt"
    checkpoint.save(path, {"w": torch.randn(100)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CorruptCheckpoint, match="checksum"):
        checkpoint.load(path)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(checkpoint.CorruptCheckpoint):
        checkpoint.load(path)
    path.write_bytes(b"garbage")
    with pytest.raises(checkpoint.CorruptCheckpoint, match="header"):
        checkpoint.load(path)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_arbitrary_objects_are_not_unpickled(tmp_path, capsys):
    import hashlib

    buffer = io.BytesIO()
    torch.save({"x": Evil()}, buffer, pickle_module=pickle)
    payload = buffer.getvalue()
    (tmp_path / "evil.pt").write_bytes(checkpoint.MAGIC + hashlib.sha256(payload).digest() + payload)
    with pytest.raises(checkpoint.CorruptCheckpoint, match="safely"):
        checkpoint.load(tmp_path / "evil.pt")
    assert "pwned" not in capsys.readouterr().out


def state(at: int, **changes) -> dict:
    """A training state as Trainer.state_dict gives one, with `changes` (None: the field removed)."""
    full = {"format": 1, "model": {"w": torch.zeros(2)}, "optimizer": {"state": {}, "param_groups": []},
            "inputs": at, "step": at // 32, "train_time": 0.5, "best": {}, "rng": torch.get_rng_state(),
            "seed": 5}
    full.update(changes)
    return {k: v for k, v in full.items() if v is not None}


def test_rotation_falls_back_to_previous(tmp_path):
    checkpoint.save_rotating(tmp_path, state(1))
    checkpoint.save_rotating(tmp_path, state(2))
    assert checkpoint.load(tmp_path / "previous.pt")["inputs"] == 1
    (tmp_path / "latest.pt").write_bytes(b"SELCKPT1" + b"\0" * 50)
    warnings = []
    assert checkpoint.load_newest(tmp_path, warnings.append)["inputs"] == 1
    assert len(warnings) == 1 and "latest.pt" in warnings[0]
    checkpoint.save_rotating(tmp_path, state(3))  # a corrupt latest is not rotated over a good previous
    assert checkpoint.load(tmp_path / "previous.pt")["inputs"] == 1
    assert (tmp_path / "latest.pt.bad-1").read_bytes() == b"SELCKPT1" + b"\0" * 50  # set aside, not overwritten
    assert checkpoint.load(tmp_path / "latest.pt")["inputs"] == 3
    (tmp_path / "latest.pt").write_bytes(b"second bad")
    checkpoint.save_rotating(tmp_path, state(4))
    assert (tmp_path / "latest.pt.bad-1").read_bytes() == b"SELCKPT1" + b"\0" * 50
    assert (tmp_path / "latest.pt.bad-2").read_bytes() == b"second bad"


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"model": None, "inputs": None}, "not a training state: no 'model', 'inputs'"),
        ({"optimizer": None}, "no 'optimizer'"),
        ({"inputs": "640"}, "'inputs' is a str"),
        ({"step": True}, "'step' is a bool"),
        ({"rng": [1, 2]}, "'rng' is a list"),
        ({"model": torch.zeros(2)}, "'model' is a Tensor"),
    ],
)
def test_a_checkpoint_without_the_fields_of_a_training_state_falls_back(tmp_path, changes, says):
    checkpoint.save_rotating(tmp_path, state(1))
    checkpoint.save_rotating(tmp_path, state(2))
    checkpoint.save(tmp_path / "latest.pt", state(2, **changes))  # checksum-valid, but not a training state
    warnings = []
    assert checkpoint.load_newest(tmp_path, warnings.append)["inputs"] == 1
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(f"skipping checkpoint: {tmp_path / 'latest.pt'}: ") and says in warnings[0]
    checkpoint.save_rotating(tmp_path, state(3))  # not rotated over the good previous: set aside
    assert checkpoint.load(tmp_path / "previous.pt")["inputs"] == 1
    assert (tmp_path / "latest.pt.bad-1").exists() and checkpoint.load(tmp_path / "latest.pt")["inputs"] == 3


def test_a_checkpoint_that_is_not_a_dict_is_not_a_training_state(tmp_path):
    checkpoint.save(tmp_path / "latest.pt", [1, 2])
    with pytest.raises(checkpoint.CorruptCheckpoint, match="holds a list, not a training state"):
        checkpoint.load_state(tmp_path / "latest.pt")


def test_the_fields_are_what_the_trainer_saves():
    from selcopy.tasks import make_task
    from selcopy.tasks.split import DataSplit
    from selcopy.train.config import TrainConfig
    from selcopy.train.loop import Trainer

    task = make_task("program", {"input_length": 3, "num_items": 6, "num_operations": 1})
    split = DataSplit(task, task, train_count=100, validation_count=50, validation_seed=1)
    model = torch.nn.Sequential(torch.nn.Embedding(256, 4), torch.nn.Linear(4, 256))
    trainer = Trainer(model, split, TrainConfig(max_inputs=64, validate_every=64, batch_size=32), 5,
                      torch.device("cpu"))
    saved = trainer.state_dict()
    for key, kind in checkpoint.FIELDS.items():
        assert isinstance(saved[key], kind), key

