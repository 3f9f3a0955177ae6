"""Shallow features of windows, computed for all windows at once.

`baseline` is the lectures' pair: mean total acceleration and mean total
angular speed of each window. `full` adds, per channel: mean, std, min, max,
range, RMS, the 10/25/50/75/90th percentiles, zero-crossing rate (of the
mean-removed signal), energy (sum of squares), dominant frequency and the
power in four bands (from a periodogram), and, when the six axes are there,
the correlations between the accelerometer's axes and between the gyro's.
`board` is what the Arduino computes itself (boardfeatures.py): mean, std, min
and max of the six axes and of |acc| and |gyro|.

Frequencies are in Hz when `rate_hz` is given, otherwise in cycles per
sample; a model stores the rate it was trained at, so the two never mix.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import signal
from sklearn.base import BaseEstimator, TransformerMixin

from .boardfeatures import BOARD_FEATURE_NAMES, board_features
from .dataset import CHANNEL_SETS, channel_names
from .errors import UserError

FEATURE_SETS = ("baseline", "full", "board")
PERCENTILES = (10, 25, 50, 75, 90)
BANDS = ((0.0, 0.125), (0.125, 0.25), (0.25, 0.5), (0.5, 1.0))  # fractions of the Nyquist frequency
PER_CHANNEL = (("mean", "std", "min", "max", "range", "rms") + tuple(f"p{p}" for p in PERCENTILES)
               + ("zcr", "energy", "dominant_freq") + tuple(f"band{i}" for i in range(len(BANDS))))
_AXIS_PAIRS = ((0, 1), (0, 2), (1, 2))


def resolve_channels(channels: str | Sequence[str] | None, n_channels: int) -> tuple[str, ...]:
    """Channel names from a channel-set name, a list of names, or (None) the number of channels."""
    if channels is None:
        matches = [names for names in CHANNEL_SETS.values() if len(names) == n_channels]
        if len(matches) != 1:
            raise ValueError(f"cannot tell the channels of {n_channels}-channel windows; name them")
        return matches[0]
    names = channel_names(channels) if isinstance(channels, str) else tuple(channels)
    if len(names) != n_channels:
        raise ValueError(f"{len(names)} channel names for {n_channels}-channel windows")
    return names


def feature_names(feature_set: str, channels: str | Sequence[str]) -> list[str]:
    """Names of the columns `window_features` returns, in order."""
    names = channel_names(channels) if isinstance(channels, str) else tuple(channels)
    _check_set(feature_set)
    if feature_set == "baseline":
        return ["acc_mag_mean", "gyro_mag_mean"]
    if feature_set == "board":
        return list(BOARD_FEATURE_NAMES)
    out = [f"{c}_{f}" for c in names for f in PER_CHANNEL]
    for group in _axis_groups(names):
        out += [f"corr_{names[group[a]]}_{names[group[b]]}" for a, b in _AXIS_PAIRS]
    return out


def window_features(X: np.ndarray, feature_set: str = "full", channels: str | Sequence[str] | None = None,
                    rate_hz: float | None = None) -> np.ndarray:
    """(n, c, size) windows -> (n, k) float32 features, columns as `feature_names` lists them."""
    _check_set(feature_set)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"windows must be shaped (n, channels, size), not {X.shape}")
    names = resolve_channels(channels, X.shape[1])
    if feature_set == "baseline":
        return baseline_features(X, names).astype(np.float32)
    if feature_set == "board":
        return board_features(X, names).astype(np.float32)
    parts = [per_channel_features(X, rate_hz).reshape(len(X), -1)]
    parts += [axis_correlations(X[:, list(group)]) for group in _axis_groups(names)]
    return np.hstack(parts).astype(np.float32)


def baseline_features(X: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Mean |acc| and mean |gyro| per window: (n, 2)."""
    out = []
    for mag, axes in (("acc_mag", ("ax", "ay", "az")), ("gyro_mag", ("gx", "gy", "gz"))):
        if mag in names:
            magnitude = X[:, names.index(mag)]
        elif all(a in names for a in axes):
            magnitude = np.linalg.norm(X[:, [names.index(a) for a in axes]], axis=1)
        else:
            raise ValueError(f"the baseline features need {mag} or the axes {', '.join(axes)}")
        out.append(magnitude.mean(axis=-1))
    return np.column_stack(out)


def per_channel_features(X: np.ndarray, rate_hz: float | None = None) -> np.ndarray:
    """(n, c, size) -> (n, c, len(PER_CHANNEL)) statistics, spectral features last."""
    lo, hi = X.min(axis=-1), X.max(axis=-1)
    mean = X.mean(axis=-1)
    centred = X - mean[..., None]
    crossings = np.signbit(centred[..., 1:]) != np.signbit(centred[..., :-1])
    fs = rate_hz or 1.0
    freqs, power = signal.periodogram(X, fs=fs, detrend="constant", axis=-1)
    df = freqs[1] - freqs[0]
    dominant = freqs[1:][np.argmax(power[..., 1:], axis=-1)]
    nyquist = fs / 2
    bands = [power[..., (freqs >= a * nyquist) & ((freqs < b * nyquist) if b < 1 else (freqs <= nyquist))]
             .sum(axis=-1) * df for a, b in BANDS]
    return np.stack([
        mean,
        X.std(axis=-1),
        lo,
        hi,
        hi - lo,
        np.sqrt(np.mean(X * X, axis=-1)),
        *percentiles(X, PERCENTILES),
        crossings.mean(axis=-1),
        np.sum(X * X, axis=-1),
        dominant,
        *bands,
    ], axis=-1)


def percentiles(X: np.ndarray, qs: Sequence[float]) -> list[np.ndarray]:
    """np.percentile's default (linear) percentiles along the last axis, from one sort for all of them."""
    ordered = np.sort(X, axis=-1)
    out = []
    for q in qs:
        pos = q / 100 * (X.shape[-1] - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, X.shape[-1] - 1)
        out.append(ordered[..., lo] + (pos - lo) * (ordered[..., hi] - ordered[..., lo]))
    return out


def axis_correlations(X3: np.ndarray) -> np.ndarray:
    """(n, 3, size) -> (n, 3) Pearson correlations of axes x-y, x-z, y-z; 0 where an axis is constant."""
    centred = X3 - X3.mean(axis=-1, keepdims=True)
    norm = np.sqrt(np.sum(centred * centred, axis=-1))
    out = []
    for a, b in _AXIS_PAIRS:
        den = norm[:, a] * norm[:, b]
        num = np.sum(centred[:, a] * centred[:, b], axis=-1)
        out.append(np.divide(num, den, out=np.zeros_like(num), where=den > 1e-12))
    return np.column_stack(out)


def _axis_groups(names: Sequence[str]) -> list[tuple[int, int, int]]:
    groups = []
    for axes in (("ax", "ay", "az"), ("gx", "gy", "gz")):
        if all(a in names for a in axes):
            groups.append(tuple(names.index(a) for a in axes))
    return groups


def _check_set(feature_set: str) -> None:
    if feature_set not in FEATURE_SETS:
        raise UserError(f"unknown feature set {feature_set!r}; choose one of {', '.join(FEATURE_SETS)}.")


class WindowFeatures(TransformerMixin, BaseEstimator):
    """sklearn transformer: (n, c, size) windows -> (n, k) features; the first step of shallow pipelines."""

    def __init__(self, feature_set: str = "full", channels=None, rate_hz: float | None = None):
        self.feature_set = feature_set
        self.channels = channels
        self.rate_hz = rate_hz

    def fit(self, X, y=None):
        X = np.asarray(X)
        self.channel_names_ = resolve_channels(self.channels, X.shape[1])
        self.feature_names_ = feature_names(self.feature_set, self.channel_names_)
        self.n_features_out_ = len(self.feature_names_)
        return self

    def transform(self, X):
        return window_features(X, self.feature_set, self.channel_names_, self.rate_hz)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_, dtype=object)
