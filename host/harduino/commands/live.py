"""`harduino live`: live activity recognition in the dashboard, or in the terminal.

The predictor, the model code (torch) and Qt load when the command runs, so `--help` is instant.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import UserError
from ..shipped import default_model
from . import add_rate_option, parse_labels
from .numbers import positive_int, probability, seconds, seconds_up_to

MOST_SHOWN_S = 3600.0  # the dashboard's span: an hour is more than a screen shows, and its arrays stay small


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "live", help="live predictions from a board in a dashboard (or the terminal)",
        description="Read a port, predict the activity every step of samples with a model bundle, and show "
                    "signals, probabilities, a timeline and link health in a dashboard; in the terminal with "
                    "--no-gui, or when there is no display.")
    p.add_argument("port", help="serial port or URL, e.g. /dev/ttyACM0 or 'sim://?script=still:6,walking:8'")
    p.add_argument("--model", type=Path, help="model bundle folder (default: the model shipped with harduino)")
    p.add_argument("--step", type=positive_int, metavar="N",
                   help="predict every N new samples (default: the model's step)")
    p.add_argument("--smooth", type=positive_int, default=5, metavar="K",
                   help="smooth over the last K windows (default %(default)s)")
    p.add_argument("--smoothing", default="mean", metavar="{mean,majority}",
                   help="mean of the probabilities, or majority vote (default mean)")
    p.add_argument("--threshold", type=probability, default=0.5, metavar="P",
                   help="below this smoothed probability the activity is 'uncertain' (default %(default)s)")
    add_rate_option(p)
    p.add_argument("--no-gui", action="store_true", help="print to the terminal instead of opening the dashboard")
    p.add_argument("--duration", type=seconds, metavar="S", help="stop after S seconds")
    p.add_argument("--seconds", type=seconds_up_to(MOST_SHOWN_S), default=10.0,
                   help="dashboard: seconds of signal shown (default %(default)g)")
    p.add_argument("--out", type=Path, default=Path("recordings"),
                   help="dashboard: folder the record button writes to (default %(default)s)")
    p.add_argument("--subject", default="1", help="dashboard: subject of the recordings made (default %(default)s)")
    p.add_argument("--labels", default="",
                   help="dashboard: the labels keys 1-9 pick while recording, numbered as record's --labels, "
                        "e.g. still,walking,cycling (any activity, known to the model or not; default: the "
                        "model's classes)")
    p.set_defaults(run=run_live)


def has_display() -> bool:
    """Whether a window can be opened: a display server, or Qt told where to draw."""
    if sys.platform in ("win32", "darwin"):
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def run_live(args) -> int:
    from ..live.predictor import SMOOTHING
    from ..recording import check_subject

    if args.smoothing not in SMOOTHING:
        raise UserError(f"--smoothing must be one of {', '.join(SMOOTHING)}, not {args.smoothing!r}.")
    args.subject = check_subject(args.subject)
    labels = parse_labels(args.labels)

    from ..live.session import LiveSession

    settings = dict(step=args.step, smooth_k=args.smooth, smoothing=args.smoothing, threshold=args.threshold,
                    rate_hz=args.rate)
    if args.no_gui or not has_display():
        from ..live.terminal import READ_INTERVAL_S, run_terminal

        session = LiveSession(args.model or default_model(), read_interval_s=READ_INTERVAL_S, **settings)
        session.connect(args.port)
        try:
            return run_terminal(session, args.duration)
        finally:
            session.close()

    from ..live.dashboard import run_dashboard

    session = LiveSession(args.model or default_model(), **settings)
    return run_dashboard(session, args.port, seconds=args.seconds, duration=args.duration, out=args.out,
                         subject=args.subject, labels=labels)
