"""The byte path end to end on real byte sources: raw logs of the board's own bytes, replays, a TCP link."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from harduino import cli, motion, protocol
from harduino.reader import Reader

ROOT = Path(__file__).resolve().parents[1]
INFO = protocol.encode_info(protocol.BoardInfo())


def board_log(n: int, seq0: int = 0, rate_hz: int = 50) -> bytes:
    """n sample frames of a walking subject, as the board sends them."""
    raw = motion.synth_activity("walking", n, rate_hz, subject=1, seed=4, t0=seq0 / rate_hz)
    seq = seq0 + np.arange(n)
    return protocol.encode_samples(seq, seq * (1_000_000 // rate_hz), raw)


def with_sensor_name(name: bytes) -> bytes:
    """An info frame, valid CRC and all, whose 12-byte sensor name field holds these bytes."""
    body = bytearray(INFO[2:-2])
    body[5:17] = name.ljust(12, b"\0")
    return protocol.SYNC + bytes(body) + protocol.crc16(bytes(body)).to_bytes(2, "little")


def test_a_log_that_starts_with_two_identical_info_frames_records_every_sample_in_its_raw_log(tmp_path):
    log = tmp_path / "two-infos.bin"
    log.write_bytes(INFO + board_log(1839) + INFO + board_log(200, seq0=1839))  # one read holds it all
    result = subprocess.run([sys.executable, "-m", "harduino.cli", "record", f"replay://{log}?speed=max",
                             "--subject", "s1", "--out", str(tmp_path / "rec")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [csv] = (tmp_path / "rec").glob("*.csv")
    rows = len(csv.read_text().splitlines()) - 1
    raw_log = csv.with_suffix(".bin").read_bytes()
    assert rows == 2039 and len(protocol.Decoder().feed(raw_log)) == rows
    assert raw_log == log.read_bytes()  # the board's own bytes, from its first info frame


def test_an_info_frame_naming_a_sensor_in_non_ascii_bytes_keeps_the_reader_going(tmp_path):
    crafted = with_sensor_name("MPU-6050é".encode("latin-1"))
    log = tmp_path / "odd-name.bin"
    log.write_bytes(crafted + board_log(600))
    recorded = tmp_path / "logged.bin"
    reader = Reader(f"replay://{log}?speed=max", raw_log=recorded)
    reader.start()
    assert reader.finished.wait(10) and reader.error is None
    assert reader.buffer.total == 600 and reader.info.sensor.startswith("MPU-6050")
    assert recorded.read_bytes() == log.read_bytes()

    # A copy started while streaming (the dashboard's Record button) starts with the board's own info frame.
    reader = Reader(f"replay://{log}?speed=20")
    reader.start()
    try:
        reader.wait_for_info()
        start = reader.start_raw_copy(tmp_path / "copy.bin")
        assert reader.finished.wait(10)
        assert reader.stop_raw_copy() is None and reader.error is None
    finally:
        reader.stop()
    copy = (tmp_path / "copy.bin").read_bytes()
    assert copy.startswith(crafted) and copy[len(crafted):] in log.read_bytes()
    assert len(protocol.Decoder().feed(copy)) == reader.buffer.total - start


def test_an_info_frame_with_a_scale_of_zero_is_malformed_and_the_reader_reads_on(tmp_path):
    body = bytearray(INFO[2:-2])
    body[20:24] = np.float32(0).tobytes()  # accel LSB per g: no board sends it, and no SI would follow
    zero = protocol.SYNC + bytes(body) + protocol.crc16(bytes(body)).to_bytes(2, "little")
    log = tmp_path / "zero-scale.bin"
    log.write_bytes(INFO + board_log(100) + zero + board_log(100, seq0=100))
    reader = Reader(f"replay://{log}?speed=max")
    reader.start()
    assert reader.finished.wait(10) and reader.error is None
    stats = reader.stats()
    assert stats.samples == 200 and stats.malformed == 1 and reader.info == protocol.BoardInfo()
    assert np.all(np.isfinite(reader.buffer.since(0).si))


def test_a_frame_holding_a_sync_word_does_not_withhold_the_last_frame_of_a_replay(tmp_path):
    # The first frame's gyro y and z bytes read A5 5A 02: the start of an info frame that would run past the end.
    last_two = protocol.encode_samples([100, 101], [2_000_000, 2_020_000],
                                       [[1, 2, 3, 4, 0x5AA5 - 0x10000, 0x0102], [5, 6, 7, 8, 9, 10]])
    assert last_two.find(b"\xa5\x5a\x02") == 17
    decoder = protocol.Decoder()
    chunk = decoder.feed(INFO + board_log(100) + last_two)
    assert chunk.seq[-2:].tolist() == [100, 101] and decoder.pending_bytes == 0
    log = tmp_path / "sync-inside.bin"
    log.write_bytes(INFO + board_log(100) + last_two)
    reader = Reader(f"replay://{log}?speed=50")
    reader.start()
    assert reader.finished.wait(10) and reader.error is None and reader.buffer.total == 102


def test_a_replay_goes_straight_on_where_the_board_rebooted(tmp_path):
    # The second boot's clock starts 1000 s in: the log has no such pause, so neither has the replay.
    log = tmp_path / "reboot.bin"
    log.write_bytes(INFO + protocol.encode_samples(np.arange(50), 3_000_000_000 + np.arange(50) * 20_000,
                                                   np.zeros((50, 6)))
                    + INFO + protocol.encode_samples(np.arange(50), 1_000_000_000 + np.arange(50) * 20_000,
                                                     np.zeros((50, 6))))
    reader = Reader(f"replay://{log}?speed=10")  # 0.2 s of samples; a pause would last 100 s
    reader.start()
    try:
        assert reader.finished.wait(30), reader.stats().line()
    finally:
        reader.stop()
    assert reader.buffer.total == 100 and reader.stats().resets == 1


def test_replay_samples_prints_every_sample_of_a_log_longer_than_the_ring_buffer(tmp_path, capsys):
    log = tmp_path / "long.bin"
    log.write_bytes(INFO + board_log(80_000))  # 27 min at 50 Hz; the buffer holds 65,536
    assert cli.main(["replay", str(log), "--speed", "max", "--samples"]) == 0
    out, err = capsys.readouterr()
    rows = out.splitlines()[1:]
    counted = int(err.split(" samples,")[0].rsplit(" ", 1)[-1])
    assert counted == 80_000 and len(rows) == counted and "overwritten" not in err
    assert rows[-1].startswith("79999,")


def test_stream_over_a_tcp_socket_keeps_up_with_the_board(capsys):
    shipped = sorted((ROOT / "data" / "sim").glob("s2_walking_*.bin"))[0].read_bytes()
    frames = shipped[protocol.INFO_FRAME_LEN:]
    per_tick = 50 // 10  # a 50 Hz board, sent every 0.1 s
    server = socket.create_server(("127.0.0.1", 0))
    sent = []

    def serve():  # a serial-to-TCP bridge: the board's bytes at its own pace, from its answer to `info` on
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            assert conn.recv(64) == protocol.command("binary") + protocol.command("info")
            conn.sendall(shipped[:protocol.INFO_FRAME_LEN])
            start, k = time.monotonic(), 0
            while k * 23 < len(frames) and time.monotonic() - start < 2.5:
                conn.sendall(frames[k * 23 : (k + per_tick) * 23])
                k += per_tick
                sent.append(min(k, len(frames) // 23))
                time.sleep(max(0.0, start + len(sent) * 0.1 - time.monotonic()))
            time.sleep(1.0)

    bridge = threading.Thread(target=serve, daemon=True)
    bridge.start()
    try:
        port = server.getsockname()[1]
        assert cli.main(["stream", f"socket://127.0.0.1:{port}", "--samples", "--duration", "3"]) == 0
    finally:
        bridge.join(5)
        server.close()
    rows = capsys.readouterr().out.splitlines()[1:]
    assert sent[-1] >= 100 and len(rows) >= 0.95 * sent[-1]
