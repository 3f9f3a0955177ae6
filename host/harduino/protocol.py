"""Protocol v1: the frames the board sends and the text commands it answers.

Documented byte for byte in docs/protocol.md. Every frame is

    sync (A5 5A) | type (u8) | payload (fixed per type) | CRC-16/XMODEM (u16 LE)

with the CRC computed over type + payload. All integers are little-endian.

The encoder and the decoder work on numpy blocks: a chunk of bytes becomes
arrays of samples in a handful of vectorised steps, never a Python object per
sample. The decoder never raises on bad bytes; it resynchronises and counts.
"""

from __future__ import annotations

import binascii
import functools
import math
import struct
from dataclasses import dataclass, field

import numpy as np

PROTOCOL_VERSION = 1
SYNC = b"\xa5\x5a"

TYPE_SAMPLE = 0x01
TYPE_INFO = 0x02
TYPE_ERROR = 0x03

GRAVITY = 9.80665  # m/s² per g

# A sample frame: the six raw axes are accel x, y, z then gyro x, y, z.
SAMPLE_DTYPE = np.dtype(
    [
        ("sync", "<u2"),
        ("type", "u1"),
        ("seq", "<u2"),
        ("t_us", "<u4"),
        ("raw", "<i2", (6,)),
        ("crc", "<u2"),
    ]
)
SAMPLE_FRAME_LEN = SAMPLE_DTYPE.itemsize  # 23 bytes

# Info payload: protocol version, firmware major/minor/patch, sensor name,
# accel range (g), gyro range (°/s), accel LSB per g, gyro LSB per °/s, rate (Hz).
_INFO_PAYLOAD = struct.Struct("<BBBB12sBHffH")
INFO_FRAME_LEN = 2 + 1 + _INFO_PAYLOAD.size + 2  # 34 bytes

# Error payload: a code and a short ASCII message.
_ERROR_PAYLOAD = struct.Struct("<B16s")
ERROR_FRAME_LEN = 2 + 1 + _ERROR_PAYLOAD.size + 2  # 22 bytes

_SAMPLE_HEAD = SYNC + bytes([TYPE_SAMPLE])
FRAME_LEN = {TYPE_SAMPLE: SAMPLE_FRAME_LEN, TYPE_INFO: INFO_FRAME_LEN, TYPE_ERROR: ERROR_FRAME_LEN}
MAX_FRAME_LEN = max(FRAME_LEN.values())
_LEN_BY_TYPE = np.zeros(256, dtype=np.int64)  # frame length by type byte; 0 = unknown type
for _type, _length in FRAME_LEN.items():
    _LEN_BY_TYPE[_type] = _length

ERROR_SENSOR_MISSING = 1
ERROR_BAD_COMMAND = 2
ERROR_BAD_RATE = 3

# Text commands, one per line (so the Arduino Serial Monitor works too).
COMMANDS = ("start", "stop", "info", "rate")


def command(name: str, arg: int | None = None) -> bytes:
    """The bytes of one text command, e.g. command("rate", 100) == b"rate 100\\n"."""
    if name not in COMMANDS:
        raise ValueError(f"unknown board command {name!r}; known: {', '.join(COMMANDS)}")
    return (f"{name} {arg}\n" if arg is not None else f"{name}\n").encode("ascii")


# ---------------------------------------------------------------- CRC-16/XMODEM

@functools.cache
def _position_tables(width: int) -> np.ndarray:
    """T[i, v] = CRC of a width-byte message that is zero except for value v at position i.

    CRC-16/XMODEM (init 0, no final XOR) is linear over GF(2), so the CRC of a
    message is the XOR of its bytes' contributions: one gather and one XOR-reduce
    for a whole block of frames instead of a Python loop per frame.
    """
    tables = np.empty((width, 256), dtype=np.uint16)
    message = bytearray(width)
    for i in range(width):
        for v in range(256):
            message[i] = v
            tables[i, v] = binascii.crc_hqx(message, 0)
        message[i] = 0
    return tables


def crc16_rows(rows: np.ndarray) -> np.ndarray:
    """CRC-16/XMODEM of every row of a (n, width) uint8 array."""
    width = rows.shape[1]
    return np.bitwise_xor.reduce(_position_tables(width)[np.arange(width), rows], axis=1)


@functools.cache
def _residue_table() -> tuple[np.ndarray, np.ndarray]:
    """(offsets, R): R[offsets[i] + v] is what byte v at position i of a sample frame after its sync adds.

    Type and payload add their CRC terms and the stored CRC's two bytes add
    themselves (low, then high byte), so a frame's terms XOR to zero exactly
    when its stored CRC is right: one gather and one reduce check a block.
    """
    width = SAMPLE_FRAME_LEN - 4
    table = np.zeros((width + 2, 256), dtype=np.uint16)
    table[:width] = _position_tables(width)
    table[width] = np.arange(256)
    table[width + 1] = np.arange(256) << 8
    return np.arange(width + 2)[:, None] * 256, table.ravel()


def sample_crc_residue(rows: np.ndarray) -> np.ndarray:
    """(n,) uint16 for (n, 23) sample frames as bytes: 0 where the frame's CRC is right."""
    offsets, table = _residue_table()
    # Position-major (21, n), so the reduce runs down rows of contiguous frames: twice as fast.
    return np.bitwise_xor.reduce(np.take(table, rows[:, 2:].T + offsets), axis=0)


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0): what avr-libc's _crc_xmodem_update computes."""
    return binascii.crc_hqx(data, 0)


# ---------------------------------------------------------------- board info

@dataclass(frozen=True)
class BoardInfo:
    """What the board says about itself in an info frame."""

    protocol_version: int = PROTOCOL_VERSION
    firmware_version: tuple[int, int, int] = (1, 0, 0)
    sensor: str = "MPU-6050"
    accel_range_g: int = 2
    gyro_range_dps: int = 250
    accel_lsb_per_g: float = 16384.0
    gyro_lsb_per_dps: float = 131.0
    rate_hz: int = 50

    @property
    def si_scale(self) -> np.ndarray:
        """Multipliers taking the six raw axes to m/s² (accel) and rad/s (gyro)."""
        acc = GRAVITY / self.accel_lsb_per_g
        gyr = math.radians(1.0) / self.gyro_lsb_per_dps
        return np.array([acc, acc, acc, gyr, gyr, gyr])

    def to_dict(self) -> dict:
        return {
            "protocol_version": self.protocol_version,
            "firmware_version": ".".join(map(str, self.firmware_version)),
            "sensor": self.sensor,
            "accel_range_g": self.accel_range_g,
            "gyro_range_dps": self.gyro_range_dps,
            "accel_lsb_per_g": self.accel_lsb_per_g,
            "gyro_lsb_per_dps": self.gyro_lsb_per_dps,
            "rate_hz": self.rate_hz,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "BoardInfo":
        return cls(
            protocol_version=int(d["protocol_version"]),
            firmware_version=tuple(int(x) for x in str(d["firmware_version"]).split(".")),
            sensor=str(d["sensor"]),
            accel_range_g=int(d["accel_range_g"]),
            gyro_range_dps=int(d["gyro_range_dps"]),
            accel_lsb_per_g=float(d["accel_lsb_per_g"]),
            gyro_lsb_per_dps=float(d["gyro_lsb_per_dps"]),
            rate_hz=int(d["rate_hz"]),
        )


# ---------------------------------------------------------------- encoder

def _framed(type_and_payload: bytes) -> bytes:
    return SYNC + type_and_payload + struct.pack("<H", crc16(type_and_payload))


def encode_info(info: BoardInfo) -> bytes:
    payload = _INFO_PAYLOAD.pack(
        info.protocol_version,
        *info.firmware_version,
        info.sensor.encode("ascii")[:12],
        info.accel_range_g,
        info.gyro_range_dps,
        info.accel_lsb_per_g,
        info.gyro_lsb_per_dps,
        info.rate_hz,
    )
    return _framed(bytes([TYPE_INFO]) + payload)


def encode_error(code: int, message: str) -> bytes:
    return _framed(bytes([TYPE_ERROR]) + _ERROR_PAYLOAD.pack(code, message.encode("ascii")[:16]))


def encode_samples(seq, t_us, raw) -> bytes:
    """Sample frames for a block: seq (n,) mod 2^16, t_us (n,) mod 2^32, raw (n, 6) int16."""
    raw = np.asarray(raw)
    frames = np.zeros(raw.shape[0], dtype=SAMPLE_DTYPE)
    frames["sync"] = 0x5AA5
    frames["type"] = TYPE_SAMPLE
    frames["seq"] = np.asarray(seq, dtype=np.int64) & 0xFFFF
    frames["t_us"] = np.asarray(t_us, dtype=np.int64) & 0xFFFFFFFF
    frames["raw"] = raw
    as_bytes = frames.view(np.uint8).reshape(-1, SAMPLE_FRAME_LEN)
    frames["crc"] = crc16_rows(as_bytes[:, 2:-2])
    return frames.tobytes()


# ---------------------------------------------------------------- decoder

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


_NONE = np.zeros(0, dtype=np.int64)
_HALF_SEQ = 1 << 15
_HALF_TIME = 1 << 31
_STALE_WINDOW_US = 1_000_000  # a frame from less than 1 s ago is stale, not a reset
_WRAP = np.array([[0xFFFF], [0xFFFFFFFF]], dtype=np.int64)  # seq is 16 bits, t_us 32
_FORWARD_BELOW = np.array([[_HALF_SEQ - 1], [_HALF_TIME - 1]], dtype=np.uint64)


class Decoder:
    """Incremental decoder: feed() any chunks of bytes, get numpy blocks of samples."""

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._pending = b""
        self._last_seq16: int | None = None
        self._info_pending = False  # an info frame came after the last sample
        self._last_t32 = 0
        self._seq64 = -1  # unwrapped value of the last sample handed on
        self._t64 = -1

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
                infos.append((position, _decode_info(payload)))
            else:
                code, msg = _ERROR_PAYLOAD.unpack(payload)
                errors.append((position, code, msg.rstrip(b"\0").decode("ascii", "replace")))
        self.stats.info_frames += len(infos)
        self.stats.error_frames += len(errors)

        # A sample that follows an info frame may be the first of a new boot (the board
        # sends one at start-up): a step back there is a reset, never a stale frame.
        info_at = {p for p, _ in infos} | ({0} if self._info_pending else set())
        if len(frames):
            self._info_pending = False
        if infos and infos[-1][0] == len(frames):
            self._info_pending = True
        unwrapped = self._step_forward(frames)
        if unwrapped is not None:  # the usual block: nothing stale, no reset
            (seq, t_us), keep, resets = unwrapped, None, []
        else:
            keep, seq, t_us, resets = self._unwrap(frames["seq"].astype(np.int64), frames["t_us"].astype(np.int64),
                                                   info_at)
        raw = frames["raw"]
        if keep is not None and not keep.all():  # drop stale frames and renumber the infos' positions
            before = np.concatenate([[0], np.cumsum(keep)])
            infos = [(int(before[p]), info) for p, info in infos]
            errors = [(int(before[p]), c, m) for p, c, m in errors]
            raw = raw[keep]
        self.stats.samples += int(seq.size)
        return DecodedChunk(seq, t_us, raw.astype(np.int16), infos, errors, resets)

    def _step_forward(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Unwrapped (seq, t_us) if every frame steps forward from the one before it, else None.

        The usual block, in as few numpy calls as will do: this runs on every read,
        and each call after the reader's sleep costs tens of µs of cold caches.
        """
        n = len(frames)
        if self._last_seq16 is None or n == 0:
            return None
        steps = np.empty((2, n + 1), dtype=np.int64)  # rows: seq, t_us, after the last frame handed on
        steps[:, 0] = self._last_seq16, self._last_t32
        steps[0, 1:], steps[1, 1:] = frames["seq"], frames["t_us"]
        d = (steps[:, 1:] - steps[:, :-1]) & _WRAP
        if not ((d - 1).view(np.uint64) < _FORWARD_BELOW).all():  # 0 < step < half, as one unsigned compare
            return None
        unwrapped = np.cumsum(d, axis=1)
        unwrapped[0] += self._seq64
        unwrapped[1] += self._t64
        (seq64, t64), (self._last_seq16, self._last_t32) = unwrapped[:, -1].tolist(), steps[:, -1].tolist()
        self.stats.samples_lost += seq64 - self._seq64 - n
        self._seq64, self._t64 = seq64, t64
        return unwrapped[0], unwrapped[1]

    def _unwrap(self, seq16: np.ndarray, t32: np.ndarray, info_at: set[int]):
        """Unwrap 16-bit sequence and 32-bit µs clock into monotonic int64.

        Steps are taken from the last frame handed on. A run of frames that all
        step forward is one cumsum; only a reset or a stale frame is handled on
        its own, so a clean block costs a few vectorised passes.
        """
        n = seq16.size
        keep = np.ones(n, dtype=bool)
        seq_out = np.empty(n, dtype=np.int64)
        t_out = np.empty(n, dtype=np.int64)
        resets: list[int] = []
        if n == 0:
            return keep, seq_out, t_out, resets
        if self._last_seq16 is None:  # the very first sample starts the count
            self._last_seq16, self._last_t32 = int(seq16[0]) - 1, int(t32[0]) - 1
            self._seq64, self._t64 = self._last_seq16, self._last_t32
        d_seq, d_t = np.empty(n, np.int64), np.empty(n, np.int64)
        d_seq[0], d_t[0] = seq16[0] - self._last_seq16, t32[0] - self._last_t32
        np.subtract(seq16[1:], seq16[:-1], out=d_seq[1:])
        np.subtract(t32[1:], t32[:-1], out=d_t[1:])
        d_seq &= 0xFFFF
        d_t &= 0xFFFFFFFF
        # 0 < d < half, as one unsigned comparison each
        forward = ((d_seq - 1).view(np.uint64) < _HALF_SEQ - 1) & ((d_t - 1).view(np.uint64) < _HALF_TIME - 1)
        odd = np.flatnonzero(~forward).tolist() + [n]  # frames that do not simply step forward
        i = k = 0
        while True:
            j = odd[k]
            if j > i:
                seq_out[i:j] = self._seq64 + np.cumsum(d_seq[i:j])
                t_out[i:j] = self._t64 + np.cumsum(d_t[i:j])
                self.stats.samples_lost += int(np.sum(d_seq[i:j] - 1))
                self._seq64, self._t64 = int(seq_out[j - 1]), int(t_out[j - 1])
                self._last_seq16, self._last_t32 = int(seq16[j - 1]), int(t32[j - 1])
            if j == n:
                break
            ds, dt = int(d_seq[j]), int(d_t[j])
            seq_back = ds == 0 or ds >= _HALF_SEQ
            recent_past = dt == 0 or (dt >= _HALF_TIME and (1 << 32) - dt < _STALE_WINDOW_US)
            if seq_back and recent_past and j not in info_at:  # a repeat or an out-of-order frame: already past it
                keep[j] = False
                self.stats.stale += 1
                if j + 1 < n:  # the next frame steps from the last one kept, not from this one
                    d_seq[j + 1] = (seq16[j + 1] - self._last_seq16) & 0xFFFF
                    d_t[j + 1] = (t32[j + 1] - self._last_t32) & 0xFFFFFFFF
                    fwd = 0 < d_seq[j + 1] < _HALF_SEQ and 0 < d_t[j + 1] < _HALF_TIME
                    listed = odd[k + 1] == j + 1
                    if fwd and listed:
                        del odd[k + 1]
                    elif not fwd and not listed:
                        odd.insert(k + 1, j + 1)
            else:  # the board restarted: a new epoch continues the monotonic count
                self.stats.resets += 1
                resets.append(int(np.count_nonzero(keep[:j])))
                self._seq64 += 1
                self._t64 += 1 + int(t32[j])
                seq_out[j], t_out[j] = self._seq64, self._t64
                self._last_seq16, self._last_t32 = int(seq16[j]), int(t32[j])
            i, k = j + 1, k + 1
        return keep, seq_out[keep], t_out[keep], resets


def _decode_info(payload: bytes) -> BoardInfo:
    ver, fw_major, fw_minor, fw_patch, sensor, acc_g, gyr_dps, acc_lsb, gyr_lsb, rate = _INFO_PAYLOAD.unpack(payload)
    return BoardInfo(
        protocol_version=ver,
        firmware_version=(fw_major, fw_minor, fw_patch),
        sensor=sensor.rstrip(b"\0").decode("ascii", "replace"),
        accel_range_g=acc_g,
        gyro_range_dps=gyr_dps,
        accel_lsb_per_g=acc_lsb,
        gyro_lsb_per_dps=gyr_lsb,
        rate_hz=rate,
    )
