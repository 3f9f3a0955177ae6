"""How the board sits on the wearer: one calibration per session, for training, evaluation and live.

A board strapped on again sits at another angle, so the inputs a model sees are
made independent of that angle (the gravity-aligned channels in `dataset`). What
no such input can see is posture: sitting, standing and laying differ only in
where gravity points in the body frame. The calibration supplies that frame:
gravity's direction in the sensor frame while the wearer stands still and
upright, and the gyroscope's bias while still, both estimated from the first
still stretch of a session (a few seconds of standing, which `record` and the
live view ask for at the start).

Every path calls `calibrate` or `estimate`: training and evaluation on loaded
recordings, the recorder when it closes a session, the live predictor on the
stream.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .errors import UserError
from .protocol import GRAVITY


STILL_S = 3.0              # the shortest still stretch a calibration is taken from
_BLOCK_S = 0.5             # stillness is judged on blocks this long
_ACC_TOLERANCE = 0.1       # |mean acceleration| within this many g of 1 g ...
_ACC_SPREAD = 0.05         # ... every axis moving less than this many g (standard deviation) ...
_GYRO_STILL = 0.2          # ... and turning slower than this (rad/s, about 11 °/s)
_HAS_GRAVITY = 0.5         # a median |a| below this many g: the data has had gravity removed


@dataclass(frozen=True)
class Calibration:
    """Gravity's unit direction in the sensor frame while upright and still, and the gyro's bias."""

    gravity: tuple[float, float, float]
    gyro_bias: tuple[float, float, float]   # rad/s
    source: str                            # where it came from, e.g. "own still stretch at 2.5 s"
    borrowed: bool = False                 # taken from another recording of the subject, not this one's

    def to_dict(self) -> dict:
        return {"gravity": [round(v, 6) for v in self.gravity],
                "gyro_bias": [round(v, 7) for v in self.gyro_bias], "source": self.source}

    @classmethod
    def from_dict(cls, data, where: str) -> "Calibration":
        """A calibration read from a sidecar; UserError naming `where` if it does not hold together."""
        try:
            gravity = np.asarray(data["gravity"], dtype=np.float64)
            bias = np.asarray(data["gyro_bias"], dtype=np.float64)
            source = str(data.get("source", "sidecar"))
        except (TypeError, KeyError, ValueError):
            raise UserError(f"{where} has a calibration that is not {{'gravity': [x, y, z], "
                            "'gyro_bias': [x, y, z]}.") from None
        if gravity.shape != (3,) or bias.shape != (3,) or not (np.all(np.isfinite(gravity))
                                                             and np.all(np.isfinite(bias))):
            raise UserError(f"{where} has a calibration whose vectors are not three finite numbers each.")
        norm = np.linalg.norm(gravity)
        if not 0.9 < norm < 1.1:
            raise UserError(f"{where} has a calibration whose gravity direction is not a unit vector "
                            f"(its length is {norm:.3g}).")
        return cls(tuple(float(v) for v in gravity / norm), tuple(float(v) for v in bias), source)


def has_gravity(recordings: Sequence) -> bool:
    """Whether the accelerometer feels gravity (the MPU-6050 does; some public sets have it removed).

    Averaged over 2 s, movement mostly cancels and gravity stays: the median of
    those averages over every recording is about 1 g with gravity and well below
    without (0.2 g in BasicMotions; a single fast recording there can reach 0.9 g,
    hence the pooling).
    """
    means = []
    for rec in recordings:
        per = max(1, int(round(2.0 * rec.rate_hz)))
        n = len(rec.si) // per
        acc = np.asarray(rec.si, dtype=np.float64)[: n * per, :3]
        means.append(np.linalg.norm(acc.reshape(n, per, 3).mean(axis=1), axis=1))
    pooled = np.concatenate(means) if means else np.zeros(0)
    return bool(pooled.size) and float(np.median(pooled)) > _HAS_GRAVITY * GRAVITY


def still_blocks(si: np.ndarray, rate_hz: float) -> tuple[np.ndarray, int]:
    """(is_still per block, samples per block): blocks of about 0.5 s judged still or not."""
    per = max(2, int(round(_BLOCK_S * rate_hz)))
    n = len(si) // per
    blocks = np.asarray(si[: n * per], dtype=np.float64).reshape(n, per, 6)
    mean_acc = blocks[:, :, :3].mean(axis=1)
    spread = blocks[:, :, :3].std(axis=1).max(axis=1)
    turning = np.linalg.norm(blocks[:, :, 3:], axis=2).mean(axis=1)
    still = ((np.abs(np.linalg.norm(mean_acc, axis=1) - GRAVITY) < _ACC_TOLERANCE * GRAVITY)
             & (spread < _ACC_SPREAD * GRAVITY) & (turning < _GYRO_STILL))
    return still, per


def find_still(si: np.ndarray, rate_hz: float, seconds: float = STILL_S) -> tuple[int, int] | None:
    """[start, end) sample indices of the first still stretch of at least `seconds`, or None."""
    still, per = still_blocks(si, rate_hz)
    need = int(np.ceil(seconds * rate_hz / per))
    if still.size < need:
        return None
    edges = np.diff(np.concatenate([[0], still.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long_enough = np.flatnonzero(ends - starts >= need)
    if not long_enough.size:
        return None
    first = long_enough[0]
    return int(starts[first] * per), int(ends[first] * per)


def estimate(t: np.ndarray, si: np.ndarray, rate_hz: float) -> Calibration | None:
    """The calibration from the first still stretch of a session's samples, or None if it has none."""
    found = find_still(si, rate_hz)
    if found is None:
        return None
    a, b = found
    part = np.asarray(si[a:b], dtype=np.float64)
    gravity = part[:, :3].mean(axis=0)
    gravity /= np.linalg.norm(gravity)
    start = float(t[a]) if len(t) > a else a / rate_hz
    return Calibration(tuple(float(v) for v in gravity), tuple(float(v) for v in part[:, 3:].mean(axis=0)),
                       f"own still stretch at {start:.1f} s ({(b - a) / rate_hz:.1f} s)")


def calibrate(recordings: Sequence) -> list[str]:
    """Give every recording its calibration (`rec.calibration`); returns notes for those left without.

    In order: the calibration its sidecar stores; one estimated from its own
    first still stretch; the one of the same subject's recording that has its
    own (the board was not strapped on again in between, which is the caller's
    claim by recording both under one subject); none, with a note. Data whose
    accelerometer feels no gravity gets none and no note: only the
    rotation-invariant magnitudes apply to it.
    """
    if not has_gravity(recordings):
        return []
    own = {}
    for rec in recordings:
        if rec.calibration is None:
            rec.calibration = estimate(rec.t, rec.si, rec.rate_hz)
        if rec.calibration is not None:
            own.setdefault(rec.subject, rec)
    left = []
    for rec in recordings:
        if rec.calibration is not None:
            continue
        donor = own.get(rec.subject)
        if donor is not None:
            c = donor.calibration
            rec.calibration = Calibration(c.gravity, c.gyro_bias, f"subject {rec.subject}'s {donor.session}",
                                          borrowed=True)
        else:
            left.append(rec.path.name)
    if not left:
        return []
    shown = ", ".join(left[:3]) + (f" and {len(left) - 3} more" if len(left) > 3 else "")
    return [f"{len(left)} recording(s) ({shown}) have no still stretch of {STILL_S:g} s to calibrate from, "
            "nor another recording of their subject that has one; inputs that need a calibration leave them out."]


def random_rotations(n: int, seed: int) -> np.ndarray:
    """(n, 3, 3) uniform random rotations (normalised Gaussian quaternions), reproducible by seed."""
    q = np.random.default_rng(seed).normal(size=(n, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1)], axis=1)


def rotate_samples(si: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(n, 6) samples as the same board turned by `rotation` would measure them (acc and gyro alike)."""
    si = np.asarray(si, dtype=np.float64)
    return np.hstack([si[:, :3] @ rotation.T, si[:, 3:] @ rotation.T])


def rotated_copies(recordings: Sequence, seed: int) -> list:
    """Copies of recordings, each as if its board had been strapped on at its own random angle.

    Accelerometer and gyroscope turn together; each copy's calibration is estimated
    afresh from its turned samples (`calibrate`), as it would be for a board
    really strapped on again. The originals are left as they are.
    """
    copies = [replace(rec, si=rotate_samples(rec.si, rotation), calibration=None)
              for rec, rotation in zip(recordings, random_rotations(len(recordings), seed))]
    calibrate(copies)
    return copies
