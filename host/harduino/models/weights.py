"""A bundle's weights, read and checked against its bundle.json before anything is built from them.

Deep: the safetensors header is read first, and the network bundle.json names is
built on torch's "meta" device (shapes only, no memory) to compare every tensor's
shape with the header's; only when they agree is the real network allocated,
so nothing larger than the weights themselves is ever made. Shallow: skops may
build only the types it trusts itself and the few listed here, and the loaded
pipeline must then be exactly what its architecture makes, with arrays that
agree with each other; tree ensembles are checked node by node (trees.py), and
a k-NN search tree is rebuilt from the stored samples rather than trusted.
scikit-learn's Cython code indexes these arrays without bounds checks, so a
crafted file must be refused here, not when it predicts.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import safetensors
import skops.io
from skops.io.exceptions import UntrustedTypesFoundException
import torch
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import BallTree, KDTree, KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from ..dataset import ChannelScaler
from ..features import FEATURE_SETS, WindowFeatures, feature_names
from .deep import TorchClassifier
from .internals import (HalfBinomialLoss, HalfMultinomialLoss, _CalibratedClassifier, _SigmoidCalibration, private,
                        set_search_tree)

# The types a shallow bundle may build beyond those skops trusts itself (builtins, numpy, scikit-learn's
# estimators). skops leaves Tree and TreePredictor out because their node indices are not bounds-checked:
# they are admitted here only because every tree is checked before use (trees.check_trees).
TRUSTED_TYPES = frozenset({
    "harduino.features.WindowFeatures",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neighbors._kd_tree.KDTree",      # rebuilt from the samples on load, never queried as stored
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
})
# The classifier each shallow architecture is (shallow.CLASSIFIERS makes them).
ESTIMATORS = {"rf": RandomForestClassifier, "svm": CalibratedClassifierCV, "knn": KNeighborsClassifier,
              "logreg": LogisticRegression, "hgb": HistGradientBoostingClassifier, "mlp-board": MLPClassifier}
MAX_UNPACKED = 1 << 30   # bytes a skops archive may unpack to: a model here is a few MB, a zip bomb is not
NETWORK_SIZE = (1, 1 << 16)  # hidden and filters: bounds that keep even the shape-only network small


_READ = object()  # _array reads the attribute itself


class InvalidWeights(ValueError):
    """Weights that are not the model their bundle.json describes; the message says what differs."""


# ---------------------------------------------------------------- deep


def load_deep(path: Path, meta: dict) -> Pipeline:
    """ChannelScaler + TorchClassifier from a safetensors file, every shape checked against meta first."""
    n_channels, window, classes = len(meta["channels"]), int(meta["window"]), list(meta["classes"])
    params = _network_params(meta["network"])
    net = TorchClassifier(**params, verbose=False, device="cpu")
    with safetensors.safe_open(str(path), framework="pt", device="cpu") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        with torch.device("meta"):  # shapes without memory, however large the sizes claimed
            expected = net.build(n_channels, window, len(classes))
        want = {f"net.{k}": tuple(v.shape) for k, v in expected.state_dict().items()}
        want["scaler.mean"] = want["scaler.scale"] = (n_channels,)
        sizes = {**TorchClassifier().get_params(), **params}
        _same_shapes(shapes, want, f"the {params['network']} bundle.json describes (hidden {sizes['hidden']}, "
                     f"filters {sizes['filters']}, {n_channels} channels x {window} samples, {len(classes)} classes)")
        n_params = sum(p.numel() for p in expected.parameters())
        if "parameters" in meta and meta["parameters"] != n_params:
            raise InvalidWeights(f"it says {meta['parameters']} parameters and its weights hold {n_params}")
        tensors = {k: f.get_tensor(k) for k in shapes}
    mean, scale = (tensors[f"scaler.{k}"].double().numpy() for k in ("mean", "scale"))
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise InvalidWeights("its channel scaler holds a mean or a scale that is not a finite (positive) number")
    stated = meta.get("normalisation", {})
    if "mean" in stated and (stated["mean"] != mean.tolist() or stated["scale"] != scale.tolist()):
        raise InvalidWeights("the normalisation in bundle.json is not the one in its weights")
    net.restore(np.asarray(classes), n_channels, window,
                {k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")})
    scaler = ChannelScaler()
    scaler.mean_, scaler.scale_, scaler.n_features_in_ = mean, scale, n_channels
    return Pipeline([("scale", scaler), ("net", net)])


def _network_params(stated) -> dict:
    if not isinstance(stated, dict):
        raise InvalidWeights("its network is not an object of hyper-parameters")
    known = set(TorchClassifier().get_params()) - {"verbose", "device"}
    unknown = sorted(set(stated) - known)
    if unknown:
        raise InvalidWeights(f"its network names an unknown hyper-parameter {unknown[0]!r}")
    for name in ("hidden", "filters"):
        value = stated.get(name, TorchClassifier().get_params()[name])
        if type(value) is not int or not NETWORK_SIZE[0] <= value <= NETWORK_SIZE[1]:
            raise InvalidWeights(f"network.{name} is {value!r}, not a whole number from {NETWORK_SIZE[0]} to "
                                 f"{NETWORK_SIZE[1]}")
    dropout = stated.get("dropout", 0.0)
    if type(dropout) not in (int, float) or not 0 <= dropout < 1:
        raise InvalidWeights(f"network.dropout is {dropout!r}, not a fraction from 0 to 1")
    return dict(stated)


def _same_shapes(shapes: dict, want: dict, described: str) -> None:
    for name in sorted(set(want) | set(shapes)):
        if name not in shapes:
            raise InvalidWeights(f"its weights lack the tensor {name} that {described} has")
        if name not in want:
            raise InvalidWeights(f"its weights hold a tensor {name} that {described} does not have")
        if shapes[name] != want[name]:
            raise InvalidWeights(f"its weights hold {name} as {_dims(shapes[name])} where {described} has "
                                 f"{_dims(want[name])}")


def _dims(shape) -> str:
    return "x".join(map(str, shape)) or "a scalar"


# ---------------------------------------------------------------- shallow


def load_shallow(path: Path, meta: dict) -> Pipeline:
    """The skops pipeline, built only from trusted types, then checked to be the model meta describes."""
    _check_archive(path)
    try:  # skops audits every type in the file against skops' defaults and this list before building any
        pipeline = skops.io.load(path, trusted=sorted(TRUSTED_TYPES))
    except UntrustedTypesFoundException:
        refused = sorted(set(skops.io.get_untrusted_types(file=path)) - TRUSTED_TYPES)
        raise InvalidWeights(f"its weights would build types a harduino model never holds "
                             f"({', '.join(refused)})") from None
    check_pipeline(pipeline, meta)
    return pipeline


def _check_archive(path: Path) -> None:
    """A skops file is a zip: refuse one that unpacks to far more than a model, before skops reads it."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise InvalidWeights("its weights file is not a skops archive") from None
    if unpacked > MAX_UNPACKED:
        raise InvalidWeights(f"its weights file unpacks to {unpacked / 1e9:.1f} GB, far more than a model")


def check_pipeline(pipeline, meta: dict) -> None:
    """InvalidWeights unless `pipeline` is features -> scaler -> the architecture's classifier, as meta says."""
    steps = getattr(pipeline, "steps", None)
    if type(pipeline) is not Pipeline or not isinstance(steps, list) \
            or [name for name, _ in steps] != ["features", "scale", "clf"]:
        raise InvalidWeights("its weights are not a pipeline of window features, a scaler and a classifier")
    features, scaler, clf = (step for _, step in steps)
    if type(features) is not WindowFeatures or type(scaler) is not StandardScaler:
        raise InvalidWeights("its pipeline does not start with window features and a standard scaler")
    if features.feature_set not in FEATURE_SETS or features.feature_set != meta.get("feature_set") \
            or tuple(features.channel_names_) != tuple(meta["channels"]) or features.rate_hz != meta["rate_hz"]:
        raise InvalidWeights("its window features are not the feature set, channels and rate bundle.json names")
    n = len(feature_names(features.feature_set, features.channel_names_))
    if list(features.feature_names_) != feature_names(features.feature_set, features.channel_names_):
        raise InvalidWeights("its window features do not name the features they compute")
    for name in ("mean_", "scale_"):
        _array(scaler, name, (n,), positive=name == "scale_")
    wanted = ESTIMATORS[meta["architecture"]]
    if type(clf) is not wanted:
        raise InvalidWeights(f"its classifier is a {type(clf).__name__}, not the {wanted.__name__} of "
                             f"architecture {meta['architecture']!r}")
    classes = [str(c) for c in np.asarray(getattr(clf, "classes_", []))]
    if classes != [str(c) for c in meta["classes"]]:
        raise InvalidWeights("its classifier's classes are not the classes bundle.json lists, in order")
    if getattr(clf, "n_features_in_", None) != n:
        raise InvalidWeights(f"its classifier does not take the {n} window features")
    CHECKS[meta["architecture"]](clf, n, len(classes))


def _array(obj, name: str, shape: tuple, *, positive: bool = False, dtype=np.floating, value=_READ) -> np.ndarray:
    """obj.name (or the value given for it: a private one, read by `private`) as an array of `shape` and kind
    `dtype`, finite (and > 0) where floating; else InvalidWeights."""
    value = getattr(obj, name, None) if value is _READ else value
    ok = isinstance(value, np.ndarray) and value.shape == shape and np.issubdtype(value.dtype, dtype)
    if ok and np.issubdtype(value.dtype, np.floating):
        ok = bool(np.all(np.isfinite(value)) and (not positive or np.all(value > 0)))
    if not ok:
        raise InvalidWeights(f"its {type(obj).__name__}.{name} is not {'x'.join(map(str, shape))} finite numbers")
    return value


def _check_forest(clf, n_features: int, n_classes: int) -> None:
    trees = getattr(clf, "estimators_", None)
    if not isinstance(trees, list) or not trees or any(type(t) is not DecisionTreeClassifier for t in trees):
        raise InvalidWeights("its random forest does not hold decision trees")
    for tree in trees:
        if tree.n_features_in_ != n_features or tree.n_outputs_ != 1 or tree.n_classes_ != n_classes:
            raise InvalidWeights("a tree of its random forest does not take its features or give its classes")
    if clf.n_outputs_ != 1 or clf.n_classes_ != n_classes:
        raise InvalidWeights("its random forest does not give one output of its classes")


def _check_boosting(clf, n_features: int, n_classes: int) -> None:
    k = 1 if n_classes == 2 else n_classes
    loss = HalfBinomialLoss if k == 1 else HalfMultinomialLoss
    internals = private(clf)
    if clf.n_trees_per_iteration_ != k or clf.is_categorical_ is not None or internals.preprocessor is not None:
        raise InvalidWeights(f"its gradient boosting is not {k} trees a round over numeric features")
    if type(internals.loss) is not loss or (k > 1 and internals.loss.n_classes != n_classes):
        raise InvalidWeights(f"its gradient boosting's loss is not a {loss.__name__} of its classes")


def _check_svm(clf, n_features: int, n_classes: int) -> None:
    calibrated = getattr(clf, "calibrated_classifiers_", None)
    if not isinstance(calibrated, list) or len(calibrated) != 1 or type(calibrated[0]) is not _CalibratedClassifier:
        raise InvalidWeights("its SVM is not one calibrated classifier")
    svc, calibrators = calibrated[0].estimator, calibrated[0].calibrators
    if type(svc) is not SVC:
        raise InvalidWeights("its SVM is not a dense C-SVC with a built-in kernel over its classes")
    internals = private(svc)
    if svc.kernel not in ("linear", "poly", "rbf", "sigmoid") or internals.sparse or internals.impl != "c_svc" \
            or [str(c) for c in svc.classes_] != [str(c) for c in clf.classes_]:
        raise InvalidWeights("its SVM is not a dense C-SVC with a built-in kernel over its classes")
    n_pairs = n_classes * (n_classes - 1) // 2
    n_sv = len(_array(svc, "support_", (np.size(svc.support_),), dtype=np.integer))
    counts = _array(svc, "_n_support", (n_classes,), dtype=np.integer, value=internals.n_support)
    if n_sv < 1 or np.any(counts < 0) or counts.sum() != n_sv:
        raise InvalidWeights("its SVM's support vector counts do not add up")
    _array(svc, "support_vectors_", (n_sv, n_features))
    _array(svc, "_dual_coef_", (n_classes - 1, n_sv), value=internals.dual_coef_)
    _array(svc, "_intercept_", (n_pairs,), value=internals.intercept_)
    if np.size(internals.probA) not in (0, n_pairs) or np.size(internals.probB) not in (0, n_pairs):
        raise InvalidWeights("its SVM's probability coefficients do not match its classes")
    if not (np.isfinite(internals.gamma) and np.isfinite(svc.coef0) and svc.shape_fit_[1:] == (n_features,)):
        raise InvalidWeights("its SVM's kernel parameters are not finite numbers")
    if len(calibrators) != (1 if n_classes == 2 else n_classes) \
            or any(type(c) is not _SigmoidCalibration or not np.isfinite([c.a_, c.b_]).all() for c in calibrators):
        raise InvalidWeights("its SVM's probability calibration does not match its classes")


def _check_knn(clf, n_features: int, n_classes: int) -> None:
    internals = private(clf)
    X = _array(clf, "_fit_X", (len(internals.fit_X), n_features), value=internals.fit_X)
    y = _array(clf, "_y", (len(X),), dtype=np.integer, value=internals.y)
    if len(X) < 1 or np.any(y < 0) or np.any(y >= n_classes) or not 1 <= clf.n_neighbors <= len(X) \
            or clf.weights not in ("uniform", "distance") or clf.effective_metric_ not in ("euclidean", "manhattan"):
        raise InvalidWeights("its nearest-neighbour model's samples, labels or settings do not agree")
    # A stored search tree's node bounds are not checked by scikit-learn: build it again from the samples,
    # exactly as fit does, so the neighbours found are the same.
    trees = {"kd_tree": KDTree, "ball_tree": BallTree, "brute": None}
    if internals.fit_method not in trees:
        raise InvalidWeights("its nearest-neighbour model names an unknown search method")
    kind = trees[internals.fit_method]
    set_search_tree(clf, None if kind is None else kind(X, clf.leaf_size, metric=clf.effective_metric_,
                                                         **(clf.effective_metric_params_ or {})))


def _check_logreg(clf, n_features: int, n_classes: int) -> None:
    rows = 1 if n_classes == 2 else n_classes
    _array(clf, "coef_", (rows, n_features))
    _array(clf, "intercept_", (rows,))


def _check_mlp(clf, n_features: int, n_classes: int) -> None:
    coefs, intercepts = getattr(clf, "coefs_", None), getattr(clf, "intercepts_", None)
    if not isinstance(coefs, list) or not isinstance(intercepts, list) or len(coefs) != 2 or len(intercepts) != 2 \
            or clf.activation != "relu" or clf.out_activation_ != ("logistic" if n_classes == 2 else "softmax"):
        raise InvalidWeights("its perceptron is not one hidden layer of ReLU units over its classes")
    hidden, outputs = (np.shape(coefs[0]) or (0,))[-1], 1 if n_classes == 2 else n_classes
    if clf.n_layers_ != 3 or clf.n_outputs_ != outputs or not NETWORK_SIZE[0] <= hidden <= NETWORK_SIZE[1]:
        raise InvalidWeights("its perceptron's layers do not match its features and classes")
    for layer, shape in enumerate(((n_features, hidden), (hidden, outputs))):
        _array(clf, f"coefs_[{layer}]", shape, value=coefs[layer])
        _array(clf, f"intercepts_[{layer}]", shape[1:], value=intercepts[layer])


CHECKS = {"rf": _check_forest, "svm": _check_svm, "knn": _check_knn, "logreg": _check_logreg, "mlp-board": _check_mlp,
          "hgb": _check_boosting}
