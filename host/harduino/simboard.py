"""A virtual board: realistic synthetic IMU signals and the protocol v1 byte stream.

`synth_activity` and `synth_script` are pure functions producing raw MPU-6050
counts (±2 g, ±250 °/s). `SimBoard` behaves like the firmware: it boots into
streaming (info frame, then samples), answers the text commands, paces its
frames by its own clock and drops frames the baud rate cannot carry. The
`sim://` URL handler and `harduino simulate` are thin shells around it.

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
import os
import select
import threading
import time
import tty
from dataclasses import dataclass

import numpy as np

from . import protocol
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


def _synth_labelled(labels: np.ndarray, t0: float, rate_hz: float, subject: int, seed: int) -> np.ndarray:
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
    return _synth_labelled(labels, 0.0, rate_hz, subject, seed), labels


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


# ---------------------------------------------------------------- the board

@dataclass
class SimSettings:
    """How a virtual board behaves (a sim:// URL says it: see harduino.urlhandlers.protocol_sim)."""

    script: list[tuple[str, float]]
    subject: int = 0
    seed: int = 0
    rate_hz: int = 50
    baud: int = 115200
    paced: bool = True       # False: as fast as it is read (speed=max)
    drift_ppm: float = 0.0   # how fast the board's clock runs against the host's


class SimBoard:
    """The firmware's behaviour without the hardware; thread-safe read/write like a serial port.

    Sample k is taken at board time epoch_us + (k - epoch_k) / rate and reaches
    the host one frame's wire time later. When frames need more than the baud
    rate carries, the board skips slots (their sequence numbers never arrive),
    as the firmware does when it falls behind.
    """

    CHUNK = 256  # samples synthesised at a time

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.closed = False
        self._out = bytearray()
        self._line = bytearray()
        self._host0 = time.monotonic()
        self.rate_hz = settings.rate_hz
        self.streaming = True
        self._next_k = 0
        self._epoch_k, self._epoch_us = 0, 0
        self._cache_k, self._cache = 0, np.zeros((0, 6), dtype=np.int16)
        self._script_labels = np.array([a for a, _ in settings.script], dtype=str)
        self._script_ends = np.cumsum([d for _, d in settings.script])
        self._out += protocol.encode_info(self.info)  # boot: an info frame, then samples

    @property
    def info(self) -> BoardInfo:
        return BoardInfo(rate_hz=self.rate_hz)

    @property
    def _frame_s(self) -> float:
        return protocol.SAMPLE_FRAME_LEN * 10 / self.settings.baud  # 8N1: 10 bits a byte

    # -- board clock

    def _now_us(self) -> float:
        return (time.monotonic() - self._host0) * 1e6 * (1 + self.settings.drift_ppm * 1e-6)

    def _board_us(self, k):
        return self._epoch_us + (np.asarray(k, dtype=np.int64) - self._epoch_k) * 1_000_000 // self.rate_hz

    def _host_time(self, board_us: float) -> float:
        return self._host0 + board_us * 1e-6 / (1 + self.settings.drift_ppm * 1e-6)

    # -- producing bytes

    def _due_until(self) -> int:
        """Samples whose frames have fully crossed the wire by now (paced mode)."""
        arrived_us = self._now_us() - self._frame_s * 1e6
        if arrived_us < self._epoch_us:
            return self._next_k
        return max(self._next_k, self._epoch_k + int((arrived_us - self._epoch_us) * self.rate_hz // 1e6) + 1)

    def _signal(self, k0: int, n: int) -> np.ndarray:
        if not (self._cache_k <= k0 and k0 + n <= self._cache_k + len(self._cache)):
            m = max(n, self.CHUNK)
            t = self._board_us(np.arange(k0, k0 + m)) / 1e6
            position = np.mod(t, self._script_ends[-1])
            labels = self._script_labels[np.searchsorted(self._script_ends, position, side="right")]
            s = self.settings
            self._cache_k, self._cache = k0, _synth_labelled(labels, float(t[0]), self.rate_hz, s.subject, s.seed)
        return self._cache[k0 - self._cache_k : k0 - self._cache_k + n]

    def _emit(self, k_end: int) -> None:
        """Append sample frames for slots next_k .. k_end that fit on the wire."""
        k = np.arange(self._next_k, k_end)
        if k.size == 0:
            return
        per_s = self.settings.baud / 10 / protocol.SAMPLE_FRAME_LEN
        if self.rate_hz > per_s:  # keep the slots where the wire has room again
            rel = k - self._epoch_k
            k = k[np.floor((rel + 1) * per_s / self.rate_hz) > np.floor(rel * per_s / self.rate_hz)]
        raw = self._signal(self._next_k, k_end - self._next_k)[k - self._next_k]
        self._out += protocol.encode_samples(k, self._board_us(k), raw)
        self._next_k = k_end

    def _produce(self, want: int) -> None:
        if not self.streaming:
            return
        if self.settings.paced:
            self._emit(self._due_until())
        elif len(self._out) < want:
            need = -(-(want - len(self._out)) // protocol.SAMPLE_FRAME_LEN)
            self._emit(self._next_k + max(need, self.CHUNK))

    def _next_ready(self) -> float:
        """Host time when the next frame arrives; inf when nothing will come by itself."""
        if not self.streaming:
            return math.inf
        if not self.settings.paced:
            return 0.0
        return self._host_time(float(self._board_us(self._next_k)) + self._frame_s * 1e6)

    # -- the serial port side

    def in_waiting(self) -> int:
        with self._lock:
            self._produce(1)
            return len(self._out)

    def take(self, size: int) -> tuple[bytes, float]:
        """Up to size bytes there now, and the host time the next frame arrives (inf: none by itself).

        The sim:// port's read() blocks on it (harduino.urlhandlers.blocking_read); `_wake` is set by commands.
        """
        with self._lock:
            self._produce(size)
            out = bytes(self._out[:size])
            del self._out[:size]
            return out, self._next_ready()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    def discard_input(self) -> None:
        with self._lock:
            self._produce(1)
            self._out.clear()

    def write(self, data: bytes) -> int:
        """Text commands, one per line, as the firmware reads them."""
        with self._lock:
            self._line += data
            *lines, rest = self._line.split(b"\n")
            self._line = bytearray(rest)
            for line in lines:
                self._command(line.strip().decode("ascii", "replace").lower())
        self._wake.set()
        return len(data)

    def _command(self, line: str) -> None:
        if not line:
            return
        self._produce(0)  # everything due before the command arrived goes first
        name, _, arg = line.partition(" ")
        if name == "start" and not self.streaming:
            self._epoch_k, self._epoch_us = self._next_k, int(math.ceil(self._now_us()))
            self._cache = self._cache[:0]
            self.streaming = True
        elif name == "stop":
            self.streaming = False
        elif name == "info":
            self._out += protocol.encode_info(self.info)
        elif name == "rate":
            try:
                rate = int(arg)
            except ValueError:
                rate = 0
            if not 1 <= rate <= 1000:
                self._out += protocol.encode_error(protocol.ERROR_BAD_RATE, "rate 1..1000")
                return
            self._epoch_us = int(self._board_us(self._next_k)) if self.streaming else int(self._now_us())
            self._epoch_k, self.rate_hz = self._next_k, rate
            self._cache = self._cache[:0]
            self._out += protocol.encode_info(self.info)
        elif name not in ("start", "binary"):  # binary: it never prints text
            self._out += protocol.encode_error(protocol.ERROR_BAD_COMMAND, "unknown command")


# ---------------------------------------------------------------- a board on a pseudo-terminal

class PtyBoard:
    """Serves a port (usually sim://) on a pseudo-terminal, as a USB-serial chip would.

    Bytes nobody reads are dropped, not queued, and commands written to the
    terminal go to the board. `unplug()` closes the terminal while the board
    keeps running; `plug()` opens a new one (a new path).
    """

    def __init__(self, port) -> None:
        self.port = port
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._fd_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._to_terminal, daemon=True),
                         threading.Thread(target=self._from_terminal, daemon=True)]

    def plug(self) -> str:
        """Open a fresh pseudo-terminal; returns the path programs open."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        with self._fd_lock:
            # Keep our own slave end open so the master never reports hang-up between readers.
            self._master, self._slave = master, slave
        if not self._threads[0].is_alive():
            for thread in self._threads:
                thread.start()
        return os.ttyname(slave)

    def unplug(self) -> None:
        with self._fd_lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None

    def close(self) -> None:
        self._stop.set()
        self.unplug()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=2)
        self.port.close()

    def _to_terminal(self) -> None:
        while not self._stop.is_set():
            data = self.port.read(self.port.in_waiting or 1)
            with self._fd_lock:
                if data and self._master is not None:
                    try:
                        os.write(self._master, data)
                    except (BlockingIOError, OSError):
                        pass  # nobody reading: the bytes are lost, as on a real link

    def _from_terminal(self) -> None:
        while not self._stop.is_set():
            master = self._master
            if master is None:
                self._stop.wait(0.1)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.2)
                data = os.read(master, 1024) if ready else b""
            except (OSError, ValueError):
                data = b""
                self._stop.wait(0.1)
            if data:
                self.port.write(data)
