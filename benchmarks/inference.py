"""Classifier speed: training time on the sample set and single-window latency, one CPU thread.

For every architecture: fit on all of data/sim (all channels, full features),
then time the fitted pipeline's own predict_proba on one window at a time, as the
live predictor, evaluation and bundles call it, features and normalisation
included (a forest's or boosting's step walks its compiled trees), and the same
model as scikit-learn alone runs it (the trees uncompiled) beside it.
Goals: p99 under 5 ms (one sample period at 200 Hz) everywhere, under 1 ms for
the CNN-LSTM; the recording's own sample period is printed for scale.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from harduino.dataset import load_recordings, window_dataset
from harduino.models import ARCHITECTURES, DEEP, fit_estimator, make_estimator, model_size
from harduino.models.shallow import as_stored

ROOT = Path(__file__).resolve().parents[1]


def latencies_ms(predict_proba, X: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(n)
    for i in range(n):
        window = X[i % len(X)][None]
        t0 = time.perf_counter()
        predict_proba(window)
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few epochs and calls (for tests)")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "sim")
    args = ap.parse_args()
    calls, epochs = (100, 5) if args.quick else (2000, 60)
    torch.set_num_threads(1)
    ws = window_dataset(load_recordings(args.data), "all")
    period_ms = 1000 / ws.rate_hz
    print(f"{len(ws)} windows of 8 x 32 from {args.data.name} at {ws.rate_hz:g} Hz: sample period "
          f"{period_ms:.1f} ms, a new window every {ws.step * period_ms:.0f} ms; one CPU thread, {calls} calls"
          + (f", deep models {epochs} epochs at most" if args.quick else ""))
    print(f"  {'arch':9s} {'train s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'p99/period':>10s}   "
          f"{'sklearn p50/p99 ms':>19s}  size")
    summaries = []
    with threadpool_limits(1):
        for arch in ARCHITECTURES:
            params = {"epochs": epochs, "verbose": False} if arch in DEEP else {}
            est = make_estimator(arch, "all", rate_hz=ws.rate_hz, **params)
            t0 = time.perf_counter()
            fit_estimator(est, ws.X, ws.y, ws.sessions)
            fit_s = time.perf_counter() - t0
            fast = latencies_ms(est.predict_proba, ws.X, calls)
            plain = latencies_ms(as_stored(est).predict_proba, ws.X, max(calls // 4, 50))
            p50, p99 = np.percentile(fast, [50, 99])
            print(f"  {arch:9s} {fit_s:8.2f} {p50:8.3f} {p99:8.3f} {p99 / period_ms:9.1%}   "
                  f"{np.percentile(plain, 50):9.3f}/{np.percentile(plain, 99):<9.3f}  {model_size(est)}",
                  flush=True)
            summaries.append(f"summary: {arch}: training / single-window p99, features included | {fit_s:.2f} s / "
                             f"{p99:.3f} ms | p99 < {1 if arch == 'cnn-lstm' else 5} ms")
    print("  p50/p99: the pipeline's predict_proba, the one path live, evaluation and bundles use; sklearn: the same "
          "model with its trees uncompiled")
    print("\n".join(summaries))


if __name__ == "__main__":
    main()
