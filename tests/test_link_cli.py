"""`harduino ports | stream | replay | simulate` as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import serial

from harduino import cli, protocol

ROOT = Path(__file__).resolve().parents[1]


def harduino(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harduino.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_ports_lists_or_says_there_are_none(capsys):
    assert cli.main(["ports"]) == 0
    out = capsys.readouterr().out
    assert out.strip()  # either one line per port under the headings, or the sentence saying there are none
    lines = out.splitlines()
    if lines[0].startswith("no serial ports"):
        assert len(lines) == 1
        return
    assert lines[0].split() == ["device", "description", "stable", "id", "(survives", "a", "replug)", "hardware", "id"]
    for line in lines[1:]:
        assert line.startswith("/dev/") or line.startswith("COM")


def test_ports_columns_line_up_under_their_headings():
    from harduino.commands.link import port_table

    ports = [{"device": "/dev/ttyACM0", "description": "Arduino Uno", "hwid": "USB VID:PID=2341:0043",
              "stable_id": "/dev/serial/by-id/usb-Arduino_Uno_7563-if00"},
             {"device": "/dev/ttyS0", "description": "n/a", "hwid": "n/a", "stable_id": None}]
    head, uno, serial_port = port_table(ports)
    for heading, value in (("description", "Arduino Uno"), ("stable id", "/dev/serial/by-id/"), ("hardware id", "USB")):
        assert uno.index(value) == head.index(heading)  # each value starts under its heading
    assert serial_port.split()[:3] == ["/dev/ttyS0", "n/a", "-"]  # no stable id: a dash holds its column


def test_stream_prints_a_stats_line_a_second(capsys):
    assert cli.main(["stream", "sim://?rate=100", "--duration", "1.3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # one after a second, one at the end
    assert "100.0 Hz" in lines[0] and "0 lost" in lines[0] and "0 crc errors" in lines[0]


def test_stream_rate_asks_the_board_and_a_log_that_cannot_answer_is_one_sentence(capsys):
    assert cli.main(["stream", "sim://?rate=50", "--rate", "100", "--duration", "1.3"]) == 0
    assert "100.0 Hz" in capsys.readouterr().out.splitlines()[0]
    log = sorted((ROOT / "data" / "sim").glob("*.bin"))[0]
    assert cli.main(["stream", f"replay://{log}", "--rate", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "did not answer `rate 100` (it sends at 50 Hz)" in err


def test_stream_raw_log_replays_to_the_same_samples(tmp_path, capsys):
    log = tmp_path / "walk.bin"
    assert cli.main(["stream", "sim://?activity=jumping&subject=2&rate=200&speed=max", "--samples",
                     "--raw-log", str(log), "--duration", "0.3"]) == 0
    streamed = capsys.readouterr().out
    assert cli.main(["replay", str(log), "--speed", "max", "--samples"]) == 0
    replayed = capsys.readouterr()
    assert "end of stream" in replayed.err
    a = np.loadtxt(streamed.splitlines(), delimiter=",", skiprows=1)
    b = np.loadtxt(replayed.out.splitlines(), delimiter=",", skiprows=1)
    assert len(a) > 100 and np.array_equal(a, b)
    assert np.all(np.diff(a[:, 0]) == 1) and np.all(np.diff(a[:, 1]) == 5000)


@pytest.mark.parametrize("args, message", [
    (["stream", "/dev/ttyHARDUINO_NOT_THERE"], "no serial port /dev/ttyHARDUINO_NOT_THERE"),
    (["stream", "bogus://x"], "unknown port URL scheme"),
    (["stream", "sim://?speed=fast"], "sim:// speed must be"),
    (["replay", "missing.bin"], "no such raw log file: missing.bin"),
    (["replay", "pyproject.toml"], "pyproject.toml is not a raw serial log"),
])
def test_bad_input_is_one_sentence_and_exit_2(args, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = harduino(*args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert result.stderr.startswith("harduino: error: ") and message in result.stderr


def test_simulate_serves_frames_plain_pyserial_can_read(tmp_path):
    link = tmp_path / "board"
    proc = subprocess.Popen([sys.executable, "-m", "harduino.cli", "simulate", "--activity", "waving",
                             "--rate", "100", "--link", str(link), "--duration", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == str(link)
        port = serial.Serial(str(link), 115200, timeout=2)  # plain pyserial, nothing of ours
        port.write(b"info\n")
        decoder, infos, seqs = protocol.Decoder(), [], []
        while sum(map(len, seqs)) < 50 or not infos:
            chunk = decoder.feed(port.read(64))
            infos += [info for _, info in chunk.infos]
            seqs.append(chunk.seq)
        port.write(b"rate 20\n")
        while not any(info.rate_hz == 20 for info in infos):
            infos += [info for _, info in decoder.feed(port.read(64)).infos]
        port.close()
    finally:
        proc.terminate()
        proc.wait(10)
    seq = np.concatenate(seqs)
    assert infos[0].sensor == "MPU-6050" and np.all(np.diff(seq) == 1)
    assert decoder.stats.crc_errors == 0


def test_benchmark_quick_prints_its_figures():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reader.py"), "--quick"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "reader CPU" in result.stdout and "% of one core" in result.stdout
    assert "latency p50" in result.stdout and "p99" in result.stdout
