"""`harduino ports | stream | replay | simulate`: see what comes over the link.

Only the standard library is imported at the top: pyserial, numpy and the reader
load when a command runs, so `--help` is instant and `ports` loads pyserial alone.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from ..errors import UserError
from . import add_rate_option
from .numbers import positive_int, seconds, seed

if TYPE_CHECKING:
    from ..reader import Reader

SAMPLE_HEADER = "seq,t_us,ax,ay,az,gx,gy,gz"
SILENT_S = 3.0  # a board sends its info frame within milliseconds of being asked: this long is no board


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("ports", help="list serial ports with descriptions and stable ids",
                              description="List serial ports: device, description and the stable "
                                          "/dev/serial/by-id name that survives a replug.")
    p.set_defaults(run=run_ports)

    p = subparsers.add_parser("stream", help="read a board and print link statistics or samples",
                              description="Read a port (/dev/ttyACM0, COM3, socket://, sim://, replay://) "
                                          "and print a statistics line once a second, or the samples.")
    p.add_argument("port", help="serial port or URL, e.g. /dev/ttyACM0 or 'sim://?activity=walking'")
    _add_output_options(p)
    add_rate_option(p)
    p.add_argument("--raw-log", metavar="FILE", type=Path,
                   help="save the exact bytes read, starting with an info frame, for `harduino replay`")
    p.set_defaults(run=run_stream)

    p = subparsers.add_parser("replay", help="play a raw serial log as if the board were sending it",
                              description="Play a raw log (from `stream --raw-log` or a recording) "
                                          "and print the same output as `stream`.")
    p.add_argument("file", type=Path, help="raw serial log (.bin)")
    p.add_argument("--speed", default="1", help="1 = original pace, 4 = four times faster, max = at once")
    p.add_argument("--loop", action="store_true", help="start again at the end, until stopped")
    _add_output_options(p)
    p.set_defaults(run=run_replay)

    p = subparsers.add_parser("simulate", help="serve a virtual board on a pseudo-terminal",
                              description="Run the virtual board (sim://) on a pseudo-terminal and print its "
                                          "path, so the Serial Monitor, screen or `harduino stream PATH` "
                                          "can read it like a real board.")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--activity", help="one activity throughout: still, walking (the default), running, "
                                         "jumping or waving")
    what.add_argument("--script", help="a schedule of activities, e.g. still:5,walking:10,running:10 (repeats)")
    p.add_argument("--subject", type=seed, default=0, help="who moves: cadence, amplitude, sensor orientation")
    p.add_argument("--seed", type=seed, default=0, help="noise and phase seed")
    p.add_argument("--rate", type=positive_int, default=50, help="sample rate, Hz (1-1000)")
    p.add_argument("--baud", type=positive_int, default=115200,
                   help="link speed; frames that do not fit are skipped")
    p.add_argument("--link", type=Path, help="also make this symlink to the terminal, a stable name to open "
                                          "(refused where the name is taken; removed on exit, Ctrl-C or kill)")
    p.add_argument("--duration", type=seconds, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--firmware", action="store_true",
                   help="run the real compiled firmware in the AVR simulator (simavr) with a simulated "
                        "MPU-6050, instead of the virtual board (needs the AVR toolchain; 115200 baud)")
    p.set_defaults(run=run_simulate)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", action="store_true",
                   help=f"print every sample as CSV ({SAMPLE_HEADER}; SI units) instead of statistics")
    p.add_argument("--duration", type=seconds, metavar="S", help="stop after S seconds")


# ---------------------------------------------------------------- ports

def run_ports(args) -> int:
    from .. import transport

    ports = transport.list_serial_ports()
    if not ports:
        print("no serial ports found (plug a board in, or use sim:// or `harduino simulate`)")
    for line in port_table(ports):
        print(line)
    return 0


PORT_COLUMNS = {"device": "device", "description": "description", "stable_id": "stable id (survives a replug)",
                "hwid": "hardware id"}


def port_table(ports: list[dict]) -> list[str]:
    """The ports under column headings, each column as wide as its longest entry ('-' for none)."""
    if not ports:
        return []
    rows = [list(PORT_COLUMNS.values())] + [[str(p[key] or "-") for key in PORT_COLUMNS] for p in ports]
    widths = [max(len(row[i]) for row in rows) for i in range(len(PORT_COLUMNS) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]) for row in rows]


# ---------------------------------------------------------------- stream and replay

def run_stream(args) -> int:
    if args.raw_log is not None and not args.raw_log.parent.is_dir():
        raise UserError(f"cannot write the raw log {args.raw_log}: its folder does not exist.")
    return follow(args.port, samples=args.samples, raw_log=args.raw_log, duration=args.duration, rate_hz=args.rate)


def run_replay(args) -> int:
    if args.file.is_dir():
        logs = sorted(args.file.glob("*.bin"))
        example = f", e.g. {logs[0]}" if logs else ""
        raise UserError(f"{args.file} is a folder; replay plays one raw log file (.bin){example}.")
    if not args.file.is_file():
        raise UserError(f"no such raw log file: {args.file}.")
    query = urlencode({"speed": args.speed, **({"loop": 1} if args.loop else {})})
    return follow(f"replay://{args.file.resolve()}?{query}", samples=args.samples, duration=args.duration)


def follow(url: str, *, samples: bool = False, raw_log: Path | None = None, duration: float | None = None,
           rate_hz: int | None = None) -> int:
    """Read url until the duration passes, the stream ends or Ctrl-C; print stats or samples."""
    from ..reader import Reader

    reader = Reader(url, raw_log=raw_log, rate_hz=rate_hz)
    if samples:  # every sample is printed: a source that can wait (replay://, sim://) waits for the printing
        reader.buffer.mark_read(0)
    reader.start()
    out = sys.stdout
    end = time.monotonic() + duration if duration is not None else float("inf")
    next_stats = time.monotonic() + 1.0
    index = 0
    if samples:
        print(SAMPLE_HEADER, file=out)
    final, silent_since = None, time.monotonic()
    try:
        while not reader.finished.is_set() and time.monotonic() < end:
            if silent_since is not None and time.monotonic() - silent_since > SILENT_S:
                silent_since = _say_if_silent(reader)
            # Short waits so a reader that gave up or reached the end is noticed promptly.
            reader.buffer.wait(index, max(0.0, min(next_stats, end, time.monotonic() + 0.25) - time.monotonic()))
            if samples:
                index = _print_samples(reader, index, out)
            elif time.monotonic() >= next_stats and not reader.finished.is_set():
                print(reader.stats().line(), file=out, flush=True)
                next_stats += 1.0
        final = reader.stats()
    except KeyboardInterrupt:
        final = reader.stats()
    except BrokenPipeError:  # the output went to `head` or similar, which has had enough
        sys.stdout = open(os.devnull, "w")
        return 0
    finally:
        reader.stop()
    if reader.error:
        raise UserError(reader.error)
    if samples:
        _print_samples(reader, index, out)
    print(final.line(), file=sys.stderr if samples else out, flush=True)
    return 0


def _say_if_silent(reader: Reader) -> float | None:
    """A note, once, when a port has sent no frame for SILENT_S (None: said, or frames came; else keep waiting)."""
    stats = reader.stats()
    if stats.since_last_frame_s is not None:
        return None
    if not stats.connected:
        return time.monotonic()  # the port is not open (yet): the reader says why
    heard = (f"{stats.bytes} bytes but no frame: a baud rate other than 115200, or not the Harduino firmware?"
             if stats.bytes else "nothing at all: is a board plugged in there, running the Harduino firmware "
                                 "at 115200 baud?")
    print(f"harduino: no frame from {reader.url} in {SILENT_S:g} s, {heard}", file=sys.stderr, flush=True)
    return None


def _print_samples(reader: Reader, index: int, out) -> int:
    import numpy as np

    block = reader.buffer.since(index)
    if block.start > index:
        print(f"harduino: {block.start - index} samples were overwritten before they could be printed",
              file=sys.stderr)
    if len(block):
        table = np.column_stack([block.seq, block.t_us, block.si])
        np.savetxt(out, table, fmt=["%d", "%d"] + ["%.6f"] * 6, delimiter=",")
        out.flush()
    reader.buffer.mark_read(block.end)
    return block.end


# ---------------------------------------------------------------- simulate

def sim_url(args) -> str:
    query = {"script": args.script} if args.script else {"activity": args.activity or "walking"}
    query.update(subject=args.subject, seed=args.seed, rate=args.rate, baud=args.baud)
    return "sim://?" + urlencode(query, safe=":,")


def run_simulate(args) -> int:
    from .. import firmware, transport
    from ..ptyserver import PtyBoard

    if args.firmware:
        return firmware.simulate_firmware(activity=args.activity or "walking", script=args.script,
                                          subject=args.subject, seed=args.seed, rate_hz=args.rate,
                                          duration=args.duration, link=args.link)
    url = sim_url(args)
    board = PtyBoard(transport.open_port(url))
    stop = threading.Event()
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # `kill` ends it like Ctrl-C does: its link removed
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    path = linked = None
    try:
        path = board.plug()
        if args.link is not None:
            make_link(args.link, path)
            linked = path
        print(args.link or path, flush=True)
        print(f"harduino: serving {url} on {path}; Ctrl-C stops", file=sys.stderr, flush=True)
        stop.wait(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        board.close()
        if linked is not None:
            remove_own_link(args.link, linked)
    return 0


def make_link(link: Path, target: str) -> None:
    """A symlink to the terminal, made only where nothing is: never over another file, link or program's link."""
    try:
        os.symlink(target, link)  # fails if the name is taken, in one step: no window for another simulator
    except FileExistsError:
        what = f"a link to {os.readlink(link)}" if link.is_symlink() else "a file" if link.exists() else "there"
        raise UserError(f"cannot make the link {link}: {what} is already there (another simulator, or a "
                        "file of yours); choose another name, or remove it yourself.") from None
    except OSError as err:
        raise UserError(f"cannot make the link {link}: {err.strerror}.") from None


def remove_own_link(link: Path, target: str) -> None:
    """Remove the link if it is still the one this program made (it points at our terminal)."""
    try:
        if os.readlink(link) == target:
            os.unlink(link)
    except OSError:
        pass  # gone already, or replaced by something that is not ours to remove
