"""Byte sources: synthetic signals, sim:// and replay:// as pyserial ports, and bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest
import serial

from harduino import motion, protocol, transport
from harduino.errors import UserError

SCALE = protocol.BoardInfo().si_scale


def read_for(port, seconds: float) -> bytes:
    data, end = b"", time.monotonic() + seconds
    while time.monotonic() < end:
        data += port.read(port.in_waiting or 1)
    return data


def read_frames(port, samples: int) -> protocol.DecodedChunk:
    """Read until `samples` sample frames have decoded; returns everything decoded, merged."""
    decoder, chunks = protocol.Decoder(), []
    while sum(len(c) for c in chunks) < samples:
        chunks.append(decoder.feed(port.read(port.in_waiting or 1)))
    infos = [info for c in chunks for info in c.infos]
    errors = [e for c in chunks for e in c.errors]
    return protocol.DecodedChunk(np.concatenate([c.seq for c in chunks]), np.concatenate([c.t_us for c in chunks]),
                                 np.concatenate([c.raw for c in chunks]), infos, errors)


# ---------------------------------------------------------------- synthetic signals

def test_synth_activity_is_deterministic_and_seamless_across_blocks():
    whole = motion.synth_activity("running", 500, 50, subject=3, seed=1)
    assert whole.shape == (500, 6) and whole.dtype == np.int16
    assert np.array_equal(whole, motion.synth_activity("running", 500, 50, subject=3, seed=1))
    parts = [motion.synth_activity("running", 137, 50, 3, 1, t0=0.0),
             motion.synth_activity("running", 363, 50, 3, 1, t0=137 / 50)]
    assert np.array_equal(whole, np.vstack(parts))
    assert not np.array_equal(whole, motion.synth_activity("running", 500, 50, subject=4, seed=1))
    assert not np.array_equal(whole, motion.synth_activity("running", 500, 50, subject=3, seed=2))


def _magnitudes(activity, subject=0):
    si = motion.synth_activity(activity, 1500, 50, subject=subject) * SCALE
    return np.linalg.norm(si[:, :3], axis=1), np.degrees(np.linalg.norm(si[:, 3:], axis=1))


def _dominant_hz(x, rate=50.0):
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    return np.fft.rfftfreq(x.size, 1 / rate)[1:][np.argmax(spectrum[1:])]


@pytest.mark.parametrize("subject", [0, 5])
def test_activities_look_like_what_they_are(subject):
    acc = {a: _magnitudes(a, subject)[0] for a in motion.ACTIVITIES}
    gyro = {a: _magnitudes(a, subject)[1] for a in motion.ACTIVITIES}
    # Still: one g and hardly any rotation.
    assert abs(acc["still"].mean() - protocol.GRAVITY) < 0.5 and acc["still"].std() < 0.1
    assert gyro["still"].mean() < 5
    # Gait: steps near 1.8 Hz walking and 2.8 Hz running, running bouncier.
    assert 1.4 < _dominant_hz(acc["walking"]) < 2.2
    assert 2.3 < _dominant_hz(acc["running"]) < 3.4
    assert acc["running"].std() > 1.5 * acc["walking"].std()
    # Jumping has free fall: the accelerometer reads close to zero g in flight.
    assert acc["jumping"].min() < 0.2 * protocol.GRAVITY and acc["jumping"].max() > 2 * protocol.GRAVITY
    # Waving spins the wrist fast.
    assert gyro["waving"].mean() > 2 * gyro["walking"].mean()


def test_subjects_differ_in_orientation_and_cadence():
    a, b = (motion.synth_activity("still", 200, 50, subject=s) * SCALE for s in (1, 2))
    assert np.linalg.norm(a[:, :3].mean(0) - b[:, :3].mean(0)) > 0.3  # gravity falls on other axes
    walk = [_dominant_hz(_magnitudes("walking", s)[0]) for s in range(6)]
    assert max(walk) - min(walk) > 0.05


def test_synth_script_follows_the_schedule():
    raw, labels = motion.synth_script([("still", 2), ("waving", 1.5)], 50, subject=1, seed=2)
    assert raw.shape == (175, 6) and labels.tolist() == ["still"] * 100 + ["waving"] * 75
    assert np.array_equal(raw[:100], motion.synth_activity("still", 100, 50, 1, 2))
    assert np.array_equal(raw[100:], motion.synth_activity("waving", 75, 50, 1, 2, t0=2.0))
    with pytest.raises(UserError, match="unknown activity"):
        motion.synth_script([("dancing", 1)], 50)


# ---------------------------------------------------------------- sim://

def test_sim_boots_with_info_then_paced_samples():
    port = transport.open_port("sim://?activity=walking&subject=3&seed=1&rate=100")
    try:
        chunk = read_frames(port, 30)
    finally:
        port.close()
    assert chunk.infos[0][0] == 0 and chunk.infos[0][1].rate_hz == 100
    assert np.all(np.diff(chunk.t_us) == 10_000) and np.all(np.diff(chunk.seq) == 1)
    expected = motion.synth_activity("walking", len(chunk), 100, subject=3, seed=1)
    assert np.array_equal(chunk.raw, expected)


def test_sim_answers_commands():
    port = transport.open_port("sim://?rate=200&speed=max")
    try:
        decoder = protocol.Decoder()
        decoder.feed(port.read(2000))
        port.write(b"rate 25\r\n")
        port.write(b"dance\n")
        port.write(b"rate 5000\n")
        port.reset_input_buffer()  # sim speed=max has bytes queued: keep only what follows the commands
        port.write(b"info\n")
        after = decoder.feed(port.read(protocol.INFO_FRAME_LEN + 30 * protocol.SAMPLE_FRAME_LEN))
        assert after.infos and after.infos[0][1].rate_hz == 25
        assert np.all(np.diff(after.t_us) == 40_000)
        port.write(b"stop\n")
        port.reset_input_buffer()
        assert port.read(100) == b""  # stopped: nothing comes, the read times out
        port.write(b"start\n")
        assert len(decoder.feed(port.read(10 * protocol.SAMPLE_FRAME_LEN))) >= 9
    finally:
        port.close()


def test_sim_reports_unknown_commands_and_bad_rates():
    port = transport.open_port("sim://?rate=200")
    try:
        port.write(b"dance\nrate 0\n")
        errors = []
        decoder = protocol.Decoder()
        while len(errors) < 2:
            errors += decoder.feed(port.read(port.in_waiting or 1)).errors
    finally:
        port.close()
    assert [code for _, code, _ in errors] == [protocol.ERROR_BAD_COMMAND, protocol.ERROR_BAD_RATE]


def test_sim_script_and_speed_max_match_synth_script():
    port = transport.open_port("sim://?script=still:1,jumping:2&subject=2&seed=9&rate=50&speed=max")
    try:
        chunk = protocol.Decoder().feed(port.read(protocol.INFO_FRAME_LEN + 150 * protocol.SAMPLE_FRAME_LEN))
    finally:
        port.close()
    raw, labels = motion.synth_script([("still", 1), ("jumping", 2)], 50, subject=2, seed=9)
    assert np.array_equal(chunk.raw, raw) and labels[-1] == "jumping"


def test_sim_baud_rate_limits_the_stream():
    port = transport.open_port("sim://?rate=1000&baud=115200")
    decoder = protocol.Decoder()
    try:
        while decoder.stats.samples < 100:
            decoder.feed(port.read(port.in_waiting or 1))
    finally:
        port.close()
    # 23-byte frames at 11520 bytes/s carry 500 a second: about every other slot is skipped.
    assert 0.7 < decoder.stats.samples_lost / decoder.stats.samples < 1.3


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("url, message", [
    ("nosuch://x", "unknown port URL scheme"),
    ("sim://?colour=red", "unknown sim:// parameter 'colour'"),
    ("sim://?activity=dancing", "unknown activity"),
    ("sim://?rate=fast", "sim:// rate must be"),
    ("/dev/ttyHARDUINO_NOT_THERE", "no serial port /dev/ttyHARDUINO_NOT_THERE"),
])
def test_bad_urls_are_one_clear_sentence(url, message):
    with pytest.raises(UserError, match=message):
        transport.open_port(url)


def test_busy_port_is_reported(tmp_path):
    import os
    master, slave = os.openpty()
    path = os.ttyname(slave)
    first = transport.open_port(path)
    try:
        with pytest.raises(UserError, match="busy"):
            transport.open_port(path)
    finally:
        first.close()
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("url, message", [
    ("sim://?colour=red", "unknown sim:// parameter 'colour'"),
    ("sim://?activity=walking&script=still:1", "either activity= or script="),
    ("replay://nowhere.bin?speed=0", "replay:// speed must be max or a positive number"),
    ("replay://nowhere.bin?loop=2", "replay:// loop must be 0 or 1"),
    ("replay://nowhere.bin", "no such raw log file: nowhere.bin"),
])
def test_handlers_parse_their_own_urls_and_raise_serial_exceptions(url, message):
    with pytest.raises(serial.SerialException, match=message):
        serial.serial_for_url(url, timeout=0.1)  # plain pyserial: our handlers speak its language
    with pytest.raises(UserError, match=message):  # and the tool words it as one sentence, unchanged
        transport.open_port(url)


def test_registered_the_pyserial_way():
    transport.open_port("sim://?speed=max").close()
    port = serial.serial_for_url("sim://?rate=10", timeout=0.5)
    assert protocol.Decoder().feed(port.read(protocol.INFO_FRAME_LEN)).infos
    port.close()
