"""Shallow models: window features -> standard scaler -> a scikit-learn classifier, as one Pipeline.

A forest or a gradient boosting sits in the pipeline inside `CompiledTrees`,
so the pipeline's own predict_proba walks its compiled trees. A bundle stores
the pipeline as scikit-learn alone would run it (`as_stored`) and loading
compiles it again (`as_compiled`), so the stored format does not depend on it.
"""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ..features import WindowFeatures
from .trees import CompiledTrees


def _rf(seed, **params):
    # 100 trees of at most 256 leaves: a size bound that does not grow with the data. On HAPT's 32k
    # training windows full-depth trees grew to 218k nodes, 50 levels deep, for the same test accuracy
    # (0.884) as these 51k nodes, 24 levels; the compiled walk (trees.py) takes one step per level.
    params = {"n_estimators": 100, "max_leaf_nodes": 256, "class_weight": "balanced", **params}
    return CompiledTrees(RandomForestClassifier(random_state=seed, n_jobs=1, **params))


def _svm(seed, **params):
    # SVC(probability=True) is deprecated; calibrate the SVC's decision function instead.
    return CalibratedClassifierCV(SVC(class_weight="balanced", random_state=seed, **params), ensemble=False)


def _knn(seed, **params):
    return KNeighborsClassifier(**{"n_neighbors": 5, "weights": "distance", **params})


def _logreg(seed, **params):
    return LogisticRegression(**{"max_iter": 2000, "C": 1.0, "class_weight": "balanced", **params},
                              random_state=seed)


def _hgb(seed, **params):
    # No class_weight by default: weights also reach the feature binning, whose weighted percentiles
    # made training ten times slower (10 s instead of 1 s on the sample set).
    params = {"max_iter": 100, "learning_rate": 0.1, "early_stopping": False, **params}
    return CompiledTrees(HistGradientBoostingClassifier(random_state=seed, **params))


def _mlp_board(seed, **params):
    # Small enough for the board's int8 export (export_mlp.py): one hidden layer of 16 ReLU units.
    # L-BFGS suits these few thousand windows, and keeps no optimiser state for a bundle to store.
    params = {"hidden_layer_sizes": (16,), "solver": "lbfgs", "max_iter": 1000, "alpha": 1e-3, **params}
    return MLPClassifier(activation="relu", random_state=seed, **params)


CLASSIFIERS = {"rf": _rf, "svm": _svm, "knn": _knn, "logreg": _logreg, "hgb": _hgb, "mlp-board": _mlp_board}


def make_shallow(arch: str, channels, feature_set: str = "full", rate_hz: float | None = None,
                 random_state: int = 0, **params) -> Pipeline:
    """Pipeline(features, scaler, classifier) over (n, c, size) windows; params go to the classifier."""
    return Pipeline([
        ("features", WindowFeatures(feature_set, channels=channels, rate_hz=rate_hz)),
        ("scale", StandardScaler()),
        ("clf", CLASSIFIERS[arch](random_state, **params)),
    ])


def as_stored(pipeline: Pipeline) -> Pipeline:
    """The pipeline as scikit-learn alone runs it, the compiled trees unwrapped: what a bundle stores."""
    name, clf = pipeline.steps[-1]
    if not isinstance(clf, CompiledTrees):
        return pipeline
    return Pipeline(pipeline.steps[:-1] + [(name, clf.estimator_)])


def as_compiled(pipeline: Pipeline) -> Pipeline:
    """A stored pipeline with its forest or boosting compiled (InvalidTrees if its trees are not trees)."""
    name, clf = pipeline.steps[-1]
    if not isinstance(clf, (RandomForestClassifier, HistGradientBoostingClassifier)):
        return pipeline
    return Pipeline(pipeline.steps[:-1] + [(name, CompiledTrees.of(clf))])
