"""The decoder: bytes as they arrive become numpy blocks of samples, and where each frame lies in the stream.

Chunks may split a frame anywhere or hold thousands of frames. Every sync word
is a candidate, the CRC decides, the earlier of two overlapping frames wins,
and sync words inside an accepted frame are ordinary data. The decoder never
raises on bad bytes: it resynchronises and counts (docs/protocol.md).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np

from .clock import Clock
from .frames import (_LEN_BY_TYPE, _SAMPLE_HEAD, SAMPLE_DTYPE, SAMPLE_FRAME_LEN, TYPE_ERROR, TYPE_INFO, TYPE_MODEL,
                     TYPE_PREDICTION, TYPE_SAMPLE, BoardInfo, BoardModelInfo, BoardPrediction, crc16, decode_error,
                     decode_info, decode_model, decode_prediction, info_is_plausible, sample_crc_residue)

_NONE = np.zeros(0, dtype=np.int64)
_HEAD = [bytes([b]) for b in _SAMPLE_HEAD]  # a sample frame's first three bytes, one by one


@dataclass
class DecoderStats:
    """Running counts. Invariant: bytes_in == frame_bytes + bytes_skipped + pending bytes."""

    bytes_in: int = 0
    frame_bytes: int = 0     # bytes inside frames that passed their CRC
    bytes_skipped: int = 0   # bytes thrown away while resynchronising
    frames_ok: int = 0       # frames that passed their CRC, of any type
    crc_errors: int = 0      # complete frames whose CRC failed
    malformed: int = 0       # sync words followed by an unknown frame type, info frames no board sends
    samples: int = 0         # sample frames handed on
    samples_lost: int = 0    # sequence numbers skipped (gaps), the board's or the link's
    stale: int = 0           # sample frames repeated or out of order, dropped
    resets: int = 0          # the board restarted: sequence and clock jumped back
    info_frames: int = 0
    error_frames: int = 0
    prediction_frames: int = 0  # v2: the board's own model
    model_frames: int = 0


@dataclass
class DecodedChunk:
    """What one feed() produced, in arrival order.

    seq and t_us are unwrapped, monotonic 64-bit values. infos and errors carry
    the number of samples in this chunk that came before them, so a reader can
    tell which samples a new info frame applies to; so do predictions and models
    (v2), a prediction's seq unwrapped like the samples'. Byte offsets count from
    the first byte the decoder was fed.
    """

    seq: np.ndarray
    t_us: np.ndarray
    raw: np.ndarray
    infos: list[tuple[int, BoardInfo]] = field(default_factory=list)
    errors: list[tuple[int, int, str]] = field(default_factory=list)
    resets: list[int] = field(default_factory=list)
    info_spans: list[tuple[int, int]] = field(default_factory=list)  # (start, end) offsets of each info frame
    predictions: list[tuple[int, BoardPrediction]] = field(default_factory=list)
    models: list[tuple[int, BoardModelInfo]] = field(default_factory=list)
    # Where the sample frames lie: (offset of the first byte decoded, frames back to back from there,
    # offsets of those the scan found after them, which of all were handed on: None for every one).
    # sample_ends works it out when asked, so a read that needs no spans pays nothing for them.
    _layout: tuple[int, int, np.ndarray, np.ndarray | None] = field(default=(0, 0, _NONE, None), repr=False,
                                                                    compare=False)

    def __len__(self) -> int:
        return len(self.seq)

    @functools.cached_property
    def sample_ends(self) -> np.ndarray:
        """(n,) int64: the offset just past each sample's frame (replay pacing and log trimming cut there)."""
        base, aligned, starts, keep = self._layout
        ends = np.concatenate([base + SAMPLE_FRAME_LEN * np.arange(1, aligned + 1), starts + SAMPLE_FRAME_LEN])
        return ends if keep is None else ends[keep]


class Decoder:
    """Incremental decoder: feed() any chunks of bytes, get numpy blocks of samples; finish() at the end."""

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._pending = b""
        self._info_pending = False  # an info frame came after the last sample
        self._last_seq: int | None = None  # the last sample's unwrapped seq, for predictions'
        self._clock = Clock()

    @property
    def pending(self) -> bytes:
        """The start of a frame still arriving: the next feed() completes it."""
        return self._pending

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    @property
    def pending_offset(self) -> int:
        """The stream offset of the first pending byte."""
        return self.stats.bytes_in - len(self._pending)

    def feed(self, data: bytes) -> DecodedChunk:
        return self._decode(bytes(data), final=False)

    def finish(self) -> DecodedChunk:
        """The stream has ended (a lost connection, the end of a log): hand on the complete frames still held.

        What cannot become a frame any more is skipped; the next feed() starts afresh.
        """
        return self._decode(b"", final=True)

    def _decode(self, data: bytes, final: bool) -> DecodedChunk:
        base = self.pending_offset
        self.stats.bytes_in += len(data)
        buf = self._pending + data
        a = np.frombuffer(buf, dtype=np.uint8)
        # The common case: back-to-back sample frames from the first byte on.
        aligned = self._aligned_samples(a, buf)
        head = aligned * SAMPLE_FRAME_LEN
        rest, rest_buf = a[head:], buf[head:]
        starts, types, lengths, end = self._scan(rest, rest_buf, final)

        accepted_bytes = int(lengths.sum())
        self.stats.frames_ok += aligned + int(starts.size)
        self.stats.frame_bytes += head + accepted_bytes
        self.stats.bytes_skipped += end - accepted_bytes
        self._pending = rest_buf[end:]

        frames, others, scanned = a[:head], [], _NONE
        if starts.size:
            is_sample = types == TYPE_SAMPLE
            scanned = starts[is_sample]
            frames = np.concatenate([frames, rest[scanned[:, None] + np.arange(SAMPLE_FRAME_LEN)].reshape(-1)])
            scanned = scanned + (base + head)
            # Where each info/error frame sits among this chunk's sample frames.
            order = aligned + np.cumsum(is_sample) - is_sample
            others = [(int(order[i]), int(types[i]), int(starts[i]) + base + head, int(lengths[i]),
                       rest_buf[starts[i] + 3 : starts[i] + lengths[i] - 2])
                      for i in np.flatnonzero(~is_sample)]
        return self._chunk(frames.view(SAMPLE_DTYPE), others, (base, aligned, scanned))

    # -- steps of _decode()

    @staticmethod
    def _aligned_samples(a: np.ndarray, buf: bytes) -> int:
        """How many valid sample frames lie back to back from the start of the buffer (a: buf as uint8)."""
        k = len(buf) // SAMPLE_FRAME_LEN
        if k == 0 or not buf.startswith(_SAMPLE_HEAD):
            return 0
        span = k * SAMPLE_FRAME_LEN
        rows = a[:span].reshape(k, SAMPLE_FRAME_LEN)
        # Every head in place is three byte-string compares (no numpy call: this runs on every read).
        heads = (buf[0:span:SAMPLE_FRAME_LEN] == _HEAD[0] * k and buf[1:span:SAMPLE_FRAME_LEN] == _HEAD[1] * k
                 and buf[2:span:SAMPLE_FRAME_LEN] == _HEAD[2] * k)
        bad = sample_crc_residue(rows) != 0
        if heads and not bad.any():
            return k
        if not heads:
            bad |= (rows[:, 0] != 0xA5) | (rows[:, 1] != 0x5A) | (rows[:, 2] != TYPE_SAMPLE)
        return int(np.argmax(bad))

    def _scan(self, a: np.ndarray, buf: bytes, final: bool):
        """Find frames anywhere in the buffer: every sync word is a candidate, the CRC decides.

        Returns the accepted frames' starts, types and lengths, and where the
        bytes still to be decided (a frame that may still be arriving) begin.
        """
        n = a.size
        if not final:
            if n < 2:  # nothing to decide yet
                return _NONE, _NONE, _NONE, 0 if n == 0 or a[0] == 0xA5 else 1
            if n < SAMPLE_FRAME_LEN and a[0] == 0xA5 and a[1] == 0x5A and (n == 2 or n < _LEN_BY_TYPE[a[2]]):
                return _NONE, _NONE, _NONE, 0  # the usual tail: the start of the next frame
        starts = np.flatnonzero((a[:-1] == 0xA5) & (a[1:] == 0x5A))
        types = a[np.minimum(starts + 2, n - 1)]
        lengths = _LEN_BY_TYPE[types]
        typed = starts + 2 < n
        complete = typed & (lengths > 0) & (starts + lengths <= n)
        ok = np.zeros(starts.size, dtype=bool)
        ok[complete] = self._crc_ok(a, buf, starts[complete], types[complete], lengths[complete])
        # An info frame no board sends (a scale of zero, say) passes its CRC but is malformed.
        implausible = np.zeros(starts.size, dtype=bool)
        for i in np.flatnonzero(ok & (types == TYPE_INFO)):
            implausible[i] = not info_is_plausible(buf[starts[i] + 3 : starts[i] + lengths[i] - 2])
        ok &= ~implausible
        acc_starts, acc_types, acc_lens = self._non_overlapping(starts[ok], types[ok], lengths[ok])
        acc_ends = acc_starts + acc_lens

        # Candidates inside a frame we accepted are data bytes that look like sync.
        inside = np.zeros(starts.size, dtype=bool)
        if acc_starts.size:
            idx = np.searchsorted(acc_starts, starts, side="right") - 1
            inside = (idx >= 0) & (starts < acc_ends[np.maximum(idx, 0)])
        # Bytes from the first frame that may still be arriving are kept for later (none at the end).
        undecided = ~complete & ~inside & (~typed | (lengths > 0))
        if final:
            cut = n
        elif undecided.any():
            cut = int(starts[undecided][0])
        else:
            tail = n - 1 if n and a[-1] == 0xA5 else n
            cut = n if tail < n and acc_ends.size and acc_ends[-1] > tail else tail
        kept = acc_starts < cut
        acc_starts, acc_types, acc_lens, acc_ends = acc_starts[kept], acc_types[kept], acc_lens[kept], acc_ends[kept]

        loose = ~ok & ~inside & (starts < cut)  # candidates that failed
        self.stats.crc_errors += int(np.count_nonzero(loose & complete & ~implausible))
        self.stats.malformed += int(np.count_nonzero(loose & ((typed & (lengths == 0)) | implausible)))
        end = max(cut, int(acc_ends[-1]) if acc_ends.size else 0)
        return acc_starts, acc_types, acc_lens, end

    @staticmethod
    def _crc_ok(a, buf, starts, types, lengths) -> np.ndarray:
        ok = np.zeros(starts.size, dtype=bool)
        is_sample = types == TYPE_SAMPLE
        if is_sample.any():
            ok[is_sample] = sample_crc_residue(a[starts[is_sample, None] + np.arange(SAMPLE_FRAME_LEN)]) == 0
        for i in np.flatnonzero(~is_sample):  # info and error frames are rare
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

    def _chunk(self, frames: np.ndarray, others: list, layout: tuple) -> DecodedChunk:
        infos, spans, errors, predictions, models = [], [], [], [], []
        for position, type_, start, length, payload in others:  # a few per session, predictions a few a second
            if type_ == TYPE_INFO:
                infos.append((position, decode_info(payload)))
                spans.append((start, start + length))
            elif type_ == TYPE_ERROR:
                errors.append((position, *decode_error(payload)))
            elif type_ == TYPE_PREDICTION:
                predictions.append((position, decode_prediction(payload)))
            elif type_ == TYPE_MODEL:
                models.append((position, decode_model(payload)))
        self.stats.info_frames += len(infos)
        self.stats.error_frames += len(errors)
        self.stats.prediction_frames += len(predictions)
        self.stats.model_frames += len(models)

        # A sample that follows an info frame may be the first of a new boot (the board
        # sends one at start-up): a step back there is a reset, never a stale frame.
        info_at = [p for p, _ in infos] + [0] if self._info_pending else [p for p, _ in infos]
        if len(frames):
            self._info_pending = False
        if infos and infos[-1][0] == len(frames):
            self._info_pending = True
        clock = self._clock.unwrap(frames["seq"], frames["t_us"], info_at)
        self.stats.samples_lost += clock.lost
        raw, keep = frames["raw"], clock.keep
        if keep is not None:
            self.stats.stale += clock.stale
            self.stats.resets += len(clock.resets)
        if keep is not None and not keep.all():  # drop stale frames and renumber the infos' positions
            before = np.concatenate([[0], np.cumsum(keep)])
            infos = [(int(before[p]), info) for p, info in infos]
            errors = [(int(before[p]), c, m) for p, c, m in errors]
            predictions = [(int(before[p]), x) for p, x in predictions]
            models = [(int(before[p]), x) for p, x in models]
            raw = raw[keep]
        else:
            keep = None
        self.stats.samples += int(clock.seq.size)
        predictions = [(p, self._unwrapped(x, clock.seq, p)) for p, x in predictions]
        if clock.seq.size:
            self._last_seq = int(clock.seq[-1])
        return DecodedChunk(clock.seq, clock.t_us, raw.astype(np.int16), infos, errors, clock.resets, spans,
                            predictions, models, (*layout, keep))

    def _unwrapped(self, prediction: BoardPrediction, seq: np.ndarray, position: int) -> BoardPrediction:
        """The prediction with its seq unwrapped to the nearest value to the last sample frame's.

        Its window's last sample normally came just before it, but in text mode samples come
        as lines, so the first prediction frame after `binary` may be ahead of every sample frame.
        """
        last = int(seq[position - 1]) if position > 0 else self._last_seq
        if last is None:
            return prediction
        return dataclasses.replace(prediction, seq=last + ((prediction.seq - last + 0x8000) & 0xFFFF) - 0x8000)
