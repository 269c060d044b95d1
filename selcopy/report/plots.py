"""Error curves of an experiment's runs, as the article plots them.

One panel per metric (default: validation loss, mask error, sample error) over training
samples (`inputs`, the article's "steps"). Each setting of the matrix is one line; the
trials of a setting are drawn as their mean with a band from min to max. The legend names
only the variables that vary (of a mapping such as a whole `model:` section, only its keys that
differ), in fewer columns where the names are long. With `group_by`, lines share a colour per value of that
variable and differ in dash by the other settings (one dash per value of those, the same in every
colour, where six dashes tell them apart).

Runs of several experiments can share one figure (`combine`): each run's values then carry its
experiment's name (variable `experiment`), and a label names only the variables its run has.

Loss and error axes are logarithmic. An error of exactly 0 (a perfect run) would fall off
such an axis, so zeros are drawn on a dotted line at half the smallest non-zero value of
the panel (a little lower if its `0` label would touch a decade's label), labelled `0`.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selcopy.errors import SelcopyError, did_you_mean
from selcopy.files import atomic_write
from selcopy.names import TRIAL, metric_title, value_text

X = "inputs"
DEFAULT_METRICS = ["validation_loss", "validation_mask_error%", "validation_sample_error%"]
DASHES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2))]
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "savefig.facecolor": "white",
}
LABEL_GAP = 0.35  # decades between the `0` line and the tick label above it
PANEL_W, PANEL_H, DPI = 5.6, 4.0, 110  # inches per panel; pixels per inch
CHARS_PER_INCH = 14  # of the legend's 9-point labels, about: long labels take fewer columns

Run = tuple[dict[str, Any], list[dict[str, Any]]]


def plot_experiment(
    runs: Sequence[Run],
    variables: Sequence[str],
    metrics: Sequence[str] | None = None,
    group_by: str | None = None,
    out: str | Path = "plot.png",
    title: str = "",
) -> Path:
    """Draw every metric's curves, one panel each, into the PNG `out` (written atomically)."""
    if not runs:
        raise SelcopyError("nothing to plot: no run has logged a validation yet")
    metrics = resolve_metrics(metrics or DEFAULT_METRICS, runs)
    if group_by is not None and (group_by not in variables or group_by == TRIAL):
        choices = [v for v in variables if v != TRIAL]
        raise SelcopyError(f"--group-by {group_by}: not a matrix variable{_suggest(group_by, choices)}")
    settings = group_settings(runs, variables)
    varying = varying_variables(runs, variables)
    styles = line_styles(settings, varying, group_by)
    settings = {k: settings[k] for k in styles}  # lines of a group side by side in the legend
    columns = len(_groups(settings, group_by)) if group_by else None
    figure = _figure(settings, styles, metrics, title, columns)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    out = Path(out)
    atomic_write(out, buffer.getvalue())
    return out


# --- data -------------------------------------------------------------------------------
EXPERIMENT = "experiment"  # the variable that tells the runs of several experiments apart


def combine(experiments: Sequence[tuple[str, Sequence[str], Sequence[Run]]]) -> tuple[list[Run], list[str]]:
    """The runs and variables of several experiments, (name, variables, runs) each, as those of one:
    each run's values gain `experiment` (its experiment's name); variables are `experiment`, then
    every experiment's own, in order of first appearance."""
    names = [name for name, _, _ in experiments]
    for name, variables, _ in experiments:
        if names.count(name) > 1:
            raise SelcopyError(f"experiment {name!r} is given twice")
        if EXPERIMENT in variables:
            raise SelcopyError(f"experiment {name!r}: its matrix variable {EXPERIMENT!r} is the name that tells "
                               "the experiments of one plot apart; plot it alone or rename the variable")
    variables = [EXPERIMENT, *dict.fromkeys(v for _, own, _ in experiments for v in own)]
    runs = [({EXPERIMENT: name, **values}, rows) for name, _, logged in experiments for values, rows in logged]
    return runs, variables


def resolve_metrics(names: Sequence[str], runs: Sequence[Run]) -> list[str]:
    """Metric names as logged; `sample_error%` is accepted for `validation_sample_error%`."""
    logged: dict[str, None] = {}
    for _, rows in runs:
        for row in rows:
            logged.update((k, None) for k, v in row.items() if isinstance(v, (int, float)) and k != X)
    resolved = []
    for name in names:
        match = next((m for m in (name, f"validation_{name}") if m in logged), None)
        if match is None:
            raise SelcopyError(f"--metric {name}: no run logged this metric{_suggest(name, list(logged))}")
        resolved.append(match)
    return resolved


def _suggest(name: str, choices: list[str]) -> str:
    return did_you_mean(name, choices, show=str, known="available", list_always=True)


def value_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def varying_variables(runs: Sequence[Run], variables: Sequence[str]) -> list[str]:
    """Matrix variables (not `trial`) that take more than one value among the runs that have them
    (runs of several experiments need not share their variables)."""
    return [v for v in variables
            if v != TRIAL and len({value_key(values[v]) for values, _ in runs if v in values}) > 1]


def group_settings(runs: Sequence[Run], variables: Sequence[str]) -> dict[str, tuple[dict, list[list[dict]]]]:
    """Runs that differ only in `trial`, in order of first appearance: key -> (values, logs)."""
    settings: dict[str, tuple[dict, list[list[dict]]]] = {}
    for values, rows in runs:
        same = {v: values[v] for v in variables if v != TRIAL and v in values}
        settings.setdefault(value_key(same), (same, []))[1].append(rows)
    return settings


def curve(trials: list[list[dict]], metric: str) -> tuple[np.ndarray, ...]:
    """x, mean, min, max over the trials that logged `metric` at each x (a trial still running ends early)."""
    points: dict[int, list[float]] = {}
    for rows in trials:
        for row in rows:
            value = row.get(metric)
            if value is not None and X in row and np.isfinite(value):
                points.setdefault(int(row[X]), []).append(float(value))
    xs = sorted(points)
    ys = [np.array(points[x]) for x in xs]
    return (np.array(xs, dtype=float), *(np.array([f(y) for y in ys]) for f in (np.mean, np.min, np.max)))


# --- look -------------------------------------------------------------------------------
def palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def line_styles(settings: dict, varying: list[str], group_by: str | None) -> dict[str, tuple[Any, str, str]]:
    """Setting key -> (colour, dash, legend label); with `group_by`, ordered group after group."""
    labels = {
        k: ", ".join(_part(v, values[v], settings) for v in varying if v in values) or "all runs"
        for k, (values, _) in settings.items()
    }
    if group_by is None:
        return {k: (c, "-", labels[k]) for k, c in zip(settings, palette(len(settings)))}
    groups = _groups(settings, group_by)
    # a dash per combination of the other variables, the same in every colour, where there are
    # dashes enough; else the lines of each group in turn
    others = [v for v in varying if v != group_by]
    rests = {k: tuple(value_key(values.get(v)) for v in others) for k, (values, _) in settings.items()}
    in_order = dict.fromkeys(rests[k] for members in groups for k in members)
    dash_of = {rest: DASHES[i % len(DASHES)] for i, rest in enumerate(in_order)}
    styles = {}
    for colour, members in zip(palette(len(groups)), groups):
        for i, k in enumerate(members):
            dash = dash_of[rests[k]] if len(dash_of) <= len(DASHES) else DASHES[i % len(DASHES)]
            styles[k] = (colour, dash, labels[k])
    return styles


def _part(variable: str, value: Any, settings: dict) -> str:
    """`l=6`; a mapping (a whole `model:` section) names only its keys that differ between the
    lines: `attention_invention=Q`, not every setting of the model."""
    values = [v[variable] for v, _ in settings.values() if variable in v]
    if not (isinstance(value, dict) and all(isinstance(v, dict) for v in values)):
        return f"{variable}={value_text(value)}"
    keys = [key for key in value if len({value_key(v.get(key)) for v in values}) > 1]
    return " ".join(f"{key}={value_text(value[key])}" for key in keys) or f"{variable}={value_text(value)}"


def _groups(settings: dict, group_by: str) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for k, (values, _) in settings.items():
        groups.setdefault(value_key(values.get(group_by)), []).append(k)
    return list(groups.values())


def _figure(settings: dict, styles: dict, metrics: list[str], title: str, legend_columns: int | None) -> Any:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        columns = min(len(metrics), 3)
        rows = -(-len(metrics) // columns)
        if legend_columns is None or legend_columns > 2 * columns:
            legend_columns = max(1, min(len(settings), 2 * columns))
        longest = max(len(label) for *_, label in styles.values())
        legend_columns = max(1, min(legend_columns, int(PANEL_W * columns * CHARS_PER_INCH) // (longest + 8)))
        legend_h = 0.3 + 0.22 * -(-len(settings) // legend_columns)
        figure = Figure(figsize=(PANEL_W * columns, PANEL_H * rows + legend_h), layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        notes = [_panel(ax, settings, styles, metric) for ax, metric in zip(axes, metrics)]
        for ax in axes[len(metrics) :]:
            ax.set_visible(False)
        if title:
            figure.suptitle(title, fontsize=13, fontweight="bold")
        _legend(figure, axes[0], settings, legend_columns, any(notes))
        return figure


def _legend(figure: Any, ax: Any, settings: dict, columns: int, clipped: bool) -> None:
    trials = sorted({len(logs) for _, logs in settings.values()})
    notes = []
    if trials[-1] > 1:
        counts = "–".join(str(t) for t in (trials[0], trials[-1]) if t) if len(trials) > 1 else str(trials[0])
        notes.append(f"line: mean of {counts} trials, band: min–max")
    if clipped:
        notes.append("dotted line: value 0 (log axis)")
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=columns,
        title="; ".join(notes) or None,
        title_fontsize=9,
        fontsize=9,
        handlelength=2.6,
    )


def _panel(ax: Any, settings: dict, styles: dict, metric: str) -> bool:
    """Draw one metric's curves; True when zeros had to be lifted onto the log axis."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

    curves = {k: curve(logs, metric) for k, (_, logs) in settings.items()}
    values = np.concatenate([v for c in curves.values() for v in c[1:]] + [np.zeros(0)])
    log = ("loss" in metric or "error" in metric) and values.size > 0 and bool((values >= 0).all())
    floor = _zero_floor(values) if log else None
    band_alpha = min(0.18, 0.9 / len(curves))  # many overlapping bands would bury the lines
    for k, (xs, mean, lo, hi) in curves.items():
        colour, dash, label = styles[k]
        if floor is not None:
            mean, lo, hi = (np.maximum(v, floor) for v in (mean, lo, hi))
        marker = "o" if 0 < len(xs) <= 12 else None
        ax.plot(xs, mean, color=colour, linestyle=dash, linewidth=1.6, marker=marker, markersize=3, label=label)
        if (lo < hi).any():
            ax.fill_between(xs, lo, hi, color=colour, alpha=band_alpha, linewidth=0)
    ax.set_title(metric_title(metric))
    ax.set_xlabel("training samples")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _si(x)))
    ax.set_xlim(left=0)
    clipped = False
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        decades = math.log10(ax.get_ylim()[1] / ax.get_ylim()[0])
        if decades < 1:  # no power of ten may be in view: plain ticks
            ax.yaxis.set_major_locator(MaxNLocator(6))
            ax.yaxis.set_minor_locator(NullLocator())
        elif decades < 2:  # one or two powers of ten: label 2, 3 and 5 too
            ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
        ax.grid(True, which="minor", color="#f0f0f0", linewidth=0.5)
        clipped = bool((values <= 0).any())
        if clipped:
            ax.axhline(floor, color="#888888", linestyle=":", linewidth=1)
            ax.annotate(
                "0",
                (0, floor),
                xycoords=("axes fraction", "data"),
                xytext=(-4, 0),
                textcoords="offset points",
                ha="right",
                va="center",
                color="#555555",
            )
    return clipped


def _zero_floor(values: np.ndarray) -> float:
    """Where a 0 is drawn on a log axis: half the smallest positive value (0.01 if none is),
    lowered to keep LABEL_GAP decades below the next power of ten, whose tick label it would hit."""
    positive = values[values > 0]
    if not positive.size:
        return 0.01
    floor = math.log10(float(positive.min()) / 2)
    return 10 ** min(floor, math.ceil(floor) - LABEL_GAP)


def _minor_label(y: float, _: Any = None) -> str:
    leading = round(y / 10 ** math.floor(math.log10(y))) if y > 0 else 0
    return f"{y:g}" if leading in (2, 3, 5) else ""


def _si(x: float) -> str:
    """Axis numbers: 0, 500k, 1M, 2.5M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"
