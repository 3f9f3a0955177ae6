"""Windows + shallow features: how long one hour of 100 Hz samples takes, on one core.

From (n, 6) SI samples to feature rows: channel selection (magnitudes derived),
sliding windows of 32 at step 16, then each feature set. Goal: the hour in
under 1 s. Prints windows/s and seconds per hour for every channel set.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harduino import calibration, dataset, features, motion, protocol, windowing

RATE = 100


def hour_of_samples(seconds: float) -> np.ndarray:
    n = int(seconds * RATE)
    per = n // len(motion.ACTIVITIES)
    parts = [motion.synth_activity(a, per, RATE, subject=1, t0=i * per / RATE)
             for i, a in enumerate(motion.ACTIVITIES)]
    return np.vstack(parts) * protocol.BoardInfo().si_scale


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 minutes of data, one repeat (for tests)")
    args = ap.parse_args()
    seconds, repeats = (360.0, 1) if args.quick else (3600.0, 5)
    si = hour_of_samples(seconds)
    n_windows = len(windowing.windows(si, windowing.WINDOW, windowing.STEP))
    print(f"windows + features, {seconds / 60:.0f} min of {RATE} Hz data ({len(si)} samples, "
          f"{n_windows} windows of {windowing.WINDOW} at step {windowing.STEP}), one core, best of {repeats}")
    print(f"  {'channels':10s} {'features':9s} {'columns':>7s} {'windows/s':>12s} {'s per hour of 100 Hz data':>26s}")
    slowest = (0.0, "", "")
    for channel_set in dataset.CHANNEL_SETS:
        for feature_set in features.FEATURE_SETS:
            if feature_set == "board" and "ax" not in dataset.channel_names(channel_set):
                continue  # the board's features come from the six axes
            def run():
                cal = calibration.Calibration((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), "upright")
                X = windowing.windows(dataset.select_channels(si, channel_set, RATE, cal), windowing.WINDOW, windowing.STEP)
                return features.window_features(X, feature_set, channel_set, rate_hz=RATE)
            columns = run().shape[1]
            took = best_time(run, repeats)
            per_hour = took * 3600 / seconds
            print(f"  {channel_set:10s} {feature_set:9s} {columns:7d} {n_windows / took:12,.0f} {per_hour:26.3f}")
            slowest = max(slowest, (per_hour, feature_set, channel_set))
    print("  goal: under 1 s per hour of 100 Hz data")
    per_hour, feature_set, channel_set = slowest
    print(f"summary: windows + {feature_set} features, {channel_set} channels (the slowest) | {per_hour:.2f} s per "
          "hour of 100 Hz data | < 1 s")


if __name__ == "__main__":
    main()
