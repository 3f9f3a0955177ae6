"""End to end: the real firmware, built with avr-gcc, running in simavr with a simulated MPU-6050.

The host reads it through an ordinary serial device (a pseudo-terminal) with the
protocol decoder and with the Reader, exactly as it reads a real Arduino. The
simulated sensor serves known rows, so every decoded value can be checked.
Needs the Debian packages gcc-avr avr-libc arduino-core-avr libsimavr-dev: the
tests skip without them, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harduino import cli, firmware, motion, protocol
from harduino.errors import UserError
from harduino.reader import Reader
from harduino.recording import load_recording
from harduino.transport import open_port

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 60.0  # a broken firmware must fail the test, not hang it; no speed is asserted
EXPECTED_SCALE = np.array([protocol.GRAVITY / 16384] * 3 + [np.radians(1) / 131] * 3)  # ±2 g, ±250 °/s


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """Walking, as the sim:// generator makes it, led by extremes that catch byte-order and sign slips."""
    walking = motion.synth_activity("walking", 400, 50, subject=1, seed=3)
    extremes = np.array([[-32768, 32767, -1, 1, 256, -256], [0x1234, -0x1234, 0x00FF, -0x0100, 0x7F00, -2]],
                        dtype=np.int16)
    return np.vstack([extremes, walking])


class Capture:
    """Everything decoded from a port so far, in arrival order."""

    def __init__(self, port) -> None:
        self.port = port
        self.decoder = protocol.Decoder()
        self.blocks: list[protocol.DecodedChunk] = []
        self.infos: list[tuple[int, protocol.BoardInfo]] = []  # (samples before it, info)
        self.errors: list[tuple[int, int, str]] = []
        self.n = 0

    def read_until(self, done, what: str) -> None:
        deadline = time.monotonic() + HANG_GUARD_S
        while not done(self):
            assert time.monotonic() < deadline, f"no {what} from the firmware; stats {self.decoder.stats}"
            self.read_once()

    def read_once(self) -> None:
        chunk = self.decoder.feed(self.port.read(4096))
        self.infos += [(self.n + i, info) for i, info in chunk.infos]
        self.errors += [(self.n + i, code, text) for i, code, text in chunk.errors]
        self.blocks.append(chunk)
        self.n += len(chunk)

    def samples(self):
        seq = np.concatenate([c.seq for c in self.blocks])
        t_us = np.concatenate([c.t_us for c in self.blocks])
        raw = np.concatenate([c.raw for c in self.blocks])
        return seq, t_us, raw


def spacing_ok(t_us: np.ndarray, rate_hz: float) -> bool:
    """Every step of board time is one sample period, within 1 %."""
    period = 1e6 / rate_hz
    return bool(np.all(np.abs(np.diff(t_us) - period) <= 0.01 * period))


def harness_report(log: str) -> dict[str, int]:
    line = next(line for line in log.splitlines() if line.startswith("harduino_sim:"))
    report = {k: int(v, 16) for k, v in re.findall(r"(\w+)=0x([0-9a-f]+)", line)}
    report["burst_reads"] = int(re.search(r"(\d+) burst reads", line)[1])
    return report


def test_firmware_streams_the_sensor_and_obeys_rate_stop_start(elf, rows):
    with firmware.FirmwareBoard(rows, realtime=False, elf=elf) as board:
        with open_port(board.port) as port:
            board.start()
            cap = Capture(port)

            # Power-up: an info frame first, then samples at 50 Hz.
            cap.read_until(lambda c: c.n >= 150, "samples at power-up")
            assert cap.infos[0][0] == 0
            info = cap.infos[0][1]
            assert (info.sensor, info.accel_range_g, info.gyro_range_dps, info.rate_hz) == ("MPU-6050", 2, 250, 50)
            np.testing.assert_allclose(info.si_scale, EXPECTED_SCALE)

            # rate 100 answers with an info frame; the samples after it are 10 ms apart.
            port.write(protocol.command("rate", 100))
            cap.read_until(lambda c: len(c.infos) >= 2 and c.n >= c.infos[1][0] + 150, "samples at 100 Hz")
            at_100, info_100 = cap.infos[1]
            assert info_100.rate_hz == 100

            # Bad commands get error frames and change nothing.
            port.write(b"rate 5000\nrate fast\njump\n")
            cap.read_until(lambda c: len(c.errors) >= 3, "error frames for bad commands")
            assert [code for _, code, _ in cap.errors] == [protocol.ERROR_BAD_RATE, protocol.ERROR_BAD_RATE,
                                                          protocol.ERROR_BAD_COMMAND]

            # stop: nothing after the info frame that answers the `info` sent behind it.
            port.write(protocol.command("stop") + protocol.command("info"))
            cap.read_until(lambda c: len(c.infos) >= 3, "the info frame after stop")
            stopped_at = cap.infos[2][0]
            pause_end = time.monotonic() + 0.5  # several simulated seconds at free-running speed
            while time.monotonic() < pause_end:
                cap.read_once()
            assert cap.n == stopped_at, "samples kept coming after stop"

            # start: samples come again, the sequence carrying on where it stopped.
            port.write(protocol.command("start"))
            cap.read_until(lambda c: c.n >= stopped_at + 100, "samples after start")
            seq, t_us, raw = cap.samples()
        report = harness_report(board.stop())

    assert seq[0] == 0  # the board booted after the port was open: nothing was lost
    assert np.all(np.diff(seq) == 1), "sequence numbers are not continuous"
    # The k-th sample is the k-th burst read of the sensor: exactly the row it served.
    np.testing.assert_array_equal(raw, rows[np.arange(len(raw)) % len(rows)])
    assert spacing_ok(t_us[:at_100], 50)
    assert spacing_ok(t_us[at_100:stopped_at], 100)
    assert spacing_ok(t_us[stopped_at:], 100)
    assert t_us[stopped_at] - t_us[stopped_at - 1] > 200_000  # the pause shows in board time
    # The firmware woke the sensor and set the ranges its info frame reports, with the low-pass filter on.
    assert report["PWR_MGMT_1"] == 0x01
    assert report["ACCEL_CONFIG"] == 0x00 and report["GYRO_CONFIG"] == 0x00  # ±2 g, ±250 °/s
    assert report["CONFIG"] & 0x07 != 0
    assert report["ACCEL_CONFIG2"] == 0x00  # an MPU-6050 has no such register: left alone
    assert len(seq) <= report["burst_reads"] <= len(seq) + 2  # at most the frames still on the wire



def test_commands_while_streaming_never_make_a_sample_late(elf, rows):
    """Bursts of commands at whatever moment they come: every answer is sent, and every sample is on time."""
    bursts = 30
    with firmware.FirmwareBoard(rows, realtime=False, elf=elf) as board:
        with open_port(board.port) as port:
            board.start()
            cap = Capture(port)
            port.write(protocol.command("rate", 200))
            cap.read_until(lambda c: len(c.infos) >= 2, "the info frame at 200 Hz")
            at_200 = cap.infos[1][0]
            for _ in range(bursts):  # a burst, then 20 samples or more: it lands wherever the board happens to be
                port.write(b"jump\ninfo\njump\n")
                sent_at = cap.n
                cap.read_until(lambda c: c.n >= sent_at + 20, "samples between bursts")
            cap.read_until(lambda c: len(c.errors) >= 2 * bursts and len(c.infos) >= 2 + bursts, "every answer")
            _, t_us, _ = cap.samples()
    assert [code for _, code, _ in cap.errors] == [protocol.ERROR_BAD_COMMAND] * 2 * bursts
    assert spacing_ok(t_us[at_200:], 200), np.diff(t_us[at_200:]).max()


def test_reader_reads_the_firmware_like_a_board(elf, rows):
    with firmware.FirmwareBoard(rows, realtime=False, elf=elf) as board:
        reader = Reader(board.port)
        reader.start()
        try:
            deadline = time.monotonic() + HANG_GUARD_S
            while not reader.stats().connected:  # the reader opens the port in its own thread
                assert time.monotonic() < deadline and reader.error is None, reader.error
                time.sleep(0.01)
            board.start()
            assert reader.buffer.wait(299, HANG_GUARD_S), f"no samples: {reader.stats().line()}"
            block = reader.buffer.since(0)
            stats = reader.stats()
        finally:
            reader.stop()

    np.testing.assert_allclose(reader.info.si_scale, EXPECTED_SCALE)
    assert block.seq[0] == 0 and np.all(np.diff(block.seq) == 1)
    np.testing.assert_allclose(block.si, rows[block.seq % len(rows)] * EXPECTED_SCALE)
    assert spacing_ok(block.t_us, 50)
    assert (stats.lost, stats.crc_errors, stats.resets) == (0, 0, 0)


def test_record_rate_asks_the_firmware_for_its_rate_and_records_at_it(elf, rows, tmp_path, capsys):
    """`record --rate 100`: the board (50 Hz at power-up) is asked for 100 Hz, and the recording is at 100 Hz."""
    with firmware.FirmwareBoard(rows, realtime=False, elf=elf) as board:
        board.start()
        code = cli.main(["record", board.port, "--rate", "100", "--duration", "3", "--subject", "fw",
                         "--label", "walking", "--no-calibration", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    [csv] = tmp_path.glob("fw_walking_*.csv")
    rec, meta = load_recording(csv), json.loads(csv.with_suffix(".json").read_text())
    assert meta["rate_hz"] == 100 and meta["board"]["rate_hz"] == 100 and rec.rate_hz == 100
    assert len(rec) == 300 and spacing_ok(rec.t_us, 100) and np.all(np.diff(rec.seq) == 1)
    # Each sample is the row the simulated sensor served for it: nothing from before the rate was taken.
    np.testing.assert_array_equal(np.rint(rec.si / EXPECTED_SCALE), rows[rec.seq % len(rows)])
    # The raw log beside it replays to the same samples, at 100 Hz.
    chunk = protocol.Decoder().feed(csv.with_suffix(".bin").read_bytes())
    assert [info.rate_hz for _, info in chunk.infos] == [100] and np.array_equal(chunk.seq, rec.seq)


def test_a_rate_the_firmware_refuses_is_one_sentence_and_records_nothing(elf, rows, tmp_path, capsys):
    with firmware.FirmwareBoard(rows, realtime=False, elf=elf) as board:
        board.start()
        code = cli.main(["record", board.port, "--rate", "5000", "--subject", "fw", "--label", "walking",
                         "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "refused rate 5000 Hz" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("who_am_i", "message"), [(None, "no MPU-6050"), (0x55, "WHO_AM_I 0x55")],
                         ids=["no sensor", "unknown WHO_AM_I"])
def test_missing_sensor_is_reported_not_streamed(elf, rows, who_am_i, message):
    with firmware.FirmwareBoard(rows, realtime=False, who_am_i=who_am_i, elf=elf) as board:
        with open_port(board.port) as port:
            board.start()
            cap = Capture(port)
            cap.read_until(lambda c: len(c.errors) >= 1, "error frame at power-up")
            port.write(protocol.command("info"))
            cap.read_until(lambda c: len(c.errors) >= 3, "error frames")  # the answer, and a retry a second later
    assert {(code, text) for _, code, text in cap.errors} == {(protocol.ERROR_SENSOR_MISSING, message)}
    assert cap.n == 0 and cap.infos == []


@pytest.mark.parametrize(("who_am_i", "name"), [(0x70, "MPU-6500"), (0x71, "MPU-9250"), (0x72, "clone 0x72")])
def test_compatible_parts_are_found_named_and_streamed(elf, rows, who_am_i, name):
    with firmware.FirmwareBoard(rows, realtime=False, who_am_i=who_am_i, elf=elf) as board:
        with open_port(board.port) as port:
            board.start()
            cap = Capture(port)
            cap.read_until(lambda c: c.n >= 50, "samples")
            _, _, raw = cap.samples()
        report = harness_report(board.stop())
    assert cap.errors == [] and cap.infos[0][1].sensor == name
    np.testing.assert_allclose(cap.infos[0][1].si_scale, EXPECTED_SCALE)
    np.testing.assert_array_equal(raw, rows[np.arange(len(raw)) % len(rows)])
    assert report["ACCEL_CONFIG2"] == 0x03  # the MPU-6500 family's accelerometer filter, as the MPU-6050's


TEXT_HEADER = "ax_g,ay_g,az_g,gx_dps,gy_dps,gz_dps"
TEXT_UNITS = np.array([16384] * 3 + [131] * 3)  # counts per g and per °/s at ±2 g, ±250 °/s
TEXT_STEP = np.array([1e-4] * 3 + [1e-2] * 3)   # the last printed digit of g and of °/s


def text_stretches(data: bytes) -> list[tuple[str, np.ndarray]]:
    """Each (comment, lines as an (n, 6) array) that text mode printed in a stream of board bytes."""
    stretches = []
    for piece in data.split(b"# harduino ")[1:]:
        text = piece.split(b"\xa5\x5a")[0].decode("ascii")  # frames start again at the next sync word
        comment, header, *lines = text.split("\r\n")
        assert header == TEXT_HEADER
        values = [[float(v) for v in line.split(",")] for line in lines if line]
        stretches.append((comment, np.array(values).reshape(-1, 6)))
    return stretches


def test_text_mode_prints_the_samples_the_frames_carry_and_binary_restores_frames(elf, rows):
    data = bytearray()
    with firmware.FirmwareBoard(rows, realtime=False, elf=elf) as board:
        with open_port(board.port, timeout=0.05) as port:
            board.start()

            def read_until(done, what):
                deadline = time.monotonic() + HANG_GUARD_S
                while not done():
                    assert time.monotonic() < deadline, f"no {what} from the firmware"
                    data.extend(port.read(4096))

            read_until(lambda: len(data) > 60 * protocol.SAMPLE_FRAME_LEN, "samples at power-up")
            port.write(protocol.command("text"))
            read_until(lambda: data.count(b"\r\n") > 100, "text lines at 50 Hz")
            port.write(protocol.command("rate", 250))  # above what the link carries as text
            read_until(lambda: data.count(b"\r\n") > 200, "text lines at 250 Hz")
            port.write(protocol.command("binary"))
            sent_at = len(data)
            read_until(lambda: len(data) > sent_at + 100 * protocol.SAMPLE_FRAME_LEN, "frames after binary")

    chunk = protocol.Decoder().feed(bytes(data))
    before = chunk.seq < chunk.seq[np.argmax(np.diff(chunk.seq)) + 1]  # the frames before the text
    last_before, first_after = chunk.seq[before][-1], chunk.seq[~before][0]
    (comment_50, at_50), (comment_250, at_250) = text_stretches(bytes(data))
    assert comment_50 == "MPU-6050 50 Hz, every sample printed"
    assert comment_250 == "MPU-6050 250 Hz, 1 in 2 samples printed (125 lines/s)"
    # Each line is the sample the sensor gave next, in g and °/s; at 250 Hz every other one.
    index_50 = last_before + 1 + np.arange(len(at_50))
    index_250 = index_50[-1] + 1 + 2 * np.arange(len(at_250))
    for lines, index in ((at_50, index_50), (at_250, index_250)):
        expected = rows[index % len(rows)] / TEXT_UNITS
        assert np.all(np.abs(lines - expected) <= 0.51 * TEXT_STEP)
    assert len(at_50) > 50 and len(at_250) > 50
    # binary: frames again, the sequence carrying on over the samples read in text mode, each the sensor's row.
    assert index_250[-1] < first_after <= index_250[-1] + 2 and np.count_nonzero(~before) > 50
    assert np.all(np.diff(chunk.seq[before]) == 1) and np.all(np.diff(chunk.seq[~before]) == 1)
    np.testing.assert_array_equal(chunk.raw, rows[chunk.seq % len(rows)])
    assert [info.rate_hz for _, info in chunk.infos] == [50]  # text mode answered `rate` in text, not a frame


def test_a_board_left_in_text_mode_streams_frames_to_the_reader(elf, rows):
    with firmware.FirmwareBoard(rows, realtime=False, elf=elf) as board:
        with open_port(board.port, timeout=0.05) as port:
            board.start()
            port.write(protocol.command("text"))
            seen = b""
            deadline = time.monotonic() + HANG_GUARD_S
            while seen.count(b"\r\n") < 10:  # the Serial Plotter's view of it
                assert time.monotonic() < deadline, "no text lines"
                seen += port.read(4096)
        reader = Reader(board.port)
        reader.start()
        try:
            assert reader.buffer.wait(100, HANG_GUARD_S), f"no samples: {reader.stats().line()}"
            block = reader.buffer.since(0)
        finally:
            reader.stop()
    assert reader.error is None and reader.info.sensor == "MPU-6050"
    np.testing.assert_allclose(block.si, rows[block.seq % len(rows)] * EXPECTED_SCALE)


IDE_BOARDS = ["arduino:avr:uno", "arduino:avr:nano:cpu=atmega328", "arduino:avr:mega:cpu=atmega2560",
              "arduino:avr:leonardo"]


@pytest.fixture(scope="module")
def ide_builder() -> None:
    missing = firmware.missing_packages(ide=True)
    if missing:
        message = f"the IDE build test needs the Debian packages {' '.join(missing)}: `make test` installs them"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.parametrize("fqbn", IDE_BOARDS)
def test_the_arduino_ide_builder_builds_the_sketch(elf, ide_builder, fqbn):
    build = firmware.ide_build(fqbn)
    assert 0 < build.flash <= 0.6 * build.flash_max  # room left for an exported model
    assert 0 < build.ram <= 0.5 * build.ram_max      # and for the stack
    if fqbn == "arduino:avr:uno":  # the IDE builds what `make` builds, to within its own flags
        flash, ram = firmware.firmware_size(elf)
        assert abs(build.flash - flash) <= 0.02 * flash and abs(build.ram - ram) <= 0.02 * ram


def test_build_names_the_packages_to_install_when_the_toolchain_is_missing(tmp_path, monkeypatch):
    make = subprocess.run(["sh", "-c", "command -v make"], capture_output=True, text=True).stdout.strip()
    if not make:
        pytest.skip("make itself is missing")
    (tmp_path / "make").symlink_to(make)
    monkeypatch.setenv("PATH", str(tmp_path))  # make is there, avr-gcc and cc are not
    with pytest.raises(UserError, match=r"gcc-avr.*apt-get install"):
        firmware.build_firmware()


def test_benchmark_prints_its_figures(elf):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "firmware.py"), "--quick"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    flash, ram = firmware.firmware_size(elf)
    assert f"flash {flash} bytes" in out and f"RAM {ram} bytes" in out
    assert re.search(r"highest rate without gaps at 115200 baud: \d+ Hz", out)
    assert re.search(r"simulated seconds per wall second, free-running: \d+\.\d+", out)
    assert re.search(r"simulated seconds per wall second, real-time mode: \d+\.\d+", out)
