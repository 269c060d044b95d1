import pytest

from selcopy.files import atomic_write, first_free


def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write(path, b"first, and longer")
    atomic_write(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path / "taken", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_first_free_never_names_what_exists(tmp_path):
    run = tmp_path / "run"
    assert first_free(run, ".prev-") == tmp_path / "run.prev-1"
    (tmp_path / "run.prev-1").mkdir()
    (tmp_path / "run.prev-3").mkdir()
    assert first_free(run, ".prev-") == tmp_path / "run.prev-2"
