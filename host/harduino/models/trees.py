"""Fitted tree ensembles evaluated as a few numpy gathers: the fast path for one live window.

scikit-learn validates its input and dispatches once per tree, so a 100-tree
forest spends ~4 ms on one window before any tree is walked. Here every tree
of a fitted forest (or of a gradient-boosting model) is copied into flat node
arrays, and all trees walk one level per step together: `depth` steps of
vectorised indexing for the whole ensemble. The model is the same fitted
object; only the evaluation differs, and the tests check the probabilities
equal scikit-learn's.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier


class StackedTrees:
    """Many binary trees in flat arrays; a leaf points to itself so every walk can take `depth` steps."""

    def __init__(self, trees: list[tuple[np.ndarray, ...]]):
        """trees: (feature, threshold, left, right, is_leaf, value (nodes, k)) per tree, nodes numbered 0.."""
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
        n_classes = forest.n_classes_
        trees = []
        for est in forest.estimators_:
            t = est.tree_
            value = t.value[:, 0, :n_classes]
            total = value.sum(axis=1, keepdims=True)
            value = value / np.where(total == 0, 1.0, total)  # as DecisionTreeClassifier.predict_proba does
            trees.append((t.feature, t.threshold, t.children_left, t.children_right, t.children_left == -1, value))
        self.trees = StackedTrees(trees)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        # Trees compare float32 features, as scikit-learn's trees do; add tree by tree in order, then average.
        leaves = self.trees.leaf_values(np.asarray(X, dtype=np.float32))
        return np.add.accumulate(leaves, axis=1)[:, -1] / leaves.shape[1]


class CompiledBoosting:
    """predict_proba of a fitted HistGradientBoostingClassifier (numeric features), by StackedTrees."""

    def __init__(self, model: HistGradientBoostingClassifier):
        k = model.n_trees_per_iteration_
        trees = []
        for iteration in model._predictors:
            for column, predictor in enumerate(iteration):
                nodes = predictor.nodes
                value = np.zeros((len(nodes), k))
                value[:, column] = nodes["value"]
                trees.append((nodes["feature_idx"], nodes["num_threshold"], nodes["left"].astype(np.intp),
                              nodes["right"].astype(np.intp), nodes["is_leaf"], value))
        self.trees = StackedTrees(trees)
        self.baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(1, k)
        self.loss = model._loss

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
