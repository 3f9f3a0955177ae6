"""PNG pictures of a recording and of a model's predictions on it, for `harduino plot` and `harduino predict`.

Drawn by matplotlib's Agg canvas straight into a file: no window, no display
and no Qt needed, so they come out the same on a desktop, over ssh and in CI.
The colours are the dashboard's (`colours`). Where the window grid cuts a
recording (a gap or a reset), the curves stop and a grey band marks it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .colours import CURVE_COLOURS, class_colour
from .recording import Recording
from .windowing import window_grid

GAP_COLOUR = "#b0b0b0"    # a band where the recording has no samples
WRONG_COLOUR = "#8b0000"  # dark red: a window predicted as another activity than its label
BAND_ALPHA = 0.22         # label bands behind the curves
PANELS = (("accelerometer (m/s²)", slice(0, 3), ("ax", "ay", "az")),
          ("gyroscope (rad/s)", slice(3, 6), ("gx", "gy", "gz")))
DPI = 100
TOP = 0.85             # the plots' top edge, in figure heights: above it the title and a row of legend
LEGEND_COLUMNS = 8
LEGEND_ROW = 0.045     # a legend row's height, in figure heights


def plot_recording(rec: Recording, path: str | Path) -> Path:
    """The six signals over time, their label's band behind them, each gap marked; written as a PNG."""
    fig = _figure()
    axes = fig.subplots(2, 1, sharex=True, gridspec_kw={"hspace": 0.08})
    cuts = _cuts(rec)
    t = _broken(rec.t, cuts)
    classes = sorted(set(rec.labels.tolist()) - {""})
    for ax, (title, columns, names) in zip(axes, PANELS):
        _label_bands(ax, rec, classes)
        _gap_bands(ax, rec.t, cuts)
        values = _broken(rec.si[:, columns], cuts)
        for name, colour, column in zip(names, CURVE_COLOURS, values.T):
            ax.plot(t, column, color=colour, linewidth=0.8, label=name)
        ax.set_ylabel(title)
        ax.legend(loc="upper right", fontsize=8, ncols=3, framealpha=0.8)
        ax.margins(x=0)
    axes[-1].set_xlabel("time (s)")
    gaps = f", {len(cuts)} gap{'s' * (len(cuts) != 1)}" if len(cuts) else ""
    fig.suptitle(f"{rec.path.name}: subject {rec.subject}, {len(rec)} samples at {rec.rate_hz:g} Hz, "
                 f"{_duration(rec):.1f} s{gaps}", fontsize=10)
    legend = [Patch(color=_rgb(class_colour(c, classes)), alpha=0.5, label=c) for c in classes]
    if len(cuts):
        legend.append(Patch(color=GAP_COLOUR, label="gap (no samples)"))
    _legend(fig, legend)
    return _save(fig, path)


def plot_predictions(t_end: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, classes,
                     step_s: float, title: str, path: str | Path) -> Path:
    """A timeline of the true against the predicted activity, window by window, over the class probabilities.

    Each window is drawn over the last `step_s` seconds it ends (its new samples),
    so consecutive windows tile the time axis and a gap stays empty.
    """
    classes = [str(c) for c in classes]
    known = sorted(set(classes) | set(y_true.tolist()) - {""})
    fig = _figure()
    lanes, probs = fig.subplots(2, 1, sharex=True, gridspec_kw={"hspace": 0.08, "height_ratios": (1, 1.6)})
    start = t_end - step_s
    wrong = np.isin(y_true, classes) & (y_true != y_pred)  # a label the model does not know: never right
    rows = (("true", 2, y_true), ("predicted", 1, y_pred))
    for c in known:
        colour = _rgb(class_colour(c, known))
        for _, row, y in rows:
            lanes.broken_barh(list(zip(start[y == c], np.full((y == c).sum(), step_s))), (row - 0.4, 0.8),
                              color=colour, linewidth=0)
    lanes.broken_barh(list(zip(start[wrong], np.full(wrong.sum(), step_s))), (-0.3, 0.6), color=WRONG_COLOUR,
                      linewidth=0)
    lanes.set_yticks([2, 1, 0], ["true", "predicted", "wrong"])
    lanes.set_ylim(-0.6, 2.6)
    cuts = np.flatnonzero(np.diff(t_end) > 1.5 * step_s) + 1  # the windows after a gap
    t = _broken(t_end, cuts)
    for i, c in enumerate(classes):
        probs.plot(t, _broken(proba[:, i], cuts), color=_rgb(class_colour(c, known)), linewidth=1.2, label=c)
    probs.set_ylim(-0.02, 1.02)
    probs.set_ylabel("probability")
    probs.set_xlabel("time (s), at each window's end")
    probs.margins(x=0)
    handles = [Patch(color=_rgb(class_colour(c, known)), label=c) for c in known]
    if wrong.any():
        handles.append(Patch(color=WRONG_COLOUR, label="wrong"))
    _legend(fig, handles)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


# ---------------------------------------------------------------- helpers

def _figure() -> Figure:
    fig = Figure(figsize=(12, 5.5), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.075, right=0.99, top=TOP, bottom=0.1)
    return fig


def _legend(fig: Figure, handles: list) -> None:
    """The legend under the title, in rows of LEGEND_COLUMNS; the plots move down to make room for each row."""
    if not handles:
        return
    rows = -(-len(handles) // LEGEND_COLUMNS)
    fig.legend(handles=handles, loc="upper left", ncols=min(len(handles), LEGEND_COLUMNS), fontsize=8,
               frameon=False, bbox_to_anchor=(0.07, 0.915))
    fig.subplots_adjust(top=TOP - LEGEND_ROW * (rows - 1))


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path


def _cuts(rec: Recording) -> np.ndarray:
    """The first sample after each place the window grid cuts the recording (a gap, a reset)."""
    return window_grid(rec.t, rec.rate_hz).cuts


def _broken(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """values with a NaN row before each cut, so a line is not drawn across it."""
    values = np.asarray(values, dtype=np.float64)
    return np.insert(values, cuts, np.nan, axis=0)


def _label_bands(ax, rec: Recording, classes) -> None:
    labels = rec.labels
    edges = np.concatenate([[0], np.flatnonzero(labels[1:] != labels[:-1]) + 1, [len(labels)]])
    period = 1.0 / rec.rate_hz
    for a, b in zip(edges[:-1], edges[1:]):
        if labels[a]:
            ax.axvspan(rec.t[a], rec.t[b - 1] + period, color=_rgb(class_colour(labels[a], classes)),
                       alpha=BAND_ALPHA, linewidth=0)


def _gap_bands(ax, t: np.ndarray, cuts: np.ndarray) -> None:
    for c in cuts:
        ax.axvspan(t[c - 1], t[c], color=GAP_COLOUR, linewidth=1.5, zorder=3)


def _duration(rec: Recording) -> float:
    return float(rec.t[-1] - rec.t[0] + 1 / rec.rate_hz) if len(rec) else 0.0


def _rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(c / 255 for c in colour)
