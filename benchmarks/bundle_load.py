"""Bundle loading: what checking a bundle costs, beside reading the same weights file unchecked.

For the shipped CNN-LSTM and for a random forest, boosting and logistic
regression trained on data/sim, time `load_bundle` (checksum, every field
against the weights, every tree node, the compiled live path) and, as the
baseline in the same run, the bare read of the same file (safetensors'
load_file; skops' load trusting exactly the types the file names). Then time the refusal of
a forged bundle claiming a 16000-wide network (which cost 4.25 GB and 42 s
before the checks). Goal: any load or refusal well under 1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import skops.io

from harduino.dataset import load_recordings, window_dataset
from harduino.errors import UserError
from harduino.models import fit_estimator, load_bundle, make_estimator, save_bundle

ROOT = Path(__file__).resolve().parents[1]


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def bare_read(folder: Path):
    path = next(p for p in folder.iterdir() if p.name != "bundle.json")
    if path.suffix == ".safetensors":
        return lambda: safetensors.torch.load_file(str(path))
    trusted = skops.io.get_untrusted_types(file=path)
    return lambda: skops.io.load(path, trusted=trusted)


def refused(folder: Path):
    def load():
        try:
            load_bundle(folder)
        except UserError:
            return
        raise AssertionError(f"{folder} was not refused")
    return load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller models (for tests)")
    args = ap.parse_args()
    repeats = 3 if args.quick else 10
    work = Path(tempfile.mkdtemp(prefix="bundle-load-"))
    try:
        ws = window_dataset(load_recordings(ROOT / "data" / "sim"), "all")
        folders = {"cnn-lstm": ROOT / "models" / "default"}
        for arch, params in {"rf": {}, "hgb": {}, "logreg": {}}.items():
            if args.quick:
                params = {"rf": {"n_estimators": 10}, "hgb": {"max_iter": 10}}.get(arch, {})
            est = fit_estimator(make_estimator(arch, "all", rate_hz=ws.rate_hz, **params), ws.X, ws.y)
            folders[arch] = save_bundle(est, work / arch, {
                "architecture": arch, "channel_set": "all", "window": ws.size, "step": ws.step,
                "rate_hz": ws.rate_hz, "feature_set": "full"})
        forged = Path(shutil.copytree(folders["cnn-lstm"], work / "forged"))
        meta = json.loads((forged / "bundle.json").read_text())
        meta["network"]["hidden"] = 16000
        canonical = json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True,
                               separators=(",", ":"), ensure_ascii=False)
        meta["sha256"] = hashlib.sha256(canonical.encode() + (forged / "weights.safetensors").read_bytes()).hexdigest()
        (forged / "bundle.json").write_text(json.dumps(meta))

        print(f"median of {repeats} loads, in this process (libraries imported)")
        print(f"  {'bundle':22s} {'load_bundle ms':>14s} {'bare read ms':>12s} {'ratio':>6s}")
        summaries, worst = [], 0.0
        for name, folder in folders.items():
            checked, bare = median_ms(lambda f=folder: load_bundle(f), repeats), median_ms(bare_read(folder), repeats)
            worst = max(worst, checked)
            print(f"  {name:22s} {checked:14.1f} {bare:12.1f} {checked / bare:5.1f}x")
        refusal = median_ms(refused(forged), repeats)
        print(f"  {'forged hidden 16000':22s} {refusal:14.1f} {'':>12s} {'':>6s}  (refused)")
        summaries.append(f"summary: bundle load, every check included (slowest of {', '.join(folders)}) | "
                         f"{worst:.0f} ms | < 1000 ms")
        summaries.append(f"summary: refusal of a bundle claiming a 16000-wide network | {refusal:.0f} ms | < 1000 ms")
        print("\n".join(summaries))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
