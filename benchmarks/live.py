"""Live view: the dashboard's, the reader's and the terminal's CPU, each beside a plain peer measured in the same run.

Every board is `harduino simulate` in a process of its own, as a real board
would be, on the other core where there are two; everything measured runs in
this process on one core, one after the other, and its CPU is this process's
CPU time over wall time while it runs (start-up excluded). At 100 Hz and 1 kHz:

* the peer for drawing: a plain pyqtgraph scroller written as pyqtgraph's own
  `examples/scrollingPlots.py` does it, 2 plots x 4 curves of as many points as
  the dashboard draws (10 s of samples), `setData(..., skipFiniteCheck=True)` from
  one QTimer at 33 fps, clip-to-view and peak downsampling, offscreen, in a
  widget the size of the dashboard's plots;
* the dashboard (offscreen) reading the board: reader, predictor and drawing,
  with frames painted on its curves per second (goal >= 30 at 1 kHz) and the GUI
  thread's work per tick; goal: at most half the scroller's CPU at 100 Hz. The
  two take turns, three rounds each, and the round of the median ratio is shown
  (a shared machine's load moves from minute to minute);
* the peer for reading: a plain pyserial loop, `read(in_waiting)` and a
  `struct.unpack` per frame, reading the same kind of board;
* the reader thread alone (goals < 2 % at 100 Hz, < 5 % at 1 kHz);
* at 100 Hz, the terminal view (reader, predictor and the table redrawn in place;
  goal < 3 %).

Then 4 boards at 200 Hz into 4 reader threads here (no dashboard): CPU and
samples lost, and the latency from a sample's arrival to the prediction of the
window it completes, for the default model at its own rate.

The default model is trained for one rate (50 Hz); at 100 Hz and 1 kHz the same
architecture is retrained on synthetic data of that rate for the run (said so
in the output), since a model only applies to data at its own rate.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from harduino import motion, protocol
from harduino.dataset import select_channels
from harduino.windowing import windows
from harduino.models import fit_estimator, load_bundle, make_estimator, save_bundle
from harduino.shipped import default_model

from decode import struct_frames  # the plain frame loop, beside this script

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = default_model()
FRAME_MS = 30  # the scroller's timer, as the dashboard's: 33 frames a second


def shown(path: Path) -> str:
    """A path as the output shows it: relative to the project when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def model_for_rate(default_path: Path, rate_hz: int, folder: Path, seconds_per_class: float) -> tuple[Path, str]:
    """The default bundle if it fits the rate, else its architecture retrained on synthetic data at that rate."""
    default = load_bundle(default_path)
    if np.isclose(default.rate_hz, rate_hz):
        return default_path, f"{shown(default_path)} ({default.arch})"
    X, y = [], []
    for subject in (1, 2, 3):
        for activity in motion.ACTIVITIES:
            raw = motion.synth_activity(activity, int(seconds_per_class * rate_hz), rate_hz, subject=subject)
            w = windows(select_channels(raw * protocol.BoardInfo().si_scale, default.channel_set, rate_hz),
                        default.window, default.step)
            X.append(w)
            y += [activity] * len(w)
    params = {"epochs": 5, "verbose": False} if default.meta.get("kind") == "deep" else {}  # speed, not accuracy
    est = fit_estimator(make_estimator(default.arch, default.channel_set, rate_hz=rate_hz, **params),
                        np.concatenate(X), np.array(y), groups=np.arange(len(y)) % 5)
    out = folder / f"{default.arch}-{rate_hz}hz"
    save_bundle(est, out, dict(architecture=default.arch, channel_set=default.channel_set, window=default.window,
                               step=default.step, rate_hz=rate_hz))
    return out, f"{default.arch} retrained on synthetic {rate_hz} Hz data"


# ---------------------------------------------------------------- boards and measuring

@contextlib.contextmanager
def boards(rate_hz: int, count: int = 1):
    """Ports of `count` simulated boards at rate_hz, each served by its own `harduino simulate` process."""
    baud = 115200 if rate_hz * protocol.SAMPLE_FRAME_LEN * 10 < 100_000 else 1_000_000
    procs = [subprocess.Popen([sys.executable, "-m", "harduino.cli", "simulate", "--rate", str(rate_hz),
                               "--baud", str(baud), "--activity", "walking", "--subject", str(k + 1)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for k in range(count)]
    try:
        ports = [p.stdout.readline().strip() for p in procs]
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > 1:  # the boards on another core than the one measured
            for p in procs:
                os.sched_setaffinity(p.pid, set(cores[1:]))
        yield ports
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


@contextlib.contextmanager
def one_core():
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)


_APP = []  # the one QApplication, kept for the whole run: Qt crashes when one is destroyed and another made


def qt_app():
    from PyQt5 import QtWidgets
    if not _APP:
        _APP.append(QtWidgets.QApplication.instance() or QtWidgets.QApplication(["harduino"]))
    return _APP[0]


def run_qt(seconds: float) -> None:
    """Run Qt's event loop (it sleeps between timer ticks) for this long."""
    from PyQt5 import QtCore
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec_()


def cpu_percent(wait, seconds: float) -> float:
    """This process's CPU, % of one core, while wait(seconds) runs."""
    t0, c0 = time.monotonic(), time.process_time()
    wait(seconds)
    return 100 * (time.process_time() - c0) / (time.monotonic() - t0)


class PaintCounter:
    """Counts the frames Qt paints on a widget: what the eye gets, not how often a timer fires."""

    def __init__(self, widget) -> None:
        from PyQt5 import QtCore

        class Filter(QtCore.QObject):
            def eventFilter(inner, obj, event):  # noqa: N802,N805 - Qt's name
                if event.type() == QtCore.QEvent.Paint:
                    self.stamps.append(time.monotonic())
                return False

        self.stamps: list[float] = []
        self._filter = Filter()
        widget.installEventFilter(self._filter)

    def fps(self, since: float) -> float:
        stamps = [t for t in self.stamps if t >= since]
        return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0


# ---------------------------------------------------------------- the peers

def plain_scroller(rate_hz: int, span_s: float, size, seconds: float, settle: float) -> tuple[float, float]:
    """(CPU %, fps) of the textbook pyqtgraph scroller: 2 plots x 4 curves of span_s * rate_hz points."""
    import pyqtgraph as pg
    from PyQt5 import QtCore

    qt_app()
    n = int(round(span_s * rate_hz))
    si = motion.synth_activity("walking", n + int((settle + seconds + 2) * rate_hz), rate_hz) * \
        protocol.BoardInfo().si_scale
    source = np.vstack([si[:, :3].T, np.linalg.norm(si[:, :3], axis=1), si[:, 3:].T, np.linalg.norm(si[:, 3:], axis=1)])
    data, x = source[:, :n].copy(), (np.arange(n) - (n - 1)) / rate_hz
    win = pg.GraphicsLayoutWidget()
    win.resize(size)
    curves = []
    for row in range(2):
        plot = win.addPlot(row=row, col=0)
        plot.setDownsampling(mode="peak")
        plot.setClipToView(True)
        plot.setRange(xRange=[-span_s, 0], padding=0)
        curves += [plot.plot(pen=pg.mkPen(c, width=1)) for c in ("r", "g", "b", "w")]
    taken, t0 = n, time.monotonic()

    def update():  # the samples that came since the last frame, shifted in; every curve set again
        nonlocal taken
        due = min(n + int((time.monotonic() - t0) * rate_hz), source.shape[1])
        k = due - taken
        if k:
            data[:, :-k] = data[:, k:]
            data[:, -k:] = source[:, taken:due]
            taken = due
        for curve, row in zip(curves, data):
            curve.setData(x, row, skipFiniteCheck=True)

    timer = QtCore.QTimer(interval=FRAME_MS, timerType=QtCore.Qt.PreciseTimer)
    timer.timeout.connect(update)
    paints = PaintCounter(win.viewport())
    win.show()
    timer.start()
    run_qt(settle)
    since = time.monotonic()
    cpu = cpu_percent(run_qt, seconds)
    timer.stop()
    win.close()
    return cpu, paints.fps(since)


def plain_pyserial(port: str, seconds: float, settle: float) -> tuple[float, int]:
    """(CPU %, frames) of a plain pyserial loop: read what is waiting, then one struct.unpack per frame."""
    import serial

    ser = serial.serial_for_url(port, 115200, timeout=0.1)
    ser.write(b"info\n")
    stop, frames, samples = threading.Event(), [0], []

    def loop():
        buf = b""
        while not stop.is_set():
            found, buf = struct_frames(buf + ser.read(ser.in_waiting or 1))
            samples.extend(frame[2:10] for frame in found)
            frames[0] += len(found)
            del samples[:-1000]  # a consumer keeps the last seconds

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    time.sleep(settle)
    n0 = frames[0]
    cpu = cpu_percent(time.sleep, seconds)
    n = frames[0] - n0
    stop.set()
    thread.join(2)
    ser.close()
    return cpu, n


# ---------------------------------------------------------------- harduino

def harduino_reader(ports: list[str], seconds: float, settle: float) -> tuple[float, int, int]:
    """(CPU %, samples, lost) of reader threads, one per port."""
    from harduino.reader import Reader

    readers = [Reader(port) for port in ports]
    for reader in readers:
        reader.start()
    try:
        for reader in readers:
            reader.wait_for_info()
        time.sleep(settle)
        n0 = [r.buffer.total for r in readers]
        lost0 = sum(r.stats().lost for r in readers)
        cpu = cpu_percent(time.sleep, seconds)
        n = sum(r.buffer.total for r in readers) - sum(n0)
        lost = sum(r.stats().lost for r in readers) - lost0
    finally:
        for reader in readers:
            reader.stop()
    return cpu, n, lost


def dashboard(port: str, model: Path, seconds: float, settle: float) -> dict:
    """The dashboard reading port: CPU %, painted fps, tick ms p50/p99, and the size of its plots."""
    import pyqtgraph as pg

    from harduino.live.dashboard import Dashboard
    from harduino.live.session import LiveSession

    app = qt_app()
    pg.setConfigOptions(antialias=False)  # as `harduino live` runs it
    window = Dashboard(LiveSession(model), seconds=10.0)
    ticks, tick = [], window.tick

    def timed_tick():
        t0 = time.perf_counter()
        tick()
        ticks.append(time.perf_counter() - t0)
    window.timer.timeout.disconnect()
    window.timer.timeout.connect(timed_tick)
    # A frame is the curves painted (a widget over each plot's data area); the rest of the plots'
    # scene (axes, timeline) is painted when it changes.
    paints = PaintCounter(window.signals.items[0])
    painting = {"curves": [], "scene": []}

    def timed(paint, spent):  # Qt calls the Python override: all its drawing, rasteriser included
        def timed_paint(event):
            t0 = time.thread_time()
            paint(event)
            spent.append(time.thread_time() - t0)
        return timed_paint
    for widget in window.signals.items:
        widget.paintEvent = timed(widget.paintEvent, painting["curves"])
    for widget in (window.graphics, window.bar_widget):  # the axes and timeline; the probability bars
        widget.paintEvent = timed(widget.paintEvent, painting["scene"])
    window.show()
    window.connect_port(port)
    run_qt(settle)  # connect, fill the plots' span a little, first predictions
    if window.session.reader.info is None:
        raise SystemExit(f"no board info from {port}")
    ticks.clear()
    for spent in painting.values():
        spent.clear()
    since, seen, gui = time.monotonic(), window.session.history.count, time.thread_time()
    skipped = getattr(window.session.predictor, "skipped", 0)  # None until the board's info came in
    cpu = cpu_percent(run_qt, seconds)
    gui = time.thread_time() - gui
    wall = time.monotonic() - since
    predicted = window.session.history.since(seen)
    predicting = sum(p.window_ms + p.model_ms + p.smooth_ms for p in predicted) / 1e3
    skipped = getattr(window.session.predictor, "skipped", 0) - skipped
    windows = dict(predicted=len(predicted), skipped=skipped, wall=wall)
    error = window.session.model_error or (window.session.predictor and window.session.predictor.error)
    size = window.graphics.size()
    window.close()
    app.processEvents()
    if error:
        raise SystemExit(f"no predictions: {error}")
    ms = np.array(ticks) * 1e3
    share = {"gui": gui, "curves": sum(painting["curves"]), "scene": sum(painting["scene"]), "ticks": sum(ticks),
             "predicting": predicting}
    return dict(cpu=cpu, fps=paints.fps(since), p50=float(np.percentile(ms, 50)), p99=float(np.percentile(ms, 99)),
                size=size, share={k: 100 * v / wall for k, v in share.items()}, windows=windows)


def terminal(port: str, model: Path, seconds: float, settle: float) -> float:
    """CPU % of the terminal view (reader, predictor, the table redrawn in place) reading port."""
    from harduino.live.session import LiveSession
    from harduino.live.terminal import READ_INTERVAL_S, run_terminal

    session = LiveSession(model, read_interval_s=READ_INTERVAL_S)  # as `harduino live --no-gui` makes it
    session.connect(port)
    with open(os.devnull, "w") as out:
        try:
            run_terminal(session, settle, out=out, tty=True)  # start-up: info frame, first predictions
            return cpu_percent(lambda s: run_terminal(session, s, out=out, tty=True), seconds)
        finally:
            session.close()


def latency(model: Path, rate_hz: int, seconds: float):
    from harduino.live.session import LiveSession

    session = LiveSession(model)
    session.connect(f"sim://?activity=walking&rate={rate_hz}")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        session.poll()
        time.sleep(0.05)
    stats = session.predictor.stats()
    windows_ms = np.array([p.window_ms for p in session.history.recent()])
    session.close()
    return stats, float(np.percentile(windows_ms, 50))


# ---------------------------------------------------------------- the run

def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (for tests)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the default model bundle")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # --quick proves every figure is measured and printed, no more: its figures are not for reading.
    seconds, settle = (0.5, 0.4) if args.quick else (15.0, 3.0)
    rounds = 1 if args.quick else 3  # the dashboard and the scroller in turn; the round of the median ratio shown
    per_class = 1.0 if args.quick else 20.0  # synthetic seconds per activity and subject to retrain on
    span = 10.0

    with tempfile.TemporaryDirectory() as tmp:
        default = load_bundle(args.model)
        models = {rate: model_for_rate(args.model, rate, Path(tmp), per_class) for rate in (100, 1000)}
        for rate in (100, 1000):
            model, what = models[rate]
            print(f"at {rate} Hz, the board in another process, measured on one core, {seconds:g} s each "
                  f"(model: {what}):")
            with boards(rate) as [port], one_core():
                # Turn about, a third of the time each: a shared machine's load moves both alike.
                pairs = []
                for _ in range(rounds):
                    d = dashboard(port, model, seconds / rounds, settle)
                    pairs.append((d, *plain_scroller(rate, span, d["size"], seconds / rounds, settle)))
                d, s_cpu, s_fps = sorted(pairs, key=lambda pair: pair[0]["cpu"] / pair[1])[len(pairs) // 2]
                p_cpu, p_frames = plain_pyserial(port, seconds, settle)
                r_cpu, r_n, r_lost = harduino_reader([port], seconds, settle)
                t_cpu = terminal(port, model, seconds, settle) if rate == 100 else None
            w, h = d["size"].width(), d["size"].height()
            ratios = ", ".join(ratio(pd["cpu"], ps) for pd, ps, _ in pairs)
            print(f"  the dashboard and the plain scroller in turn, {rounds} rounds of {seconds / rounds:g} s each; "
                  f"the dashboard's CPU over the scroller's in each: {ratios}; the median round:")
            print(f"  plain pyqtgraph scroller, 8 curves x {int(span * rate)} points, {w}x{h}: "
                  f"{s_cpu:5.1f} % of one core, {s_fps:.1f} fps")
            print(f"  CPU with the dashboard: {d['cpu']:5.1f} % of one core, {ratio(d['cpu'], s_cpu)} the scroller; "
                  f"fps at {rate} Hz: {d['fps']:.1f} (tick p50 {d['p50']:.2f} ms, p99 {d['p99']:.2f} ms)")
            share = d["share"]
            gui_rest = share["gui"] - share["curves"] - share["scene"] - share["ticks"]
            others = d["cpu"] - share["gui"]  # the reader's and the predictor's threads
            print(f"    where it goes, % of one core: the GUI thread {share['gui']:.1f} (painting the curves "
                  f"{share['curves']:.1f}, the axes, timeline and bars {share['scene']:.1f}, ticks "
                  f"{share['ticks']:.1f}, the rest {gui_rest:.1f}: Qt's event loop and the text panels), the other "
                  f"threads {others:.1f} (the predictor's windows by its own clock "
                  f"{share['predicting']:.1f}, a reader alone {r_cpu:.1f}, below)")
            wins = d["windows"]
            print(f"    the predictor: {wins['predicted'] / wins['wall']:.1f} windows a second predicted, "
                  f"{wins['skipped'] / wins['wall']:.1f} skipped")
            if rate == 100:  # what the goal leaves room for, from the figures above
                print(f"    half the scroller is {s_cpu / 2:.1f} %: the reader and predictor threads (the scroller has "
                      f"neither) take {others:.1f} of it, leaving {s_cpu / 2 - others:.1f} for the GUI thread, "
                      f"which takes {share['gui']:.1f}")
            print(f"  plain pyserial loop (read(in_waiting) + struct.unpack per frame): {p_cpu:5.2f} % of one core "
                  f"({p_frames} frames)")
            print(f"  harduino reader: {r_cpu:5.2f} % of one core, {ratio(r_cpu, p_cpu)} the pyserial loop "
                  f"({r_n} samples, {r_lost} lost)")
            if t_cpu is not None:
                print(f"  CPU in the terminal: {t_cpu:5.2f} % of one core, {ratio(t_cpu, p_cpu)} the pyserial loop")
            print(f"summary: dashboard CPU, {rate} Hz | {d['cpu']:.1f} % of one core, {ratio(d['cpu'], s_cpu)} "
                  f"a plain pyqtgraph scroller ({s_cpu:.1f} %) | {'<= 0.5x the scroller' if rate == 100 else '-'}")
            print(f"summary: dashboard fps, {rate} Hz, one core offscreen | {d['fps']:.1f} fps "
                  f"(tick p99 {d['p99']:.1f} ms) | >= 30 fps")
            print(f"summary: reader CPU, {rate} Hz | {r_cpu:.2f} % of one core, {ratio(r_cpu, p_cpu)} a plain "
                  f"pyserial loop ({p_cpu:.2f} %) | < {2 if rate == 100 else 5} %")
            if t_cpu is not None:
                print(f"summary: terminal CPU, {rate} Hz | {t_cpu:.2f} % of one core, {ratio(t_cpu, p_cpu)} a "
                      f"plain pyserial loop | < 3 %")

        print(f"4 boards at 200 Hz, each in its own process, into 4 reader threads here on one core, {seconds:g} s:")
        with boards(200, 4) as ports, one_core():
            cpu, n, lost = harduino_reader(ports, seconds, settle)
        print(f"  CPU {cpu:5.2f} % of one core, {n} samples ({n / seconds / 4:.0f} per board per s), {lost} lost")
        print(f"summary: 4 boards at 200 Hz, reader threads | {cpu:.2f} % of one core, {lost} samples lost "
              "| 0 lost")

        stats, window_ms = latency(args.model, int(default.rate_hz), seconds + settle)
        print(f"sample arrival to prediction, {shown(args.model)} ({default.arch}) at "
              f"{default.rate_hz:g} Hz, {stats.predictions} windows:")
        print(f"  latency p50 {stats.latency_p50_ms:.2f} ms, latency p99 {stats.latency_p99_ms:.2f} ms "
              f"(window {window_ms:.3f} ms, model {stats.model_p50_ms:.2f} ms per window; {stats.skipped} skipped)")
        print(f"summary: sample arrival to prediction, default model | p50 {stats.latency_p50_ms:.2f} ms, "
              f"p99 {stats.latency_p99_ms:.2f} ms | -")


if __name__ == "__main__":
    main()
