"""Protocol v1: what the board encodes is what the host decodes, whatever the link does to the bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harduino import protocol
from harduino.protocol import BoardInfo, Decoder

ROOT = Path(__file__).resolve().parents[1]
PERIOD_US = 20_000


def clean_stream(n: int, seq0: int = 0, t0: int = 0, seed: int = 0):
    """n sample frames whose bytes hold no sync word except at frame starts, so every count is exact."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(-1500, 1500, size=(n, 6)).astype(np.int16)
    seq = seq0 + np.arange(n)
    t_us = t0 + np.arange(n) * PERIOD_US
    data = protocol.encode_samples(seq, t_us, raw)
    assert data.count(protocol.SYNC) == n
    return data, seq, t_us, raw


def decode_all(data: bytes, chunk_sizes=None):
    decoder = Decoder()
    parts = [data] if chunk_sizes is None else split(data, chunk_sizes)
    chunks = [decoder.feed(p) for p in parts]
    seq = np.concatenate([c.seq for c in chunks])
    t_us = np.concatenate([c.t_us for c in chunks])
    raw = np.concatenate([c.raw for c in chunks]).reshape(-1, 6)
    return decoder, seq, t_us, raw


def split(data: bytes, sizes):
    parts, i = [], 0
    for size in sizes:
        parts.append(data[i : i + size])
        i += size
    parts.append(data[i:])
    return parts


def test_crc_matches_the_xmodem_check_value():
    assert protocol.crc16(b"123456789") == 0x31C3
    rows = np.frombuffer(b"123456789", dtype=np.uint8)[None, :]
    assert protocol.crc16_rows(rows)[0] == 0x31C3


def test_frame_sizes_are_the_documented_ones():
    assert protocol.SAMPLE_FRAME_LEN == 23
    assert protocol.INFO_FRAME_LEN == 34
    assert protocol.ERROR_FRAME_LEN == 22
    frame = protocol.encode_samples([0x1234], [0x89ABCDEF], [[1, -1, 2, -2, 3, -3]])
    assert frame[:3] == b"\xa5\x5a\x01"
    assert frame[3:5] == b"\x34\x12" and frame[5:9] == b"\xef\xcd\xab\x89"
    assert frame[9:11] == b"\x01\x00" and frame[11:13] == b"\xff\xff"
    assert int.from_bytes(frame[21:23], "little") == protocol.crc16(frame[2:21])


@settings(max_examples=60, deadline=None)
@given(
    raw=st.lists(st.lists(st.integers(-32768, 32767), min_size=6, max_size=6), min_size=1, max_size=200),
    seq0=st.integers(0, 65535),
    t0=st.integers(0, 2**32 - 1),
    period=st.integers(1, 1_000_000),
)
def test_round_trip_of_random_samples(raw, seq0, t0, period):
    n = len(raw)
    seq, t_us = seq0 + np.arange(n), t0 + np.arange(n) * period
    data = protocol.encode_samples(seq, t_us, np.array(raw, dtype=np.int16))
    decoder, got_seq, got_t, got_raw = decode_all(data)
    np.testing.assert_array_equal(got_raw, np.array(raw, dtype=np.int16))
    np.testing.assert_array_equal(got_seq, seq)  # unwrapped: no modulo left
    np.testing.assert_array_equal(got_t, t_us)
    assert decoder.stats.samples == n and decoder.stats.samples_lost == 0
    assert decoder.stats.crc_errors == 0 and decoder.stats.bytes_skipped == 0


def test_info_and_error_frames_round_trip_in_place():
    info = BoardInfo(firmware_version=(1, 2, 3), accel_range_g=8, gyro_range_dps=1000,
                     accel_lsb_per_g=4096.0, gyro_lsb_per_dps=32.8, rate_hz=200)
    samples, *_ = clean_stream(10)
    data = (protocol.encode_info(info) + samples[:4 * 23] + protocol.encode_error(protocol.ERROR_SENSOR_MISSING, "no MPU-6050")
            + samples[4 * 23:])
    chunk = Decoder().feed(data)
    assert len(chunk) == 10
    (pos, got), = chunk.infos
    assert pos == 0
    assert got == BoardInfo(firmware_version=(1, 2, 3), accel_range_g=8, gyro_range_dps=1000,
                            accel_lsb_per_g=4096.0, gyro_lsb_per_dps=np.float32(32.8).item(), rate_hz=200)
    assert chunk.errors == [(4, protocol.ERROR_SENSOR_MISSING, "no MPU-6050")]
    np.testing.assert_allclose(got.si_scale[:3], 9.80665 / 4096)
    np.testing.assert_allclose(got.si_scale[3:], np.pi / 180 / np.float32(32.8))


def test_a_lone_error_frame_is_decoded_at_once():
    chunk = Decoder().feed(protocol.encode_error(protocol.ERROR_BAD_COMMAND, "bad command"))
    assert chunk.errors == [(0, protocol.ERROR_BAD_COMMAND, "bad command")]


def test_a_stream_cut_at_every_byte_offset_decodes_identically():
    data = protocol.encode_info(BoardInfo()) + clean_stream(30)[0]
    _, ref_seq, ref_t, ref_raw = decode_all(data)
    assert ref_seq.size == 30
    for cut in range(len(data) + 1):
        decoder, seq, t_us, raw = decode_all(data, [cut])
        np.testing.assert_array_equal(seq, ref_seq)
        np.testing.assert_array_equal(t_us, ref_t)
        np.testing.assert_array_equal(raw, ref_raw)
        assert decoder.stats.info_frames == 1 and decoder.stats.bytes_skipped == 0


def test_byte_by_byte_and_random_chunks_decode_identically():
    data, seq, t_us, raw = clean_stream(300)
    rng = np.random.default_rng(1)
    for sizes in ([1] * len(data), rng.integers(1, 200, size=200).tolist()):
        decoder, got_seq, got_t, got_raw = decode_all(data, sizes)
        np.testing.assert_array_equal(got_seq, seq)
        np.testing.assert_array_equal(got_raw, raw)
        assert decoder.stats.frames_ok == 300


def test_thousands_of_frames_in_one_read():
    data, seq, t_us, raw = clean_stream(20_000)
    decoder, got_seq, got_t, got_raw = decode_all(data)
    np.testing.assert_array_equal(got_raw, raw)
    assert decoder.stats.samples == 20_000


# ---------------------------------------------------------------- corruption

def frames_of(data: bytes) -> list[bytes]:
    return [data[i : i + 23] for i in range(0, len(data), 23)]


def corrupt_and_decode(mutate, n=50, chunk_sizes=None):
    data, seq, t_us, raw = clean_stream(n)
    frames = frames_of(data)
    mutate(frames)
    return decode_all(b"".join(frames), chunk_sizes), seq, raw


@pytest.mark.parametrize("chunks", [None, [7] * 200])
def test_flipped_bit_loses_exactly_that_frame(chunks):
    def flip(frames):
        f = bytearray(frames[10])
        f[12] ^= 0x04
        frames[10] = bytes(f)

    (decoder, seq, _, raw), ref_seq, ref_raw = corrupt_and_decode(flip, chunk_sizes=chunks)
    keep = np.arange(50) != 10
    np.testing.assert_array_equal(seq, ref_seq[keep])
    np.testing.assert_array_equal(raw, ref_raw[keep])
    s = decoder.stats
    assert (s.crc_errors, s.samples_lost, s.bytes_skipped, s.frames_ok) == (1, 1, 23, 49)


def test_dropped_bytes_lose_only_the_damaged_frame():
    def drop(frames):
        frames[20] = frames[20][:8] + frames[20][11:]  # 3 bytes lost on the wire

    (decoder, seq, _, raw), ref_seq, ref_raw = corrupt_and_decode(drop)
    keep = np.arange(50) != 20
    np.testing.assert_array_equal(raw, ref_raw[keep])
    s = decoder.stats
    assert (s.samples_lost, s.bytes_skipped, s.frames_ok) == (1, 20, 49)


def test_inserted_garbage_is_skipped_without_loss():
    garbage = bytes(range(0x10, 0x40)) + b"\xa5"  # no sync word, but a trailing half of one

    def insert(frames):
        frames.insert(5, garbage)
        frames.insert(30, garbage)

    (decoder, seq, _, raw), ref_seq, ref_raw = corrupt_and_decode(insert)
    np.testing.assert_array_equal(raw, ref_raw)
    s = decoder.stats
    assert (s.samples_lost, s.bytes_skipped, s.crc_errors, s.frames_ok) == (0, 2 * len(garbage), 0, 50)


def test_garbage_that_looks_like_a_frame_start_is_counted_malformed():
    def insert(frames):
        frames.insert(3, b"\xa5\x5a\x7f\x00")  # sync + unknown type

    (decoder, *_), ref_seq, ref_raw = corrupt_and_decode(insert)
    assert decoder.stats.malformed == 1 and decoder.stats.bytes_skipped == 4 and decoder.stats.samples == 50


def test_truncated_frame_is_skipped_and_counted_as_a_gap():
    def truncate(frames):
        frames[40] = frames[40][:15]

    (decoder, seq, _, raw), ref_seq, ref_raw = corrupt_and_decode(truncate)
    keep = np.arange(50) != 40
    np.testing.assert_array_equal(seq, ref_seq[keep])
    s = decoder.stats
    assert (s.samples_lost, s.bytes_skipped, s.frames_ok) == (1, 15, 49)


def test_a_truncated_frame_at_the_end_waits_for_more_bytes():
    data, *_ = clean_stream(5)
    decoder = Decoder()
    assert len(decoder.feed(data[:-5])) == 4
    assert decoder.pending_bytes == 18
    assert len(decoder.feed(data[-5:])) == 1 and decoder.pending_bytes == 0


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(1, 64), max_size=20))
def test_decoder_never_raises_and_its_byte_counts_add_up(data, cuts):
    good, *_ = clean_stream(8)
    stream = good[:50] + data + good[50:]
    decoder = Decoder()
    for part in split(stream, cuts):
        decoder.feed(part)
    s = decoder.stats
    assert s.bytes_in == len(stream)
    assert s.bytes_in == s.frame_bytes + s.bytes_skipped + decoder.pending_bytes


# ---------------------------------------------------------------- clocks, resets, repeats

def test_sequence_and_clock_wrap_around_stay_monotonic():
    data, seq, t_us, raw = clean_stream(200, seq0=65_500, t0=2**32 - 1_000_000)
    decoder, got_seq, got_t, _ = decode_all(data, [23 * 17] * 20)
    assert np.all(np.diff(got_seq) == 1) and np.all(np.diff(got_t) == PERIOD_US)
    assert got_seq[-1] > 65_535 and got_t[-1] > 2**32
    assert decoder.stats.samples_lost == 0 and decoder.stats.resets == 0


def test_clock_wraps_many_times_over_a_long_session():
    # 4 hours at 10 Hz: the µs clock wraps three times, the sequence twice.
    n = 4 * 3600 * 10
    seq, t_us = np.arange(n), np.arange(n) * 100_000
    data = protocol.encode_samples(seq, t_us, np.zeros((n, 6), np.int16))
    _, got_seq, got_t, _ = decode_all(data, [4096] * (len(data) // 4096 + 1))
    np.testing.assert_array_equal(got_seq, seq)
    np.testing.assert_array_equal(got_t, t_us)


def test_gap_in_sequence_counts_lost_samples():
    data, *_ = clean_stream(100)
    frames = frames_of(data)
    del frames[30:37]  # the board skipped seven slots
    decoder, seq, *_ = decode_all(b"".join(frames))
    assert decoder.stats.samples_lost == 7 and decoder.stats.bytes_skipped == 0
    assert np.all(np.diff(seq) > 0)


def test_board_reset_is_detected_and_time_stays_monotonic():
    before, *_ = clean_stream(40, seq0=500, t0=90_000_000)
    after, *_ = clean_stream(40, seq0=0, t0=1_000, seed=2)
    data = before + protocol.encode_info(BoardInfo()) + after
    decoder = Decoder()
    chunk = decoder.feed(data)
    assert decoder.stats.resets == 1 and chunk.resets == [40]
    assert len(chunk) == 80 and np.all(np.diff(chunk.seq) > 0) and np.all(np.diff(chunk.t_us) > 0)
    assert chunk.infos[0][0] == 40
    assert decoder.stats.samples_lost == 0


def test_a_reset_soon_after_power_up_loses_nothing():
    # The board restarts 0.4 s after booting: its new times overlap the old ones.
    before, *_ = clean_stream(20)
    after, *_ = clean_stream(30, seed=3)
    info = protocol.encode_info(BoardInfo())
    for cut in (None, len(info + before), len(info + before + info)):  # the info frame alone, or with samples
        decoder, seq, t_us, _ = decode_all(info + before + info + after, None if cut is None else [cut])
        assert decoder.stats.resets == 1 and decoder.stats.stale == 0
        assert seq.size == 50 and np.all(np.diff(seq) > 0) and np.all(np.diff(t_us) > 0)


def test_repeated_and_reordered_frames_are_dropped_as_stale():
    data, seq, _, raw = clean_stream(30)
    frames = frames_of(data)
    frames.insert(11, frames[10])  # a repeat
    frames[20], frames[21] = frames[21], frames[20]  # a swap
    decoder, got_seq, got_t, got_raw = decode_all(b"".join(frames))
    assert np.all(np.diff(got_seq) > 0) and np.all(np.diff(got_t) > 0)
    assert decoder.stats.stale == 2 and decoder.stats.resets == 0
    assert decoder.stats.samples == 29  # the swapped pair keeps its later frame


def test_command_bytes():
    assert protocol.command("rate", 100) == b"rate 100\n"
    assert protocol.command("start") == b"start\n"
    with pytest.raises(ValueError):
        protocol.command("reboot")


def test_decode_benchmark_prints_its_figures():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "decode.py"), "--quick"],
                         capture_output=True, text=True, check=True).stdout
    for name in ("harduino Decoder", "struct.unpack per frame", "text line split", "wire limit", "summary: decode"):
        assert name in out
    assert "M/s" in out


def test_a_frame_cut_off_by_a_lost_connection_is_discarded_not_mixed_with_new_bytes():
    data, seq, *_ = clean_stream(10)
    decoder = Decoder()
    decoder.feed(data[: 4 * 23 + 9])  # the link drops mid-frame
    assert len(decoder.finish()) == 0 and decoder.pending_bytes == 0
    chunk = decoder.feed(data[5 * 23 :])  # the board is back
    s = decoder.stats
    assert s.crc_errors == 0 and s.samples_lost == 1 and s.bytes_skipped == 9
    assert s.bytes_in == s.frame_bytes + s.bytes_skipped + decoder.pending_bytes
    np.testing.assert_array_equal(chunk.seq, seq[5:])


# ---------------------------------------------------------------- where frames lie

def test_each_sample_and_info_frame_says_where_it_lies_in_the_stream():
    info = protocol.encode_info(BoardInfo())
    samples, seq, *_ = clean_stream(40)
    noise = b"\x00\xa5\x5a\x01noise"
    data = info + samples[:10 * 23] + noise + info + samples[10 * 23:]
    rng = np.random.default_rng(3)
    for sizes in (None, rng.integers(1, 60, size=100).tolist()):
        decoder = Decoder()
        chunks = [decoder.feed(p) for p in ([data] if sizes is None else split(data, sizes))] + [decoder.finish()]
        ends = np.concatenate([c.sample_ends for c in chunks])
        spans = [span for c in chunks for span in c.info_spans]
        assert len(ends) == 40 and spans == [(0, 34), (34 + 230 + len(noise), 34 + 230 + len(noise) + 34)]
        frames = [data[e - 23 : e] for e in ends]
        assert b"".join(frames) == samples  # each span holds exactly that sample's frame
        assert all(data[a:b] == info for a, b in spans)


def test_finish_hands_on_complete_frames_and_skips_a_cut_off_one():
    data, seq, *_ = clean_stream(6)
    decoder = Decoder()
    # An info frame's start (A5 5A 02) glued before the last frame: it might still be arriving.
    assert len(decoder.feed(data[:5 * 23] + b"\xa5\x5a\x02\x01" + data[5 * 23:])) == 5
    tail = decoder.finish()
    assert tail.seq.tolist() == [5] and decoder.pending_bytes == 0
    s = decoder.stats
    assert s.bytes_in == s.frame_bytes + s.bytes_skipped and s.bytes_skipped == 4 and s.crc_errors == 0
