"""Protocol v1 on the wire: frame layout, CRC-16/XMODEM, the encoder, and the board's text commands.

Documented byte for byte in docs/protocol.md. Every frame is

    sync (A5 5A) | type (u8) | payload (fixed per type) | CRC-16/XMODEM (u16 LE)

with the CRC computed over type + payload. All integers are little-endian.
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
COMMANDS = ("start", "stop", "info", "rate", "text", "binary")


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
