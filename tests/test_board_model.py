"""The model on the board: the `board` features, their integer twin, export, protocol v2, and the real
firmware predicting in simavr window by window as the host's twin does.

The simulator tests build the firmware with a model exported from a bundle trained here on data/sim,
play recorded raw counts into the simulated MPU-6050 and compare every prediction frame with the host
running the same integer arithmetic on the same samples.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest

from harduino import boardfeatures as bf
from harduino import export, firmware, protocol
from harduino.cli import main
from harduino.models import load_bundle
from harduino.recording import load_recording
from harduino.transport import open_port

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "data" / "sim"
HANG_GUARD_S = 60.0  # a broken firmware must fail the test, not hang it; no speed is asserted
SPACING_SLACK_US = 200  # what a model may add to the spread of the samples' board times at 50 Hz


def recorded_raw(pattern: str, samples: int | None = None) -> np.ndarray:
    """Raw counts of the recordings' own serial logs (the board's bytes), one session after another."""
    blocks = [protocol.Decoder().feed(p.read_bytes()).raw[:samples] for p in sorted(SIM.glob(pattern))]
    return np.concatenate(blocks)


def train(out: Path, *args: str) -> Path:
    assert main(["train", str(SIM), "--channels", "axes", "--features", "board", "-o", str(out), "--quiet",
                 *args]) == 0
    return out


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bundles")
    return {"rf": train(folder / "rf", "--arch", "rf", "--trees", "10", "--max-depth", "6"),
            "logreg": train(folder / "logreg", "--arch", "logreg"),
            "mlp-board": train(folder / "mlp-board", "--arch", "mlp-board")}


# ---------------------------------------------------------------- the features and their integer twin

def test_isqrt_is_exact_where_floats_round():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.integers(0, 2**48, 5000), np.arange(2**24 - 3, 2**24 + 3) ** 2 + np.array([-1, 0, 1, -1, 0, 1])])
    assert [int(r) for r in bf.isqrt(v)] == [math.isqrt(int(x)) for x in v]


def test_the_integer_twin_is_the_float_features_to_within_a_count():
    raw = recorded_raw("s3_*.bin")
    windows = bf.windows_ending_at(raw, np.arange(31, len(raw), 16), 32)
    si_scale = protocol.BoardInfo().si_scale
    exact = bf.board_features(windows * si_scale[None, :, None], bf.BOARD_CHANNELS[:6])
    twin = bf.board_features_int(windows) * bf.int_to_si(32)
    count = np.repeat(np.concatenate([si_scale, si_scale[[0, 3]]]), 4)  # one count of each feature's channel
    assert np.all(np.abs(twin - exact) <= count + 1e-9)  # the roots are floored: |a|, |g| and the spreads
    axes_min_max = [i for i, name in enumerate(bf.BOARD_FEATURE_NAMES)
                    if name.endswith(("_min", "_max", "_mean")) and not name.startswith(("acc_mag", "gyro_mag"))]
    np.testing.assert_allclose(twin[:, axes_min_max], exact[:, axes_min_max], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- export

def test_the_integer_twin_agrees_with_the_float_model(bundles):
    raw = recorded_raw("*.bin")
    for arch, path in bundles.items():
        bundle = load_bundle(path)
        model = export.board_model(bundle)
        ends = np.arange(31, len(raw), 16)
        windows = bf.windows_ending_at(raw, ends, 32)
        board, _ = model.predict(bf.board_features_int(windows))
        host = np.argmax(bundle.predict_proba(windows * protocol.BoardInfo().si_scale[None, :, None]), axis=1)
        agreement = np.mean(board == host)
        print(f"{arch}: integer twin vs float model {agreement:.4f} of {len(ends)} windows")
        assert agreement >= 0.99


def test_export_writes_the_header_and_refuses_what_the_board_cannot_run(bundles, tmp_path, capsys):
    header = tmp_path / "model_tables.h"
    assert main(["export", "--model", str(bundles["rf"]), "-o", str(header)]) == 0
    text = header.read_text()
    assert '#define MODEL_ID "rf"' in text and "PROGMEM" in text and "MODEL_FOREST" in text
    assert "exported 'rf'" in capsys.readouterr().err

    big = train(tmp_path / "big", "--arch", "rf", "--trees", "400")
    full = train(tmp_path / "full", "--arch", "rf", "--trees", "5", "--features", "full")
    for bundle, said in ((big, r"needs about [\d,]+ bytes of flash .* over the budget of 30,720 on a Nano and "
                                 r"32,256 on an Uno"),
                         (full, r"trained on the 'full' features .* --features board --channels axes")):
        assert main(["export", "--model", str(bundle)]) == 2
        err = capsys.readouterr().err
        assert re.search(said, err) and err.count("\n") == 1 and "Traceback" not in err


# ---------------------------------------------------------------- protocol v2

def test_prediction_and_model_frames_decode_and_a_v1_log_still_does():
    model = protocol.BoardModelInfo("walk-rf", ("still", "walking"), 32, 16, "board", 50)
    prediction = protocol.BoardPrediction(65535 + 5, 1, (12, 243), 51234)
    log = (Path(__file__).parent / "logs" / "v1-board-walking.bin").read_bytes()  # a v1 board's raw log, kept as it was
    v1 = protocol.Decoder()
    chunk = v1.feed(log)
    assert len(chunk) == 550 and chunk.infos[0][1].protocol_version == 1 and chunk.predictions == []
    assert (v1.stats.malformed, v1.stats.crc_errors, v1.stats.bytes_skipped) == (0, 0, 0)

    samples = protocol.encode_samples(np.arange(65530, 65542), np.arange(12) * 20000, np.zeros((12, 6)))
    cut = 11 * protocol.SAMPLE_FRAME_LEN  # the prediction of the window ending at the 11th sample, as the board sends it
    stream = (protocol.encode_model(model) + samples[:cut] + protocol.encode_prediction(prediction) + samples[cut:]
              + b"\xa5\x5a\x06" + bytes(20))  # a type this host still does not know: skipped and counted
    decoder = protocol.Decoder()
    chunks = [decoder.feed(stream[i:i + 7]) for i in range(0, len(stream), 7)] + [decoder.finish()]
    models = [m for c in chunks for _, m in c.models]
    predictions = [p for c in chunks for _, p in c.predictions]
    assert models == [model] and predictions == [prediction]  # seq unwrapped past 65535 like the samples'
    assert decoder.stats.samples == 12 and decoder.stats.malformed == 1
    assert (decoder.stats.prediction_frames, decoder.stats.model_frames) == (1, 1)
    assert (protocol.PREDICTION_FRAME_LEN, protocol.MODEL_FRAME_LEN, protocol.INFO_FRAME_LEN) == (21, 103, 34)


def test_a_prediction_ahead_of_the_samples_after_text_mode_keeps_its_place_in_time():
    # In text mode samples come as lines; the first prediction frame after `binary` may name a
    # sample later than any sample frame the host has seen, and must keep its place in time.
    samples = protocol.encode_samples(np.arange(65530, 65542), np.arange(12) * 20000, np.zeros((12, 6)))
    said = [protocol.BoardPrediction(s & 0xFFFF, 0, (255, 0), 1000) for s in (65541, 65541 + 240, 65541 - 16)]
    decoder = protocol.Decoder()
    chunk = decoder.feed(samples + b"".join(protocol.encode_prediction(p) for p in said))
    assert [p.seq for _, p in chunk.predictions] == [65541, 65541 + 240, 65541 - 16]


# ---------------------------------------------------------------- the firmware in simavr

PLAYED = 200  # samples of each s2 session: 12 windows each, 20 s of simulated time for the five


@pytest.fixture(scope="module")
def played() -> np.ndarray:
    return recorded_raw("s2_*.bin", PLAYED)


def stream_from(elf: Path, rows: np.ndarray, samples: int, commands=()):
    """Run the firmware on rows; (decoded chunks, bytes, harness report) once `samples` samples came.

    commands: (when, bytes to send) in order; when: after this many samples, or a test of the bytes so far.
    """
    decoder, chunks, data = protocol.Decoder(), [], bytearray()
    pending = list(commands)
    with firmware.FirmwareBoard(rows, realtime=False, elf=elf) as board:
        with open_port(board.port, timeout=0.05) as port:
            board.start()
            deadline, n = time.monotonic() + HANG_GUARD_S, 0
            while n < samples:
                assert time.monotonic() < deadline, f"the firmware stopped sending; {decoder.stats}"
                when = pending[0][0] if pending else None
                if when is not None and (when(data) if callable(when) else n >= when):
                    port.write(pending.pop(0)[1])
                block = port.read(4096)
                data += block
                chunks.append(decoder.feed(block))
                n += len(chunks[-1])
        report = firmware.harness_report(board.stop())
    return chunks, bytes(data), report


def spacing_spread(chunks) -> float:
    """The largest departure of a step of the samples' board times from the 50 Hz period, µs."""
    t_us = np.concatenate([c.t_us for c in chunks])
    return float(np.max(np.abs(np.diff(t_us) - 20_000)))


@pytest.fixture(scope="module")
def plain_spread(elf, played) -> float:
    """The firmware without a model, on the same samples."""
    chunks, _, _ = stream_from(elf, played, len(played))
    return spacing_spread(chunks)


@pytest.mark.parametrize("arch", ["rf", "logreg", "mlp-board"])
def test_the_board_predicts_every_window_as_the_host_twin_does(elf, bundles, played, plain_spread, arch):
    model = export.board_model(load_bundle(bundles[arch]))
    model_elf = firmware.build_firmware(bundles[arch])
    flash, ram = firmware.firmware_size(model_elf)
    chunks, _, report = stream_from(model_elf, played, len(played))

    (position, info), = [m for c in chunks for m in c.models]  # at start-up, named after the bundle
    assert info == protocol.BoardModelInfo(arch, model.classes, 32, 16, "board", 50)
    seq = np.concatenate([c.seq for c in chunks])
    raw = np.concatenate([c.raw for c in chunks])
    assert seq[0] == 0 and np.all(np.diff(seq) == 1)  # no sample lost while predicting
    np.testing.assert_array_equal(raw, played[np.arange(len(raw)) % len(played)])
    predictions = [p for c in chunks for _, p in c.predictions]
    ends = np.array([p.seq for p in predictions])
    assert np.array_equal(ends, np.arange(31, ends[-1] + 1, 16)) and ends[-1] >= len(seq) - 16 - 16  # every step
    classes, scores = model.predict(bf.board_features_int(bf.windows_ending_at(raw, ends, 32)))
    np.testing.assert_array_equal([p.class_index for p in predictions], classes)  # 100 % the same classes
    np.testing.assert_array_equal([p.scores for p in predictions], scores)       # and the same scores
    assert spacing_spread(chunks) <= plain_spread + SPACING_SLACK_US
    cycles = np.array([p.cycles for p in predictions])
    assert np.all(cycles > 0) and 0 < report.model_cycles and report.model_stretches >= len(predictions)
    assert flash <= export.FLASH_BUDGET["Nano"] and ram + report.stack_bytes <= 2048
    print(f"{arch}: flash {flash} B, RAM {ram} B, stack {report.stack_bytes} B, "
          f"{report.model_cycles / len(predictions):.0f} cycles per window (simavr), longest step "
          f"{report.longest_stretch} cycles; spacing spread {spacing_spread(chunks):.0f} us "
          f"(without a model {plain_spread:.0f})")


def test_predict_off_and_on_and_the_activity_in_text_mode(bundles, played):
    model_elf = firmware.build_firmware(bundles["rf"])
    classes = load_bundle(bundles["rf"]).classes_
    def text_lines(data: bytes) -> int:
        return data.count(b"\r\n")

    commands = [(100, protocol.command("predict", "off")), (400, protocol.command("predict", "on")),
                (700, protocol.command("text")),
                (lambda data: text_lines(data) >= 250, protocol.command("binary") + protocol.command("info"))]
    chunks, data, _ = stream_from(model_elf, played, 900, commands)
    ends = np.array([p.seq for c in chunks for _, p in c.predictions])
    # Frames every step but for two pauses: `predict off` for 300 samples, then text mode (lines instead).
    steps = np.diff(ends)
    pauses = steps[steps != 16]
    assert len(pauses) == 2 and pauses[0] >= 250 and ends[0] == 31 and ends[-1] > 900
    text = data[data.index(b"# harduino"):].split(b"\xa5\x5a")[0].decode("ascii")
    activities = re.findall(r"# activity (\w+) (\d+)/255\r\n", text)
    assert len(activities) >= 10 and {name for name, _ in activities} <= set(classes)
    assert len([m for c in chunks for m in c.models]) == 2  # at start-up, and in answer to `info`


def test_a_firmware_without_a_model_says_so(elf, played):
    chunks, _, _ = stream_from(elf, played, 100, [(10, protocol.command("predict", "on"))])
    errors = [e for c in chunks for e in c.errors]
    assert [(code, text) for _, code, text in errors] == [(protocol.ERROR_NO_MODEL, "no model")]
    assert not any(c.predictions or c.models for c in chunks)


# ---------------------------------------------------------------- the host: the board's predictions kept

def test_the_prediction_log_names_each_windows_last_sample_and_keeps_the_newest():
    from harduino.ringbuffer import PredictionLog, SampleBuffer

    buffer = SampleBuffer(1024)
    for seq in (np.arange(100), np.arange(50)):  # a reset: seq starts again
        buffer.append(seq, 1_000_000 * (buffer.total > 0) + seq * 20_000, 0.0, np.zeros((len(seq), 6)))
    log = PredictionLog(capacity=4)
    said = [protocol.BoardPrediction(s, 1, (3, 250), 5000 + s) for s in (15, 31, 47, 5000, 63, 79)]
    log.add(said, buffer)
    kept = log.since(0)
    assert (kept.start, log.total) == (2, 6)  # bounded: the oldest overwritten
    np.testing.assert_array_equal(kept.seq, [47, 5000, 63, 79])
    np.testing.assert_array_equal(kept.index, [100 + 47, -1, 63, 79])  # after the reset; not kept; before it
    np.testing.assert_array_equal(kept.t_us, [1_000_000 + 47 * 20_000, -1, 63 * 20_000, 79 * 20_000])
    assert kept.scores[:, :3].tolist() == [[3, 250, 0]] * 4 and log.latest().cycles.tolist() == [5079]


def record_from(elf: Path, rows: np.ndarray, seconds: int, folder: Path, capsys) -> tuple[Path, str]:
    """`harduino record` on the firmware for `seconds` of samples; the recording's CSV and what it said."""
    with firmware.FirmwareBoard(rows, realtime=False, elf=elf) as board:
        board.start()
        code = main(["record", board.port, "--duration", str(seconds), "--subject", "fw", "--label", "walking",
                     "--no-calibration", "--out", str(folder)])
    err = capsys.readouterr().err
    assert code == 0, err
    [recording] = folder.glob("fw_walking_*[0-9].csv")
    return recording, err


def test_record_stores_the_boards_predictions_beside_the_recording(bundles, played, tmp_path, capsys):
    bundle = load_bundle(bundles["rf"])
    recording, said = record_from(firmware.build_firmware(bundles["rf"]), played, 8, tmp_path, capsys)
    rec, meta = load_recording(recording), json.loads(recording.with_suffix(".json").read_text())
    with open(recording.with_suffix(".pred.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    classes = list(bundle.classes_)
    assert meta["board_predictions"]["file"] == recording.with_suffix(".pred.csv").name
    assert meta["board_predictions"]["model"]["classes"] == classes and meta["board_predictions"]["rows"] == len(rows)
    assert f"the board's own {len(rows)} predictions to {recording.with_suffix('.pred.csv')}" in said
    # One row per window step of the recorded samples, each the prediction frame the board sent for it.
    seq = np.array([int(r["seq"]) for r in rows])
    assert len(rec) == 400 and np.array_equal(seq, np.arange(31, 400, 16))
    sent = [p for _, p in protocol.Decoder().feed(recording.with_suffix(".bin").read_bytes()).predictions]
    assert len(sent) >= len(rows) - 1  # the raw log ends at the last sample: its window's frame may come after
    for row, p in zip(rows, sent):
        assert (int(row["seq"]), int(row["class_index"]), int(row["cycles"])) == (p.seq, p.class_index, p.cycles)
        assert tuple(int(row[f"score_{i}"]) for i in range(len(classes))) == p.scores
        assert row["class"] == classes[p.class_index]
    np.testing.assert_array_equal([int(r["t_us"]) for r in rows], rec.t_us[seq])  # the window's last sample


def test_a_board_without_a_model_leaves_no_predictions_file(elf, played, tmp_path, capsys):
    recording, said = record_from(elf, played, 2, tmp_path, capsys)
    assert "predictions" not in said
    assert not list(tmp_path.glob("*.pred.csv")) and "board_predictions" not in json.loads(
        recording.with_suffix(".json").read_text())


BOARD_SAYS = re.compile(r"board: (\w+) (\d+)%")


def test_live_in_the_terminal_shows_the_boards_prediction_beside_the_hosts(bundles, played, capsys):
    classes = set(load_bundle(bundles["rf"]).classes_)
    with firmware.FirmwareBoard(played, realtime=False, elf=firmware.build_firmware(bundles["rf"])) as board:
        board.start()
        code = main(["live", board.port, "--model", str(bundles["rf"]), "--no-gui", "--duration", "4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [line.split() for line in out.splitlines() if re.match(r"\s*[\d.]+ s ", line)]
    said = [BOARD_SAYS.search(" ".join(line)) for line in lines]
    assert len(said) >= 5 and all(said[1:]), out  # every prediction line, once the board's first came
    assert {m[1] for m in said[1:]} <= classes and all(0 <= int(m[2]) <= 100 for m in said[1:])
    # Where the host is sure (every smoothed window alike), the board says the same activity.
    sure = [(line[2], m[1]) for line, m in zip(lines[1:], said[1:]) if line[3] == "100%"]
    assert len(sure) >= 3 and sum(host == board for host, board in sure) >= 0.8 * len(sure), out


def test_the_dashboard_shows_the_boards_prediction(bundles, played, qtbot, qapp, tmp_path):
    from harduino.live.dashboard import Dashboard
    from harduino.live.session import LiveSession

    classes = set(load_bundle(bundles["rf"]).classes_)
    window = Dashboard(LiveSession(bundles["rf"]), seconds=8, out=tmp_path)
    qtbot.addWidget(window)
    window.show()
    with firmware.FirmwareBoard(played, realtime=False, elf=firmware.build_firmware(bundles["rf"])) as board:
        board.start()
        window.connect_port(board.port)
        qtbot.waitUntil(lambda: window.board_label.isVisible(), timeout=int(HANG_GUARD_S * 1000))
        said = BOARD_SAYS.fullmatch(window.board_label.text())
        window.close()
    assert said and said[1] in classes, window.board_label.text()
