"""Protocol v2 on the wire: frame layout, CRC-16/XMODEM, the encoder, and the board's text commands.

Documented byte for byte in docs/protocol.md. Every frame is

    sync (A5 5A) | type (u8) | payload (fixed per type) | CRC-16/XMODEM (u16 LE)

with the CRC computed over type + payload. All integers are little-endian.
Version 2 adds the prediction and model frames of a board with a model built
in; a v1 board sends neither, so a v2 host reads both.
The encoder works on numpy blocks: a block of samples becomes frames in a
handful of vectorised steps, never a Python object per sample.
"""

from __future__ import annotations

import binascii
import functools
import math
import struct
from dataclasses import dataclass

import numpy as np

PROTOCOL_VERSION = 2
SYNC = b"\xa5\x5a"

TYPE_SAMPLE = 0x01
TYPE_INFO = 0x02
TYPE_ERROR = 0x03
TYPE_PREDICTION = 0x04  # from v2
TYPE_MODEL = 0x05       # from v2

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

# Prediction payload: seq of the window's last sample, class index, classes, 8 scores 0..255, cycles spent.
_PREDICTION_PAYLOAD = struct.Struct("<HBB8sI")
PREDICTION_FRAME_LEN = 2 + 1 + _PREDICTION_PAYLOAD.size + 2  # 21 bytes

# Model payload: id, classes, window, step, feature-set id, rate (Hz), 8 class names of 10 characters.
MODEL_CLASSES_MAX = 8
MODEL_NAME_LEN = 10
_MODEL_PAYLOAD = struct.Struct(f"<12sBBBBH{MODEL_CLASSES_MAX * MODEL_NAME_LEN}s")
MODEL_FRAME_LEN = 2 + 1 + _MODEL_PAYLOAD.size + 2  # 103 bytes
FEATURE_SET_NAMES = {1: "board"}  # the model frame's feature-set ids

_SAMPLE_HEAD = SYNC + bytes([TYPE_SAMPLE])
FRAME_LEN = {TYPE_SAMPLE: SAMPLE_FRAME_LEN, TYPE_INFO: INFO_FRAME_LEN, TYPE_ERROR: ERROR_FRAME_LEN,
             TYPE_PREDICTION: PREDICTION_FRAME_LEN, TYPE_MODEL: MODEL_FRAME_LEN}
MAX_FRAME_LEN = max(FRAME_LEN.values())
_LEN_BY_TYPE = np.zeros(256, dtype=np.int64)  # frame length by type byte; 0 = unknown type
for _type, _length in FRAME_LEN.items():
    _LEN_BY_TYPE[_type] = _length

ERROR_SENSOR_MISSING = 1
ERROR_BAD_COMMAND = 2
ERROR_BAD_RATE = 3
ERROR_NO_MODEL = 4    # `predict on` on a firmware built without a model
ERROR_MODEL_RATE = 5  # `predict on` at a rate the model was not trained for

# Text commands, one per line (so the Arduino Serial Monitor works too).
COMMANDS = ("start", "stop", "info", "rate", "text", "binary", "predict")


def command(name: str, arg: int | str | None = None) -> bytes:
    """The bytes of one text command, e.g. command("rate", 100) == b"rate 100\\n"; command("predict", "off")."""
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


@dataclass(frozen=True)
class BoardPrediction:
    """What the board's model said about one window (a prediction frame)."""

    seq: int                # the window's last sample (unwrapped by the decoder, like the samples' seq)
    class_index: int
    scores: tuple[int, ...]  # 0..255 per class, as many as the model has
    cycles: int             # CPU cycles the board spent on the window, by its own clock


@dataclass(frozen=True)
class BoardModelInfo:
    """What the board says about the model built in (a model frame)."""

    model_id: str
    classes: tuple[str, ...]
    window: int
    step: int
    feature_set: str
    rate_hz: int


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


def encode_prediction(p: BoardPrediction) -> bytes:
    scores = bytes(p.scores).ljust(MODEL_CLASSES_MAX, b"\0")
    payload = _PREDICTION_PAYLOAD.pack(p.seq & 0xFFFF, p.class_index, len(p.scores), scores, p.cycles)
    return _framed(bytes([TYPE_PREDICTION]) + payload)


def encode_model(m: BoardModelInfo) -> bytes:
    feature_set = {name: i for i, name in FEATURE_SET_NAMES.items()}[m.feature_set]
    names = b"".join(c.encode("ascii")[:MODEL_NAME_LEN].ljust(MODEL_NAME_LEN, b"\0") for c in m.classes)
    payload = _MODEL_PAYLOAD.pack(m.model_id.encode("ascii")[:12], len(m.classes), m.window, m.step, feature_set,
                                  m.rate_hz, names)
    return _framed(bytes([TYPE_MODEL]) + payload)


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


# ---------------------------------------------------------------- payloads

def decode_info(payload: bytes) -> BoardInfo:
    """An info frame's payload (between type and CRC) as BoardInfo; a name that is not ASCII keeps U+FFFD."""
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


def info_is_plausible(payload: bytes) -> bool:
    """Whether an info payload could come from a board: positive, finite scales and a rate (else no SI is possible)."""
    *_, acc_lsb, gyr_lsb, rate = _INFO_PAYLOAD.unpack(payload)
    return 0 < acc_lsb < math.inf and 0 < gyr_lsb < math.inf and rate > 0


def decode_error(payload: bytes) -> tuple[int, str]:
    """An error frame's payload as (code, message)."""
    code, msg = _ERROR_PAYLOAD.unpack(payload)
    return code, msg.rstrip(b"\0").decode("ascii", "replace")


def decode_prediction(payload: bytes) -> BoardPrediction:
    """A prediction frame's payload; seq as on the wire (u16): the decoder unwraps it."""
    seq, cls, n_classes, scores, cycles = _PREDICTION_PAYLOAD.unpack(payload)
    return BoardPrediction(seq, cls, tuple(scores[:min(n_classes, MODEL_CLASSES_MAX)]), cycles)


def decode_model(payload: bytes) -> BoardModelInfo:
    """A model frame's payload; a name that is not ASCII keeps U+FFFD."""
    model_id, n_classes, window, step, feature_set, rate, names = _MODEL_PAYLOAD.unpack(payload)

    def text(b: bytes) -> str:
        return b.rstrip(b"\0").decode("ascii", "replace")

    classes = tuple(text(names[i * MODEL_NAME_LEN:(i + 1) * MODEL_NAME_LEN])
                    for i in range(min(n_classes, MODEL_CLASSES_MAX)))
    return BoardModelInfo(text(model_id), classes, window, step, FEATURE_SET_NAMES.get(feature_set, str(feature_set)),
                          rate)
