import pytest

from selcopy.errors import SelcopyError
from selcopy.experiments import load_experiment
from selcopy.experiments.store import RunStore, load_runs


def test_load_runs_reads_logged_runs_and_skips_the_others(tmp_path):
    file = tmp_path / "exp.yml"
    file.write_text("name: demo\nmatrix:\n  trial: [1, 2]\n  l: [2, 3]\nmodel:\n  layers: ${l}\n")
    root = tmp_path / "runs"
    specs = {spec.name: spec for spec in load_experiment(file).runs}
    for name in ("demo/trial-1_l-2", "demo/trial-2_l-3"):
        store = RunStore(root, name)
        store.write_config(specs[name].config_dict())
        store.append_metrics({"inputs": 100, "validation_loss": 0.5})
    runs = load_runs(load_experiment(file).runs, root, str(file))
    assert [values for values, _ in runs] == [{"trial": 1, "l": 2}, {"trial": 2, "l": 3}]
    assert runs[0][1] == [{"inputs": 100, "validation_loss": 0.5}]

    # runs of the file before an edit, or of unknown settings, are none of its curves
    file.write_text(file.read_text() + "train: {lr: 0.01}\n")
    with pytest.raises(SelcopyError, match=r"trial-1_l-2/config.yaml holds other settings \(and 1 more"):
        load_runs(load_experiment(file).runs, root, str(file))
    (root / "demo/trial-1_l-2/config.yaml").unlink()
    with pytest.raises(SelcopyError, match=r"trial-1_l-2 has results but no config.yaml \(and 1 more"):
        load_runs(load_experiment(file).runs, root, str(file))
