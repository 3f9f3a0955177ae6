"""The scikit-learn internals harduino relies on, in one place.

Compiling a gradient boosting's trees (trees.py) and checking a loaded model's
arrays before scikit-learn's unchecked Cython code indexes them (weights.py)
need what scikit-learn keeps private: the fitted attributes in PRIVATE, and the
classes imported below. `private` is the only function that reads those
attributes (`set_search_tree` the only one that writes one), and
tests/test_models.py fits each kind and checks they are still what this code
expects, so a scikit-learn version that changes them fails there, naming the
attribute, rather than deep inside a prediction or a bundle's checks.
"""

from __future__ import annotations

from types import SimpleNamespace

import sklearn
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
from sklearn.calibration import _CalibratedClassifier, _SigmoidCalibration
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from sklearn.tree._tree import Tree

__all__ = ["PRIVATE", "PREDICTOR_RECORD_DTYPE", "HalfBinomialLoss", "HalfMultinomialLoss", "SklearnChanged", "Tree",
           "_CalibratedClassifier", "_SigmoidCalibration", "private", "set_search_tree"]

# The private fitted attributes read, per estimator type.
PRIVATE = {
    HistGradientBoostingClassifier: ("_predictors", "_baseline_prediction", "_loss", "_preprocessor"),
    SVC: ("_sparse", "_impl", "_n_support", "_dual_coef_", "_intercept_", "_probA", "_probB", "_gamma"),
    KNeighborsClassifier: ("_fit_X", "_y", "_fit_method", "_tree"),
}


class SklearnChanged(AttributeError):
    """A fitted estimator lacks a private attribute harduino reads: another scikit-learn, or a doctored file."""


def private(estimator) -> SimpleNamespace:
    """A fitted estimator's private attributes of PRIVATE, named without their leading underscore.

    hgb: predictors, baseline_prediction, loss, preprocessor; svc: sparse, impl,
    n_support, dual_coef_, intercept_, probA, probB, gamma; knn: fit_X, y,
    fit_method, tree. SklearnChanged, in one sentence, when one is missing.
    """
    names = PRIVATE[type(estimator)]
    missing = [name for name in names if not hasattr(estimator, name)]
    if missing:
        raise SklearnChanged(f"this fitted {type(estimator).__name__} has no {missing[0]}, which harduino reads "
                             f"(scikit-learn {sklearn.__version__}; constraints.txt names the version it was "
                             "written for)")
    return SimpleNamespace(**{name[1:]: getattr(estimator, name) for name in names})


def set_search_tree(knn: KNeighborsClassifier, tree) -> None:
    """Give a loaded k-nearest-neighbours model the search tree rebuilt from its own samples."""
    knn._tree = tree
