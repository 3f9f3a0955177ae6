"""Honest evaluation: whole subjects (or sessions) held out, scores from scikit-learn's metrics.

Windows overlap, so a random split would test on near-copies of training
windows. Every fold here keeps whole subjects, or whole sessions when there is
one subject, on one side; a separate test folder is one more such fold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import (ConfusionMatrixDisplay, accuracy_score, classification_report, confusion_matrix,
                             f1_score)
from sklearn.model_selection import GroupKFold
from tqdm.auto import tqdm

from ..dataset import WindowSet, by_session, leave_one_subject_out
from ..errors import UserError
from . import fit_estimator, make_estimator, model_size
from .inference import compile_predict_proba

MAX_FOLDS = 10


def subject_folds(ws: WindowSet, max_folds: int = MAX_FOLDS) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(description, [(train_idx, test_idx)]): leave one subject out, by session if there is one subject.

    More subjects than max_folds are grouped into max_folds folds of whole subjects.
    """
    n_subjects = np.unique(ws.subjects).size
    if n_subjects > max_folds:
        folds = GroupKFold(n_splits=max_folds).split(ws.X, ws.y, groups=ws.subjects)
        return f"{max_folds}-fold cross-validation by subject ({n_subjects} subjects)", list(folds)
    if n_subjects >= 2:
        return f"leave-one-subject-out ({n_subjects} subjects)", list(leave_one_subject_out(ws))
    folds = list(by_session(ws))
    return f"{len(folds)}-fold cross-validation by session (one subject)", folds


@dataclass
class Scores:
    """Predictions against the truth, and what they add up to."""

    y_true: np.ndarray
    y_pred: np.ndarray
    classes: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(accuracy_score(self.y_true, self.y_pred))

    @property
    def macro_f1(self) -> float:
        return float(f1_score(self.y_true, self.y_pred, labels=self.classes, average="macro", zero_division=0))

    def report(self) -> str:
        """Accuracy, macro F1 and the per-class precision / recall / F1 table."""
        table = classification_report(self.y_true, self.y_pred, labels=self.classes, digits=3, zero_division=0)
        return f"accuracy {self.accuracy:.3f}   macro F1 {self.macro_f1:.3f}   ({len(self.y_true)} windows)\n{table}"

    def summary(self) -> dict:
        per_class = classification_report(self.y_true, self.y_pred, labels=self.classes, zero_division=0,
                                          output_dict=True)
        return {"accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4),
                "windows": int(len(self.y_true)),
                "per_class_f1": {str(c): round(per_class[str(c)]["f1-score"], 4) for c in self.classes}}

    def plot_confusion(self, path: str | Path, title: str) -> Path:
        """Write the confusion matrix (counts, true rows) as a PNG."""
        fig = Figure(figsize=(1.2 * len(self.classes) + 2.5, 1.1 * len(self.classes) + 2), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        cm = confusion_matrix(self.y_true, self.y_pred, labels=self.classes)
        ConfusionMatrixDisplay(cm, display_labels=self.classes).plot(ax=ax, cmap="Blues", colorbar=False,
                                                                      xticks_rotation=45)
        ax.set_title(title, fontsize=10)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        return path


@dataclass
class RunResult:
    """An architecture over a list of (train, test) folds."""

    arch: str
    scores: Scores
    fit_s: list[float] = field(default_factory=list)       # per fold
    latency_ms: list[float] = field(default_factory=list)  # single windows, live path
    size: str = ""


def run_folds(arch: str, folds: list[tuple[WindowSet, WindowSet]], *, feature_set: str = "full",
              random_state: int = 0, progress: bool = True, **params) -> RunResult:
    """Fit a fresh model per fold on its training windows and predict its test windows."""
    true, pred, fit_s, latency = [], [], [], []
    classes = np.unique(np.concatenate([tr.y for tr, _ in folds] + [te.y for _, te in folds]))
    size = ""
    for train, test in tqdm(folds, desc=f"{arch}", unit="fold", disable=not progress or len(folds) < 2,
                            leave=False):
        if np.unique(train.y).size < 2:
            raise UserError(f"a training fold holds only the class '{train.y[0]}'; {arch} needs at least two.")
        est = make_estimator(arch, train.channel_set, feature_set=feature_set, rate_hz=train.rate_hz,
                             random_state=random_state, **params)
        t0 = time.perf_counter()
        fit_estimator(est, train.X, train.y, train.sessions)
        fit_s.append(time.perf_counter() - t0)
        predict_proba = compile_predict_proba(est)
        pred.append(est.classes_[np.argmax(predict_proba(test.X), axis=1)])
        true.append(test.y)
        latency += single_window_latency(predict_proba, test.X, n=20)
        size = model_size(est)
    return RunResult(arch, Scores(np.concatenate(true), np.concatenate(pred), classes), fit_s, latency, size)


def single_window_latency(predict_proba, X: np.ndarray, n: int = 20) -> list[float]:
    """Milliseconds for each of up to n single-window calls, as the live predictor makes them."""
    times = []
    for i in range(min(n, len(X))):
        t0 = time.perf_counter()
        predict_proba(X[i:i + 1])
        times.append((time.perf_counter() - t0) * 1e3)
    return times
