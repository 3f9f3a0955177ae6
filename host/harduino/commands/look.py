"""`harduino plot | predict`: look at a recording, and at what a model makes of it, window by window.

Both write PNG files through matplotlib's Agg canvas (`figures`), so they work
the same with a display and without one. Only the standard library is imported
at the top: numpy, matplotlib and the model code load when a command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UserError
from ..shipped import default_model
from . import check_writable, write_output


PLOT_DESCRIPTION = ("Draw a recording's accelerometer and gyroscope signals over time, each labelled stretch in its "
                    "activity's colour behind them and every gap (where no window may cross) marked, into a PNG "
                    "image.")
PREDICT_DESCRIPTION = ("Predict the activity of every window of a recording with a model bundle: one CSV row per "
                       "window (recording, window end time, true and predicted label, one probability column per "
                       "class: the format of `evaluate --predictions`), and with --plot a timeline of the "
                       "predicted against the true activity.")


def add_commands(subparsers) -> None:
    plot = subparsers.add_parser("plot", help="draw a recording's six signals with its labels and gaps (PNG)",
                                 description=PLOT_DESCRIPTION)
    predict = subparsers.add_parser("predict", help="a model's prediction for every window of a recording",
                                    description=PREDICT_DESCRIPTION)
    for p in (plot, predict):
        p.add_argument("recording", type=Path, help="a recording (.csv with its .json sidecar)")
    plot.add_argument("-o", "--out", type=Path, metavar="PNG",
                      help="image to write (default: the recording's name with .png, in the current folder)")
    plot.set_defaults(run=run_plot)
    predict.add_argument("--model", type=Path, help="model bundle folder (default: the model shipped with harduino)")
    predict.add_argument("-o", "--out", type=Path, metavar="CSV", help="write the rows here (default: standard output)")
    predict.add_argument("--plot", type=Path, metavar="PNG", help="also draw the timeline into this PNG image")
    predict.set_defaults(run=run_predict)


def run_plot(args) -> int:
    from ..figures import plot_recording
    from ..recording import load_recording

    source = _recording_file(args.recording, "plot")
    out = args.out or Path(source.stem + ".png")
    _check_png(out, "plot")
    rec = load_recording(source)
    if len(rec) == 0:
        raise UserError(f"{source} holds no samples yet; record for a few seconds first.")
    write_output("plot", out, lambda path: plot_recording(rec, path))
    return 0


def run_predict(args) -> int:
    import numpy as np

    from ..dataset import window_dataset
    from ..models import load_bundle
    from ..models.evaluation import Scores
    from ..recording import load_recording

    source = _recording_file(args.recording, "predict")
    if args.out is not None:
        check_writable(args.out, "predictions file", folder=False)
    if args.plot is not None:
        _check_png(args.plot, "timeline")
    bundle = load_bundle(args.model or default_model())
    rec = load_recording(source)
    bundle.check_compatible(rec.rate_hz)
    ws = window_dataset([rec], channel_set=bundle.channel_set, size=bundle.window, step=bundle.step,
                        unlabelled=True)
    if len(ws) == 0:
        raise UserError(f"{source} holds no stretch of {bundle.window} samples without a gap, the window of the "
                        f"model {bundle.path}; record for a few seconds.")
    scores = Scores.of(ws, bundle.predict_proba(ws.X), bundle.classes_)
    if args.out is None:
        scores.print_predictions(sys.stdout)
    else:
        write_output("predictions", args.out, scores.write_predictions)
    windows, shares, accuracy = _summary(scores, ws, np.asarray(bundle.classes_))
    print(f"{source.name}: {windows}; {shares}; {accuracy}", file=sys.stderr if args.out is None else sys.stdout,
          flush=True)
    if args.plot is not None:
        from ..figures import plot_predictions

        title = f"{bundle.arch} model {bundle.path.name} on {source.name}: {windows}\n{accuracy}"
        write_output("timeline", args.plot, lambda path: plot_predictions(
            scores.t_end, scores.y_true, scores.y_pred, scores.proba, scores.classes, ws.step / ws.rate_hz,
            title, path))
    return 0


def _summary(scores, ws, classes) -> tuple[str, str, str]:
    """(how many windows, what was predicted how often, the accuracy where the label is one the model knows)."""
    import numpy as np

    names, counts = np.unique(scores.y_pred, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    windows = f"{len(ws)} windows of {ws.size} samples, one every {ws.step / ws.rate_hz * 1000:.0f} ms"
    shares = "predicted " + ", ".join(f"{names[i]} {counts[i] / len(scores.y_pred):.0%}" for i in order)
    known = np.isin(scores.y_true, classes)
    accuracy = "no window has a label the model knows"
    if known.any():
        right = int((scores.y_true[known] == scores.y_pred[known]).sum())
        accuracy = f"accuracy {right / known.sum():.3f} on the {int(known.sum())} labelled windows"
    unknown = sorted(set(scores.y_true[~known].tolist()) - {""})
    if unknown:
        accuracy += f" of its classes (not: {', '.join(unknown)})"
    return windows, shares, accuracy


def _recording_file(path: Path, command: str) -> Path:
    """The recording's CSV: given itself, or its sidecar or raw log beside it; one sentence for a folder."""
    if path.is_dir():
        csvs = sorted(path.glob("*.csv"))
        example = f", e.g. {command} {csvs[0]}" if csvs else ""
        raise UserError(f"{path} is a folder; {command} takes one recording (a .csv file){example}.")
    if path.suffix.lower() in (".json", ".bin"):
        return path.with_suffix(".csv")
    return path


def _check_png(path: Path, what: str) -> None:
    if path.suffix.lower() != ".png":
        raise UserError(f"the {what} is a PNG image: give a file name ending in .png, not {path}.")
    check_writable(path, what, folder=False)
