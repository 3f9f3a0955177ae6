"""`harduino archs | train | evaluate | compare`: models from recordings, scored honestly.

--arch names an architecture (`harduino archs` lists them); --model always names a
saved bundle folder. Only the standard library is imported at the top: numpy, the
model code and torch load when a command runs, so `--help` is instant.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import UserError
from ..window_defaults import STEP, WINDOW, default_step
from . import check_writable, write_output
from .numbers import folds, positive_float, positive_int, seed

DEEP_OPTIONS = ("epochs", "batch_size", "lr", "hidden", "filters")
FOREST_OPTIONS = {"trees": "n_estimators", "max_depth": "max_depth"}  # rf's size: small enough for the board


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("archs", help="list the classifier architectures",
                              description="List the architectures --arch accepts, shallow and deep.")
    p.set_defaults(run=run_list_archs)

    p = subparsers.add_parser("train", help="train a model on recordings and save it as a bundle",
                              description="Fit an architecture once on every labelled window of DATA (deep "
                                          "models stop early on held-out sessions) and save a model bundle. "
                                          "With --cv K, first score it on K folds of whole subjects (kept in "
                                          "the bundle).")
    p.add_argument("data", type=Path, help="folder of recordings (CSV + JSON)")
    _add_model_options(p)
    p.add_argument("-o", "--out", type=Path, help="bundle folder to write (default: models/ARCH)")
    p.add_argument("--force", action="store_true", help="replace the model bundle already in --out")
    p.add_argument("--cv", type=folds, metavar="K", help="cross-validate on K folds of whole subjects first")
    _add_jobs(p)
    p.set_defaults(run=run_train)

    p = subparsers.add_parser("evaluate", help="cross-validate an architecture, or test a saved model",
                              description="With --arch: cross-validate by leaving one subject out (by session "
                                          "when there is one subject; in 10 folds of whole subjects when there "
                                          "are more than 10; in K folds with --cv K). With --model: score a "
                                          "saved bundle on DATA. Prints accuracy and macro F1 (over the classes "
                                          "present or predicted), a per-class table, per-subject scores with "
                                          "their spread and a confusion matrix.")
    p.add_argument("data", type=Path, help="folder of recordings to score on")
    p.add_argument("--model", type=Path, help="a saved model bundle folder (instead of --arch)")
    _add_model_options(p, arch_required=False)
    _add_evaluation_options(p)
    p.add_argument("--plot", "--png", dest="plot", type=Path, metavar="FILE",
                   help="also write the confusion matrix as a PNG image")
    p.set_defaults(run=run_evaluate)

    p = subparsers.add_parser("compare", help="every architecture under the same folds, one table",
                              description="Cross-validate every architecture on the same subject folds (or "
                                          "train on DATA and test on --test) and print accuracy, macro F1, the "
                                          "per-subject accuracy's mean, spread and lowest, training time, "
                                          "single-window inference time and model size.")
    p.add_argument("data", type=Path, help="folder of recordings")
    p.add_argument("--test", type=Path, help="a separate test folder: train on DATA, test on it")
    p.add_argument("--archs", help="comma-separated subset of architectures (default: all)")
    _add_model_options(p, arch_required=None)
    _add_evaluation_options(p)
    p.set_defaults(run=run_compare)


def _add_model_options(p, arch_required: bool | None = True) -> None:
    if arch_required is not None:
        p.add_argument("--arch", required=arch_required, help="architecture name (see `harduino archs`)")
    p.add_argument("--channels", help="input channels: body, aligned, magnitudes, axes or all (default: from the "
                                      "data: body when every recording has its own calibration, aligned when "
                                      "the accelerometer feels gravity, magnitudes when not)")
    p.add_argument("--features", default="full", help="shallow models' feature set: baseline, full or board "
                                                   "(what the Arduino computes itself; harduino export)")
    p.add_argument("--window", type=positive_int, metavar="N",
                   help=f"window size in samples (default {WINDOW}; a bundle keeps its own)")
    p.add_argument("--step", type=positive_int, metavar="N",
                   help=f"window step in samples (default: half the window, {STEP} for {WINDOW})")
    p.add_argument("--seed", type=seed, default=0, help="random seed (same seed, same model; default %(default)s)")
    p.add_argument("--epochs", type=positive_int, help="deep models: most epochs (early stopping may end sooner)")
    p.add_argument("--batch-size", type=positive_int, help="deep models: mini-batch size")
    p.add_argument("--lr", type=positive_float, help="deep models: Adam learning rate")
    p.add_argument("--hidden", type=positive_int, help="deep models: hidden units")
    p.add_argument("--filters", type=positive_int, help="deep models: Conv1d filters of the first block")
    p.add_argument("--trees", type=positive_int, help="rf: number of trees (default 100)")
    p.add_argument("--max-depth", type=positive_int, help="rf: most levels of a tree (default: up to 256 leaves)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_evaluation_options(p) -> None:
    p.add_argument("--rotate", type=seed, metavar="SEED",
                   help="also score copies of the test recordings each turned by its own random 3-D rotation "
                        "(accelerometer and gyroscope alike, calibration estimated again), as if the board "
                        "had been strapped on again; printed beside the plain score")
    p.add_argument("--cv", type=folds, metavar="K", help="K folds of whole subjects (default: leave one out, "
                                                          "at most 10 folds)")
    p.add_argument("--predictions", type=Path, metavar="FILE",
                   help="write one CSV row per test window: recording, window end time, true and predicted "
                        "label, one probability column per class (compare: one file per architecture, "
                        "FILE-ARCH.csv)")
    _add_jobs(p)


def _add_jobs(p) -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    p.add_argument("--jobs", type=positive_int, default=cpus,
                   help="independent fits run at once, in separate processes (default: the CPUs, %(default)s)")


# ---------------------------------------------------------------- shared steps


def _windows(folder: Path, channel_set: str | None, size: int, step: int):
    """The labelled windows of a folder; channels chosen from the data when None."""
    return _windows_and_turned(folder, channel_set, size, step, None)[0]


def _windows_and_turned(folder: Path, channel_set: str | None, size: int, step: int, rotate: int | None):
    """(windows, the same windows of copies turned at random by seed `rotate`, index for index, or None)."""
    from ..calibration import rotated_copies
    from ..dataset import default_channel_set, load_recordings, window_dataset

    recordings = load_recordings(folder)
    channel_set = channel_set or default_channel_set(recordings)
    ws = window_dataset(recordings, channel_set=channel_set, size=size, step=step)
    if len(ws) == 0:
        raise UserError(f"the recordings in {folder} hold no labelled {size}-sample windows; record labelled "
                        "sessions of at least a few seconds.")
    if rotate is None:
        return ws, None
    return ws, window_dataset(rotated_copies(recordings, rotate), channel_set=channel_set, size=size, step=step)


def _turned(folds, turned):
    """Each fold's test sessions, turned: their windows in the turned copies (None without --rotate)."""
    import numpy as np

    if turned is None:
        return None
    return [turned.subset(np.isin(turned.sessions, np.unique(test.sessions))) for _, test in folds]


def _require_classes(ws, folder: Path) -> None:
    if ws.classes.size < 2:
        raise UserError(f"the recordings in {folder} hold only the class '{ws.classes[0]}'; a classifier needs "
                        "recordings of at least two activities.")


def _params(args, archs, epoch_bar: bool = False) -> dict:
    """{arch: the deep options given on the command line} for the deep architectures among archs."""
    from ..models import DEEP

    given = {k: getattr(args, k) for k in DEEP_OPTIONS if getattr(args, k) is not None}
    params = {a: {"verbose": epoch_bar and not args.quiet, **given} for a in archs if a in DEEP}
    forest = {name: getattr(args, k) for k, name in FOREST_OPTIONS.items() if getattr(args, k, None) is not None}
    if forest and "rf" in archs:
        params["rf"] = forest
    return params


def _check_options(args) -> None:
    """The options train, evaluate and compare share: one clear sentence before any work."""
    from ..features import FEATURE_SETS

    if args.features not in FEATURE_SETS:
        raise UserError(f"unknown feature set {args.features!r}; choose one of {', '.join(FEATURE_SETS)}.")
    args.size = args.window or WINDOW
    args.step = args.step or default_step(args.size)
    if getattr(args, "predictions", None) is not None:
        check_writable(args.predictions, "predictions file", folder=False)


def _cross_validate(args, archs, folds, turned=None):
    """Every architecture fitted and scored on every fold with the command line's options (and on the folds'
    turned test windows, when given): train --cv, evaluate and compare alike."""
    from ..models.evaluation import run_archs

    return run_archs(archs, folds, feature_set=args.features, random_state=args.seed, params=_params(args, archs),
                     jobs=args.jobs, progress=not args.quiet, turned=turned)


def _folds(args, ws):
    from ..models.evaluation import subject_folds

    how, idx = subject_folds(ws, args.cv)
    return how, [(ws.subset(a), ws.subset(b)) for a, b in idx]


def _training_summary(ws, folder: Path) -> dict:
    import numpy as np

    labels, counts = np.unique(ws.y, return_counts=True)
    return {"folder": folder.name, "windows": int(len(ws)), "subjects": sorted(set(ws.subjects.tolist())),
            "sessions": int(np.unique(ws.sessions).size),
            "windows_per_class": {str(k): int(v) for k, v in zip(labels, counts)}}


# ---------------------------------------------------------------- commands


def run_list_archs(args) -> int:
    from ..models import ARCHITECTURES, DEEP

    for name, what in ARCHITECTURES.items():
        print(f"{name:9s} {'deep' if name in DEEP else 'shallow':8s} {what}")
    return 0


def run_train(args) -> int:
    import numpy as np

    from ..models import check_arch, fit_estimator, make_estimator, model_size, save_bundle

    arch = check_arch(args.arch)
    _check_options(args)
    out = args.out or Path("models") / arch
    check_writable(out, "model bundle", folder=True)  # now, not after the training
    if (out / "bundle.json").exists() and not args.force:
        raise UserError(f"{out} already holds a model bundle; choose another -o, or add --force to replace it.")
    ws = _windows(args.data, args.channels, args.size, args.step)
    _require_classes(ws, args.data)
    metrics = {}
    if args.cv is not None:
        how, folds = _folds(args, ws)
        scores = _cross_validate(args, [arch], folds)[0].scores
        metrics["cross_validation"] = {"method": how, **scores.summary()}
        print(f"{how}: accuracy {scores.accuracy:.3f}, macro F1 {scores.macro_f1:.3f}")
    est = make_estimator(arch, ws.channel_set, feature_set=args.features, rate_hz=ws.rate_hz,
                         random_state=args.seed, **_params(args, [arch], epoch_bar=True).get(arch, {}))
    t0 = time.perf_counter()
    fit_estimator(est, ws.X, ws.y, ws.sessions)
    fit_s = time.perf_counter() - t0
    net = est.steps[-1][1]
    if hasattr(net, "history_"):
        best = net.history_[net.best_epoch_ - 1]
        metrics["validation"] = {"method": "held-out sessions, early stopping", "epochs": len(net.history_),
                                 "best_epoch": net.best_epoch_, "accuracy": round(best["val_accuracy"], 4)}
    metrics["training_time_s"] = round(fit_s, 2)
    try:
        save_bundle(est, out, {
            "architecture": arch, "channel_set": ws.channel_set, "window": ws.size, "step": ws.step,
            "rate_hz": ws.rate_hz, "feature_set": args.features, "seed": args.seed,
            "training_data": _training_summary(ws, args.data), "metrics": metrics})
    except OSError as err:
        raise UserError(f"cannot write the model bundle {out}: {err.strerror or err}.") from None
    _remove_replaced_weights(out)
    print(f"trained {arch} ({model_size(est)}) on {len(ws)} windows of {ws.size} samples from "
          f"{len(np.unique(ws.sessions))} sessions in {fit_s:.1f} s; saved {out}")
    return 0


def _remove_replaced_weights(out: Path) -> None:
    """After --force: the weights file of the bundle replaced, when it was of the other kind, goes too."""
    import json

    from ..models.bundle import WEIGHTS

    kept = json.loads((out / "bundle.json").read_text(encoding="utf-8")).get("kind")
    for kind, (name, _) in WEIGHTS.items():
        if kind != kept and (out / name).is_file():
            (out / name).unlink()


def run_evaluate(args) -> int:
    from ..models import check_arch, load_bundle
    from ..models.evaluation import Scores

    if (args.model is None) == (args.arch is None):
        raise UserError("give either --arch NAME (cross-validate it) or --model BUNDLE (test a saved model).")
    _check_options(args)
    if args.plot is not None:
        check_writable(args.plot, "confusion matrix", folder=False)
    turned = None
    if args.model is not None:
        bundle = load_bundle(args.model)
        if args.channels is not None and args.channels != bundle.channel_set:
            raise UserError(f"the model {args.model} takes the {bundle.channel_set!r} channels; leave out "
                            f"--channels or give --channels {bundle.channel_set}.")
        ws, turned = _windows_and_turned(args.data, bundle.channel_set, bundle.window, bundle.step, args.rotate)
        bundle.check_compatible(ws.rate_hz, ws.channel_set, args.window)
        unknown = sorted(set(ws.classes.tolist()) - set(bundle.classes_.tolist()))
        if unknown:
            raise UserError(f"{args.data} holds activities the model {args.model} was not trained on "
                            f"({', '.join(unknown)}); test it on data of its classes "
                            f"({', '.join(bundle.classes_)}).")
        scores = Scores.of(ws, bundle.predict_proba(ws.X), bundle.classes_)
        if turned is not None:
            turned_scores = Scores.of(turned, bundle.predict_proba(turned.X), bundle.classes_)
        how = f"model {args.model} on {args.data}"
    else:
        arch = check_arch(args.arch)
        ws, turned = _windows_and_turned(args.data, args.channels, args.size, args.step, args.rotate)
        _require_classes(ws, args.data)
        how, folds = _folds(args, ws)
        result = _cross_validate(args, [arch], folds, _turned(folds, turned))[0]
        scores, turned_scores = result.scores, result.turned
        how = f"{arch} on {args.data}, {how}, {ws.size}-sample windows of {ws.channel_set} channels"
    print(how)
    print(scores.report())
    if turned is not None:
        print(f"turned at random (--rotate {args.rotate}): accuracy {turned_scores.accuracy:.3f}, macro F1 "
              f"{turned_scores.macro_f1:.3f} (plain {scores.accuracy:.3f}, {scores.macro_f1:.3f})")
    if args.plot is not None:
        write_output("confusion matrix", args.plot, lambda path: scores.plot_confusion(path, how))
    if args.predictions is not None:
        write_output("predictions", args.predictions, scores.write_predictions)
    return 0


def run_compare(args) -> int:
    import numpy as np

    from ..models import ARCHITECTURES, check_arch

    archs = [check_arch(a.strip()) for a in args.archs.split(",")] if args.archs else list(ARCHITECTURES)
    _check_options(args)
    if args.test is not None and args.cv is not None:
        raise UserError("give --test FOLDER (train on DATA, test on it) or --cv K (folds of DATA), not both.")
    ws, turned = _windows_and_turned(args.data, args.channels, args.size, args.step,
                                     args.rotate if args.test is None else None)
    _require_classes(ws, args.data)
    if args.test is not None:
        test, turned = _windows_and_turned(args.test, ws.channel_set, args.size, args.step, args.rotate)
        if not np.isclose(test.rate_hz, ws.rate_hz, rtol=0.02):
            raise UserError(f"{args.test} is sampled at {test.rate_hz:g} Hz but {args.data} at {ws.rate_hz:g} Hz; "
                            "compare on data of one rate.")
        folds, how = [(ws, test)], f"trained on {args.data}, tested on {args.test}"
        turned_tests = [turned] if turned is not None else None
    else:
        how, folds = _folds(args, ws)
        turned_tests = _turned(folds, turned)
    print(f"{how}; {len(ws)} windows of {ws.size} samples, {ws.channel_set} channels at {ws.rate_hz:g} Hz "
          f"(a window every {args.step / ws.rate_hz * 1000:.0f} ms); {min(args.jobs, len(archs) * len(folds))} "
          "fits at a time", flush=True)
    results = _cross_validate(args, archs, folds, turned_tests)
    print(COMPARE_HEADER + ("   turned F1" if turned_tests else ""))
    for r in results:
        print(compare_row(r) + (f"   {r.turned.macro_f1:9.3f}" if r.turned is not None else ""))
        if args.predictions is not None:
            path = args.predictions.with_name(f"{args.predictions.stem}-{r.arch}{args.predictions.suffix or '.csv'}")
            write_output("predictions", path, r.scores.write_predictions)
    print("subjects: per-subject accuracy, mean ± standard deviation and the lowest; train s: mean per fold; "
          "ms/window: single-window predict_proba, features included, median and 99th percentile")
    return 0


COMPARE_HEADER = (f"{'arch':9s} {'accuracy':>8s} {'macro F1':>8s} {'subjects':>15s} {'lowest':>6s} "
                  f"{'train s':>8s} {'ms/window':>9s} {'p99':>6s}  size")


def compare_row(r) -> str:
    import numpy as np

    s = r.scores.spread()["accuracy"]
    return (f"{r.arch:9s} {r.scores.accuracy:8.3f} {r.scores.macro_f1:8.3f} {s['mean']:7.3f} ± {s['std']:5.3f} "
            f"{s['min']:6.3f} {np.mean(r.fit_s):8.2f} {np.median(r.latency_ms):9.3f} "
            f"{np.percentile(r.latency_ms, 99):6.2f}  {r.size}")
