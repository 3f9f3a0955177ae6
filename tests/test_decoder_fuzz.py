"""A seeded corpus of a million mutated frames: the decoder never raises and its counts add up."""

from __future__ import annotations

import numpy as np

from harduino import protocol

N_FRAMES = 1_000_000
MUTATION_RATE = 0.05


def mutated_stream(seed: int) -> tuple[bytes, dict[str, int]]:
    rng = np.random.default_rng(seed)
    seq, t_us = np.arange(N_FRAMES), np.arange(N_FRAMES) * 10_000
    raw = rng.integers(-32768, 32768, size=(N_FRAMES, 6)).astype(np.int16)
    frames = np.frombuffer(protocol.encode_samples(seq, t_us, raw), np.uint8).reshape(N_FRAMES, -1)
    L = frames.shape[1]
    mutated = np.flatnonzero(rng.random(N_FRAMES) < MUTATION_RATE)
    kinds = rng.integers(0, 6, size=mutated.size)
    counts = dict.fromkeys(["flip", "truncate", "insert", "duplicate", "swap", "info"], 0)
    pieces, last = [], 0
    for i, kind in zip(mutated.tolist(), kinds.tolist()):
        if i < last:
            continue  # already consumed by a swap
        pieces.append(frames[last:i].tobytes())
        frame = frames[i].tobytes()
        last = i + 1
        if kind == 0:  # bit flips anywhere in the frame
            b = bytearray(frame)
            for pos in rng.integers(0, L, size=rng.integers(1, 4)):
                b[pos] ^= 1 << int(rng.integers(0, 8))
            frame, name = bytes(b), "flip"
        elif kind == 1:
            frame, name = frame[: int(rng.integers(0, L))], "truncate"
        elif kind == 2:
            frame, name = frame + rng.bytes(int(rng.integers(1, 40))), "insert"
        elif kind == 3:
            frame, name = frame + frame, "duplicate"
        elif kind == 4 and i + 1 < N_FRAMES:
            frame, name = frames[i + 1].tobytes() + frame, "swap"
            last = i + 2
        else:
            frame, name = protocol.encode_info(protocol.BoardInfo()) + frame, "info"
        counts[name] += 1
        pieces.append(frame)
    pieces.append(frames[last:].tobytes())
    return b"".join(pieces), counts


def test_a_million_mutated_frames_in_random_chunks():
    stream, counts = mutated_stream(seed=2026)
    assert min(counts.values()) > 5000  # every kind of damage is well represented
    rng = np.random.default_rng(7)
    decoder = protocol.Decoder()
    emitted, last_seq, last_t, i = 0, -1, -1, 0
    while i < len(stream):
        size = int(rng.integers(1, 8192))
        chunk = decoder.feed(stream[i : i + size])
        i += size
        emitted += len(chunk)
        if len(chunk):  # unwrapped clocks never step back, across chunks too
            assert chunk.seq[0] > last_seq and chunk.t_us[0] > last_t
            assert np.all(np.diff(chunk.seq) > 0) and np.all(np.diff(chunk.t_us) > 0)
            last_seq, last_t = chunk.seq[-1], chunk.t_us[-1]
        s = decoder.stats
        assert s.bytes_in == s.frame_bytes + s.bytes_skipped + decoder.pending_bytes
    s = decoder.stats
    assert s.bytes_in == len(stream)
    assert s.samples == emitted
    assert s.frames_ok == s.samples + s.stale + s.info_frames + s.error_frames
    assert s.info_frames == counts["info"]
    # Damage is seen, and almost all of the undamaged frames get through.
    assert s.crc_errors > 0 and s.stale >= counts["duplicate"]
    intact = N_FRAMES - counts["flip"] - counts["truncate"]
    assert intact - 2 * counts["swap"] <= s.samples <= N_FRAMES
