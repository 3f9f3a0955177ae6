"""Live prediction: smoothing, the predictor thread on replayed logs, terminal mode, `harduino live` errors."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import DEFAULT_MODEL, RATE_HZ, ROOT, SCRIPT, replay_url, window_accuracy, write_scripted_log
from harduino import cli, motion, protocol
from harduino.dataset import load_recordings, window_dataset
from harduino.live.predictor import UNCERTAIN, Predictor, decide, smooth
from harduino.live.session import LiveSession
from harduino.models import fit_estimator, load_bundle, make_estimator, save_bundle
from harduino.reader import SampleBuffer
from harduino.recording import Recording
from harduino.windowing import window_grid, window_labels


@pytest.fixture(scope="session")
def scripted_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("logs") / "scripted.bin"
    labels, si = write_scripted_log(path)
    return path, labels, si


def run_session(session: LiveSession, url: str, timeout: float = 30.0) -> None:
    session.connect(url)
    deadline = time.monotonic() + timeout
    while not session.finished:
        assert time.monotonic() < deadline, "the replay did not finish"
        session.poll()
        time.sleep(0.02)


# ---------------------------------------------------------------- pure parts

def test_mean_smoothing_averages_and_majority_counts_votes():
    probas = np.array([[0.6, 0.4, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    assert smooth(probas, "mean") == pytest.approx([0.3, 1.9 / 3, 0.2 / 3])
    assert smooth(probas, "majority") == pytest.approx([1 / 3, 2 / 3, 0])
    with pytest.raises(ValueError):
        smooth(probas, "median")


def test_below_the_threshold_the_activity_is_uncertain():
    classes = np.array(["still", "walking"])
    assert decide(np.array([0.3, 0.7]), classes, 0.6) == ("walking", pytest.approx(0.7))
    assert decide(np.array([0.45, 0.55]), classes, 0.6) == (UNCERTAIN, pytest.approx(0.55))


# ---------------------------------------------------------------- the predictor thread

@pytest.fixture(scope="session")
def default_bundle():
    return load_bundle(DEFAULT_MODEL)


def test_a_predictor_behind_jumps_to_the_newest_window_and_counts_the_skipped(default_bundle, scripted_log):
    _, labels, si = scripted_log
    buffer = SampleBuffer(4096)
    predictor = Predictor(buffer, default_bundle, RATE_HZ, smooth_k=1)
    n = 1000  # arrives in one piece: windows ending at 32, 48, ... 992 are due at once
    buffer.append(np.arange(n), np.arange(n) * 20_000, time.monotonic(), si[:n])
    predictor.start()
    try:
        assert predictor.history.wait(0, 10)
    finally:
        predictor.stop()
    first = predictor.history.recent()[0]
    assert first.index == 992 and predictor.skipped == (992 - 32) // 16
    assert first.label == labels[991]
    # The window training cuts from a recording of those samples, the channels derived over all of them.
    rec = Recording(Path("behind.csv"), "s6", "behind", RATE_HZ, np.arange(992) / RATE_HZ, si[:992],
                    labels[:992].astype(str))
    window = window_dataset([rec], default_bundle.channel_set, label_policy="majority").X[-1:]
    assert first.raw_proba == pytest.approx(default_bundle.predict_proba(window)[0], abs=1e-5)


class CountedCalls:
    """A model bundle that keeps the windows each predict_proba call was given."""

    def __init__(self, bundle) -> None:
        self.bundle, self.calls = bundle, []

    def __getattr__(self, name):
        return getattr(self.bundle, name)

    def predict_proba(self, windows):
        self.calls.append(np.array(windows))
        return self.bundle.predict_proba(windows)


def test_windows_due_at_once_are_predicted_in_one_call_as_one_by_one_would(default_bundle, scripted_log):
    _, _, si = scripted_log
    n = 1120  # of the 1150 samples
    t_us = np.arange(n) * 20_000
    t_us[600:] += 3_000_000  # a pause: the stream starts again there, a batch holds windows from both sides
    ends = window_grid(t_us / 1e6, RATE_HZ, 32, 16).starts + 32

    def play(chunk: int):
        """The log's samples into a buffer `chunk` at a time, each time waiting for the windows they complete."""
        model, buffer = CountedCalls(default_bundle), SampleBuffer(4096)
        predictor = Predictor(buffer, model, RATE_HZ, smooth_k=5)
        predictor.start()
        try:
            for lo in range(0, n, chunk):
                hi = min(n, lo + chunk)
                buffer.append(np.arange(lo, hi), t_us[lo:hi], time.monotonic(), si[lo:hi])
                while predictor.history.count < (ends <= hi).sum():
                    assert predictor.history.wait(predictor.history.count, 10) and predictor.error is None
        finally:
            predictor.stop()
        assert predictor.skipped == 0 and predictor.gaps == 1
        return predictor.history.recent(), model.calls

    single, single_calls = play(16)
    batched, batched_calls = play(80)
    sizes = [len(c) for c in batched_calls]
    assert {len(c) for c in single_calls} == {1} and max(sizes) == 5 and len(sizes) < len(single_calls) / 3
    assert [p.index for p in batched] == [p.index for p in single] == list(ends)
    assert np.array_equal(np.concatenate(batched_calls), np.concatenate(single_calls))  # the same windows
    assert [p.label for p in batched] == [p.label for p in single]
    # The network computes in float32, whose matrix products round a little differently in a batch.
    for b, s in zip(batched, single):
        assert b.raw_proba == pytest.approx(s.raw_proba, rel=1e-5, abs=1e-6)
        assert b.proba == pytest.approx(s.proba, rel=1e-5, abs=1e-6)


def test_replayed_session_is_predicted_window_by_window(default_bundle, scripted_log):
    path, labels, _ = scripted_log
    session = LiveSession(DEFAULT_MODEL, smooth_k=3)
    try:
        run_session(session, replay_url(path))
        predictor = session.predictor
        predictions = session.history.recent()
    finally:
        session.close()
    assert predictor.error is None and predictor.skipped == 0 and predictor.gaps == 0
    # Every window on the grid was predicted, in order, each timed.
    ends = [p.index for p in predictions]
    assert ends == list(range(32, len(labels) + 1, 16))
    assert all(p.latency_ms > 0 and p.model_ms > 0 and p.window_ms >= 0 for p in predictions)
    assert all(p.proba.sum() == pytest.approx(1) for p in predictions)
    accuracy = window_accuracy(predictions, labels)
    assert set(accuracy) == {a for a, _ in SCRIPT}
    assert min(accuracy.values()) >= 0.9, accuracy
    # The smoothed labels follow the script: each activity, in order, once the smoothing has caught up.
    pure = window_labels(labels, 32, 16)
    settled = [p.label for p, truth, before in zip(predictions[3:], pure[3:], pure[:-3]) if truth and truth == before]
    assert np.mean([s == t for s, t in zip(settled, [x for x, y in zip(pure[3:], pure[:-3]) if x and x == y])]) >= 0.9


def test_a_window_is_never_cut_across_a_gap(default_bundle, scripted_log):
    _, _, si = scripted_log
    buffer = SampleBuffer(4096)
    predictor = Predictor(buffer, default_bundle, RATE_HZ, smooth_k=1)
    predictor.start()
    try:
        t_us = np.arange(100) * 20_000
        t_us[40:] += 2_000_000  # the board was unplugged for two seconds after sample 40
        for a in range(0, 100, 4):  # arriving a few samples at a time, as from a port
            buffer.append(np.arange(a, a + 4), t_us[a:a + 4], time.monotonic(), si[a:a + 4])
            time.sleep(0.002)
        assert predictor.history.wait(1, 10)
        time.sleep(0.2)
    finally:
        predictor.stop()
    ends = [p.index for p in predictor.history.recent()]
    assert predictor.gaps == 1
    assert ends[:2] == [32, 72]  # 48 would span the gap; the next window wholly after it ends at 40 + 32
    assert all(not (e - 32 < 40 < e) for e in ends)


def test_the_predictor_makes_the_windows_training_makes_of_a_recorded_log_with_a_pause_and_a_reset(tmp_path):
    """Replayed through the reader, a log holds the windows `window_dataset` cuts from its recording."""
    raw, labels = motion.synth_script([("still", 3), ("walking", 5), ("jumping", 4)], RATE_HZ, subject=6, seed=3)
    info = protocol.BoardInfo(rate_hz=RATE_HZ)
    t_us = 1_000_000 + np.arange(600) * 20_000
    t_us[203:] += 2_000_000  # unplugged for two seconds after sample 203
    seq, boot = np.arange(600), slice(390, 600)
    seq[boot], t_us[boot] = np.arange(210), 1_500_000 + np.arange(210) * 20_000  # reset: the board booted again
    log = tmp_path / "pause_and_reset.bin"
    log.write_bytes(protocol.encode_info(info) + protocol.encode_samples(seq[:390], t_us[:390], raw[:390])
                    + protocol.encode_info(info) + protocol.encode_samples(seq[boot], t_us[boot], raw[boot]))
    recorded = subprocess.run([sys.executable, "-m", "harduino.cli", "record", f"replay://{log}?speed=max",
                               "--subject", "s6", "--label", "x", "--out", str(tmp_path / "rec")],
                              capture_output=True, text=True, timeout=60)
    assert recorded.returncode == 0, recorded.stderr
    rec = load_recordings(tmp_path / "rec")[0]
    ws = window_dataset([rec], "aligned", label_policy="majority")
    assert len(rec) == 600 and len(ws) == (203 - 32) // 16 + 1 + (187 - 32) // 16 + 1 + (210 - 32) // 16 + 1
    starts = np.searchsorted(rec.t, ws.t0)
    sim = window_dataset(load_recordings(ROOT / "data" / "sim"), "aligned")
    est = fit_estimator(make_estimator("logreg", "aligned", rate_hz=RATE_HZ), sim.X, sim.y)
    model = save_bundle(est, tmp_path / "m", dict(architecture="logreg", channel_set="aligned", window=32, step=16,
                                                  rate_hz=RATE_HZ))
    session = LiveSession(model, smooth_k=1)
    try:
        run_session(session, replay_url(log))
        predictor, predictions = session.predictor, session.history.recent()
    finally:
        session.close()
    assert predictor.error is None and predictor.skipped == 0 and predictor.gaps == 2
    # The same windows: the same first and last samples (the recording keeps every sample the reader got)...
    assert [p.index for p in predictions] == list(starts + 32)
    assert [p.t for p in predictions] == pytest.approx(list(1.0 + rec.t[starts + 31]), abs=1e-5)  # t from 1 s on
    # ... and the same values (the gravity filter started again after each gap), to the CSV's four decimals.
    expected = load_bundle(model).predict_proba(ws.X)
    assert np.allclose([p.raw_proba for p in predictions], expected, atol=2e-3)


# ---------------------------------------------------------------- terminal mode and the command

def test_without_a_display_live_prints_the_activities_in_order(scripted_log, monkeypatch, capsys):
    path, _, _ = scripted_log
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["live", replay_url(path), "--model", str(DEFAULT_MODEL)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("harduino live: replay://") and lines[-1].startswith("end: ")
    labels = [line.split()[2] for line in lines[1:-1]]
    assert all(label in {a for a, _ in SCRIPT} | {UNCERTAIN} for label in labels)
    # An activity lasting over a second (board time) is printed again each second: those are the ones a
    # user sees; a blip at a change of activity is printed once.
    runs = [(x, len(list(g))) for x, g in itertools.groupby(labels)]
    held = [x for x, n in runs if n >= 2 and x != UNCERTAIN]
    order = [x for x, _ in itertools.groupby(held)]
    assert order == [a for a, _ in SCRIPT]
    assert "0 skipped" in lines[-1] and "latency p50" in lines[-1]


@pytest.mark.parametrize("argv, message", [
    (["live", "sim://", "--model", "no/such/model", "--no-gui"], "is not a model bundle"),
    (["live", "/dev/no-such-port", "--no-gui"], "no serial port /dev/no-such-port"),
    (["live", "sim://?rate=100", "--no-gui"], "trained on data at 50 Hz but this data is 100 Hz"),
    (["live", "sim://", "--threshold", "1.5", "--no-gui"], "--threshold must be a probability"),
    (["live", "sim://", "--step", "0", "--no-gui"], "--step must be a positive"),
])
def test_bad_input_is_one_clear_sentence(argv, message, capsys):
    if "--model" not in argv:
        argv = argv + ["--model", str(DEFAULT_MODEL)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("harduino: error: ") and message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_benchmark_quick_prints_its_figures():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "live.py"), "--quick"], capture_output=True,
                         text=True, timeout=240, cwd=ROOT, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    for figure in ("fps at 100 Hz", "fps at 1000 Hz", "latency p50", "latency p99", "CPU with the dashboard",
                   "CPU in the terminal"):
        assert figure in out.stdout
