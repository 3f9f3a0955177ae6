"""Live prediction: dashboard frame rate, sample-to-prediction latency, CPU use of `harduino live`.

* Dashboard frames per second, offscreen, pinned to one core, streaming six
  channels from sim:// at 100 Hz and at 1 kHz (`rate=1000&baud=1000000`), with
  predictions running (goal >= 30 fps at 1 kHz); the redraw timer asks for 33.
  Also the GUI thread's work per frame (tick: new samples into the curves,
  bars, timeline) and the process's CPU while drawing.
* Latency from a sample's arrival on the host to the prediction of the window
  it completes, p50/p99, for the default model at its own rate, plus the
  model's own time per window.
* CPU use of the `harduino live` process at 100 Hz, with the dashboard
  (offscreen) and in the terminal (goals < 25 % and < 3 % of one core), the
  board (`harduino simulate`) in a process of its own as a real board would be.

The default model is trained for one rate (50 Hz); at 100 Hz and 1 kHz the same
architecture is retrained on synthetic data of that rate for the run (said so
in the output), since a model only applies to data at its own rate.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harduino import protocol, simboard
from harduino.dataset import select_channels, windows
from harduino.models import fit_estimator, load_bundle, make_estimator, save_bundle
from harduino.shipped import default_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = default_model()


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
        for activity in simboard.ACTIVITIES:
            raw = simboard.synth_activity(activity, int(seconds_per_class * rate_hz), rate_hz, subject=subject)
            w = windows(select_channels(raw * protocol.BoardInfo().si_scale, default.channel_set),
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


def dashboard_fps(url: str, model: Path, seconds: float, settle: float = 2.0) -> tuple[float, float, float, float]:
    """(frames/s, tick ms p50, tick ms p99, process CPU %) of the dashboard streaming url, on one core."""
    from PyQt5 import QtCore, QtWidgets

    from harduino.live.dashboard import Dashboard
    from harduino.live.session import LiveSession

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["harduino"])
    window = Dashboard(LiveSession(model), seconds=10.0)
    ticks = []
    tick = window.tick

    def timed_tick():
        t0 = time.perf_counter()
        tick()
        ticks.append(time.perf_counter() - t0)
    window.timer.timeout.disconnect()
    window.timer.timeout.connect(timed_tick)
    def run(seconds):  # the real event loop: it sleeps between timer ticks
        loop = QtCore.QEventLoop()
        QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec_()

    window.show()
    window.connect_port(url)
    run(settle)  # connect, fill the plots' span a little, first predictions
    if window.session.reader.info is None:
        raise SystemExit(f"no board info from {url}")
    ticks.clear()
    t0, c0 = time.monotonic(), time.process_time()
    first = window._frames[-1] if window._frames else t0
    run(seconds)
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    stamps = [t for t in window._frames if t > first]
    fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0
    error = window.session.model_error or (window.session.predictor and window.session.predictor.error)
    window.close()
    app.processEvents()
    if error:
        raise SystemExit(f"no predictions: {error}")
    ms = np.array(ticks) * 1e3
    return fps, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), 100 * cpu / wall


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


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def live_cpu(model: Path, rate_hz: int, gui: bool, seconds: float, warmup: float = 6.0) -> float:
    """CPU % of one core used by a `harduino live` process reading a board served by another process."""
    board = subprocess.Popen([sys.executable, "-m", "harduino.cli", "simulate", "--rate", str(rate_hz),
                              "--activity", "walking"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = board.stdout.readline().strip()
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        cmd = [sys.executable, "-m", "harduino.cli", "live", port, "--model", str(model),
               "--duration", str(warmup + seconds + 5)] + ([] if gui else ["--no-gui"])
        live = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            time.sleep(warmup)  # imports (torch, Qt) and start-up are not the steady state
            if live.poll() is not None:
                raise SystemExit(f"harduino live exited early with {live.returncode}: {' '.join(cmd)}")
            c0, t0 = process_cpu_s(live.pid), time.monotonic()
            time.sleep(seconds)
            c1, t1 = process_cpu_s(live.pid), time.monotonic()
        finally:
            live.terminate()
            live.wait(10)
        return 100 * (c1 - c0) / (t1 - t0)
    finally:
        board.terminate()
        board.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (for tests)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the default model bundle")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # --quick proves every figure is measured and printed, no more: its figures are not for reading.
    seconds = 1.0 if args.quick else 15.0
    settle = 1.0 if args.quick else 2.0
    per_class = 1.5 if args.quick else 20.0  # synthetic seconds per activity and subject to retrain on
    warmup = 3.0 if args.quick else 8.0

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        default = load_bundle(args.model)
        print("dashboard offscreen on one core, 6 channels + magnitudes, 10 s span, redraw timer at 33 fps:")
        models = {rate: model_for_rate(args.model, rate, tmp, per_class) for rate in (100, 1000)}
        for rate, url in ((100, "sim://?activity=walking&rate=100"),
                          (1000, "sim://?activity=walking&rate=1000&baud=1000000")):
            model, what = models[rate]
            cores = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {min(cores)})  # one core, as the goal says
            try:
                fps, p50, p99, cpu = dashboard_fps(url, model, seconds, settle)
            finally:
                os.sched_setaffinity(0, cores)
            print(f"  fps at {rate} Hz: {fps:5.1f}   tick p50 {p50:.2f} ms, p99 {p99:.2f} ms, process CPU {cpu:.0f} % "
                  f"(model: {what})")
            print(f"summary: dashboard fps, {rate} Hz, one core offscreen | {fps:.1f} fps (frame p99 {p99:.1f} ms) "
                  "| >= 30 fps")

        stats, window_ms = latency(args.model, int(default.rate_hz), seconds + settle)
        print(f"sample arrival to prediction, {shown(args.model)} ({default.arch}) at "
              f"{default.rate_hz:g} Hz, {stats.predictions} windows:")
        print(f"  latency p50 {stats.latency_p50_ms:.2f} ms, latency p99 {stats.latency_p99_ms:.2f} ms "
              f"(window {window_ms:.3f} ms, model {stats.model_p50_ms:.2f} ms per window; {stats.skipped} skipped)")
        print(f"summary: sample arrival to prediction, default model | p50 {stats.latency_p50_ms:.2f} ms, "
              f"p99 {stats.latency_p99_ms:.2f} ms | -")

        model, what = models[100]
        print(f"CPU of `harduino live` at 100 Hz, board in another process (model: {what}):")
        cpu_seconds = 1.5 if args.quick else 20.0
        gui, terminal = (live_cpu(model, 100, gui, cpu_seconds, warmup) for gui in (True, False))
        print(f"  CPU with the dashboard: {gui:5.1f} % of one core (goal < 25 %)")
        print(f"  CPU in the terminal:    {terminal:5.1f} % of one core (goal < 3 %)")
        print(f"summary: harduino live CPU at 100 Hz, dashboard | {gui:.1f} % of one core | < 25 %")
        print(f"summary: harduino live CPU at 100 Hz, terminal | {terminal:.1f} % of one core | < 3 %")


if __name__ == "__main__":
    main()
