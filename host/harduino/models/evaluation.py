"""Honest evaluation: whole subjects (or sessions) held out, scores per window and per subject.

Windows overlap, so a random split would test on near-copies of training
windows. Every fold here keeps whole subjects, or whole sessions when there is
one subject, on one side; a separate test folder is one more such fold.

A pooled score hides the person a model fails on, so `Scores` also reports
each subject's accuracy and macro F1, and their mean and spread. Macro F1 is
taken over the classes present in the truth or in the predictions: a class
that is neither tested nor predicted says nothing about the model.

Independent fits (folds, architectures) run in parallel processes
(`run_archs`); each deep fit trains on one thread whatever the machine's load,
so a result does not depend on how many ran beside it.
"""

from __future__ import annotations

import csv
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score
from sklearn.model_selection import GroupKFold
from tqdm.auto import tqdm

from ..dataset import WindowSet, by_session, leave_one_subject_out
from ..errors import UserError
from . import fit_estimator, make_estimator, model_size

MAX_FOLDS = 10


def subject_folds(ws: WindowSet, k: int | None = None) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(description, [(train_idx, test_idx)]) of whole subjects, or whole sessions when there is one subject.

    k None: leave one subject out, in MAX_FOLDS folds when there are more subjects. k: k folds.
    """
    n_subjects = np.unique(ws.subjects).size
    if n_subjects < 2:
        n_sessions = np.unique(ws.sessions).size
        if k is not None and not 2 <= k <= n_sessions:
            raise UserError(f"--cv {k}: one subject's {n_sessions} sessions make at most {n_sessions} folds.")
        folds = list(by_session(ws, k or 5))
        return f"{len(folds)}-fold cross-validation by session (one subject)", folds
    if k is not None and not 2 <= k <= n_subjects:
        raise UserError(f"--cv {k}: the data holds {n_subjects} subjects, so 2 to {n_subjects} folds.")
    if k is None and n_subjects <= MAX_FOLDS:
        return f"leave-one-subject-out ({n_subjects} subjects)", list(leave_one_subject_out(ws))
    k = k or MAX_FOLDS
    folds = list(GroupKFold(n_splits=k).split(ws.X, ws.y, groups=ws.subjects))
    return f"{k}-fold cross-validation by subject ({n_subjects} subjects)", folds


@dataclass
class Scores:
    """Predictions against the truth for windows of known subjects, and what they add up to."""

    y_true: np.ndarray
    y_pred: np.ndarray
    subjects: np.ndarray
    classes: np.ndarray                  # the probability columns
    proba: np.ndarray | None = None      # (n, classes)
    sessions: np.ndarray | None = None   # the recording of each window
    t_end: np.ndarray | None = None      # each window's last sample, s from its recording's start

    @classmethod
    def of(cls, ws: WindowSet, proba: np.ndarray, classes) -> "Scores":
        classes = np.asarray(classes)
        return cls(ws.y, classes[np.argmax(proba, axis=1)], ws.subjects, classes, proba, ws.sessions,
                   ws.t0 + (ws.size - 1) / ws.rate_hz)

    @classmethod
    def join(cls, parts: list["Scores"]) -> "Scores":
        """The scores of several folds as one (their probability columns must agree)."""
        cat = lambda name: np.concatenate([getattr(s, name) for s in parts])  # noqa: E731
        return cls(cat("y_true"), cat("y_pred"), cat("subjects"), parts[0].classes, cat("proba"), cat("sessions"),
                   cat("t_end"))

    @property
    def labels(self) -> np.ndarray:
        """The classes present in the truth or predicted: the ones a score can speak of."""
        return np.union1d(self.y_true, self.y_pred)

    @property
    def accuracy(self) -> float:
        return float(accuracy_score(self.y_true, self.y_pred))

    @property
    def macro_f1(self) -> float:
        return _macro_f1(self.y_true, self.y_pred)

    def per_subject(self) -> list[dict]:
        """[{subject, windows, correct, accuracy, macro_f1}], one per subject, in name order."""
        rows = []
        for s in np.unique(self.subjects):
            mine = self.subjects == s
            t, p = self.y_true[mine], self.y_pred[mine]
            correct = int((t == p).sum())
            rows.append({"subject": str(s), "windows": int(mine.sum()), "correct": correct,
                         "accuracy": correct / int(mine.sum()), "macro_f1": _macro_f1(t, p)})
        return rows

    def spread(self) -> dict:
        """Mean, standard deviation and minimum of the per-subject accuracy and macro F1."""
        rows = self.per_subject()
        out = {"subjects": len(rows)}
        for key in ("accuracy", "macro_f1"):
            v = np.array([r[key] for r in rows])
            out[key] = {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
                        "worst": rows[int(np.argmin(v))]["subject"]}
        return out

    def confusion(self) -> np.ndarray:
        """Counts, true classes in rows, in the order of self.labels."""
        with warnings.catch_warnings():  # one class is a 1 x 1 matrix, which is right; sklearn warns anyway
            warnings.filterwarnings("ignore", "A single label was found", UserWarning)
            return confusion_matrix(self.y_true, self.y_pred, labels=self.labels)

    def confusion_text(self) -> str:
        """The confusion matrix as text: true classes in rows, predictions in columns."""
        labels = self.labels
        cm = self.confusion()
        width = max(6, max(len(str(c)) for c in labels) + 1, len(str(cm.max())) + 1)
        head = " " * width + "".join(f"{str(c)[:width - 1]:>{width}s}" for c in labels)
        lines = [head] + [f"{str(c)[:width - 1]:>{width - 1}s} " + "".join(f"{v:{width}d}" for v in row)
                          for c, row in zip(labels, cm)]
        return "confusion matrix (rows: true, columns: predicted)\n" + "\n".join(lines)

    def report(self) -> str:
        """Pooled scores, the per-class table, per-subject scores with their spread, the confusion matrix."""
        table = classification_report(self.y_true, self.y_pred, labels=self.labels, digits=3, zero_division=0)
        s = self.spread()
        subjects = "\n".join(f"  {r['subject']:>10s} {r['windows']:8d} {r['correct']:8d} {r['accuracy']:9.3f} "
                             f"{r['macro_f1']:9.3f}" for r in self.per_subject())
        return (f"accuracy {self.accuracy:.3f}   macro F1 {self.macro_f1:.3f}   ({len(self.y_true)} windows)\n"
                f"{table}\nper subject:\n  {'subject':>10s} {'windows':>8s} {'correct':>8s} {'accuracy':>9s} "
                f"{'macro F1':>9s}\n{subjects}\n"
                f"across {s['subjects']} subjects: accuracy {_pm(s['accuracy'])}, macro F1 {_pm(s['macro_f1'])}\n\n"
                f"{self.confusion_text()}")

    def summary(self) -> dict:
        per_class = classification_report(self.y_true, self.y_pred, labels=self.labels, zero_division=0,
                                          output_dict=True)
        return {"accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4),
                "windows": int(len(self.y_true)),
                "per_class_f1": {str(c): round(per_class[str(c)]["f1-score"], 4) for c in self.labels},
                "per_subject": [{**r, "accuracy": round(r["accuracy"], 4), "macro_f1": round(r["macro_f1"], 4)}
                                for r in self.per_subject()]}

    def plot_confusion(self, path: str | Path, title: str) -> Path:
        """Write the confusion matrix (counts, true rows) as a PNG."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from sklearn.metrics import ConfusionMatrixDisplay

        labels = self.labels
        fig = Figure(figsize=(max(5.0, 1.2 * len(labels) + 2.5), max(4.0, 1.1 * len(labels) + 2)),
                     layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        # Counts from 0: one class alone would otherwise be drawn in the scale's palest colour, its count unseen.
        ConfusionMatrixDisplay(self.confusion(), display_labels=labels).plot(
            ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45, im_kw={"vmin": 0})
        ax.set_title(title, fontsize=10, wrap=True)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        return path

    def write_predictions(self, path: str | Path) -> Path:
        """One CSV row per window: recording, window end time, true label, predicted label, p_<class>..."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            self.print_predictions(f)
        return path

    def print_predictions(self, f) -> None:
        """The rows `write_predictions` writes, into an open text file (stdout, say)."""
        out = csv.writer(f)
        out.writerow(["recording", "t_end", "true", "predicted", *(f"p_{c}" for c in self.classes)])
        proba = np.char.mod("%.4f", self.proba)
        t_end = np.char.mod("%.3f", self.t_end)
        out.writerows([s, t, y, p, *row] for s, t, y, p, row in
                      zip(self.sessions, t_end, self.y_true, self.y_pred, proba.tolist()))


def _macro_f1(y_true, y_pred) -> float:
    return float(f1_score(y_true, y_pred, labels=np.union1d(y_true, y_pred), average="macro", zero_division=0))


def _pm(stats: dict) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f} (lowest {stats['min']:.3f}, subject {stats['worst']})"


# ---------------------------------------------------------------- fitting folds


@dataclass
class RunResult:
    """An architecture over a list of (train, test) folds."""

    arch: str
    scores: Scores
    fit_s: list[float] = field(default_factory=list)       # per fold
    latency_ms: list[float] = field(default_factory=list)  # single windows, live path
    size: str = ""
    turned: Scores | None = None  # the same fitted models on the folds' turned test windows, if given


def fit_and_predict(arch: str, train: WindowSet, tests: list[WindowSet], keep: bool = False, **options):
    """One fold: (probabilities on each test set, their classes, fit seconds, the fitted model if keep)."""
    if np.unique(train.y).size < 2:
        raise UserError(f"a training fold holds only the class '{train.y[0]}'; {arch} needs at least two.")
    feature_set, seed, params = options["feature_set"], options["random_state"], options["params"]
    est = make_estimator(arch, train.channel_set, feature_set=feature_set, rate_hz=train.rate_hz,
                         random_state=seed, **params)
    t0 = time.perf_counter()
    fit_estimator(est, train.X, train.y, train.sessions)
    fit_s = time.perf_counter() - t0
    return [est.predict_proba(test.X) for test in tests], np.asarray(est.classes_), fit_s, est if keep else None


def run_archs(archs: list[str], folds: list[tuple[WindowSet, WindowSet]], *, feature_set: str = "full",
              random_state: int = 0, params: dict | None = None, jobs: int = 1,
              progress: bool = True, turned: list[WindowSet] | None = None) -> list[RunResult]:
    """Every architecture on every fold, `jobs` fits at a time in separate processes.

    params: {arch: its hyper-parameters}. turned: a second test set per fold (its test
    sessions turned, `rotated_copies`), scored by the same fitted model. Speed (single-window
    latency, size) is measured afterwards in this process, one model at a time, so parallel
    fits cannot distort it.
    """
    params = params or {}
    if turned is not None and len(turned) != len(folds):
        raise ValueError("turned needs one test set per fold")
    tests = [[test] + ([turned[i]] if turned is not None else []) for i, (_, test) in enumerate(folds)]
    tasks = [(arch, i) for arch in archs for i in range(len(folds))]
    run = [(arch, i, folds[i][0], tests[i], i == 0,
            {"feature_set": feature_set, "random_state": random_state, "params": params.get(arch, {})})
           for arch, i in tasks]
    bar = tqdm(total=len(run), desc="fits", unit="fit", disable=not progress or len(run) < 2, leave=False)
    done = {}
    jobs = max(1, min(jobs, len(run)))
    if jobs == 1:
        for arch, i, train, test, keep, options in run:
            done[arch, i] = fit_and_predict(arch, train, test, keep, **options)
            bar.update()
    else:
        from joblib import Parallel, delayed

        with Parallel(n_jobs=jobs, return_as="generator_unordered") as parallel:
            for key, result in parallel(delayed(_task)(arch, i, train, test, keep, options)
                                        for arch, i, train, test, keep, options in run):
                done[key] = result
                bar.update()
    bar.close()
    return [_combine(arch, folds, tests, [done[arch, i] for i in range(len(folds))]) for arch in archs]


def _task(arch, i, train, test, keep, options):
    import torch

    torch.set_num_threads(1)  # in a worker beside others: prediction on one thread too
    return (arch, i), fit_and_predict(arch, train, test, keep, **options)


def _combine(arch: str, folds, tests, results) -> RunResult:
    classes = np.unique(np.concatenate([tr.y for tr, _ in folds] + [te.y for _, te in folds]))
    parts = [[] for _ in tests[0]]  # [plain folds' scores, turned folds' scores]
    for fold_tests, (probas, fold_classes, _, _) in zip(tests, results):
        for k, (test, proba) in enumerate(zip(fold_tests, probas)):
            full = np.zeros((len(test), len(classes)))  # a class a fold never trained on gets probability 0
            full[:, np.searchsorted(classes, fold_classes)] = proba
            parts[k].append(Scores.of(test, full, classes))
    model = results[0][3]
    latency = single_window_latency(model.predict_proba, folds[0][1].X, n=200)
    scores = [Scores.join(p) for p in parts]
    return RunResult(arch, scores[0], [r[2] for r in results], latency, model_size(model),
                     scores[1] if len(scores) > 1 else None)


def single_window_latency(predict_proba, X: np.ndarray, n: int = 200) -> list[float]:
    """Milliseconds for each of up to n single-window calls, as the live predictor makes them."""
    times = []
    for i in range(min(n, len(X))):
        t0 = time.perf_counter()
        predict_proba(X[i:i + 1])
        times.append((time.perf_counter() - t0) * 1e3)
    return times
