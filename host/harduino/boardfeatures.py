"""The `board` feature set: what the ATmega328P computes over a window, as float and as its exact integer twin.

Eight channels, the six axes and the two magnitudes |a| and |g| (those survive a
re-strapped board), and four statistics of each over the window: mean, standard
deviation (population), min and max. Every one of them comes from running sums
kept per sample (count, sum, sum of squares, min, max), so the board needs no
window buffer: with window = k x step it keeps k chunk accumulators and adds
them when a chunk ends (docs/board-model.md).

`board_features` is the float set the host trains on, from the SI windows the
dataset makes. `board_features_int` is its integer twin: the same arithmetic as
firmware/harduino/predictor.cpp, on raw counts, bit for bit:

    |a| = isqrt(ax^2 + ay^2 + az^2)                   (per sample, u32 -> u16)
    sum = sum of x                                    (i32)
    nsd = isqrt(N * sum(x^2) - sum^2)                 (u64 -> u32; N x the standard deviation)
    min, max                                          (i16 for axes, u16 for magnitudes)

per channel in that order; `INT_TO_SI` takes each to the float feature's units
(sum / N and nsd / N times the count's SI scale, min and max times it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import UserError
from .protocol.frames import GRAVITY
from .windowing import windows_at

BOARD_CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz", "acc_mag", "gyro_mag")
BOARD_STATS = ("mean", "std", "min", "max")
BOARD_FEATURE_NAMES = tuple(f"{c}_{s}" for c in BOARD_CHANNELS for s in BOARD_STATS)
# The firmware sets ±2 g and ±250 °/s (imu_mpu6050.cpp): the counts the integer twin is fed.
BOARD_ACCEL_LSB_PER_G = 16384.0
BOARD_GYRO_LSB_PER_DPS = 131.0


def board_features(X: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(n, c, size) SI windows holding the six axes -> (n, 32) float64, columns as BOARD_FEATURE_NAMES."""
    if any(a not in names for a in BOARD_CHANNELS[:6]):
        raise UserError(f"the board features are computed from the six axes, which the channels "
                        f"{', '.join(names)} lack; use --channels axes (or all).")
    axes = np.asarray(X, dtype=np.float64)[:, [list(names).index(a) for a in BOARD_CHANNELS[:6]]]
    acc = np.sqrt(np.sum(axes[:, :3] ** 2, axis=1))
    gyro = np.sqrt(np.sum(axes[:, 3:] ** 2, axis=1))
    channels = np.concatenate([axes, acc[:, None], gyro[:, None]], axis=1)
    stats = [channels.mean(axis=-1), channels.std(axis=-1), channels.min(axis=-1), channels.max(axis=-1)]
    return np.stack(stats, axis=-1).reshape(len(channels), -1)


def isqrt(v: np.ndarray) -> np.ndarray:
    """floor(sqrt(v)) of non-negative integers below 2^52, exactly, as int64."""
    v = np.asarray(v, dtype=np.int64)
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r -= (r * r > v)  # the float root can be one too high or too low near a square
    r += ((r + 1) * (r + 1) <= v)
    return r


def board_channels_int(raw: np.ndarray) -> np.ndarray:
    """(..., 6, size) raw counts -> (..., 8, size) int64: the axes, then isqrt magnitudes of accel and gyro."""
    raw = np.asarray(raw, dtype=np.int64)
    acc = isqrt(np.sum(raw[..., :3, :] ** 2, axis=-2))
    gyro = isqrt(np.sum(raw[..., 3:, :] ** 2, axis=-2))
    return np.concatenate([raw, acc[..., None, :], gyro[..., None, :]], axis=-2)


def board_features_int(raw: np.ndarray) -> np.ndarray:
    """(n, 6, size) raw counts -> (n, 32) int64: sum, nsd, min, max of each channel, as the board computes."""
    channels = board_channels_int(raw)
    size = channels.shape[-1]
    total = channels.sum(axis=-1)
    squares = (channels * channels).sum(axis=-1)
    nsd = isqrt(size * squares - total * total)
    stats = [total, nsd, channels.min(axis=-1), channels.max(axis=-1)]
    return np.stack(stats, axis=-1).reshape(len(channels), -1)


def int_to_si(size: int, accel_lsb_per_g: float = BOARD_ACCEL_LSB_PER_G,
              gyro_lsb_per_dps: float = BOARD_GYRO_LSB_PER_DPS) -> np.ndarray:
    """(32,) multipliers taking `board_features_int`'s columns to `board_features`' units."""
    acc, gyro = GRAVITY / accel_lsb_per_g, np.radians(1.0) / gyro_lsb_per_dps
    per_channel = np.array([acc] * 3 + [gyro] * 3 + [acc, gyro])
    per_stat = np.array([1.0 / size, 1.0 / size, 1.0, 1.0])
    return (per_channel[:, None] * per_stat[None, :]).reshape(-1)


def int_bounds(size: int) -> np.ndarray:
    """(32,) the largest |value| each integer feature can take over a window of `size` samples."""
    axis, magnitude = 32768, 56755  # isqrt(3 * 32768^2)
    per_channel = np.array([axis] * 6 + [magnitude] * 2, dtype=np.int64)
    per_stat = np.array([size, size, 1, 1], dtype=np.int64)
    return (per_channel[:, None] * per_stat[None, :]).reshape(-1)


def windows_ending_at(raw: np.ndarray, ends: np.ndarray, size: int) -> np.ndarray:
    """(n, 6) raw samples and (w,) indices of windows' last samples -> (w, 6, size) windows.

    The window grid's own cutter (`windowing.windows_at`); its float32 holds 16-bit counts exactly.
    """
    ends = np.asarray(ends, dtype=np.int64)
    if ends.size and (ends.min() < size - 1 or ends.max() >= len(raw)):
        raise ValueError("a window reaches outside the samples")
    return windows_at(raw, ends - (size - 1), size)
