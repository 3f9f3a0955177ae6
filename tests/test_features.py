"""Shallow features: values equal hand-computed ones, shapes and names line up, the benchmark prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harduino import dataset, features, motion, protocol, windowing
from harduino.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def column(F, names, name):
    return F[:, names.index(name)]


def test_baseline_is_mean_total_acceleration_and_angular_speed():
    X = np.zeros((2, 6, 4), dtype=np.float32)
    X[0, 0] = [3, 3, 0, 0]
    X[0, 1] = [4, 4, 0, 0]      # |acc| = 5, 5, 0, 0 -> 2.5
    X[0, 5] = [1, 1, 1, 1]      # |gyro| = 1
    X[1, 2] = [9.8, 9.8, 9.8, 9.8]
    F = features.window_features(X, "baseline", "axes")
    assert F.shape == (2, 2) and F.dtype == np.float32
    assert np.allclose(F, [[2.5, 1.0], [9.8, 0.0]])
    # the same from the magnitude channels as from the axes
    si = np.transpose(X, (0, 2, 1)).reshape(-1, 6)
    mags = windowing.windows(dataset.select_channels(si, "magnitudes"), 4, 4)
    assert np.allclose(features.window_features(mags, "baseline", "magnitudes"), F)
    assert features.feature_names("baseline", "all") == ["acc_mag_mean", "gyro_mag_mean"]


def test_full_features_of_simple_signals_equal_hand_computed_values():
    rate = 32.0
    alternating = np.tile([1.0, -1.0], 16)                     # the Nyquist frequency, 16 Hz
    slow = np.sin(2 * np.pi * 2 * np.arange(32) / rate + 0.5) + 3.0  # 2 Hz, offset 3
    X = np.stack([alternating, slow])[None].astype(np.float32)  # one window, channels acc_mag, gyro_mag
    names = features.feature_names("full", "magnitudes")
    F = features.window_features(X, "full", "magnitudes", rate_hz=rate)
    assert F.shape == (1, len(names)) == (1, 2 * len(features.PER_CHANNEL))
    expect = {
        "acc_mag_mean": 0.0, "acc_mag_std": 1.0, "acc_mag_min": -1.0, "acc_mag_max": 1.0, "acc_mag_range": 2.0,
        "acc_mag_rms": 1.0, "acc_mag_p10": -1.0, "acc_mag_p25": -1.0, "acc_mag_p50": 0.0, "acc_mag_p75": 1.0,
        "acc_mag_p90": 1.0, "acc_mag_zcr": 1.0, "acc_mag_energy": 32.0, "acc_mag_dominant_freq": 16.0,
        "gyro_mag_mean": 3.0, "gyro_mag_std": np.sqrt(0.5), "gyro_mag_range": slow.max() - slow.min(),
        "gyro_mag_rms": np.sqrt(9.5), "gyro_mag_energy": 32 * 9.5, "gyro_mag_dominant_freq": 2.0,
        "gyro_mag_zcr": 4 / 31,  # two cycles cross the mean 4 times in the window's 31 steps
    }
    for name, value in expect.items():
        assert column(F, names, name)[0] == pytest.approx(value, abs=1e-5), name
    # bands at 32 Hz: [0, 2), [2, 4), [4, 8), [8, 16] Hz; the alternating signal's power lies in the top one,
    # the 2 Hz sine's in the second
    bands = [f"band{i}" for i in range(len(features.BANDS))]
    acc_bands = np.array([column(F, names, f"acc_mag_{b}")[0] for b in bands])
    gyro_bands = np.array([column(F, names, f"gyro_mag_{b}")[0] for b in bands])
    assert np.argmax(acc_bands) == 3 and acc_bands[:3].sum() < 1e-9
    assert np.argmax(gyro_bands) == 1 and gyro_bands.sum() - gyro_bands[1] < 1e-9
    # Parseval: band powers add up to the variance (periodogram density x bin width)
    assert acc_bands.sum() == pytest.approx(1.0, rel=1e-3)
    assert gyro_bands.sum() == pytest.approx(0.5, rel=1e-3)


def test_axis_correlations():
    s = np.sin(np.arange(32) / 3.0)
    X = np.zeros((1, 8, 32), dtype=np.float32)
    X[0, 0], X[0, 1], X[0, 2] = s, 2 * s + 1, -s
    X[0, 3], X[0, 4] = s, np.cos(np.arange(32) * np.pi)  # gz stays constant
    names = features.feature_names("full", "all")
    F = features.window_features(X, "full", "all")
    got = {n: column(F, names, n)[0] for n in names if n.startswith("corr_")}
    assert got["corr_ax_ay"] == pytest.approx(1.0, abs=1e-5)
    assert got["corr_ax_az"] == pytest.approx(-1.0, abs=1e-5)
    assert got["corr_gx_gz"] == 0.0 and got["corr_gy_gz"] == 0.0
    assert len(got) == 6 and F.shape[1] == 8 * len(features.PER_CHANNEL) + 6


def test_features_separate_activities_of_an_unseen_subject():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline

    scale = protocol.BoardInfo().si_scale

    def windows_of(subject):
        X, y = [], []
        for activity in motion.ACTIVITIES:
            si = motion.synth_activity(activity, 400, 50, subject=subject) * scale
            w = windowing.windows(dataset.select_channels(si, "all"))
            X.append(w)
            y += [activity] * len(w)
        return np.concatenate(X), np.array(y)

    (X_train, y_train), (X_test, y_test) = windows_of(1), windows_of(2)
    pipe = make_pipeline(features.WindowFeatures("full", rate_hz=50),
                         RandomForestClassifier(n_estimators=30, random_state=0))
    pipe.fit(X_train, y_train)
    assert (pipe.predict(X_test) == y_test).mean() > 0.9
    assert len(pipe[0].get_feature_names_out()) == pipe[0].transform(X_test[:1]).shape[1]


def test_bad_feature_set_or_channels():
    X = np.zeros((3, 5, 32))
    with pytest.raises(ValueError, match="5-channel"):
        features.window_features(X, "full")
    with pytest.raises(UserError, match="unknown feature set 'fancy'"):
        features.window_features(np.zeros((3, 2, 32)), "fancy")
    with pytest.raises(ValueError, match="baseline features need gyro_mag"):
        features.window_features(np.zeros((1, 3, 32)), "baseline", ("ax", "ay", "az"))


def test_benchmark_quick_prints_its_figures():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "features.py"), "--quick"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "windows/s" in out and "s per hour of 100 Hz data" in out
    for feature_set in features.FEATURE_SETS:
        assert feature_set in out
