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


def test_rotation_falls_back_to_previous(tmp_path):
    checkpoint.save_rotating(tmp_path, {"inputs": 1})
    checkpoint.save_rotating(tmp_path, {"inputs": 2})
    assert checkpoint.load(tmp_path / "previous.pt")["inputs"] == 1
    (tmp_path / "latest.pt").write_bytes(b"SELCKPT1" + b"\0" * 50)
    warnings = []
    assert checkpoint.load_newest(tmp_path, warnings.append)["inputs"] == 1
    assert len(warnings) == 1 and "latest.pt" in warnings[0]
    checkpoint.save_rotating(tmp_path, {"inputs": 3})  # a corrupt latest is not rotated over a good previous
    assert checkpoint.load(tmp_path / "previous.pt")["inputs"] == 1
    assert (tmp_path / "latest.pt.bad-1").read_bytes() == b"SELCKPT1" + b"\0" * 50  # set aside, not overwritten
    assert checkpoint.load(tmp_path / "latest.pt")["inputs"] == 3
    (tmp_path / "latest.pt").write_bytes(b"second bad")
    checkpoint.save_rotating(tmp_path, {"inputs": 4})
    assert (tmp_path / "latest.pt.bad-1").read_bytes() == b"SELCKPT1" + b"\0" * 50
    assert (tmp_path / "latest.pt.bad-2").read_bytes() == b"second bad"
