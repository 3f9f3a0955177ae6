"""The decoder: bytes as they arrive become numpy blocks of samples.

Chunks may split a frame anywhere or hold thousands of frames. Every sync word
is a candidate, the CRC decides, and the earlier of two overlapping frames
wins. The decoder never raises on bad bytes: it resynchronises and counts
(docs/protocol.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .clock import Clock
from .frames import (_LEN_BY_TYPE, _SAMPLE_HEAD, SAMPLE_DTYPE, SAMPLE_FRAME_LEN, TYPE_INFO, TYPE_SAMPLE, BoardInfo,
                     crc16, decode_error, decode_info, sample_crc_residue)

_NONE = np.zeros(0, dtype=np.int64)


@dataclass
class DecoderStats:
    """Running counts. Invariant: bytes_in == frame_bytes + bytes_skipped + pending bytes."""

    bytes_in: int = 0
    frame_bytes: int = 0     # bytes inside frames that passed their CRC
    bytes_skipped: int = 0   # bytes thrown away while resynchronising
    frames_ok: int = 0       # frames that passed their CRC, of any type
    crc_errors: int = 0      # complete frames whose CRC failed
    malformed: int = 0       # sync words followed by an unknown frame type
    samples: int = 0         # sample frames handed on
    samples_lost: int = 0    # sequence numbers skipped (gaps), the board's or the link's
    stale: int = 0           # sample frames repeated or out of order, dropped
    resets: int = 0          # the board restarted: sequence and clock jumped back
    info_frames: int = 0
    error_frames: int = 0


@dataclass
class DecodedChunk:
    """What one feed() produced, in arrival order.

    seq and t_us are unwrapped, monotonic 64-bit values. infos and errors carry
    the number of samples in this chunk that came before them, so a reader can
    tell which samples a new info frame applies to.
    """

    seq: np.ndarray
    t_us: np.ndarray
    raw: np.ndarray
    infos: list[tuple[int, BoardInfo]] = field(default_factory=list)
    errors: list[tuple[int, int, str]] = field(default_factory=list)
    resets: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seq)


class Decoder:
    """Incremental decoder: feed() any chunks of bytes, get numpy blocks of samples; finish() at the end."""

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._pending = b""
        self._info_pending = False  # an info frame came after the last sample
        self._clock = Clock()

    @property
    def pending(self) -> bytes:
        """The start of a frame still arriving: the next feed() completes it."""
        return self._pending

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def discard_pending(self) -> None:
        """Forget a frame cut off by a lost connection: its rest will never come (counted as skipped)."""
        self.stats.bytes_skipped += len(self._pending)
        self._pending = b""

    def feed(self, data: bytes) -> DecodedChunk:
        self.stats.bytes_in += len(data)
        buf = self._pending + bytes(data)
        a = np.frombuffer(buf, dtype=np.uint8)
        # The common case: back-to-back sample frames from the first byte on.
        aligned = self._aligned_samples(buf)
        head = aligned * SAMPLE_FRAME_LEN
        rest, rest_buf = a[head:], buf[head:]
        starts, types, lengths, end = self._scan(rest, rest_buf)

        accepted_bytes = int(lengths.sum())
        self.stats.frames_ok += aligned + int(starts.size)
        self.stats.frame_bytes += head + accepted_bytes
        self.stats.bytes_skipped += end - accepted_bytes
        self._pending = rest_buf[end:]

        frames, others = a[:head], []
        if starts.size:
            is_sample = types == TYPE_SAMPLE
            scanned = rest[starts[is_sample, None] + np.arange(SAMPLE_FRAME_LEN)].reshape(-1)
            frames = np.concatenate([frames, scanned])
            # Where each info/error frame sits among this chunk's sample frames.
            order = aligned + np.cumsum(is_sample) - is_sample
            others = [(int(order[i]), int(types[i]), rest_buf[starts[i] + 3 : starts[i] + lengths[i] - 2])
                      for i in np.flatnonzero(~is_sample)]
        return self._chunk(frames.view(SAMPLE_DTYPE), others)

    # -- steps of feed()

    @staticmethod
    def _aligned_samples(buf: bytes) -> int:
        """How many valid sample frames lie back to back from the start of the buffer."""
        k = len(buf) // SAMPLE_FRAME_LEN
        if k == 0 or not buf.startswith(_SAMPLE_HEAD):
            return 0
        span = k * SAMPLE_FRAME_LEN
        rows = np.frombuffer(buf, dtype=np.uint8, count=span).reshape(k, SAMPLE_FRAME_LEN)
        # Every head in place is three byte-string compares (no numpy call: this runs on every read).
        heads = all(buf[i:span:SAMPLE_FRAME_LEN] == bytes([b]) * k for i, b in enumerate(_SAMPLE_HEAD))
        bad = sample_crc_residue(rows) != 0
        if heads and not bad.any():
            return k
        if not heads:
            bad |= (rows[:, 0] != 0xA5) | (rows[:, 1] != 0x5A) | (rows[:, 2] != TYPE_SAMPLE)
        return int(np.argmax(bad))

    def _scan(self, a: np.ndarray, buf: bytes):
        """Find frames anywhere in the buffer: every sync word is a candidate, the CRC decides.

        Returns the accepted frames' starts, types and lengths, and where the
        bytes still to be decided (a frame that may still be arriving) begin.
        """
        n = a.size
        if n < 2:  # nothing to decide yet
            return _NONE, _NONE, _NONE, 0 if n == 0 or a[0] == 0xA5 else 1
        if n < SAMPLE_FRAME_LEN and a[0] == 0xA5 and a[1] == 0x5A and (n == 2 or n < _LEN_BY_TYPE[a[2]]):
            return _NONE, _NONE, _NONE, 0  # the usual tail: the start of the next frame
        starts = np.flatnonzero((a[:-1] == 0xA5) & (a[1:] == 0x5A))
        types = a[np.minimum(starts + 2, n - 1)]
        lengths = _LEN_BY_TYPE[types]
        # Bytes from the first frame that may still be arriving are kept for later.
        incomplete = (starts + 2 >= n) | ((lengths > 0) & (starts + lengths > n))
        cut = int(starts[incomplete][0]) if incomplete.any() else (n - 1 if n and a[-1] == 0xA5 else n)
        keep = starts < cut
        starts, types, lengths = starts[keep], types[keep], lengths[keep]

        ok = self._crc_ok(a, buf, starts, types, lengths)
        acc_starts, acc_types, acc_lens = self._non_overlapping(starts[ok], types[ok], lengths[ok])
        acc_ends = acc_starts + acc_lens

        # Candidates that failed, unless they sit inside a frame we accepted (data bytes that look like sync).
        loose = ~ok
        if acc_starts.size:
            idx = np.searchsorted(acc_starts, starts, side="right") - 1
            loose &= ~((idx >= 0) & (starts < acc_ends[np.maximum(idx, 0)]))
        self.stats.crc_errors += int(np.count_nonzero(loose & (lengths > 0)))
        self.stats.malformed += int(np.count_nonzero(loose & (lengths == 0)))
        end = max(cut, int(acc_ends[-1]) if acc_ends.size else 0)
        return acc_starts, acc_types, acc_lens, end

    @staticmethod
    def _crc_ok(a, buf, starts, types, lengths) -> np.ndarray:
        ok = np.zeros(starts.size, dtype=bool)
        is_sample = types == TYPE_SAMPLE
        if is_sample.any():
            ok[is_sample] = sample_crc_residue(a[starts[is_sample, None] + np.arange(SAMPLE_FRAME_LEN)]) == 0
        for i in np.flatnonzero((lengths > 0) & ~is_sample):  # info and error frames are rare
            s, ln = int(starts[i]), int(lengths[i])
            ok[i] = crc16(buf[s + 2 : s + ln - 2]) == int.from_bytes(buf[s + ln - 2 : s + ln], "little")
        return ok

    @staticmethod
    def _non_overlapping(starts, types, lengths):
        """Frames that passed their CRC, first come first served where two overlap."""
        if starts.size < 2 or np.all(starts[1:] >= starts[:-1] + lengths[:-1]):
            return starts, types, lengths
        keep, end = [], -1
        for i, s in enumerate(starts.tolist()):
            if s >= end:
                keep.append(i)
                end = s + int(lengths[i])
        return starts[keep], types[keep], lengths[keep]

    def _chunk(self, frames: np.ndarray, others: list[tuple[int, int, bytes]]) -> DecodedChunk:
        infos, errors = [], []
        for position, type_, payload in others:  # info and error frames: a few per session
            if type_ == TYPE_INFO:
                infos.append((position, decode_info(payload)))
            else:
                errors.append((position, *decode_error(payload)))
        self.stats.info_frames += len(infos)
        self.stats.error_frames += len(errors)

        # A sample that follows an info frame may be the first of a new boot (the board
        # sends one at start-up): a step back there is a reset, never a stale frame.
        info_at = {p for p, _ in infos} | ({0} if self._info_pending else set())
        if len(frames):
            self._info_pending = False
        if infos and infos[-1][0] == len(frames):
            self._info_pending = True
        clock = self._clock.unwrap(frames["seq"], frames["t_us"], info_at)
        self.stats.samples_lost += clock.lost
        self.stats.stale += clock.stale
        self.stats.resets += len(clock.resets)
        raw, keep = frames["raw"], clock.keep
        if keep is not None and not keep.all():  # drop stale frames and renumber the infos' positions
            before = np.concatenate([[0], np.cumsum(keep)])
            infos = [(int(before[p]), info) for p, info in infos]
            errors = [(int(before[p]), c, m) for p, c, m in errors]
            raw = raw[keep]
        self.stats.samples += int(clock.seq.size)
        return DecodedChunk(clock.seq, clock.t_us, raw.astype(np.int16), infos, errors, clock.resets)
