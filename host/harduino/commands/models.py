"""`harduino archs | train | evaluate | compare`: models from recordings, scored honestly.

--arch names an architecture (`harduino archs` lists them); --model always names a
saved bundle folder. Only the standard library is imported at the top: numpy, the
model code and torch load when a command runs, so `--help` is instant.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import UserError
from . import check_positive, check_writable

DEEP_OPTIONS = ("epochs", "batch_size", "lr", "hidden", "filters")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("archs", help="list the classifier architectures",
                              description="List the architectures --arch accepts, shallow and deep.")
    p.set_defaults(run=run_archs)

    p = subparsers.add_parser("train", help="train a model on recordings and save it as a bundle",
                              description="Train an architecture on every labelled window of DATA, score it by "
                                          "cross-validation over subjects (kept in the bundle), and save a "
                                          "model bundle.")
    p.add_argument("data", type=Path, help="folder of recordings (CSV + JSON)")
    _add_model_options(p)
    p.add_argument("-o", "--out", type=Path, help="bundle folder to write (default: models/ARCH)")
    p.add_argument("--no-cv", action="store_true", help="skip the cross-validation scores")
    p.set_defaults(run=run_train)

    p = subparsers.add_parser("evaluate", help="cross-validate an architecture, or test a saved model",
                              description="With --arch: cross-validate by leaving one subject out (by session "
                                          "when there is one subject; in 10 folds of whole subjects when there "
                                          "are more than 10). With --model: score a saved bundle on "
                                          "DATA. Prints accuracy, macro F1 and a per-class table, and writes a "
                                          "confusion-matrix PNG.")
    p.add_argument("data", type=Path, help="folder of recordings to score on")
    p.add_argument("--model", type=Path, help="a saved model bundle folder (instead of --arch)")
    _add_model_options(p, arch_required=False)
    p.add_argument("--png", type=Path, help="confusion-matrix image (default: confusion-NAME.png)")
    p.set_defaults(run=run_evaluate)

    p = subparsers.add_parser("compare", help="every architecture under the same folds, one table",
                              description="Cross-validate every architecture on the same subject folds (or "
                                          "train on DATA and test on --test) and print accuracy, macro F1, "
                                          "training time, single-window inference time and model size.")
    p.add_argument("data", type=Path, help="folder of recordings")
    p.add_argument("--test", type=Path, help="a separate test folder: train on DATA, test on it")
    p.add_argument("--archs", help="comma-separated subset of architectures (default: all)")
    _add_model_options(p, arch_required=None)
    p.set_defaults(run=run_compare)


def _add_model_options(p, arch_required: bool | None = True) -> None:
    if arch_required is not None:
        p.add_argument("--arch", required=arch_required, help="architecture name (see `harduino archs`)")
    p.add_argument("--channels", default="all", help="input channels: axes, magnitudes or all (default all)")
    p.add_argument("--features", default="full", help="shallow models' feature set: baseline or full")
    p.add_argument("--step", type=int, default=16, help="window step in samples (windows are 32 samples)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same model)")
    p.add_argument("--epochs", type=int, help="deep models: most epochs (early stopping may end sooner)")
    p.add_argument("--batch-size", type=int, help="deep models: mini-batch size")
    p.add_argument("--lr", type=float, help="deep models: Adam learning rate")
    p.add_argument("--hidden", type=int, help="deep models: hidden units")
    p.add_argument("--filters", type=int, help="deep models: Conv1d filters of the first block")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# ---------------------------------------------------------------- shared steps


def _windows(folder: Path, channel_set: str, step: int, size: int = 32):
    from ..dataset import load_recordings, window_dataset

    ws = window_dataset(load_recordings(folder), channel_set=channel_set, size=size, step=step)
    if len(ws) == 0:
        raise UserError(f"the recordings in {folder} hold no labelled {size}-sample windows; record labelled "
                        "sessions of at least a few seconds.")
    return ws


def _require_classes(ws, folder: Path) -> None:
    if ws.classes.size < 2:
        raise UserError(f"the recordings in {folder} hold only the class '{ws.classes[0]}'; a classifier needs "
                        "recordings of at least two activities.")


def _params(args, arch: str, epoch_bar: bool = False) -> dict:
    """The deep options given on the command line, for a deep architecture; none for a shallow one."""
    from ..models import DEEP

    if arch not in DEEP:
        return {}
    return {"verbose": epoch_bar and not args.quiet,
            **{k: getattr(args, k) for k in DEEP_OPTIONS if getattr(args, k) is not None}}


def _check_options(args) -> None:
    """The options train, evaluate and compare share: one clear sentence before any work."""
    from ..features import FEATURE_SETS

    if args.features not in FEATURE_SETS:
        raise UserError(f"unknown feature set {args.features!r}; choose one of {', '.join(FEATURE_SETS)}.")
    check_positive(args, "step", *DEEP_OPTIONS)


def _training_summary(ws, folder: Path) -> dict:
    import numpy as np

    labels, counts = np.unique(ws.y, return_counts=True)
    return {"folder": folder.name, "windows": int(len(ws)), "subjects": sorted(set(ws.subjects.tolist())),
            "sessions": int(np.unique(ws.sessions).size),
            "windows_per_class": {str(k): int(v) for k, v in zip(labels, counts)}}


# ---------------------------------------------------------------- commands


def run_archs(args) -> int:
    from ..models import ARCHITECTURES, DEEP

    for name, what in ARCHITECTURES.items():
        print(f"{name:9s} {'deep' if name in DEEP else 'shallow':8s} {what}")
    return 0


def run_train(args) -> int:
    import numpy as np

    from ..models import check_arch, fit_estimator, make_estimator, model_size, save_bundle
    from ..models.evaluation import run_folds, subject_folds

    arch = check_arch(args.arch)
    _check_options(args)
    out = args.out or Path("models") / arch
    check_writable(out, "model bundle", folder=True)  # now, not after the training
    ws = _windows(args.data, args.channels, args.step)
    _require_classes(ws, args.data)
    metrics = {}
    if not args.no_cv and np.unique(ws.sessions).size >= 2:  # folds of subjects, or of sessions
        how, idx = subject_folds(ws)
        result = run_folds(arch, [(ws.subset(a), ws.subset(b)) for a, b in idx], feature_set=args.features,
                           random_state=args.seed, progress=not args.quiet, **_params(args, arch))
        metrics["cross_validation"] = {"method": how, **result.scores.summary()}
        print(f"{how}: accuracy {result.scores.accuracy:.3f}, macro F1 {result.scores.macro_f1:.3f}")
    est = make_estimator(arch, args.channels, feature_set=args.features, rate_hz=ws.rate_hz,
                         random_state=args.seed, **_params(args, arch, epoch_bar=True))
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
            "architecture": arch, "channel_set": args.channels, "window": ws.size, "step": ws.step,
            "rate_hz": ws.rate_hz, "feature_set": args.features, "seed": args.seed,
            "training_data": _training_summary(ws, args.data), "metrics": metrics})
    except OSError as err:
        raise UserError(f"cannot write the model bundle {out}: {err.strerror or err}.") from None
    print(f"trained {arch} ({model_size(est)}) on {len(ws)} windows of {len(np.unique(ws.sessions))} sessions "
          f"in {fit_s:.1f} s; saved {out}")
    return 0


def run_evaluate(args) -> int:
    from ..models import check_arch, load_bundle
    from ..models.evaluation import Scores, run_folds, subject_folds

    if (args.model is None) == (args.arch is None):
        raise UserError("give either --arch NAME (cross-validate it) or --model BUNDLE (test a saved model).")
    _check_options(args)
    name = args.model.name if args.model is not None else check_arch(args.arch)
    png_path = args.png or Path(f"confusion-{name}.png")
    check_writable(png_path, "confusion matrix", folder=False)
    if args.model is not None:
        bundle = load_bundle(args.model)
        ws = _windows(args.data, bundle.channel_set, bundle.step, bundle.window)
        bundle.check_compatible(ws.rate_hz, ws.channel_set, ws.size)
        unknown = sorted(set(ws.classes.tolist()) - set(bundle.classes_.tolist()))
        if unknown:
            raise UserError(f"{args.data} holds activities the model {args.model} was not trained on "
                            f"({', '.join(unknown)}); test it on data of its classes "
                            f"({', '.join(bundle.classes_)}).")
        scores = Scores(ws.y, bundle.predict(ws.X), bundle.classes_)
        how = f"model {args.model} on {args.data}"
    else:
        ws = _windows(args.data, args.channels, args.step)
        _require_classes(ws, args.data)
        how, idx = subject_folds(ws)
        result = run_folds(name, [(ws.subset(a), ws.subset(b)) for a, b in idx], feature_set=args.features,
                           random_state=args.seed, progress=not args.quiet, **_params(args, name))
        scores = result.scores
        how = f"{name} on {args.data}, {how}"
    print(how)
    print(scores.report())
    try:
        png = scores.plot_confusion(png_path, how)
    except OSError as err:
        raise UserError(f"cannot write the confusion matrix {png_path}: {err.strerror or err}.") from None
    print(f"confusion matrix: {png}")
    return 0


def run_compare(args) -> int:
    import numpy as np

    from ..models import ARCHITECTURES, check_arch
    from ..models.evaluation import run_folds, subject_folds

    archs = [check_arch(a.strip()) for a in args.archs.split(",")] if args.archs else list(ARCHITECTURES)
    _check_options(args)
    ws = _windows(args.data, args.channels, args.step)
    _require_classes(ws, args.data)
    if args.test is not None:
        test = _windows(args.test, args.channels, args.step)
        if not np.isclose(test.rate_hz, ws.rate_hz, rtol=0.02):
            raise UserError(f"{args.test} is sampled at {test.rate_hz:g} Hz but {args.data} at {ws.rate_hz:g} Hz; "
                            "compare on data of one rate.")
        folds, how = [(ws, test)], f"trained on {args.data}, tested on {args.test}"
    else:
        how, idx = subject_folds(ws)
        folds = [(ws.subset(a), ws.subset(b)) for a, b in idx]
    print(f"{how}; {len(ws)} windows of {ws.channel_set} channels at {ws.rate_hz:g} Hz "
          f"(a window every {args.step / ws.rate_hz * 1000:.0f} ms)")
    print(f"{'arch':9s} {'accuracy':>8s} {'macro F1':>8s} {'train s':>8s} {'ms/window':>9s}  size")
    for arch in archs:
        r = run_folds(arch, folds, feature_set=args.features, random_state=args.seed, progress=not args.quiet,
                      **_params(args, arch))
        print(f"{arch:9s} {r.scores.accuracy:8.3f} {r.scores.macro_f1:8.3f} {np.mean(r.fit_s):8.2f} "
              f"{np.median(r.latency_ms):9.3f}  {r.size}", flush=True)
    print("train s: mean per fold; ms/window: median single-window predict_proba, features included")
    return 0
