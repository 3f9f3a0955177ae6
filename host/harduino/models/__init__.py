"""Every classifier behind one contract: a scikit-learn estimator over (n, channels, size) windows.

`make_estimator("rf", channels)` and `make_estimator("cnn-lstm", channels)` both
return a Pipeline with `fit`, `predict`, `predict_proba` and `classes_`; shallow
ones compute window features first, deep ones normalise channels first. A
fitted one saves as a bundle (`save_bundle`) that `load_bundle` reads back
without executing code.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline

from ..errors import UserError
from .bundle import Bundle, load_bundle, save_bundle
from .deep import NETWORKS, TorchClassifier, make_deep
from .internals import private
from .shallow import CLASSIFIERS, as_stored, make_shallow

ARCHITECTURES = {
    "rf": "random forest of 100 trees of at most 256 leaves on window features",
    "svm": "RBF support vector machine on window features, sigmoid-calibrated probabilities",
    "knn": "k nearest neighbours (k=5, distance-weighted) on window features",
    "logreg": "multinomial logistic regression on window features",
    "hgb": "histogram gradient boosting (100 rounds) on window features",
    "mlp-board": "one hidden layer of 16 ReLU units on window features (int8 on the board: harduino export)",
    "mlp": "multi-layer perceptron on the flattened, channel-normalised window",
    "cnn": "three Conv1d blocks, global average pooling, linear head",
    "lstm": "LSTM over the window's samples, its outputs max-pooled over time to a linear head",
    "cnn-lstm": "two Conv1d blocks, then an LSTM over the shortened sequence, linear head",
}
SHALLOW = tuple(CLASSIFIERS)
DEEP = tuple(NETWORKS)

__all__ = ["ARCHITECTURES", "SHALLOW", "DEEP", "Bundle", "TorchClassifier", "check_arch", "fit_estimator",
           "is_deep", "load_bundle", "make_estimator", "model_size", "save_bundle"]


def check_arch(arch: str) -> str:
    if arch not in ARCHITECTURES:
        raise UserError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)} "
                        "(harduino archs describes them).")
    return arch


def make_estimator(arch: str, channels, *, feature_set: str = "full", rate_hz: float | None = None,
                   random_state: int = 0, **params) -> Pipeline:
    """An unfitted Pipeline over (n, c, size) windows for an architecture name.

    channels: a channel-set name ("all", ...) or channel names; shallow models need them to
    compute features, deep ones take any number. params go to the classifier or network.
    """
    check_arch(arch)
    if arch in DEEP:
        return make_deep(arch, channels, random_state=random_state, **params)
    return make_shallow(arch, channels, feature_set=feature_set, rate_hz=rate_hz, random_state=random_state,
                        **params)


def is_deep(estimator: Pipeline) -> bool:
    return isinstance(estimator.steps[-1][1], TorchClassifier)


def fit_estimator(estimator: Pipeline, X: np.ndarray, y: np.ndarray, groups=None) -> Pipeline:
    """fit, giving a deep model the groups (sessions) its validation split keeps whole."""
    if is_deep(estimator):
        return estimator.fit(X, y, net__groups=groups)
    return estimator.fit(X, y)


def model_size(estimator: Pipeline) -> str:
    """A short size figure: parameters of a network, trees/nodes, support vectors, stored samples."""
    clf = as_stored(estimator).steps[-1][1]
    if isinstance(clf, TorchClassifier):
        return f"{clf.n_parameters_ / 1000:.1f}k params"
    if isinstance(clf, RandomForestClassifier):
        return f"{sum(e.tree_.node_count for e in clf.estimators_) / 1000:.1f}k nodes"
    if isinstance(clf, HistGradientBoostingClassifier):
        return f"{sum(p.nodes.size for it in private(clf).predictors for p in it) / 1000:.1f}k nodes"
    if hasattr(clf, "calibrated_classifiers_"):
        return f"{len(clf.calibrated_classifiers_[0].estimator.support_)} SVs"
    if hasattr(clf, "n_samples_fit_"):
        return f"{clf.n_samples_fit_} samples"
    if hasattr(clf, "coefs_"):
        return f"{sum(w.size for w in clf.coefs_ + clf.intercepts_)} params"
    if hasattr(clf, "coef_"):
        return f"{clf.coef_.size + clf.intercept_.size} params"
    return "?"
