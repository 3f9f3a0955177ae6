"""Synthetic IMU signals of people moving: the simulated board's sensor, as pure functions.

`synth_activity` and `synth_script` produce raw MPU-6050 counts (±2 g, ±250 °/s).
Signals are built in a body frame (x forward, y left, z up), as the specific
force an accelerometer feels (gravity included) and the angular rate, then
turned into the sensor frame by a per-subject mounting orientation. Every
signal is a function of absolute time, and noise comes in fixed blocks of
samples keyed by (seed, subject, block), so any split of a time span into
pieces gives exactly the same samples as generating it at once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .protocol import GRAVITY, BoardInfo

ACTIVITIES = ("still", "walking", "running", "jumping", "waving")

_RAW_SCALE = BoardInfo().si_scale  # SI per raw count at the default ranges
_NOISE_BLOCK = 256                 # samples per independently seeded noise block
_ACC_NOISE = 0.004 * GRAVITY       # m/s² rms, about the MPU-6050's at a 50 Hz bandwidth
_GYRO_NOISE = math.radians(0.06)   # rad/s rms
_DEG = math.pi / 180


# ---------------------------------------------------------------- subjects

@dataclass(frozen=True)
class SubjectProfile:
    """How one person moves and wears the sensor."""

    orientation: np.ndarray  # (3, 3) sensor-from-body rotation
    cadence: float           # multiplies every activity's base frequency
    amplitude: float         # multiplies every activity's movement amplitude
    noise: float             # multiplies the sensor noise
    accel_bias: np.ndarray   # (3,) m/s², the sensor's zero-g offset
    gyro_bias: np.ndarray    # (3,) rad/s, the sensor's zero-rate offset


def _rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch),
                              math.sin(pitch), math.cos(yaw), math.sin(yaw))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


@functools.lru_cache(maxsize=256)
def subject_profile(subject: int) -> SubjectProfile:
    """The same subject number always gives the same person, whatever the seed."""
    rng = np.random.default_rng([int(subject), 0x5EB7])
    roll, pitch = rng.normal(0.0, 12 * _DEG, 2)
    yaw = rng.uniform(-math.pi, math.pi)
    return SubjectProfile(
        orientation=_rotation(roll, pitch, yaw).T,
        cadence=float(np.clip(rng.normal(1.0, 0.07), 0.85, 1.15)),
        amplitude=float(np.clip(rng.normal(1.0, 0.12), 0.75, 1.3)),
        noise=float(rng.uniform(0.8, 1.5)),
        accel_bias=rng.normal(0.0, 0.015 * GRAVITY, 3),
        gyro_bias=rng.normal(0.0, 0.8 * _DEG, 3),
    )


# ---------------------------------------------------------------- movements

def _cycle_phase(t: np.ndarray, freq: float, wobble: float) -> np.ndarray:
    """2π × cycles done by time t, with the cadence wandering ±3 % over 20 s."""
    return 2 * np.pi * freq * t - (0.03 * freq / 0.05) * np.cos(2 * np.pi * 0.05 * t + wobble)


def _gait(t, p: SubjectProfile, ph, freq, amp_v, harmonics, amp_f, amp_l, gyro_dps):
    """Walking and running: periodic steps, a vertical bounce rich in harmonics at heel strike."""
    th = _cycle_phase(t, freq * p.cadence, ph[0])
    a = p.amplitude
    vertical = sum(c * np.sin(h * th + ph[h % 4]) for h, c in enumerate(harmonics, start=1))
    acc = np.column_stack([
        a * amp_f * GRAVITY * (np.sin(th + ph[1] + np.pi / 2) + 0.4 * np.sin(2 * th + ph[2])),
        a * amp_l * GRAVITY * np.sin(th / 2 + ph[3]),  # sway left-right once per stride (two steps)
        GRAVITY * (1.0 + a * amp_v * vertical),
    ])
    roll, pitch, yaw = (g * _DEG * a for g in gyro_dps)
    gyro = np.column_stack([
        roll * np.sin(th / 2 + ph[2]),
        pitch * (np.sin(th + ph[3]) + 0.3 * np.sin(2 * th + ph[0])),
        yaw * np.sin(th / 2 + ph[1]),
    ])
    return acc, gyro


def _still(t, p, ph):
    """Standing or sitting: gravity, a faint postural sway and a slowly drifting gyro."""
    sway = 0.01 * GRAVITY * np.sin(2 * np.pi * 0.3 * t + ph[0])
    acc = np.column_stack([sway, 0.6 * sway, np.full_like(t, GRAVITY)])
    drift = 0.3 * _DEG * np.sin(2 * np.pi * 0.01 * t[:, None] + ph[1:4])
    return acc, drift


def _walking(t, p, ph):
    return _gait(t, p, ph, 1.8, 0.35, (1.0, 0.4, 0.15), 0.2, 0.12, (30, 45, 20))


def _running(t, p, ph):
    return _gait(t, p, ph, 2.8, 0.9, (1.0, 0.6, 0.35, 0.2), 0.45, 0.25, (80, 120, 50))


def _jumping(t, p, ph):
    """Jumps about once a second: push-off, free fall (the sensor feels ~0 g), landing impact, rest."""
    u = (_cycle_phase(t, 1.0 * p.cadence, ph[0]) / (2 * np.pi)) % 1.0
    a = p.amplitude
    push, flight, landing = u < 0.2, (u >= 0.2) & (u < 0.55), (u >= 0.55) & (u < 0.68)
    vertical = np.full_like(t, GRAVITY)
    vertical[push] += a * 1.2 * GRAVITY * np.sin(np.pi * u[push] / 0.2)
    vertical[flight] = 0.03 * GRAVITY * np.sin(2 * np.pi * u[flight] / 0.35)
    vertical[landing] += a * 2.5 * GRAVITY * np.sin(np.pi * (u[landing] - 0.55) / 0.13)
    forward = 0.15 * GRAVITY * a * np.sin(2 * np.pi * u + ph[1])
    acc = np.column_stack([forward, 0.05 * GRAVITY * np.sin(2 * np.pi * u + ph[2]), vertical])
    swing = np.where(push | landing, 60 * _DEG * a, 10 * _DEG) * np.sin(2 * np.pi * u + ph[3])
    gyro = np.column_stack([0.3 * swing, swing, 0.15 * swing])
    return acc, gyro


def _waving(t, p, ph):
    """The forearm raised and rocked side to side 2-3 times a second: big gyro, gravity swinging."""
    freq = 2.5 * p.cadence
    amp = 12 * _DEG * p.amplitude
    w = 2 * np.pi * freq
    wt = w * t + ph[0]
    theta = 70 * _DEG + amp * (np.sin(wt) + 0.15 * np.sin(2 * wt + ph[1]))
    rate = amp * w * (np.cos(wt) + 0.3 * np.cos(2 * wt + ph[1]))
    accel = -amp * w * w * (np.sin(wt) + 0.6 * np.sin(2 * wt + ph[1]))
    radius = 0.06  # m, sensor to the pivot of the rocking wrist
    acc = np.column_stack([
        0.05 * GRAVITY * np.sin(wt + ph[2]),
        GRAVITY * np.sin(theta) + radius * accel,
        GRAVITY * np.cos(theta) - radius * rate**2,
    ])
    gyro = np.column_stack([rate, 0.1 * rate * np.sin(ph[3]), 8 * _DEG * np.sin(wt + ph[3])])
    return acc, gyro


_MOVEMENTS = {"still": _still, "walking": _walking, "running": _running, "jumping": _jumping, "waving": _waving}


# ---------------------------------------------------------------- synthesis

def check_activity(activity: str) -> None:
    if activity not in ACTIVITIES:
        raise UserError(f"unknown activity {activity!r}; choose one of {', '.join(ACTIVITIES)}.")


def _noise(first: int, n: int, subject: int, seed: int) -> np.ndarray:
    """Unit normal noise for samples first .. first+n, the same however a span is split."""
    b0, b1 = first // _NOISE_BLOCK, (first + n - 1) // _NOISE_BLOCK
    blocks = [np.random.default_rng([int(seed), int(subject), b, 7]).standard_normal((_NOISE_BLOCK, 6))
              for b in range(b0, b1 + 1)]
    start = first - b0 * _NOISE_BLOCK
    return np.concatenate(blocks)[start : start + n]


def synth_activity(activity: str, n: int, rate_hz: float, subject: int = 0, seed: int = 0,
                   t0: float = 0.0) -> np.ndarray:
    """n samples of one activity from time t0 (s) at rate_hz: (n, 6) int16 raw counts."""
    check_activity(activity)
    if n <= 0:
        return np.zeros((0, 6), dtype=np.int16)
    p = subject_profile(subject)
    first = int(round(t0 * rate_hz))
    t = t0 + np.arange(n) / rate_hz
    phases = np.random.default_rng([int(seed), int(subject), ACTIVITIES.index(activity)]).uniform(0, 2 * np.pi, 4)
    acc, gyro = _MOVEMENTS[activity](t, p, phases)
    # einsum, not @: tiny matrix products through BLAS wake its worker threads, which then spin
    si = np.hstack([np.einsum("ij,kj->ik", acc, p.orientation) + p.accel_bias,
                    np.einsum("ij,kj->ik", gyro, p.orientation) + p.gyro_bias])
    si += _noise(first, n, subject, seed) * (np.array([_ACC_NOISE] * 3 + [_GYRO_NOISE] * 3) * p.noise)
    return np.clip(np.rint(si / _RAW_SCALE), -32768, 32767).astype(np.int16)


def synth_labelled(labels: np.ndarray, t0: float, rate_hz: float, subject: int, seed: int) -> np.ndarray:
    """Raw samples for a run of per-sample activity labels starting at time t0."""
    raw = np.empty((labels.size, 6), dtype=np.int16)
    edges = np.concatenate([[0], np.flatnonzero(labels[1:] != labels[:-1]) + 1, [labels.size]])
    for a, b in zip(edges[:-1], edges[1:]):  # one call per activity segment
        raw[a:b] = synth_activity(str(labels[a]), int(b - a), rate_hz, subject, seed, t0 + a / rate_hz)
    return raw


def synth_script(script: list[tuple[str, float]], rate_hz: float, subject: int = 0,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A session following a schedule [(activity, seconds), ...]: raw (n, 6) int16 and labels (n,)."""
    for activity, _ in script:
        check_activity(activity)
    counts = [int(round(seconds * rate_hz)) for _, seconds in script]
    labels = np.repeat(np.array([a for a, _ in script], dtype=str), counts)
    if labels.size == 0:
        return np.zeros((0, 6), dtype=np.int16), labels
    return synth_labelled(labels, 0.0, rate_hz, subject, seed), labels


def parse_script(text: str) -> list[tuple[str, float]]:
    """'still:5,walking:10' -> [('still', 5.0), ('walking', 10.0)]."""
    script = []
    for part in filter(None, (s.strip() for s in text.split(","))):
        name, _, seconds = part.partition(":")
        check_activity(name)
        try:
            duration = float(seconds)
        except ValueError:
            duration = -1.0
        if not duration > 0:
            raise UserError(f"script step {part!r} needs a positive duration in seconds, like walking:10.")
        script.append((name, duration))
    if not script:
        raise UserError("the script is empty; write it like still:5,walking:10.")
    return script
