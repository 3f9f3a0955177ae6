"""Recordings: the format round-trips, bad files are one clear sentence, the recorder survives kill -9."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SCALE, only, raw_counts, saved_counts
from harduino import dataset, motion, protocol
from harduino.errors import UserError
from harduino.reader import Reader
from harduino.recording import RecordingNote, load_recording, write_recording

RECORD = [sys.executable, "-m", "harduino.cli", "record"]


def record(tmp_path, *args) -> tuple[int, str, str]:
    proc = subprocess.run(RECORD + list(args), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    return proc.returncode, proc.stdout, proc.stderr


# ---------------------------------------------------------------- the format

def test_written_recording_loads_back(tmp_path):
    raw = motion.synth_activity("jumping", 250, 50, subject=4)
    labels = np.array(["jumping"] * 200 + [""] * 50)
    path = write_recording(tmp_path, "s4_jumping_x", np.arange(250) / 50, raw * SCALE, labels,
                           {"subject": "s4", "rate_hz": 50})
    rec = load_recording(path)
    assert (rec.subject, rec.session, rec.rate_hz, len(rec)) == ("s4", "s4_jumping_x", 50.0, 250)
    assert np.array_equal(raw_counts(rec.si), raw)
    assert np.allclose(rec.t, np.arange(250) / 50)
    assert list(rec.labels[198:202]) == ["jumping", "jumping", "", ""]
    assert rec.seq is None and rec.notes == []


def test_a_csv_written_by_hand_loads_like_a_recorded_one(tmp_path):
    (tmp_path / "mine.csv").write_text(
        "t,ax,ay,az,gx,gy,gz,label\n"
        "0.00,0.1,0.2,9.81,0.01,0.02,0.03,still\n"
        "0.02,0.1,0.2,9.80,0.01,0.02,0.03,still\n"
        "0.04,1.5,0.2,9.60,0.5,0.02,0.03,\n"
        '0.06,1.5,0.2,9.60,0.5,0.02,0.03,"still, mostly"\n')
    (tmp_path / "mine.json").write_text(json.dumps({"subject": 7, "rate_hz": 50}))
    rec = load_recording(tmp_path / "mine.csv")
    assert rec.subject == "7" and rec.session == "mine" and rec.rate_hz == 50
    assert rec.si.shape == (4, 6) and rec.si[2, 0] == 1.5 and rec.si[1, 2] == 9.80
    assert list(rec.labels) == ["still", "still", "", "still, mostly"]


def test_a_recording_stopped_before_its_first_sample_loads_empty(tmp_path):
    (tmp_path / "none.csv").write_text("t,ax,ay,az,gx,gy,gz,label\n")
    (tmp_path / "none.json").write_text(json.dumps({"subject": "s1", "rate_hz": 50}))
    rec = load_recording(tmp_path / "none.csv")
    assert len(rec) == 0 and rec.si.shape == (0, 6) and rec.labels.shape == (0,)


def test_half_written_last_line_is_skipped_with_a_note(tmp_path):
    raw = motion.synth_activity("walking", 40, 50)
    path = write_recording(tmp_path, "cut", np.arange(40) / 50, raw * SCALE, "walking",
                           {"subject": "s0", "rate_hz": 50})
    with open(path, "a") as f:
        f.write("0.8000,1.23")  # what a kill in the middle of a write leaves
    with pytest.warns(RecordingNote, match="half-written last line 42"):
        rec = load_recording(path)
    assert len(rec) == 40 and np.array_equal(raw_counts(rec.si), raw)
    assert rec.notes and "cut.csv" in rec.notes[0]


@pytest.mark.parametrize("content, sidecar, message", [
    ("t,ax,ay,az,gx,gy,gz,label\n0,1,2,3,4,5,6,a\n0.02,1,2,x,4,5,6,a\n0.04,1,2,3,4,5,6,a\n", {"subject": 1, "rate_hz": 50},
     r"bad\.csv line 3: 'x' in column az is not a number"),
    ("t,ax,ay,az,gx,gy,gz,label\n0,1,2,3,4,5,6,a\n0.02,1,2,3,4,a\n", {"subject": 1, "rate_hz": 50},
     r"bad\.csv line 3 has 6 fields, the header has 8"),
    ("time,x,y,z\n0,1,2,3\n", {"subject": 1, "rate_hz": 50}, r"bad\.csv line 1 is not a recording header"),
    ("t,ax,ay,az,gx,gy,gz,label\n0,1,2,3,4,5,nan,a\n", {"subject": 1, "rate_hz": 50}, r"line 2 .*not a finite"),
    ("t,ax,ay,az,gx,gy,gz,label\n", {"subject": 1}, r"bad\.json lacks 'rate_hz'"),
    ("t,ax,ay,az,gx,gy,gz,label\n", {"subject": 1, "rate_hz": -5}, r"rate_hz -5"),
    ("t,ax,ay,az,gx,gy,gz,label\n", None, r"bad\.csv has no sidecar bad\.json"),
    ("", {"subject": 1, "rate_hz": 50}, r"bad\.csv is empty"),
])
def test_malformed_recordings_are_one_clear_sentence_naming_file_and_line(tmp_path, content, sidecar, message):
    (tmp_path / "bad.csv").write_text(content)
    if sidecar is not None:
        (tmp_path / "bad.json").write_text(json.dumps(sidecar))
    with pytest.raises(UserError, match=message):
        load_recording(tmp_path / "bad.csv")


def test_not_a_recording(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\0" * 10)
    with pytest.raises(UserError, match="not a recording"):
        load_recording(tmp_path / "model.bin")
    with pytest.raises(UserError, match="no such recording"):
        load_recording(tmp_path / "missing.csv")


# ---------------------------------------------------------------- the recorder

def test_recorder_killed_with_sigkill_leaves_every_sample_it_reported(tmp_path):
    url = "sim://?activity=running&subject=3&seed=5&rate=200"
    proc = subprocess.Popen(RECORD + [url, "--subject", "s3", "--label", "running", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        saved = saved_counts(proc, 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    n = saved[-1]
    assert saved == sorted(saved) and n > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordingNote)  # the kill may have cut the last line
        rec = load_recording(only(tmp_path, "s3_running_*.csv"))
    assert len(rec) >= n
    # the first N rows are the samples the board sent, from the first one the recorder got
    first = int(rec.seq[0])
    sent = motion.synth_activity("running", n, 200, subject=3, seed=5, t0=first / 200)
    assert np.array_equal(raw_counts(rec.si[:n]), sent)
    assert np.array_equal(rec.seq[:n], first + np.arange(n))
    assert np.allclose(rec.t[:n], np.arange(n) / 200)
    assert set(rec.labels) == {"running"}
    meta = json.loads(only(tmp_path, "*.json").read_text())
    assert meta["subject"] == "s3" and meta["rate_hz"] == 200 and meta["board"]["sensor"] == "MPU-6050"


def test_recorded_session_replays_to_the_same_samples(tmp_path):
    url = "sim://?script=still:2,waving:3&subject=1&seed=2&speed=max"
    code, out, err = record(tmp_path, url, "--subject", "s1", "--label", "mixed", "--out", "a", "--duration", "5")
    assert code == 0, err
    assert out.splitlines()[-1] == "saved 250"
    rec = load_recording(only(tmp_path / "a", "*.csv"))
    raw, _ = motion.synth_script([("still", 2), ("waving", 3)], 50, subject=1, seed=2)
    assert np.array_equal(raw_counts(rec.si), raw)
    meta = json.loads(only(tmp_path / "a", "*.json").read_text())
    assert meta["samples"] == 250 and meta["label"] == "mixed" and "link" in meta
    log = only(tmp_path / "a", "*.bin")
    # the raw log holds exactly the session: it decodes to the same samples, starting with an info frame
    chunk = protocol.Decoder().feed(log.read_bytes())
    assert chunk.infos and chunk.infos[0][0] == 0
    assert np.array_equal(chunk.raw, raw) and np.array_equal(chunk.seq, rec.seq)

    code, out, err = record(tmp_path, f"replay://{log}?speed=max", "--subject", "s1", "--label", "mixed",
                            "--out", "b")
    assert code == 0, err
    again = load_recording(only(tmp_path / "b", "*.csv"))
    assert np.array_equal(again.si, rec.si) and np.array_equal(again.t_us, rec.t_us)
    assert np.array_equal(again.t, rec.t) and list(again.labels) == list(rec.labels)
    assert only(tmp_path / "b", "*.bin").read_bytes() == log.read_bytes()


@pytest.fixture(scope="module")
def sim_training():
    return dataset.load_recordings(ROOT / "data" / "sim")


@pytest.mark.parametrize("channel_set", ["all", "aligned", "body"])
def test_live_predictions_on_a_replayed_log_are_those_of_the_training_windows(channel_set, sim_training, tmp_path):
    """The predictor's channels (its gravity filter and calibration kept across windows) are training's."""
    from harduino.live.predictor import Predictor
    from harduino.models import fit_estimator, load_bundle, make_estimator, save_bundle
    from harduino.reader import SampleBuffer

    code, _, err = record(tmp_path, "sim://?script=still:4,walking:3,jumping:3&subject=2&speed=max", "--subject",
                          "s2", "--label", "x", "--out", ".", "--duration", "10")
    assert code == 0, err
    rec = dataset.load_recordings(only(tmp_path, "*.csv"))[0]
    assert rec.calibration is not None and rec.calibration.source.startswith("own still stretch")
    training = dataset.window_dataset([rec], channel_set, 32, 16).X
    assert len(training) == (500 - 32) // 16 + 1
    ws = dataset.window_dataset(sim_training, channel_set)
    est = fit_estimator(make_estimator("logreg", channel_set, rate_hz=ws.rate_hz), ws.X, ws.y)
    bundle = load_bundle(save_bundle(est, tmp_path / "m", dict(architecture="logreg", channel_set=channel_set,
                                                                window=32, step=16, rate_hz=ws.rate_hz)))
    reader = Reader(f"replay://{only(tmp_path, '*.bin')}?speed=max")
    reader.start()
    assert reader.finished.wait(30)
    reader.stop()
    live = reader.buffer.since(0)
    assert np.array_equal(raw_counts(live.si), raw_counts(rec.si))
    buffer = SampleBuffer(4096)
    predictor = Predictor(buffer, bundle, rec.rate_hz, smooth_k=1)
    predictor.start()
    # A model of the "body" channels first waits for the wearer to stand still: 3 s of the log.
    first = 32 if not dataset.needs_calibration(channel_set) else 16 * -(-int(3.5 * rec.rate_hz) // 16)
    try:
        for a in range(0, len(live), 16):  # the log's samples as they would arrive, a step at a time
            buffer.append(live.seq[a:a + 16], live.t_us[a:a + 16], time.monotonic(), live.si[a:a + 16])
            done = min(a + 16, len(live))
            if done >= first:  # every window complete so far has been predicted
                assert predictor.history.wait((done - first) // 16, 10), predictor.error
    finally:
        predictor.stop()
    predictions = predictor.history.recent()
    assert [p.index for p in predictions] == list(range(first, 501, 16)) and predictor.skipped == 0
    expected = bundle.predict_proba(training)[(first - 32) // 16:]
    got = np.array([p.raw_proba for p in predictions])
    assert np.allclose(got, expected, atol=2e-3)  # the CSV keeps 4 decimals of what the board sent


def test_record_bad_input_is_one_clear_sentence(tmp_path):
    (tmp_path / "afile").write_text("x")
    cases = [
        (["sim://?activity=walking", "--subject", "a", "--out", "afile"], "it is a file, not a folder"),
        (["/dev/ttyNOPE9", "--subject", "a", "--duration", "1"], "no serial port /dev/ttyNOPE9"),
        (["sim://?activity=flying", "--subject", "a"], "unknown activity 'flying'"),
        (["sim://", "--subject", "a", "--labels", "a,b", "--label", "c"], "unknown label 'c'"),
        (["sim://", "--subject", "a", "--label", "a,b"], "cannot be stored"),
        (["replay://nothing.bin", "--subject", "a"], "no such raw log file"),
    ]
    for args, message in cases:
        code, out, err = record(tmp_path, *args)
        assert code == 2 and err.startswith("harduino: error: ") and message in err, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("recordings/*")) and not list(tmp_path.glob("*.bin"))


def test_disk_full_keeps_what_was_saved(tmp_path):
    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))  # files may not grow past 40 kB

    proc = subprocess.run(RECORD + ["sim://?activity=waving&rate=400", "--subject", "s1", "--label", "waving",
                                    "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, preexec_fn=small_disk)
    assert proc.returncode == 2, proc.stderr
    assert "the file grew past the size limit" in proc.stderr and "stay loadable" in proc.stderr
    assert "Traceback" not in proc.stderr
    saved = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("saved ")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordingNote)
        rec = load_recording(only(tmp_path, "*.csv"))
    assert saved and len(rec) >= saved[-1] > 0
    assert np.array_equal(raw_counts(rec.si), motion.synth_activity("waving", len(rec), 400, t0=rec.seq[0] / 400))


def test_number_keys_switch_the_label_while_recording(tmp_path):
    """In a terminal, 1-9 pick a label from --labels, 0 clears it, q stops; a progress line shows on stderr."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(RECORD + ["sim://?activity=walking&rate=100", "--subject", "kim", "--labels",
                                      "still,walking", "--out", str(tmp_path)],
                            stdin=slave, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = b""

    def wait_saved(count: int) -> int:
        nonlocal seen
        n = 0
        for _ in range(count):
            line = proc.stdout.readline()
            assert line.startswith("saved "), line
            n = int(line.split()[1])
        while True:  # drain the terminal so the progress line never blocks the recorder
            import select

            ready, _, _ = select.select([master], [], [], 0)
            if not ready:
                return n
            seen += os.read(master, 4096)

    try:
        wait_saved(1)
        os.write(master, b"2")
        before_still = wait_saved(2)
        os.write(master, b"1")
        wait_saved(2)
        os.write(master, b"0")
        wait_saved(2)
        os.write(master, b"q")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"keys: 1 still, 2 walking, 0 no label, q stop" in seen
    assert b"samples" in seen and b"label: walking" in seen and b"drops: 0" in seen
    rec = load_recording(only(tmp_path, "kim_session_*.csv"))
    runs = [str(rec.labels[0])] + [str(x) for i, x in enumerate(rec.labels[1:], 1) if x != rec.labels[i - 1]]
    assert runs == ["", "walking", "still", ""]
    assert (rec.labels[:before_still] != "still").all()
    assert json.loads(only(tmp_path, "*.json").read_text())["labels"] == ["still", "walking"]


def test_on_a_terminal_the_status_line_names_the_file_and_counts_the_saved_samples_in_place(tmp_path):
    """stdout and stderr a terminal: no `saved N` lines, the one status line redrawn carries the count."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(RECORD + ["sim://?activity=walking&rate=100&speed=max", "--subject", "kim", "--label",
                                      "walking", "--duration", "3", "--no-calibration", "--out", str(tmp_path)],
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        while True:  # until the recorder has ended and closed its side
            if select.select([master], [], [], 30)[0]:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: nobody has the terminal open any more
                    break
                if not data:
                    break
                seen += data
        assert proc.wait(timeout=10) == 0, seen
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    csv = only(tmp_path, "kim_walking_*.csv")
    text = seen.decode()
    assert f"harduino: recording to {csv}" in text
    assert not [line for line in text.replace("\r", "\n").splitlines() if line.startswith("saved ")]
    redrawn = [part for part in text.split("\r") if " samples  saved " in part]
    assert redrawn and "saved 300" in redrawn[-1] and f"recorded 300 samples to {csv}" in text


def test_a_reset_into_the_default_rate_leaves_out_of_the_raw_log_what_the_recording_leaves_out(tmp_path):
    """--rate 100: a board that resets (50 Hz again) until it answers `rate` again; its 50 Hz samples are in neither."""
    import threading
    import tty

    from harduino.recording import RecordingSession

    fast, slow = protocol.BoardInfo(rate_hz=100), protocol.BoardInfo(rate_hz=50)
    raw = motion.synth_activity("walking", 250, 100, subject=3, seed=2)
    a, b, c = raw[:100], raw[100:150], raw[150:]
    sent = (protocol.encode_info(fast) + protocol.encode_samples(np.arange(100), np.arange(100) * 10_000, a) +
            protocol.encode_info(slow) + protocol.encode_samples(np.arange(50), np.arange(50) * 20_000, b) +
            protocol.encode_info(fast) + protocol.encode_samples(50 + np.arange(100), 1_000_000 + np.arange(100)
                                                                 * 10_000, c))
    master, slave = os.openpty()
    tty.setraw(slave)
    reader = Reader(os.ttyname(slave), rate_hz=100)
    session = RecordingSession(tmp_path, "s1", "walking", take_calibration=False)
    try:
        starting = threading.Thread(target=session.start, args=(reader,))
        starting.start()
        heard = b""
        while b"rate 100\n" not in heard:  # the reader has opened the port and asked
            heard += os.read(master, 1024)
        os.write(master, sent)
        starting.join(10)
        assert session.recorder is not None and reader.buffer.wait(199, 10), reader.stats().line()
        time.sleep(0.2)  # nothing more comes
        session.poll()
    finally:
        reader.stop()
        path = session.finish()
        os.close(master)
        os.close(slave)
    assert session.error is None and [info.rate_hz for _, info in reader.boards] == [100]
    rec = load_recording(path)
    assert np.array_equal(raw_counts(rec.si), np.vstack([a, c]))
    replayed = protocol.Decoder().feed(path.with_suffix(".bin").read_bytes())
    assert [info.rate_hz for _, info in replayed.infos] == [100, 100]
    assert np.array_equal(replayed.raw, np.vstack([a, c]))


def test_board_unplugged_mid_session_then_recorder_stopped_keeps_everything(tmp_path):
    """A real pseudo-terminal board that goes away: the recorder waits for it, SIGTERM ends the session cleanly."""
    from harduino import transport
    from harduino.ptyserver import PtyBoard

    board = PtyBoard(transport.open_port("sim://?activity=jumping&subject=4&seed=3&rate=100"))
    path = board.plug()
    proc = subprocess.Popen(RECORD + [path, "--subject", "s4", "--label", "jumping", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        saved = saved_counts(proc, 3)
        board.unplug()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        board.close()
    assert proc.returncode == 0, err
    final = int(out.split()[-1]) if out.strip() else saved[-1]
    rec = load_recording(only(tmp_path, "s4_jumping_*.csv"))  # no note: the session ended cleanly
    assert rec.notes == [] and len(rec) == final >= saved[-1]
    first = int(rec.seq[0])
    sent = motion.synth_activity("jumping", len(rec), 100, subject=4, seed=3, t0=first / 100)
    assert np.array_equal(raw_counts(rec.si), sent)
    meta = json.loads(only(tmp_path, "*.json").read_text())
    assert meta["samples"] == len(rec) and meta["link"]["samples"] >= len(rec)
    chunk = protocol.Decoder().feed(only(tmp_path, "*.bin").read_bytes())
    assert np.array_equal(chunk.raw, sent)  # the raw log replays to the same session


def test_two_recorders_started_at_once_into_one_folder_each_keep_all_three_files(tmp_path):
    """Names are taken, never assumed: same subject, label and second, yet three whole recordings."""
    url = "sim://?activity=walking&subject=1&seed=3&speed=max"
    procs = [subprocess.Popen(RECORD + [url, "--subject", "s1", "--label", "walking", "--out", str(tmp_path),
                                        "--duration", "2", "--no-calibration"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0 and "stand still" not in err, err
    files = sorted(tmp_path.iterdir())
    assert sorted(p.suffix for p in files) == [".bin"] * 3 + [".csv"] * 3 + [".json"] * 3, files
    for csv in sorted(tmp_path.glob("s1_walking_*.csv")):
        rec = load_recording(csv)
        assert len(rec) == 100 and rec.notes == []
        assert np.array_equal(raw_counts(rec.si), motion.synth_activity("walking", 100, 50, subject=1, seed=3))
        meta = json.loads(csv.with_suffix(".json").read_text())
        assert meta["samples"] == 100 and meta["raw_log"] == csv.with_suffix(".bin").name
        assert "calibration" not in meta  # --no-calibration
        chunk = protocol.Decoder().feed(csv.with_suffix(".bin").read_bytes())  # its own log, whole
        assert np.array_equal(chunk.seq, rec.seq) and np.array_equal(chunk.raw, raw_counts(rec.si))


def test_record_stores_the_calibration_the_loader_would_estimate(tmp_path):
    code, out, err = record(tmp_path, "sim://?script=still:4,walking:3&speed=max", "--subject", "s1",
                            "--label", "mixed", "--out", "a", "--duration", "7")
    assert code == 0, err
    assert "stand still" in err.splitlines()[0]  # the wearer is asked first
    csv = only(tmp_path / "a", "*.csv")
    stored = json.loads(csv.with_suffix(".json").read_text())["calibration"]
    # The same CSV with a sidecar that stores none: the loader estimates it from the samples.
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / csv.name).write_bytes(csv.read_bytes())
    meta = json.loads(csv.with_suffix(".json").read_text())
    del meta["calibration"]
    (plain / csv.with_suffix(".json").name).write_text(json.dumps(meta))
    [rec] = dataset.load_recordings(plain)
    assert rec.calibration is not None and rec.calibration.source.startswith("own still stretch")
    np.testing.assert_allclose(stored["gravity"], rec.calibration.gravity, atol=1e-4)
    np.testing.assert_allclose(stored["gyro_bias"], rec.calibration.gyro_bias, atol=1e-4)
    assert stored["source"] == rec.calibration.source


def test_the_calibration_taken_while_recording_is_the_one_of_all_the_samples():
    """Found block by block in bounded memory, yet exactly what `calibration.estimate` says of the whole."""
    from harduino import calibration
    from harduino.recording import StillWatch

    raw, _ = motion.synth_script([("walking", 7), ("still", 5), ("walking", 6), ("still", 4)], 50, subject=1, seed=2)
    si, t = raw * SCALE, np.arange(len(raw)) / 50
    watch = StillWatch(50.0)
    for i in range(0, len(si), 7):  # as the polls bring them
        watch.add(t[i:i + 7], si[i:i + 7])
    assert watch.done  # the first still stretch ended: nothing more is held
    assert watch.finish() == calibration.estimate(t, si, 50) and "at 7.0 s" in watch.found.source
