import numpy as np
import pytest
from PIL import Image

from selcopy.errors import SelcopyError
from selcopy.report import plots
from selcopy.report.plots import plot_experiment

VARIABLES = ["trial", "l", "nops", "ch"]


def _rows(rate, points=8, zero_from=None):
    rows = []
    for i in range(1, points + 1):
        error = 0.0 if zero_from is not None and i >= zero_from else 100 * np.exp(-rate * i)
        rows.append(
            {
                "inputs": i * 1000,
                "epoch": i,
                "validation_loss": 0.5 * np.exp(-rate * i),
                "validation_mask_error%": error / 2,
                "validation_sample_error%": error,
            }
        )
    return rows


def _runs():
    """2 x 2 settings (l, nops vary; ch does not) x 3 trials; one trial reaches 0, one is still running."""
    runs = []
    for layers in (6, 12):
        for nops in (3, 5):
            for trial in (1, 2, 3):
                zero_from = 6 if (layers, nops, trial) == (12, 3, 2) else None
                points = 5 if (layers, nops, trial) == (6, 5, 3) else 8
                rows = _rows(0.1 * layers / nops * (1 + 0.1 * trial), points, zero_from)
                runs.append(({"trial": trial, "l": layers, "nops": nops, "ch": 64}, rows))
    return runs


def _png_size(path):
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        return img.format, img.size


def test_default_panels_make_one_wide_png(tmp_path):
    out = plot_experiment(_runs(), VARIABLES, None, None, tmp_path / "plots" / "curves.png", "demo")
    assert out == tmp_path / "plots" / "curves.png"
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # written atomically: no leftovers
    fmt, (w, h) = _png_size(out)
    assert fmt == "PNG"
    assert 1500 <= w <= 2200 and 400 <= h <= 700  # three panels side by side, legend below


def test_group_by_and_a_single_metric(tmp_path):
    out = plot_experiment(_runs(), VARIABLES, ["sample_error%"], "nops", tmp_path / "g.png", "")
    _, (w, h) = _png_size(out)
    assert 500 <= w <= 800 and 400 <= h <= 700


def test_labels_name_only_the_varying_variables():
    runs = _runs()
    assert plots.varying_variables(runs, VARIABLES) == ["l", "nops"]
    settings = plots.group_settings(runs, VARIABLES)
    assert len(settings) == 4 and all(len(logs) == 3 for _, logs in settings.values())
    labels = [label for _, _, label in plots.line_styles(settings, ["l", "nops"], None).values()]
    assert labels == ["l=6, nops=3", "l=6, nops=5", "l=12, nops=3", "l=12, nops=5"]


def _model_runs():
    """A matrix over whole `model:` sections, as experiments/open-question/01-screen.yml has."""
    base = {"name": "conv", "layers": 6, "channels": 64, "kernel_size": 9, "dilation": [1, 2, 3, 4, 5, 1]}
    models = [{**base, "attention_invention": "Q"}, {**base, "attention_invention": "K"},
              {**base, "channels": 56, "attention_invention": "QK"}]
    return [({"model": m}, _rows(0.1 + 0.05 * i)) for i, m in enumerate(models)]


def test_a_mapping_variable_is_labelled_by_the_keys_that_differ(tmp_path):
    runs = _model_runs()
    styles = plots.line_styles(plots.group_settings(runs, ["model"]), ["model"], None)
    assert [label for *_, label in styles.values()] == [
        "channels=64 attention_invention=Q", "channels=64 attention_invention=K",
        "channels=56 attention_invention=QK",
    ]
    _, (w, _) = _png_size(plot_experiment(runs, ["model"], None, None, tmp_path / "m.png", ""))
    assert w <= 2200  # the legend fits under the panels


def test_long_labels_take_fewer_legend_columns(monkeypatch):
    runs = [({"model": {f"a_long_setting_name_{i}": 10 * j + i for i in range(6)}}, _rows(0.1)) for j in range(4)]
    settings = plots.group_settings(runs, ["model"])
    styles = plots.line_styles(settings, ["model"], None)
    columns = []
    monkeypatch.setattr(plots, "_legend", lambda figure, ax, settings, n, clipped: columns.append(n))
    plots._figure(settings, styles, ["validation_loss"], "", None)
    short = {k: (c, d, f"l={i}") for i, (k, (c, d, _)) in enumerate(styles.items())}
    plots._figure(settings, short, ["validation_loss"], "", None)
    assert columns == [1, 2]  # one panel: two columns of short labels, one of long ones


def test_group_by_colours_by_its_value_and_dashes_the_rest():
    settings = plots.group_settings(_runs(), VARIABLES)
    styles = plots.line_styles(settings, ["l", "nops"], "nops")
    by_label = {label: (colour, dash) for colour, dash, label in styles.values()}
    assert by_label["l=6, nops=3"][0] == by_label["l=12, nops=3"][0] != by_label["l=6, nops=5"][0]
    assert by_label["l=6, nops=3"][1] != by_label["l=12, nops=3"][1]
    assert [label for *_, label in styles.values()][:2] == ["l=6, nops=3", "l=12, nops=3"]  # a group together


def test_a_dash_stands_for_the_same_setting_in_every_colour():
    runs = [({"qkv": q, "attn": a}, _rows(0.1)) for q, a in
            [("QK", 0), ("QK", 1), ("QK", 8), ("QV", 1), ("QV", 8), ("KV", 8)]]  # QV and KV lack some
    styles = plots.line_styles(plots.group_settings(runs, ["qkv", "attn"]), ["qkv", "attn"], "qkv")
    dash = {label: d for _, d, label in styles.values()}
    assert dash["qkv=QK, attn=8"] == dash["qkv=QV, attn=8"] == dash["qkv=KV, attn=8"] != dash["qkv=QK, attn=1"]
    assert dash["qkv=QK, attn=1"] == dash["qkv=QV, attn=1"]
    many = [({"g": g, "x": x}, _rows(0.1)) for g in "ab" for x in range(len(plots.DASHES) + 1)]
    styles = plots.line_styles(plots.group_settings(many, ["g", "x"]), ["g", "x"], "g")
    in_a = [d for _, d, label in styles.values() if label.startswith("g=a")]
    assert len({str(d) for d in in_a}) == len(plots.DASHES)  # too many to share: each group in turn


def test_curve_is_the_mean_and_range_over_the_trials_present():
    trials = [[{"inputs": 1, "m": 1.0}, {"inputs": 2, "m": 3.0}], [{"inputs": 1, "m": 3.0}]]
    xs, mean, lo, hi = plots.curve(trials, "m")
    assert xs.tolist() == [1, 2] and mean.tolist() == [2, 3] and lo.tolist() == [1, 3] and hi.tolist() == [3, 3]


def test_zero_is_drawn_at_half_the_smallest_positive_value():
    assert plots._zero_floor(np.array([0.0, 0.4, 2.0])) == pytest.approx(0.2)
    assert plots._zero_floor(np.array([0.0, 1.2])) == pytest.approx(10**-plots.LABEL_GAP)  # clear of the "1"
    assert plots._zero_floor(np.array([0.0, 0.0])) == 0.01


def test_unknown_metric_or_group_is_a_clear_error(tmp_path):
    with pytest.raises(SelcopyError, match="did you mean validation_sample_error%"):
        plot_experiment(_runs(), VARIABLES, ["validation_sample_eror%"], None, tmp_path / "x.png", "")
    with pytest.raises(SelcopyError, match="--group-by trial"):
        plot_experiment(_runs(), VARIABLES, None, "trial", tmp_path / "x.png", "")
    with pytest.raises(SelcopyError, match="nothing to plot"):
        plot_experiment([], VARIABLES, None, None, tmp_path / "x.png", "")
    assert not (tmp_path / "x.png").exists()


def test_runs_of_several_experiments_are_told_apart_by_name_and_their_own_variables():
    linear = [({"dt_init": "linear"}, _rows(0.1))]
    both = [({"model": {"name": "lstm"}}, _rows(0.2)), ({"model": {"name": "mamba"}}, _rows(0.3))]
    runs, variables = plots.combine([("baselines", ["model"], both), ("linear-dt", ["dt_init"], linear),
                                     ("trials", ["trial", "l"], [({"trial": 1, "l": 6}, _rows(0.4))])])
    assert variables == ["experiment", "model", "dt_init", "trial", "l"]
    assert [values for values, _ in runs][:2] == [{"experiment": "baselines", "model": {"name": "lstm"}},
                                                  {"experiment": "baselines", "model": {"name": "mamba"}}]
    varying = plots.varying_variables(runs, variables)
    assert varying == ["experiment", "model"]  # dt_init and l have one value among the runs that have them
    labels = [label for *_, label in plots.line_styles(plots.group_settings(runs, variables), varying, None).values()]
    assert labels == ["experiment=baselines, name=lstm", "experiment=baselines, name=mamba",
                      "experiment=linear-dt", "experiment=trials"]
    grouped = plots.line_styles(plots.group_settings(runs, variables), varying, "experiment")
    assert len({colour for colour, *_ in grouped.values()}) == 3
    by_model = plots.line_styles(plots.group_settings(runs, variables), varying, "model")
    colours = [colour for colour, *_ in by_model.values()]  # runs without a model share the last colour
    assert len(set(colours)) == 3 and colours[2] == colours[3]


def test_combining_refuses_a_name_twice_and_a_variable_called_experiment():
    runs = [({"l": 6}, _rows(0.1))]
    with pytest.raises(SelcopyError, match="experiment 'a' is given twice"):
        plots.combine([("a", ["l"], runs), ("a", ["l"], runs)])
    with pytest.raises(SelcopyError, match="its matrix variable 'experiment'"):
        plots.combine([("a", ["experiment"], [({"experiment": 1}, _rows(0.1))]), ("b", ["l"], runs)])
