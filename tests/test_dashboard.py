"""The dashboard (pytest-qt, offscreen): what it draws from a replayed log, model swaps, recording, unplugging."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PyQt5 import QtCore, QtGui

from conftest import DEFAULT_MODEL, RATE_HZ, SCRIPT, replay_url, window_accuracy, write_scripted_log
from harduino import protocol, transport
from harduino.dataset import select_channels, window_dataset
from harduino.live.dashboard import Dashboard, class_colour
from harduino.live.linkpanel import ALARM_BOLD, PLAIN
from harduino.live.session import LiveSession
from harduino.models import fit_estimator, make_estimator, save_bundle
from harduino.motion import synth_activity
from harduino.ptyserver import PtyBoard
from harduino.recording import load_recording
from harduino.windowing import windows

SECONDS = 8.0


def run_until(qapp, condition, timeout: float = 30.0) -> None:
    """Let the event loop run (timers draw, threads stream) until condition() holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        qapp.processEvents(QtCore.QEventLoop.AllEvents, 20)
        time.sleep(0.005)


@pytest.fixture(scope="module")
def replayed(qapp, tmp_path_factory):
    """A dashboard that has played a scripted log to its end, and what it showed at each frame:
    `shifted` the samples each frame shifted into the curves, `frames` what the bars, the activity
    and the timeline showed after each frame that drew."""
    path = tmp_path_factory.mktemp("dash") / "scripted.bin"
    labels, si = write_scripted_log(path)
    window = Dashboard(LiveSession(DEFAULT_MODEL, smooth_k=3), seconds=SECONDS,
                       out=tmp_path_factory.mktemp("rec"))
    signals, tick, timeline = window.signals, window.tick, window.timeline
    window.shifted, window.frames, drawn_at = [], [], []

    def take(buffer):
        k = type(signals).take(signals, buffer)
        window.shifted.append(signals.y[:, signals.y.shape[1] - k:].copy())
        return k

    def draw(newest_t):  # the newest sample's time the timeline was drawn for
        drawn_at.append(newest_t)
        type(timeline).draw(timeline, newest_t)

    def observed_tick():
        drawn = window.frames_drawn
        tick()
        if window.frames_drawn > drawn and window.drawn_predictions:
            window.frames.append(dict(seen=window.drawn_predictions, bars=window.bars.values.copy(),
                                      activity=window.activity_label.text(), rgb=window.timeline.rgb[0].copy(),
                                      newest_t=drawn_at[-1]))
    signals.take, timeline.draw = take, draw
    window.timer.timeout.disconnect()
    window.timer.timeout.connect(observed_tick)
    window.show()
    window.connect_port(replay_url(path))
    run_until(qapp, lambda: window.session.finished)
    observed_tick()  # the last samples and predictions
    window.update_panels()
    yield window, labels, si
    window.close()


def test_every_sample_of_the_log_reaches_the_curves_once_in_order(replayed):
    window, _, si = replayed
    shifted = np.concatenate(window.shifted, axis=1)
    expected = np.column_stack([si[:, :3], np.linalg.norm(si[:, :3], axis=1),
                                si[:, 3:], np.linalg.norm(si[:, 3:], axis=1)]).T
    assert shifted.shape == expected.shape  # none left out, none twice
    assert shifted == pytest.approx(expected)
    assert len(window.shifted) > 10  # frame by frame, not all at the end


def test_bars_activity_and_timeline_follow_the_replay_frame_by_frame(replayed):
    window, _, _ = replayed
    predictions = window.session.history.recent()
    classes = predictions[0].classes
    dt = 16 / RATE_HZ                             # seconds between predictions
    lut = {c: class_colour(c, classes) for c in classes}
    columns = window.frames[0]["rgb"].shape[0]
    times = np.array([p.t for p in predictions])
    assert len(window.frames) > 30 and len({f["seen"] for f in window.frames}) > 30
    for frame in window.frames:
        latest = predictions[frame["seen"] - 1]
        assert frame["bars"] == pytest.approx(latest.proba)
        assert frame["activity"] == latest.label.upper()
        # Each band of the timeline: the prediction in force at its time before the newest sample,
        # none (dark) before the first and where the predictions stopped coming.
        at = frame["newest_t"] - SECONDS + (np.arange(columns) + 0.5) * SECONDS / columns
        i = np.searchsorted(times[: frame["seen"]], at, side="right") - 1
        shown = (i >= 0) & (at - times[np.maximum(i, 0)] < 2 * dt)
        expected = [lut[predictions[j].label] if ok else (20, 20, 20) for j, ok in zip(i, shown)]
        got = [tuple(int(v) for v in c) for c in frame["rgb"]]
        # A band's time exactly on a prediction's (or its end) may round either way.
        # (The distance to the nearest multiple of dt: a time just below one wraps to nearly dt.)
        offset = (at[:, None] - times[None, : frame["seen"]]) % dt
        edge = np.minimum(offset, dt - offset).min(axis=1) < 1e-6
        assert [g for g, e, on_edge in zip(got, expected, edge) if not on_edge] == \
            [e for e, on_edge in zip(expected, edge) if not on_edge]
        assert (~edge).sum() >= 0.7 * columns


def test_curves_show_the_last_seconds_of_the_log(replayed):
    window, _, si = replayed
    n = int(SECONDS * RATE_HZ)
    expected = np.column_stack([si[-n:, :3], np.linalg.norm(si[-n:, :3], axis=1),
                                si[-n:, 3:], np.linalg.norm(si[-n:, 3:], axis=1)])
    x, rows = window.signals.shown()
    assert rows.shape == (8, n)
    for row, column in zip(rows, expected.T):
        assert row == pytest.approx(column)
    assert x == pytest.approx((np.arange(n) - (n - 1)) / RATE_HZ)  # s before the newest sample
    # What each plot draws is those rows: acceleration in the first, rotation in the second.
    for item, drawn in zip(window.signals.items, (rows[:4], rows[4:])):
        assert np.array_equal(item.rows, drawn) and np.array_equal(item.xs, x)


def test_bars_and_activity_show_the_latest_prediction(replayed):
    window, _, _ = replayed
    latest = window.session.history.latest()
    assert window.bars.values.sum() == pytest.approx(1.0)
    assert window.bars.values == pytest.approx(latest.proba)
    assert window.bars.classes == latest.classes
    assert window.activity_label.text() == latest.label.upper() == "WAVING"
    # The timeline's newest band is the latest prediction's colour.
    assert tuple(window.timeline.rgb[0, -1]) == class_colour(latest.label, latest.classes)


def test_the_predictions_after_the_last_sample_are_drawn_too(qapp, tmp_path):
    """A frame is drawn when samples or predictions come: nothing else makes the last ones show."""
    path = tmp_path / "short.bin"
    write_scripted_log(path, script=[("still", 2.0), ("walking", 3.0)])
    session = LiveSession(DEFAULT_MODEL)
    model = session.bundle.predict_proba

    def slow_model(windows):  # a slow machine: each prediction comes well after its window's samples
        time.sleep(0.1)
        return model(windows)
    session.bundle.predict_proba = slow_model
    window = Dashboard(session, seconds=SECONDS, out=tmp_path)
    window.show()
    window.connect_port(replay_url(path))
    try:
        run_until(qapp, lambda: window.session.finished)
        history = window.session.history
        run_until(qapp, lambda: window.drawn_predictions == history.count)
        assert history.count and window.signals.index == window.session.reader.buffer.total
        assert window.bars.values == pytest.approx(history.latest().proba)
        assert window.activity_label.text() == history.latest().label.upper() == "WALKING"
    finally:
        window.close()


def test_every_window_is_predicted_and_known_segments_are_right(replayed):
    window, labels, _ = replayed
    predictor = window.session.predictor
    assert predictor.skipped == 0 and predictor.error is None
    predictions = window.session.history.recent()
    assert [p.index for p in predictions] == list(range(32, len(labels) + 1, 16))
    accuracy = window_accuracy(predictions, labels)
    assert set(accuracy) == {a for a, _ in SCRIPT} and min(accuracy.values()) >= 0.9, accuracy


def test_link_panel_says_what_came_over_the_link(replayed):
    window, labels, _ = replayed
    text = window.link_panel.text()
    for part in ("ended", "MPU-6050", f"{len(labels)}", "0 lost, 0 CRC errors", "latency", "0 skipped",
                 str(DEFAULT_MODEL)):
        assert part in text


def test_screenshot_shows_the_dashboard(replayed, tmp_path):
    window, _, _ = replayed
    shot = tmp_path / "dashboard.png"
    assert window.grab().save(str(shot))
    image = QtGui.QImage(str(shot))
    assert image.width() >= 1000 and image.height() >= 600
    # Real drawing, not an empty window: many colours, among them the activity colours of the timeline.
    image = image.convertToFormat(QtGui.QImage.Format_RGB32)  # 4 bytes a pixel: rows never padded
    bgra = np.frombuffer(image.bits().asstring(image.byteCount()), np.uint8).reshape(-1, 4)
    colours = {(int(r), int(g), int(b)) for b, g, r, _ in np.unique(bgra, axis=0)}
    assert len(colours) > 200
    # the last 8 s of the log: jumping, then waving
    assert class_colour("waving", ()) in colours and class_colour("jumping", ()) in colours


# ---------------------------------------------------------------- while streaming

@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    """A random forest trained on the shipped sessions: another real model to swap to."""
    from harduino.dataset import load_recordings
    ws = window_dataset(load_recordings(Path(__file__).resolve().parents[1] / "data" / "sim"), "all")
    est = fit_estimator(make_estimator("rf", "all", rate_hz=ws.rate_hz, n_estimators=20), ws.X, ws.y)
    return save_bundle(est, tmp_path_factory.mktemp("models") / "rf",
                       dict(architecture="rf", channel_set="all", window=32, step=16, rate_hz=ws.rate_hz))


def test_swapping_the_model_keeps_the_stream_running(qtbot, qapp, second_model, tmp_path):
    window = Dashboard(LiveSession(DEFAULT_MODEL), seconds=SECONDS, out=tmp_path)
    qtbot.addWidget(window)
    window.show()
    window.connect_port("sim://?activity=running&subject=6&seed=3")
    history = lambda: window.session.history  # noqa: E731
    run_until(qapp, lambda: history().count >= 3)
    reader = window.session.reader
    assert window.load_model(second_model)
    swapped_at, samples = history().count, reader.buffer.total
    run_until(qapp, lambda: any(p.model.endswith("(rf)") for p in history().since(swapped_at)))
    run_until(qapp, lambda: window.activity_label.text() == "RUNNING")
    assert window.session.reader is reader and reader.stats().connected
    assert reader.buffer.total > samples
    assert "(rf)" in window.session.model_name and window.session.predictor.error is None
    # A model for another rate is refused in one sentence and the running one kept.
    other = tmp_path / "fast"
    X = np.concatenate([windows(select_channels(synth_activity(a, 320, 100) * 1e-3, "all")) for a in ("still", "waving")])
    y = np.repeat(["still", "waving"], len(X) // 2)
    save_bundle(fit_estimator(make_estimator("logreg", "all", rate_hz=100), X, y), other,
                dict(architecture="logreg", channel_set="all", window=32, step=16, rate_hz=100))
    assert not window.load_model(other)
    assert "trained on data at 100 Hz" in window.statusBar().currentMessage()
    assert "(rf)" in window.session.model_name
    window.close()


def test_record_button_and_label_keys_write_a_recording(qtbot, qapp, tmp_path):
    window = Dashboard(LiveSession(DEFAULT_MODEL), seconds=SECONDS, out=tmp_path, subject="s9")
    qtbot.addWidget(window)
    window.show()
    window.connect_port("sim://?activity=walking&subject=6&speed=1")
    reader = lambda: window.session.reader  # noqa: E731
    run_until(qapp, lambda: reader().info is not None and reader().buffer.total > 10)
    classes = window.labels()
    qtbot.keyClick(window, "4")  # before recording: the label the recording starts with
    qtbot.mouseClick(window.record_button, QtCore.Qt.LeftButton)
    assert window.recording is not None
    start = window.recording.session.recorder.start_index
    run_until(qapp, lambda: window.recording.written >= 25)
    qtbot.keyClick(window, "0")  # no label from here on
    run_until(qapp, lambda: window.recording.written >= 50)
    qtbot.mouseClick(window.record_button, QtCore.Qt.LeftButton)
    assert window.recording is None
    [csv] = tmp_path.glob("*.csv")
    rec = load_recording(csv)
    assert csv.name.startswith(f"s9_{classes[3]}_") and rec.subject == "s9" and rec.rate_hz == 50
    assert rec.labels[0] == classes[3] and rec.labels[-1] == ""
    assert list(rec.labels[: np.argmax(rec.labels == "")]) == [classes[3]] * int(np.argmax(rec.labels == ""))
    # The samples are the board's, in order, from when the button was pressed.
    block = reader().buffer.since(start)
    assert np.array_equal(rec.seq, block.seq[: len(rec)])
    assert rec.si == pytest.approx(block.si[: len(rec)], abs=1e-4)
    # The raw log beside it replays to the same samples.
    chunk = protocol.Decoder().feed(csv.with_suffix(".bin").read_bytes())
    assert len(chunk.infos) == 1 and np.array_equal(chunk.seq & 0xFFFF, rec.seq & 0xFFFF)
    assert np.array_equal(chunk.raw, np.rint(rec.si / chunk.infos[0][1].si_scale).astype(np.int16))
    window.close()


def test_label_keys_are_numbered_from_labels_and_record_an_activity_the_model_does_not_know(qtbot, qapp, tmp_path):
    """`live --labels cycling,walking`: key 1 records cycling, as `record --labels` numbers it."""
    import json

    window = Dashboard(LiveSession(DEFAULT_MODEL), seconds=SECONDS, out=tmp_path, subject="s9",
                       labels=("cycling", "walking"))
    qtbot.addWidget(window)
    window.show()
    window.connect_port("sim://?activity=walking&subject=6&speed=1")
    run_until(qapp, lambda: window.session.reader.info is not None)
    assert "cycling" not in window.session.bundle.classes_
    qtbot.keyClick(window, "1")
    qtbot.mouseClick(window.record_button, QtCore.Qt.LeftButton)
    run_until(qapp, lambda: window.recording.written >= 20)
    window.update_panels()
    assert "1 cycling, 2 walking, 0 none" in window.link_panel.text()
    qtbot.mouseClick(window.record_button, QtCore.Qt.LeftButton)
    [csv] = tmp_path.glob("*.csv")
    rec = load_recording(csv)
    assert csv.name.startswith("s9_cycling_") and len(rec) >= 20 and set(rec.labels) == {"cycling"}
    assert json.loads(csv.with_suffix(".json").read_text())["labels"] == ["cycling", "walking"]
    window.close()


def test_the_record_button_and_record_make_identical_files_from_the_same_replayed_log(qtbot, qapp, tmp_path):
    """One log played into a serial port (a pseudo-terminal) twice: to the dashboard's Record button, to `record`."""
    import json
    import select
    import subprocess
    import sys
    import tty

    rate, n = 50, 100
    raw = synth_activity("walking", n, rate, subject=2, seed=4)
    info = protocol.encode_info(protocol.BoardInfo(rate_hz=rate))
    samples = protocol.encode_samples(np.arange(n), 1_000_000 + np.arange(n) * 20_000, raw)
    master, slave = os.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)

    def wait_until_asked() -> None:
        """The recorder has opened the port when it asks the board who it is (pyserial drops what came before)."""
        heard, deadline = b"", time.monotonic() + 30
        while b"info\n" not in heard:
            assert time.monotonic() < deadline, heard
            qapp.processEvents()
            if select.select([master], [], [], 0.02)[0]:
                heard += os.read(master, 1024)

    try:
        window = Dashboard(LiveSession(DEFAULT_MODEL), seconds=SECONDS, out=tmp_path / "dashboard", subject="s5",
                           labels=("walking",))
        qtbot.addWidget(window)
        window.show()
        window.connect_port(port)
        wait_until_asked()
        os.write(master, info)
        run_until(qapp, lambda: window.session.reader.info is not None)
        qtbot.keyClick(window, "1")
        qtbot.mouseClick(window.record_button, QtCore.Qt.LeftButton)
        os.write(master, samples)
        run_until(qapp, lambda: window.recording.written >= n)
        qtbot.mouseClick(window.record_button, QtCore.Qt.LeftButton)
        window.close()

        proc = subprocess.Popen([sys.executable, "-m", "harduino.cli", "record", port, "--subject", "s5", "--label",
                                 "walking", "--duration", str(n / rate), "--out", str(tmp_path / "cli")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_until_asked()
        os.write(master, info + samples)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        os.close(master)
        os.close(slave)
    [a], [b] = (tmp_path / "dashboard").glob("*.csv"), (tmp_path / "cli").glob("*.csv")
    assert len(load_recording(a)) == n and a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".bin").read_bytes() == b.with_suffix(".bin").read_bytes() == info + samples
    when = ("session", "raw_log", "start_time", "end_time", "wall_seconds", "link")  # names by the time, the link
    meta = [{k: v for k, v in json.loads(x.with_suffix(".json").read_text()).items() if k not in when} for x in (a, b)]
    assert meta[0] == meta[1] and meta[0]["labels"] == ["walking"] and meta[0]["samples"] == n


def test_a_body_model_asks_the_wearer_to_stand_still_until_it_is_calibrated(qtbot, qapp, tmp_path):
    from harduino.dataset import load_recordings
    from harduino.motion import synth_script

    ws = window_dataset(load_recordings(Path(__file__).resolve().parents[1] / "data" / "sim"), "body")
    bundle = save_bundle(fit_estimator(make_estimator("logreg", "body", rate_hz=ws.rate_hz), ws.X, ws.y),
                         tmp_path / "body", dict(architecture="logreg", channel_set="body", window=32, step=16,
                                                 rate_hz=ws.rate_hz))
    raw, _ = synth_script([("walking", 3.0), ("still", 5.0), ("walking", 4.0)], 50, subject=6, seed=7)
    log = tmp_path / "walk-stand-walk.bin"
    log.write_bytes(protocol.encode_info(protocol.BoardInfo(rate_hz=50)) +
                    protocol.encode_samples(np.arange(len(raw)), 1_000_000 + np.arange(len(raw)) * 20_000, raw))
    window = Dashboard(LiveSession(bundle), seconds=SECONDS, out=tmp_path)
    qtbot.addWidget(window)
    window.show()
    window.connect_port(f"replay://{log}?speed=4")
    run_until(qapp, lambda: window.prompt_label.isVisible())
    assert window.prompt_label.text() == "Waiting for the wearer to stand still for a few seconds (calibration)"
    assert window.session.history.count == 0  # no prediction before the calibration
    run_until(qapp, lambda: window.session.finished)
    window.tick()
    window.update_panels()
    assert not window.prompt_label.isVisible() and window.activity_label.text() == "WALKING"
    window.close()


def test_a_recording_started_while_streaming_keeps_the_boards_own_bytes(qtbot, qapp, tmp_path):
    shipped = sorted((Path(__file__).resolve().parents[1] / "data" / "sim").glob("s2_walking_*.bin"))[0].read_bytes()
    info_len, frame = protocol.INFO_FRAME_LEN, protocol.SAMPLE_FRAME_LEN
    frames = [shipped[i:i + frame] for i in range(info_len, len(shipped) - frame + 1, frame)]
    # A noisy link: a burst of line noise after every 25th frame. A copy keeps it; samples alone could not.
    sent = shipped[:info_len] + b"".join(f + (b"\x00NOISE\xff" if k % 25 == 24 else b"") for k, f in enumerate(frames))
    log = tmp_path / "noisy.bin"
    log.write_bytes(sent)
    window = Dashboard(LiveSession(DEFAULT_MODEL), seconds=SECONDS, out=tmp_path / "rec", subject="s2")
    qtbot.addWidget(window)
    window.show()
    window.connect_port(f"replay://{log}?speed=4")
    run_until(qapp, lambda: window.session.reader.buffer.total > 60)  # well into the stream
    qtbot.mouseClick(window.record_button, QtCore.Qt.LeftButton)
    run_until(qapp, lambda: window.recording.written >= 100)
    qtbot.mouseClick(window.record_button, QtCore.Qt.LeftButton)
    [csv] = (tmp_path / "rec").glob("*.csv")
    rec, copy = load_recording(csv), csv.with_suffix(".bin").read_bytes()
    # The board's info frame, then a run of the very bytes it sent, noise included,
    # cut after the last recorded sample.
    assert copy[:info_len] == sent[:info_len] and copy[info_len:] in sent and b"NOISE" in copy
    decoder = protocol.Decoder()
    chunk = decoder.feed(copy)
    assert np.array_equal(chunk.seq & 0xFFFF, rec.seq & 0xFFFF) and decoder.pending_bytes == 0
    assert rec.seq[0] > 60 and len(rec) >= 100
    window.close()


def test_record_with_a_blank_subject_says_so_and_records_nothing(qtbot, qapp, tmp_path):
    window = Dashboard(LiveSession(DEFAULT_MODEL), seconds=SECONDS, out=tmp_path)
    qtbot.addWidget(window)
    window.show()
    window.connect_port("sim://?activity=walking&speed=1")
    run_until(qapp, lambda: window.session.reader.info is not None)
    window.subject_edit.setText("   ")
    qtbot.mouseClick(window.record_button, QtCore.Qt.LeftButton)
    assert window.recording is None and not window.record_button.isChecked()
    assert "needs a subject" in window.statusBar().currentMessage()
    assert not list(tmp_path.iterdir())
    window.close()


def test_link_panel_shows_the_links_values_and_state_as_they_change(qtbot, qapp, tmp_path):
    window = Dashboard(LiveSession(DEFAULT_MODEL), seconds=SECONDS, out=tmp_path)
    qtbot.addWidget(window)
    window.show()
    panel = window.link_panel
    window.update_panels()
    assert panel.value("port") == "not connected" and panel.value("state") is None
    try:
        window.connect_port("sim://?activity=walking&seed=3")
        reader = window.session.reader
        run_until(qapp, lambda: window.session.history.count >= 1)
        window.update_panels()
        assert panel.value("port") == "sim://?activity=walking&seed=3"
        assert panel.value("state") == reader.stats().state_text(detail=True) == "connected"
        assert panel.look("state") == PLAIN
        assert panel.value("board").startswith("MPU-6050 fw ") and panel.value("board").endswith(", 50 Hz")
        first = int(panel.value("samples"))
        assert 0 < first <= reader.buffer.total
        run_until(qapp, lambda: reader.buffer.total > first + 25)
        window.update_panels()
        assert int(panel.value("samples")) > first + 25  # the new count, not the one first shown
        assert panel.value("windows").endswith("predicted, 0 skipped")
        window.toggle_connection()
        window.update_panels()
        assert panel.value("port") == "not connected"
        assert panel.value("state") is None and panel.value("samples") is None  # those rows hidden again
        assert panel.value("label keys").endswith("0 none; next: -")
    finally:
        window.close()


def test_an_unplugged_board_shows_and_comes_back(qtbot, qapp, tmp_path):
    link = tmp_path / "board"  # a stable name, as /dev/serial/by-id gives a real board
    board = PtyBoard(transport.open_port("sim://?rate=50&activity=still"))
    os.symlink(board.plug(), link)
    window = Dashboard(LiveSession(DEFAULT_MODEL), seconds=SECONDS, out=tmp_path)
    qtbot.addWidget(window)
    window.show()
    try:
        window.connect_port(str(link))
        reader = window.session.reader
        run_until(qapp, lambda: window.session.history.count >= 1)
        board.unplug()
        run_until(qapp, lambda: "DISCONNECTED" in window.link_panel.text())
        assert "port lost" in window.link_panel.text()
        state = window.link_panel.value("state")  # worded by the reader, in the alarm's red
        assert state.startswith("DISCONNECTED") and state in reader.stats().state_text(detail=True)
        assert window.link_panel.look("state") == ALARM_BOLD
        os.unlink(link)
        os.symlink(board.plug(), link)
        count = window.session.history.count
        run_until(qapp, lambda: window.session.history.count > count + 1 and "DISCONNECTED" not in
                  window.link_panel.text())
        assert "1 reconnects" in window.link_panel.text() and window.session.reader is reader
        assert window.activity_label.text() == "STILL"
    finally:
        window.close()
        board.close()


def test_a_hidden_or_minimised_dashboard_draws_nothing_then_shows_every_sample(qtbot, qapp, tmp_path):
    window = Dashboard(LiveSession(DEFAULT_MODEL), seconds=SECONDS, out=tmp_path)
    qtbot.addWidget(window)
    paints = []

    class PaintCounter(QtCore.QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QtCore.QEvent.Paint:
                paints.append(time.monotonic())
            return False
    counter = PaintCounter()
    for widget in (window.graphics.viewport(), *window.signals.items):  # the plots, and the curves over them
        widget.installEventFilter(counter)
    window.show()
    window.connect_port("sim://?activity=walking&subject=4&seed=2")
    reader, signals = window.session.reader, window.signals
    run_until(qapp, lambda: reader.info is not None and reader.buffer.total > 20 and paints)
    for away in (window.hide, window.showMinimized):
        away()
        qapp.processEvents()
        paints.clear()
        taken, predictions, total = signals.index, window.drawn_predictions, reader.buffer.total
        run_until(qapp, lambda: reader.buffer.total > total + 25 and window.session.history.count > predictions)
        assert not paints and signals.index == taken  # no frame drawn, no sample shifted in
        window.showNormal()
        run_until(qapp, lambda: signals.index > reader.buffer.total - 5 and paints
                  and window.drawn_predictions > predictions)
        # The samples that came while away are on the curves, in order, with nothing left out.
        x, rows = signals.shown()
        si = reader.buffer.since(signals.index - rows.shape[1]).si[: rows.shape[1]]
        assert rows.shape[1] == min(signals.index, int(SECONDS * reader.info.rate_hz)) and signals.index > total + 25
        assert np.allclose(rows[[0, 1, 2, 4, 5, 6]], si.T) and np.allclose(rows[3], np.linalg.norm(si[:, :3], axis=1))
        # The bars and the activity show the newest prediction again.
        newest_drawn = window.session.history.since(window.drawn_predictions - 1)[0]
        assert window.bars.values == pytest.approx(newest_drawn.proba)
    window.close()


def red_pixels(widget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QtGui.QImage.Format_RGB32)
    pixels = np.frombuffer(image.bits().asstring(image.byteCount()), np.uint8).reshape(image.height(), -1, 4)
    return (pixels[..., 2] > 200) & (pixels[..., 1] < 60)


def red_curve_plot():
    """A 500 x 300 plot of the last 10 s, y from -3 to 3, with one red curve over its data area."""
    import pyqtgraph as pg

    from harduino.live.curves import ScrollingCurves
    widget = pg.PlotWidget()
    widget.resize(500, 300)
    plot = widget.getPlotItem()
    item = ScrollingCurves(["#ff0000"], plot)
    plot.setXRange(-10, 0, padding=0)
    plot.setYRange(-3, 3, padding=0)
    return widget, item


def test_the_newest_samples_never_show_at_the_plots_left_edge(qapp):
    """The image is a ring of columns: what is drawn at its right end must not spill into its left one."""
    widget, item = red_curve_plot()
    n = 500  # 50 Hz over 10 s
    x, rows = (np.arange(n) - (n - 1)) / 50, np.zeros((1, n))
    signal = np.where(np.arange(n) < 150, -2.0, 2.5 * np.sin(np.arange(n) * 0.9))  # still, then moving
    widget.show()
    for _ in range(3):
        qapp.processEvents()
    filled, rng = 0, np.random.default_rng(1)
    while filled < 450:  # 9 s of a 10 s span: the plot's first second stays empty
        k = int(rng.integers(1, 4))
        rows[:, :-k], rows[:, -k:] = rows[:, k:], signal[filled:filled + k]
        filled += k
        item.set_data(x[n - filled:], rows[:, n - filled:], k)
        qapp.processEvents()
    # The curve spans the last 9 of 10 s, one run of columns: nothing red in the first second's.
    columns = np.flatnonzero(red_pixels(widget).any(axis=0))
    assert columns.size > 300 and np.diff(columns).max() < 3, columns[:4]


def test_curves_drawn_frame_by_frame_look_like_the_same_curves_drawn_at_once(qapp):
    widget, item = red_curve_plot()
    rate, n = 1000, 10_000  # some 20 samples a pixel column
    x = (np.arange(n) - (n - 1)) / rate
    t = np.arange(3 * n) / rate
    signal = np.sin(2 * np.pi * 0.7 * t) * 2 + np.where(np.arange(3 * n) % 997 == 0, 0.9, 0)  # spikes
    widget.show()
    for _ in range(3):  # laid out and shown before the samples come
        qapp.processEvents()
    rows, filled, rng = np.zeros((1, n)), 0, np.random.default_rng(3)
    while filled < 2 * n:  # samples in blocks of varying size, as frames take them, well past one span
        k = int(rng.integers(1, 80))
        rows[:, :-k], rows[:, -k:] = rows[:, k:], signal[filled:filled + k]
        filled += k
        shown = min(filled, n)
        item.set_data(x[n - shown:], rows[:, n - shown:], k)
        qapp.processEvents()
        first = first if filled > k else item.full_draws
    scrolled, draws = red_pixels(widget), item.full_draws
    item.set_data(x, rows)  # starts over: the whole picture drawn again from the data
    qapp.processEvents()
    fresh = red_pixels(widget)
    assert draws == first and item.full_draws == draws + 1  # the later frames drew only their new samples
    # The same line: in each pixel column the scrolled curve spans what the fresh one spans in that
    # column and its neighbours, give or take a few pixels (the fresh one joins each column's
    # minimum to its maximum, a zigzag a little wider on steep slopes), spikes included.
    assert fresh.sum() > 1000
    assert covered(scrolled, fresh, 2) >= 0.98 and covered(fresh, scrolled, 4) >= 0.95
    assert extent(scrolled)[0].min() <= extent(fresh)[0].min() + 1  # the highest spike as high


def extent(red: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(top, bottom) row of the red pixels in each column (past the image's edges where there are none)."""
    some = red.any(axis=0)
    return (np.where(some, np.argmax(red, axis=0), red.shape[0]),
            np.where(some, red.shape[0] - 1 - np.argmax(red[::-1], axis=0), -1))


def covered(a: np.ndarray, b: np.ndarray, pixels: int) -> float:
    """The share of a's columns whose red lies within b's red in that column or a neighbour, +- pixels."""
    (top_a, bottom_a), (top_b, bottom_b) = extent(a), extent(b)
    low = np.minimum.reduce([np.roll(top_b, d) for d in (-1, 0, 1)]) - pixels
    high = np.maximum.reduce([np.roll(bottom_b, d) for d in (-1, 0, 1)]) + pixels
    return float(((top_a >= low) & (bottom_a <= high))[a.any(axis=0)].mean())


def test_a_one_sample_spike_shows_when_the_plot_has_fewer_pixels_than_samples(qapp):
    import pyqtgraph as pg

    from harduino.live.curves import ScrollingCurves
    widget = pg.PlotWidget()
    widget.resize(400, 300)
    plot = widget.getPlotItem()
    item = ScrollingCurves(["#ff0000"], plot)
    plot.setXRange(-10, 0, padding=0)
    plot.setYRange(-1, 11, padding=0)
    n = 10_000  # 10 s at 1 kHz: some 30 samples a pixel column
    rows = np.zeros((1, n))
    rows[0, 6543] = 10.0
    widget.show()
    item.set_data((np.arange(n) - (n - 1)) / 1000, rows)
    qapp.processEvents()
    red = red_pixels(widget)
    rows_with_red = np.flatnonzero(red.any(axis=1))
    # The line at 0 and the spike's peak near 10: red pixels span most of the plot's height.
    assert rows_with_red.size and rows_with_red.max() - rows_with_red.min() > 0.6 * plot.vb.height()
