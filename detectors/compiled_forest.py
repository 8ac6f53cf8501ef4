"""scikit-learn's IsolationForest scores, bit for bit, without its per-tree overhead.

`IsolationForest.score_samples` walks its trees one by one through joblib and input checks, at
about 0.1 ms of Python per tree: 20 ms for one transaction with the default 200 trees, and live
scoring also scores each feature's occluded copy (detectors/reasons.py). Two ways around it,
chosen by the number of rows (measured, 200 trees of 256 samples, 19 features; scikit-learn /
descent / per-tree apply: 1 row 20 / 0.4 / 0.9 ms, 100 rows 21 / 3.0 / 1.9 ms, 2,850 rows
44 / 80 / 25 ms, 20,000 rows 214 / 649 / 156 ms):
- few rows (`DESCENT_ROWS`): every tree's nodes sit in one set of arrays (a leaf points to
  itself), and all rows descend all trees together, one NumPy step per level;
- more: each tree's own compiled `apply` (what scikit-learn calls), straight, without joblib;
  from `PARALLEL_ROWS` on, in one block of rows per core (`apply` releases the GIL; a row's
  score does not depend on the rows scored with it).
Either is bit for bit scikit-learn's: rows are compared as float32 as scikit-learn compares
them, missing values go where its trees send them, and the per-tree depths are added in tree
order.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from sklearn.ensemble._iforest import _average_path_length

DESCENT_ROWS = 40  # up to this, all trees at once; above, tree by tree (measured: equal at ~40 rows)
PARALLEL_ROWS = 50_000  # below this, one thread: starting a second costs more than it saves
CHUNK_VALUES = 1 << 20  # rows x trees per descent step, to bound memory


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class CompiledIsolationForest:
    """A fitted `sklearn.ensemble.IsolationForest`'s trees as flat arrays."""

    def __init__(self, forest: Any):
        self.forest = forest  # what these arrays were compiled from
        n_features = self.n_features = forest.n_features_in_
        subsample = forest._max_features != n_features
        features, thresholds, lefts, rights, values, missing_left, roots = [], [], [], [], [], [], []
        self.trees: list[tuple[Any, np.ndarray | None, np.ndarray]] = []  # (tree, its columns, per-leaf sum)
        offset, depth = 0, 0
        for tree, columns, path_lengths, average_lengths in zip(
                forest.estimators_, forest.estimators_features_, forest._decision_path_lengths,
                forest._average_path_length_per_tree, strict=True):
            nodes = tree.tree_
            leaf = nodes.children_left == -1
            own = np.arange(nodes.node_count) + offset
            local = np.where(leaf, 0, nodes.feature)
            features.append(np.asarray(columns)[local] if subsample else local)
            thresholds.append(np.where(leaf, np.inf, nodes.threshold))
            lefts.append(np.where(leaf, own, nodes.children_left + offset))
            rights.append(np.where(leaf, own, nodes.children_right + offset))
            # The same per-leaf sum scikit-learn adds for a row that ends there.
            values.append(path_lengths + average_lengths - 1.0)
            self.trees.append((nodes, np.asarray(columns) if subsample else None, values[-1]))
            go_left = getattr(nodes, "missing_go_to_left", None)
            missing_left.append(np.zeros(nodes.node_count, bool) if go_left is None else np.asarray(go_left, bool) & ~leaf)
            roots.append(offset)
            offset += nodes.node_count
            depth = max(depth, nodes.max_depth)
        self.feature = np.concatenate(features).astype(np.intp)
        self.threshold = np.concatenate(thresholds)
        self.left, self.right = np.concatenate(lefts).astype(np.intp), np.concatenate(rights).astype(np.intp)
        self.value = np.concatenate(values)
        self.missing_left = np.concatenate(missing_left)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = depth
        self.denominator = len(forest.estimators_) * _average_path_length([forest._max_samples])

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """What `forest.score_samples(X)` returns (lower = more abnormal), bit for bit."""
        X = np.ascontiguousarray(X, dtype=np.float32)  # scikit-learn compares float32 values
        if X.ndim != 2 or X.shape[1] != self.n_features:  # the trees' apply reads columns unchecked
            raise ValueError(f"X has shape {X.shape}; the forest was fitted on {self.n_features} features.")
        if len(X) <= DESCENT_ROWS:
            depths = self._depths(X.astype(np.float64))
        else:
            depths = self._tree_by_tree(X)
        scores = 2 ** (-np.divide(depths, self.denominator, out=np.ones_like(depths),
                                  where=self.denominator != 0))
        return -scores

    def _tree_by_tree(self, X: np.ndarray) -> np.ndarray:
        threads = min(cores(), max(1, len(X) // PARALLEL_ROWS))
        if threads == 1:
            return self._applied(X)
        bounds = np.linspace(0, len(X), threads + 1).astype(int)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="forest-score") as pool:
            return np.concatenate(list(pool.map(lambda i: self._applied(X[bounds[i]:bounds[i + 1]]), range(threads))))

    def _applied(self, X: np.ndarray) -> np.ndarray:
        depths = np.zeros(len(X))
        for tree, columns, leaf_values in self.trees:  # in tree order, as scikit-learn adds them
            depths += leaf_values[tree.apply(X if columns is None else X[:, columns])]
        return depths

    def _depths(self, X: np.ndarray) -> np.ndarray:
        n_trees = len(self.roots)
        step = max(1, CHUNK_VALUES // n_trees)
        depths = np.zeros(len(X))
        for start in range(0, len(X), step):
            depths[start:start + step] = self._descend(X[start:start + step])
        return depths

    def _descend(self, X: np.ndarray) -> np.ndarray:
        rows = np.arange(len(X))[:, np.newaxis]
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        for _ in range(self.depth):
            x = X[rows, self.feature[node]]
            left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(left, self.left[node], self.right[node])
        leaf_values = self.value[node]
        depths = np.zeros(len(X))
        for tree in range(leaf_values.shape[1]):  # in tree order, as scikit-learn adds them
            depths += leaf_values[:, tree]
        return depths
