"""From recordings to windows: channels, labelled window sets, splits, the channel scaler.

Everything here is a pure numpy function, but for `ChannelStream`, which keeps
a gravity filter's state. `ChannelStream` is the only place samples become
channels, and windowing.py's `window_grid` the only one that decides which
windows a stream holds; training goes through `window_dataset` and live
prediction through the predictor, and both call them, so they cannot disagree.
Splits keep whole sessions or whole subjects on one side, because
overlapping windows of one session on both sides of a split leak.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from scipy import signal
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

from .calibration import calibrate, has_gravity
from .errors import UserError
from .recording import Recording, RecordingNote, load_recording
from .windowing import STEP, WINDOW, window_grid, window_labels, windows_at

AXES = ("ax", "ay", "az", "gx", "gy", "gz")
MAGNITUDES = ("acc_mag", "gyro_mag")
# Gravity-aligned: acceleration along gravity and its size across it, rotation about gravity and the
# size of the rest. Nothing here depends on how the board is turned on the body, nor on heading.
ALIGNED = ("acc_vert", "acc_horiz", "gyro_vert", "gyro_horiz")
CHANNEL_SETS = {
    "axes": AXES,
    "magnitudes": MAGNITUDES,  # |acc| and |gyro|: the lectures' 32 x 2 window
    "all": AXES + MAGNITUDES,
    "aligned": ALIGNED + MAGNITUDES,
    "body": ALIGNED + MAGNITUDES + ("tilt",),  # + the lean away from the wearer's calibrated upright
}
GRAVITY_CUTOFF_HZ = 0.8  # the causal low-pass that separates gravity from movement (docs/orientation.md: why)


# ---------------------------------------------------------------- loading

def load_recordings(folder: str | Path) -> list[Recording]:
    """Every recording (*.csv with its .json sidecar) directly in a folder, or one CSV file.

    All recordings must share one sample rate: a model is trained for one rate.
    """
    folder = Path(folder)
    if folder.is_file():
        paths = [folder]
    elif folder.is_dir():
        paths = sorted(folder.glob("*.csv"))
        if not paths:
            inside = sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.csv")))
            hint = f" (its subfolders {', '.join(inside)} have some: name one)" if inside else ""
            raise UserError(f"no recordings (*.csv) in {folder}{hint}.")
    else:
        raise UserError(f"no such recording folder or file: {folder}.")
    recordings = [load_recording(p) for p in paths]
    check_one_rate(recordings)
    for note in calibrate(recordings):
        warnings.warn(note, RecordingNote, stacklevel=2)
    return recordings


def check_one_rate(recordings: Sequence[Recording]) -> float:
    """The sample rate all recordings share; UserError naming two files that differ."""
    if not recordings:
        raise UserError("no recordings given.")
    first = recordings[0]
    for rec in recordings[1:]:
        if not np.isclose(rec.rate_hz, first.rate_hz, rtol=1e-3):
            raise UserError(f"recordings mix sample rates: {first.path} is {first.rate_hz:g} Hz but "
                            f"{rec.path} is {rec.rate_hz:g} Hz; train on one rate at a time.")
    return float(first.rate_hz)


# ---------------------------------------------------------------- channels and windows

def channel_names(channel_set: str) -> tuple[str, ...]:
    try:
        return CHANNEL_SETS[channel_set]
    except KeyError:
        raise UserError(f"unknown channel set {channel_set!r}; choose one of {', '.join(CHANNEL_SETS)}.") from None


def default_channel_set(recordings: Sequence[Recording]) -> str:
    """The inputs used unless told otherwise: the richest set that does not depend on how the board sits.

    "body" when every recording has a calibration of its own (the tilt is only
    right for the strapping it was measured on), "aligned" when the accelerometer
    feels gravity, "magnitudes" when the data has had gravity removed. The
    figures behind this choice are in docs/results.md.
    """
    if not has_gravity(recordings):
        return "magnitudes"
    if all(rec.calibration is not None and not rec.calibration.borrowed for rec in recordings):
        return "body"
    return "aligned"


def needs_calibration(channel_set: str) -> bool:
    return "tilt" in channel_names(channel_set)


class ChannelStream:
    """A channel set derived from (n, 6) SI samples as they arrive, the gravity filter keeping its state.

    `select_channels` runs one over a whole stretch of a recording; the live
    predictor keeps one across windows (and resets it at a gap, where training
    starts a new stretch), so both compute the same numbers. Gravity is a
    2nd-order Butterworth low-pass of the acceleration at GRAVITY_CUTOFF_HZ,
    started from the stretch's first sample. Only a set with "tilt" uses a
    calibration (the wearer's upright gravity direction, and the gyro's bias,
    taken off the gyro); the others ignore one, so they never depend on it.
    """

    def __init__(self, channel_set: str, rate_hz: float | None = None, calibration=None) -> None:
        self.names = channel_names(channel_set)
        self.calibration = calibration if "tilt" in self.names else None
        self._aligned = "acc_vert" in self.names
        if self._aligned:
            if rate_hz is None or not rate_hz > 2 * GRAVITY_CUTOFF_HZ:
                raise ValueError(f"the {channel_set!r} channels need the sample rate (above {2 * GRAVITY_CUTOFF_HZ:g} Hz)")
            self._ba = _gravity_filter(float(rate_hz))
        if "tilt" in self.names and calibration is None:
            raise UserError(f"the {channel_set!r} channels need a calibration: a few seconds of standing "
                            "still at the start of the session.")
        self._state = None  # the filter's (order, 3) state, None at the start of a stretch

    def reset(self) -> None:
        """A new stretch starts (after a gap): the filter starts again from the next sample."""
        self._state = None

    def push(self, si: np.ndarray) -> np.ndarray:
        """(n, 6) samples -> (n, c) float32 channels."""
        si = np.asarray(si, dtype=np.float64)
        if si.ndim != 2 or si.shape[1] != 6:
            raise ValueError(f"samples must be shaped (n, 6), not {si.shape}")
        if not self._aligned:
            parts = [si] if self.names[0] == "ax" else []
            if "acc_mag" in self.names:
                parts += [np.linalg.norm(si[:, :3], axis=1)[:, None], np.linalg.norm(si[:, 3:], axis=1)[:, None]]
            return np.hstack(parts).astype(np.float32)
        acc, gyro = si[:, :3], si[:, 3:]
        if self.calibration is not None:
            gyro = gyro - np.asarray(self.calibration.gyro_bias)
        if len(si) == 0:
            return np.zeros((0, len(self.names)), dtype=np.float32)
        b, a = self._ba
        if self._state is None:
            self._state = signal.lfilter_zi(b, a)[:, None] * acc[0]
        gravity, self._state = signal.lfilter(b, a, acc, axis=0, zi=self._state)
        up = gravity / np.maximum(np.linalg.norm(gravity, axis=1, keepdims=True), 1e-9)
        acc_vert = np.einsum("ij,ij->i", acc, up)
        gyro_vert = np.einsum("ij,ij->i", gyro, up)
        columns = {
            "acc_vert": acc_vert,
            "acc_horiz": np.linalg.norm(acc - acc_vert[:, None] * up, axis=1),
            "gyro_vert": gyro_vert,
            "gyro_horiz": np.linalg.norm(gyro - gyro_vert[:, None] * up, axis=1),
            "acc_mag": np.linalg.norm(acc, axis=1),
            "gyro_mag": np.linalg.norm(gyro, axis=1),
        }
        if "tilt" in self.names:
            upright = np.asarray(self.calibration.gravity)
            columns["tilt"] = np.arccos(np.clip(up @ upright, -1.0, 1.0))
        return np.column_stack([columns[name] for name in self.names]).astype(np.float32)


@functools.cache
def _gravity_filter(rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    return signal.butter(2, GRAVITY_CUTOFF_HZ, fs=rate_hz)


def select_channels(si: np.ndarray, channel_set: str, rate_hz: float | None = None,
                    calibration=None) -> np.ndarray:
    """(n, 6) samples of one stretch in m/s² and rad/s -> (n, c) float32 channels of the set."""
    return ChannelStream(channel_set, rate_hz, calibration).push(si)


@dataclass
class WindowSet:
    """Windows of many sessions with what each came from."""

    X: np.ndarray          # (n, c, size) float32
    y: np.ndarray          # (n,) str labels
    subjects: np.ndarray   # (n,) str
    sessions: np.ndarray   # (n,) str
    t0: np.ndarray         # (n,) float64 s, each window's start time in its session
    rate_hz: float
    channel_set: str
    size: int = WINDOW
    step: int = STEP

    def __len__(self) -> int:
        return len(self.y)

    @property
    def channels(self) -> tuple[str, ...]:
        return CHANNEL_SETS[self.channel_set]

    @property
    def classes(self) -> np.ndarray:
        return np.unique(self.y)

    def subset(self, idx) -> "WindowSet":
        return WindowSet(self.X[idx], self.y[idx], self.subjects[idx], self.sessions[idx], self.t0[idx],
                         self.rate_hz, self.channel_set, self.size, self.step)


def window_dataset(recordings: Sequence[Recording], channel_set: str = "all", size: int = WINDOW,
                   step: int = STEP, label_policy: str = "pure", unlabelled: bool = False) -> WindowSet:
    """Labelled windows of every recording; windows without a label under the policy are dropped.

    unlabelled: keep them too, with the label '' (to predict on every window of a recording).
    """
    rate = check_one_rate(recordings)
    parts = []
    for rec in recordings:
        grid = window_grid(rec.t, rec.rate_hz, size, step)  # never across a session boundary or a gap
        for a, b in grid.stretches:
            starts = grid.starts[(grid.starts >= a) & (grid.starts < b)]
            X = windows_at(select_channels(rec.si[a:b], channel_set, rec.rate_hz, rec.calibration), starts - a, size)
            y = window_labels(rec.labels[a:b], size, step, label_policy)
            keep = np.ones(len(y), dtype=bool) if unlabelled else y != ""
            parts.append((X[keep], y[keep], np.full(keep.sum(), rec.subject), np.full(keep.sum(), rec.session),
                          rec.t[starts[keep]]))
    if not parts:  # recordings without a sample: no windows, which the caller reports
        no_text = np.zeros(0, dtype=str)
        parts = [(np.zeros((0, size, len(CHANNEL_SETS[channel_set]))), no_text, no_text, no_text, np.zeros(0))]
    X, y, subjects, sessions, t0 = (np.concatenate(column) for column in zip(*parts))
    return WindowSet(X, y.astype(str), subjects.astype(str), sessions.astype(str), t0.astype(np.float64),
                     rate, channel_set, size, step)


# ---------------------------------------------------------------- splits

def leave_one_subject_out(ws: WindowSet) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, test_idx) per subject: each subject tested once on a model that never saw them."""
    if np.unique(ws.subjects).size < 2:
        raise UserError("leave-one-subject-out needs recordings of at least two subjects.")
    yield from LeaveOneGroupOut().split(ws.X, ws.y, groups=ws.subjects)


def by_session(ws: WindowSet, n_splits: int = 5) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, test_idx) for up to n_splits folds of whole sessions."""
    n_sessions = np.unique(ws.sessions).size
    if n_sessions < 2:
        raise UserError("splitting by session needs at least two recorded sessions.")
    yield from GroupKFold(n_splits=min(n_splits, n_sessions)).split(ws.X, ws.y, groups=ws.sessions)


# ---------------------------------------------------------------- normalisation

def axis_triples(channels: Sequence[str]) -> tuple[tuple[int, int, int], ...]:
    """Indices of the accelerometer and gyroscope axis triples among channel names (those present)."""
    names = list(channels)
    return tuple(tuple(names.index(a) for a in triple)
                 for triple in (AXES[:3], AXES[3:]) if all(a in names for a in triple))


class ChannelScaler(TransformerMixin, BaseEstimator):
    """Per-channel standardisation of (n, c, size) windows, fitted on training windows only.

    Every deep pipeline holds one, so the live path cannot forget to normalise.
    `mean_` and `scale_` are plain (c,) arrays: they save as tensors.

    triples: channel index triples that are one 3-D vector (`axis_triples`). Each is
    divided by one shared scale (its RMS) and not centred, so turning the raw vector
    is the same turn of the scaled one: rotation augmentation stays physical.
    """

    def __init__(self, triples=()):
        self.triples = triples

    def fit(self, X, y=None):
        X = _as_windows(X)
        mean = X.mean(axis=(0, 2), dtype=np.float64)
        std = X.std(axis=(0, 2), dtype=np.float64)
        for triple in self.triples:
            idx = list(triple)
            mean[idx] = 0.0
            std[idx] = np.sqrt(np.mean(np.square(X[:, idx], dtype=np.float64)))
        self.mean_ = mean
        self.scale_ = np.where(std > 1e-12, std, 1.0)  # a constant channel is centred, not blown up
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        X = _as_windows(X)
        if X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"ChannelScaler was fitted on {self.mean_.shape[0]} channels, got {X.shape[1]}")
        return ((X - self.mean_[:, None]) / self.scale_[:, None]).astype(np.float32)

    def inverse_transform(self, X):
        X = _as_windows(X)
        return (X * self.scale_[:, None] + self.mean_[:, None]).astype(np.float32)


def _as_windows(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3:
        raise ValueError(f"windows must be shaped (n, channels, size), not {X.shape}")
    return X
