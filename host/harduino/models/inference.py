"""The live path: a fitted pipeline's predict_proba without scikit-learn's per-call overhead.

One window arrives every step, and scikit-learn's input checks and per-tree
dispatch cost more than the model itself (a 100-tree forest: ~4 ms for one
window). `compile_predict_proba` runs the same fitted steps directly: the
feature function, the scaler's arithmetic, and the classifier through
`trees.py` (forests, boosting) or with scikit-learn's validation switched off.
Tests check it returns the pipeline's own probabilities.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import sklearn
from sklearn.pipeline import Pipeline

from ..features import window_features
from .deep import TorchClassifier
from .trees import compile_trees

PredictProba = Callable[[np.ndarray], np.ndarray]


def compile_predict_proba(pipeline: Pipeline) -> PredictProba:
    """(n, c, size) windows -> (n, classes) probabilities, equal to pipeline.predict_proba."""
    clf = pipeline.steps[-1][1]
    if isinstance(clf, TorchClassifier):
        scaler = pipeline.steps[0][1]
        return lambda X: clf.predict_proba(scaler.transform(X))

    features, scaler = pipeline.named_steps["features"], pipeline.named_steps["scale"]
    trees = compile_trees(clf)
    # StandardScaler.transform subtracts and divides in the features' dtype (float32).
    mean, scale = scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)

    def classify(Z):
        if trees is not None:
            return trees.predict_proba(Z)
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return clf.predict_proba(Z)

    def predict_proba(X):
        Z = window_features(X, features.feature_set, features.channel_names_, features.rate_hz)
        Z -= mean
        Z /= scale
        return classify(Z)

    return predict_proba
