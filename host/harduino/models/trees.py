"""Fitted tree ensembles evaluated as a few numpy gathers, inside the pipeline step that holds them.

scikit-learn validates its input and dispatches once per tree, so a 100-tree
forest spends ~4 ms on one window before any tree is walked. Here every tree
of a fitted forest (or of a gradient-boosting model) is copied into flat node
arrays, and all trees walk one level per step together: `depth` steps of
vectorised indexing for the whole ensemble. `CompiledTrees` is the pipeline
step: it fits the scikit-learn ensemble and answers predict_proba from its
compiled form, so the pipeline's own predict_proba (training, evaluation, the
bundle, live) is the fast one and no step can be skipped beside it. The model
is the same fitted object; only the evaluation differs, and the tests check
the probabilities equal scikit-learn's.

A loaded model's node arrays come from a file, and neither scikit-learn's
Cython walk nor ours checks an index while walking. So every tree is checked
when it is stacked (`check_trees`): children in range, each node reached once
from its root (no cycles), feature indices in range, finite thresholds and
values. Only then does anything walk it.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from .internals import PREDICTOR_RECORD_DTYPE, Tree, private


class InvalidTrees(ValueError):
    """Node arrays that do not make the trees they claim to be; the message says which and how."""


class StackedTrees:
    """Many binary trees in flat arrays; a leaf points to itself so every walk can take `depth` steps."""

    def __init__(self, trees: list[tuple[np.ndarray, ...]], n_features: int):
        """trees: (feature, threshold, left, right, is_leaf, value (nodes, k)) per tree, nodes numbered 0..

        InvalidTrees unless they are trees over `n_features` features (see check_trees).
        """
        check_trees(trees, n_features)
        offsets = np.cumsum([0] + [len(t[0]) for t in trees])
        self.roots = offsets[:-1].astype(np.intp)
        self.feature = np.concatenate([t[0] for t in trees]).astype(np.intp)
        self.threshold = np.concatenate([t[1] for t in trees]).astype(np.float64)
        own = np.arange(offsets[-1], dtype=np.intp)
        leaf = np.concatenate([t[4] for t in trees]).astype(bool)
        self.left = np.where(leaf, own, np.concatenate([t[2] + o for t, o in zip(trees, offsets)]))
        self.right = np.where(leaf, own, np.concatenate([t[3] + o for t, o in zip(trees, offsets)]))
        self.feature[leaf] = 0
        self.value = np.concatenate([t[5] for t in trees]).astype(np.float64)
        self.depth = _max_depth(self.left, self.right, self.roots)

    def leaf_values(self, X: np.ndarray) -> np.ndarray:
        """(n, features) -> (n, n_trees, k): the value of the leaf each row reaches in each tree."""
        X = np.asarray(X)
        node = np.broadcast_to(self.roots, (len(X), len(self.roots)))
        for _ in range(self.depth):
            x = np.take_along_axis(X, self.feature[node], axis=1)
            node = np.where(x <= self.threshold[node], self.left[node], self.right[node])
        return self.value[node]


def check_trees(trees: list[tuple[np.ndarray, ...]], n_features: int) -> None:
    """InvalidTrees unless each (feature, threshold, left, right, is_leaf, value) is one binary tree.

    That is: every internal node has two children in range, every node but the root is
    the child of exactly one node and is reached from the root (so there is no cycle),
    internal nodes test a feature below n_features against a finite threshold, and
    the value rows are finite and equally wide. Vectorised over all trees at once.
    """
    if not trees:
        raise InvalidTrees("the ensemble has no trees")
    sizes = np.array([len(t[0]) for t in trees], dtype=np.int64)
    width = np.shape(trees[0][5])[1:]
    for i, (t, n) in enumerate(zip(trees, sizes)):
        if n < 1 or any(np.ndim(a) != 1 or len(a) != n for a in t[:5]) or np.shape(t[5]) != (n, *width):
            raise InvalidTrees(f"tree {i} has node arrays of different lengths or shapes")
    total, offsets = int(sizes.sum()), np.cumsum(sizes) - sizes
    owner = np.repeat(np.arange(len(trees)), sizes)
    leaf = np.concatenate([t[4] for t in trees]).astype(bool)
    inner = np.flatnonzero(~leaf)
    local = {side: np.concatenate([t[j] for t in trees]).astype(np.int64) for side, j in (("left", 2), ("right", 3))}
    for side, child in local.items():
        bad = inner[(child[inner] < 1) | (child[inner] >= sizes[owner[inner]])]
        if bad.size:
            raise InvalidTrees(f"tree {owner[bad[0]]} has a {side} child out of range")
    left, right = (local[side] + offsets[owner] for side in ("left", "right"))
    parents = np.bincount(np.concatenate([left[inner], right[inner]]), minlength=total)
    expected = np.ones(total, dtype=np.int64)
    expected[offsets] = 0  # a root is nobody's child
    bad = np.flatnonzero(parents != expected)
    if bad.size:
        raise InvalidTrees(f"tree {owner[bad[0]]} has a node with {parents[bad[0]]} parents")
    unreached = np.flatnonzero(~_reached(leaf, left, right, offsets))
    if unreached.size:  # a cycle that no path from the root enters
        raise InvalidTrees(f"tree {owner[unreached[0]]} has a cycle of nodes its root does not reach")
    feature = np.concatenate([t[0] for t in trees]).astype(np.int64)[inner]
    bad = np.flatnonzero((feature < 0) | (feature >= n_features))
    if bad.size:
        raise InvalidTrees(f"tree {owner[inner[bad[0]]]} tests feature {feature[bad[0]]} of {n_features}")
    threshold = np.concatenate([t[1] for t in trees]).astype(np.float64)[inner]
    value = np.concatenate([t[5] for t in trees]).astype(np.float64)
    if not (np.all(np.isfinite(threshold)) and np.all(np.isfinite(value))):
        raise InvalidTrees("a tree holds a threshold or a value that is not a finite number")


def _reached(leaf: np.ndarray, left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """Which nodes a walk from the roots reaches, level by level (every node has one parent: met once)."""
    seen = np.zeros(len(leaf), dtype=bool)
    node = roots
    while node.size:
        seen[node] = True
        node = node[~leaf[node]]
        node = np.concatenate([left[node], right[node]])
    return seen


def _max_depth(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    node, depth = roots, 0
    while True:
        nxt = np.concatenate([left[node], right[node]])
        moved = nxt[nxt != np.concatenate([node, node])]
        if moved.size == 0:
            return depth
        node, depth = np.unique(moved), depth + 1


class CompiledForest:
    """predict_proba of a fitted RandomForestClassifier, evaluated by StackedTrees."""

    def __init__(self, forest: RandomForestClassifier):
        n_classes, n_features = int(forest.n_classes_), int(forest.n_features_in_)
        trees = []
        for i, est in enumerate(forest.estimators_):
            t = getattr(est, "tree_", None)
            # The node and value arrays are views of node_count nodes: read none beyond what was allocated.
            if not isinstance(t, Tree) or not 1 <= t.node_count <= t.capacity or t.n_outputs != 1 \
                    or t.max_n_classes != n_classes or t.n_features != n_features:
                raise InvalidTrees(f"tree {i} of the forest is not a tree over its {n_features} features and "
                                   f"{n_classes} classes")
            value = t.value[:, 0, :n_classes]
            total = value.sum(axis=1, keepdims=True)
            value = value / np.where(total == 0, 1.0, total)  # as DecisionTreeClassifier.predict_proba does
            trees.append((t.feature, t.threshold, t.children_left, t.children_right, t.children_left == -1, value))
        self.trees = StackedTrees(trees, n_features)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        # Trees compare float32 features, as scikit-learn's trees do; add tree by tree in order, then average.
        leaves = self.trees.leaf_values(np.asarray(X, dtype=np.float32))
        return np.add.accumulate(leaves, axis=1)[:, -1] / leaves.shape[1]


class CompiledBoosting:
    """predict_proba of a fitted HistGradientBoostingClassifier (numeric features), by StackedTrees."""

    def __init__(self, model: HistGradientBoostingClassifier):
        k = int(model.n_trees_per_iteration_)
        internals = private(model)
        trees = []
        for iteration in internals.predictors:
            if len(iteration) != k:
                raise InvalidTrees(f"an iteration of the boosting holds {len(iteration)} trees instead of {k}")
            for column, predictor in enumerate(iteration):
                nodes = getattr(predictor, "nodes", None)
                if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes.ndim != 1 \
                        or np.any(nodes["is_categorical"]):
                    raise InvalidTrees(f"tree {len(trees)} of the boosting does not hold numeric split nodes")
                value = np.zeros((len(nodes), k))
                value[:, column] = nodes["value"]
                trees.append((nodes["feature_idx"], nodes["num_threshold"], nodes["left"].astype(np.intp),
                              nodes["right"].astype(np.intp), nodes["is_leaf"], value))
        self.trees = StackedTrees(trees, int(model.n_features_in_))
        if np.shape(internals.baseline_prediction) != (1, k):
            raise InvalidTrees(f"the boosting's baseline is not {k} values")
        self.baseline = np.asarray(internals.baseline_prediction, dtype=np.float64).reshape(1, k)
        self.loss = internals.loss

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        leaves = self.trees.leaf_values(np.asarray(X, dtype=np.float64))
        start = np.broadcast_to(self.baseline[:, None, :], (len(leaves), 1, leaves.shape[2]))
        # The baseline first, then tree by tree, in scikit-learn's order, so the sums match to the bit.
        raw = np.add.accumulate(np.concatenate([start, leaves], axis=1), axis=1)[:, -1]
        return self.loss.predict_proba(raw if raw.shape[1] > 1 else raw[:, 0])


def compile_trees(clf):
    """A compiled evaluator for a fitted tree ensemble, or None when `clf` is not one we compile."""
    if isinstance(clf, RandomForestClassifier):
        return CompiledForest(clf)
    if isinstance(clf, HistGradientBoostingClassifier) and not np.any(getattr(clf, "is_categorical_", None)):
        return CompiledBoosting(clf)
    return None


class CompiledTrees(ClassifierMixin, BaseEstimator):
    """A random forest or gradient boosting as a pipeline step whose predict_proba walks its compiled trees.

    fit fits a clone of `estimator` and compiles it; `of` wraps one fitted already
    (a loaded bundle's). `estimator_` is the scikit-learn model itself, which a
    bundle stores; its compiled form (`compiled_`) is made again on loading, after
    its trees are checked. An ensemble that is not compiled (categorical splits)
    answers through its own predict_proba.
    """

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y, **fit_params):
        return self._compile(clone(self.estimator).fit(X, y, **fit_params))

    @classmethod
    def of(cls, fitted) -> "CompiledTrees":
        """The step around an ensemble fitted already; InvalidTrees if its trees are not trees."""
        return cls(fitted)._compile(fitted)

    def _compile(self, fitted) -> "CompiledTrees":
        self.estimator_, self.compiled_ = fitted, compile_trees(fitted)
        self.classes_, self.n_features_in_ = fitted.classes_, fitted.n_features_in_
        return self

    def predict_proba(self, X) -> np.ndarray:
        if self.compiled_ is None:
            return self.estimator_.predict_proba(X)
        return self.compiled_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
