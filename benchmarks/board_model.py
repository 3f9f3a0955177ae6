"""The model on the board, per exportable architecture: what the firmware costs with it, and how well it predicts.

For rf (bounded), logreg and the int8 perceptron (mlp-board) on the `board` features: flash, static RAM and peak stack of the whole
firmware (avr-size, the simavr harness), cycles and ms per window at 16 MHz (simavr's cycle counter,
by the firmware's busy pin: per-sample sums and the window's work together), the board's agreement with
the host's integer twin on recorded samples played into the simulated sensor, the twin's with the float
model, and accuracy on held-out subjects: the on-board model (the twin on the counts a ±2 g / ±250 °/s
board would read) beside the same architecture on float board features and beside the best host model
of benchmarks/results/results.json.

Data: data/hapt (train/ and test/, UCI's split of subjects) when installed, else data/sim with s4 and
s5 held out (--quick: data/sim and a shorter simulator run).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from harduino import boardfeatures as bf
from harduino import export, firmware, protocol
from harduino.dataset import load_recordings, window_dataset
from harduino.models import load_bundle, make_estimator, save_bundle
from harduino.transport import open_port

ROOT = Path(__file__).resolve().parents[1]
ARCHS = {"rf": {"n_estimators": 10, "max_depth": 7}, "logreg": {}, "mlp-board": {}}
SI_PER_COUNT = protocol.BoardInfo().si_scale  # the firmware's ranges: ±2 g, ±250 °/s
F_CPU = 16e6


def counts(si: np.ndarray) -> np.ndarray:
    """SI samples as the board's raw counts, clipped at the ranges as its sensor clips."""
    return np.clip(np.round(si / SI_PER_COUNT), -32768, 32767).astype(np.int16)


def split(data: Path):
    """(train recordings, test recordings, what the split is)."""
    if (data / "train").is_dir():
        return load_recordings(data / "train"), load_recordings(data / "test"), f"{data.name}: train/ vs test/"
    recordings = load_recordings(data)
    held_out = {"s4", "s5"}
    return ([r for r in recordings if r.subject not in held_out], [r for r in recordings if r.subject in held_out],
            f"{data.name}: subjects s4, s5 held out")


def play(elf: Path, rows: np.ndarray):
    """The firmware on rows until all came back: (raw received, predictions, harness report)."""
    decoder, raws, predictions = protocol.Decoder(), [], []
    with firmware.FirmwareBoard(rows, realtime=False, elf=elf) as board:
        with open_port(board.port, timeout=0.05) as port:
            board.start()
            deadline, n = time.monotonic() + 300, 0
            while n < len(rows) and time.monotonic() < deadline:
                chunk = decoder.feed(port.read(4096))
                raws.append(chunk.raw)
                predictions += [p for _, p in chunk.predictions]
                n += len(chunk)
        report = firmware.harness_report(board.stop())
    return np.concatenate(raws), predictions, report


def best_host_model() -> str:
    try:
        tests = json.loads((ROOT / "benchmarks" / "results" / "results.json").read_text())["hapt"]["product"]["test"]
        arch, scores = max(tests.items(), key=lambda kv: kv[1]["accuracy"])
        return f"{arch} {scores['accuracy']:.3f} (HAPT, UCI's test subjects, 32-sample windows, results.json)"
    except (OSError, KeyError, ValueError, TypeError, AttributeError):
        return "not recorded (make results)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="recordings (default: data/hapt if installed, else data/sim)")
    ap.add_argument("--quick", action="store_true", help="data/sim and 1,000 simulated samples (for tests)")
    args = ap.parse_args()
    # mlp-board's L-BFGS stops at its 1,000 iterations on HAPT before its tolerance; the accuracy says enough.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    data = args.data or (ROOT / "data" / "hapt" if (ROOT / "data" / "hapt" / "train").is_dir() and not args.quick
                         else ROOT / "data" / "sim")
    train_recs, test_recs, how = split(data)
    train, test = window_dataset(train_recs, "axes"), window_dataset(test_recs, "axes")
    test_counts = counts(np.transpose(test.X, (0, 2, 1))).transpose(0, 2, 1)
    played = counts(np.concatenate([r.si for r in test_recs]))[: 1000 if args.quick else 3000]
    print(f"the model on the board: {how}; {len(train)} training and {len(test)} test windows of {train.size} "
          f"samples at {train.rate_hz:g} Hz; {len(played)} recorded samples played in simavr")
    print(f"  {'arch':9s} {'flash B':>8s} {'RAM B':>6s} {'stack B':>8s} {'cycles/win':>11s} {'ms/win':>7s} "
          f"{'board=twin':>10s} {'twin=float':>10s} {'acc board':>9s} {'acc float':>9s}")
    summary = []
    with tempfile.TemporaryDirectory(prefix="harduino-board-") as tmp:
        for arch, params in ARCHS.items():
            est = make_estimator(arch, "axes", feature_set="board", rate_hz=train.rate_hz, **params)
            est.fit(train.X, train.y)
            path = save_bundle(est, Path(tmp) / arch, {"architecture": arch, "channel_set": "axes", "window": train.size,
                                                       "step": train.step, "rate_hz": train.rate_hz,
                                                       "feature_set": "board"})
            bundle = load_bundle(path)
            model = export.board_model(bundle)
            export.check_budget(model, path)
            float_pred = bundle.predict(test.X)
            twin_cls, _ = model.predict(bf.board_features_int(test_counts))
            twin_pred = bundle.classes_[twin_cls]
            elf = firmware.build_firmware(path)
            flash, ram = firmware.firmware_size(elf)
            raw, predictions, report = play(elf, played)
            ends = np.array([p.seq for p in predictions])
            twin_played, _ = model.predict(bf.board_features_int(bf.windows_ending_at(raw, ends, model.window)))
            same = np.mean(twin_played == [p.class_index for p in predictions])
            cycles = report.model_cycles / max(len(predictions), 1)
            print(f"  {arch:9s} {flash:8d} {ram:6d} {report.stack_bytes:8d} {cycles:11,.0f} {cycles / F_CPU * 1e3:7.2f} "
                  f"{same:10.4f} {np.mean(twin_pred == float_pred):10.4f} {np.mean(twin_pred == test.y):9.3f} "
                  f"{np.mean(float_pred == test.y):9.3f}")
            summary += [f"summary: {arch} on the board, accuracy beside float board features | "
                         f"{np.mean(twin_pred == test.y):.3f} vs {np.mean(float_pred == test.y):.3f} | within 0.03",
                         f"summary: {arch} on the board, flash / RAM + stack | {flash:,} B / {ram + report.stack_bytes:,} B"
                         f" | <= {export.FLASH_BUDGET['Nano']:,} / 2,048"]
    print(f"  budget: flash {export.FLASH_BUDGET['Nano']:,} (Nano) / {export.FLASH_BUDGET['Uno']:,} (Uno), static RAM "
          f"{export.RAM_BUDGET:,}, RAM + stack 2,048; the best host model: {best_host_model()}")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
