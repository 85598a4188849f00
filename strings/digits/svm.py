"""An RBF-kernel SVM head on a digit classifier's pooled features, stored without pickle.

Why: an SVM on learned CNN features is a classic way to gain a little accuracy on small digit
sets. scikit-learn fits it (``SVC``, one-vs-one); what it learned is a handful of arrays
(support vectors, dual coefficients, intercepts, support counts, the kernel width) that are
written as safetensors tensors with JSON metadata and evaluated here with numpy, so loading a
head never unpickles anything and needs no scikit-learn.

The decision rule is libsvm's: for each pair of classes (i, j), i < j, the decision value
``sum_sv coef * exp(-gamma |sv - x|^2) + intercept`` votes for i when positive; the scores are
scikit-learn's ``decision_function_shape="ovr"`` aggregate (votes plus a bounded sum of the
decision values), so ``predict`` agrees with ``SVC.predict`` (on a tie of votes, the summed
decision values decide, as with ``break_ties=True``).

Example:
    >>> head = fit_svm(train_features, train_labels, C=10.0)  # doctest: +SKIP
    >>> save_svm("model.svm.safetensors", head, {"model_weights": weights_digest(model)})  # doctest: +SKIP
    >>> head, meta = load_svm("model.svm.safetensors")  # doctest: +SKIP
    >>> head.predict(features)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from strings.models.checkpoint import CheckpointError, atomic_write, read_metadata

__all__ = ["SVM_FORMAT", "SVMHead", "fit_svm", "save_svm", "load_svm"]

SVM_FORMAT = "strings.digit_svm/1"
_SVM_META_KEY = "strings"
_STD_FLOOR = 1e-6  # features with (almost) no spread are left unscaled rather than blown up
_KERNEL_CHUNK = 1024  # samples per kernel block: bounds memory at chunk x n_sv floats


@dataclass(frozen=True, eq=False)
class SVMHead:
    """A fitted one-vs-one RBF SVM over standardised features.

    Shapes (K classes, V support vectors, D features, P = K(K-1)/2 class pairs):
    ``support_vectors`` (V, D), ``dual_coef`` (K-1, V), ``intercept`` (P,), ``n_support`` (K,),
    ``classes`` (K,), ``mean`` and ``scale`` (D,). Support vectors are grouped by class in class
    order, as libsvm stores them.
    """

    support_vectors: np.ndarray
    dual_coef: np.ndarray
    intercept: np.ndarray
    n_support: np.ndarray
    classes: np.ndarray
    gamma: float
    mean: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        k, (v, d) = len(self.classes), self.support_vectors.shape
        problems = []
        if k < 2 or len(set(self.classes.tolist())) != k:
            problems.append(f"classes must be at least 2 distinct labels, got {self.classes.tolist()}")
        if self.n_support.shape != (k,) or int(self.n_support.sum()) != v or (self.n_support < 0).any():
            problems.append(f"n_support {self.n_support.tolist()} does not add up to {v} support vectors over {k} classes")
        if self.dual_coef.shape != (k - 1, v):
            problems.append(f"dual_coef has shape {self.dual_coef.shape}, expected {(k - 1, v)}")
        if self.intercept.shape != (k * (k - 1) // 2,):
            problems.append(f"intercept has shape {self.intercept.shape}, expected {(k * (k - 1) // 2,)}")
        if self.mean.shape != (d,) or self.scale.shape != (d,) or not (self.scale > 0).all():
            problems.append(f"mean/scale must be ({d},) with positive scales")
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            problems.append(f"gamma must be a positive number, got {self.gamma}")
        arrays = (self.support_vectors, self.dual_coef, self.intercept, self.mean, self.scale)
        if not all(np.isfinite(a).all() for a in arrays):
            problems.append("arrays hold NaN or infinity")
        if problems:
            raise ValueError("invalid SVM head: " + "; ".join(problems))

    @property
    def feature_dim(self) -> int:
        return int(self.support_vectors.shape[1])

    def _kernel(self, feats: np.ndarray) -> np.ndarray:
        """RBF kernel (N, V) between standardised ``feats`` (N, D) and the support vectors."""
        x = (np.asarray(feats, dtype=np.float64) - self.mean) / self.scale  # (N, D)
        if x.ndim != 2 or x.shape[1] != self.feature_dim:
            raise ValueError(f"expected features (N, {self.feature_dim}), got {tuple(np.shape(feats))}")
        sv = self.support_vectors
        sv_sq = (sv * sv).sum(1)  # (V,)
        out = np.empty((len(x), len(sv)))
        for lo in range(0, len(x), _KERNEL_CHUNK):
            xb = x[lo : lo + _KERNEL_CHUNK]
            d2 = (xb * xb).sum(1)[:, None] + sv_sq[None, :] - 2.0 * xb @ sv.T  # (n, V)
            out[lo : lo + _KERNEL_CHUNK] = np.exp(-self.gamma * np.maximum(d2, 0.0))
        return out

    def pairwise(self, feats: np.ndarray) -> np.ndarray:
        """One-vs-one decision values (N, P), pairs (0,1), (0,2), ..., (K-2,K-1); positive
        favours the pair's first class. Equals ``SVC.decision_function`` with shape "ovo" (for two
        classes scikit-learn reports the negation: its positive favours the second class)."""
        kern = self._kernel(feats)
        starts = np.concatenate([[0], np.cumsum(self.n_support)])
        k = len(self.classes)
        out = np.empty((len(kern), k * (k - 1) // 2))
        p = 0
        for i in range(k):
            for j in range(i + 1, k):
                si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
                out[:, p] = kern[:, si] @ self.dual_coef[j - 1, si] + kern[:, sj] @ self.dual_coef[i, sj] + self.intercept[p]
                p += 1
        return out

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """Per-class scores (N, K): one-vs-one votes plus the summed decision values squashed
        into (-1/3, 1/3), which breaks ties without overturning a vote (scikit-learn's "ovr")."""
        dec = self.pairwise(feats)
        k = len(self.classes)
        votes = np.zeros((len(dec), k))
        sums = np.zeros((len(dec), k))
        p = 0
        for i in range(k):
            for j in range(i + 1, k):
                votes[:, i] += dec[:, p] >= 0
                votes[:, j] += dec[:, p] < 0
                sums[:, i] += dec[:, p]
                sums[:, j] -= dec[:, p]
                p += 1
        return votes + sums / (3.0 * (np.abs(sums) + 1.0))

    def probabilities(self, feats: np.ndarray) -> np.ndarray:
        """Softmax of ``scores`` (N, K): a ranking of the classes that sums to 1, not a
        calibrated probability (no Platt scaling is fitted)."""
        s = self.scores(feats)
        e = np.exp(s - s.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """Class labels (N,)."""
        return self.classes[self.scores(feats).argmax(1)]

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "support_vectors": self.support_vectors, "dual_coef": self.dual_coef, "intercept": self.intercept,
            "n_support": self.n_support, "classes": self.classes, "mean": self.mean, "scale": self.scale,
        }


def fit_svm(features: np.ndarray, labels: np.ndarray, C: float = 10.0, gamma: float | None = None) -> SVMHead:
    """Fit scikit-learn's ``SVC(kernel="rbf")`` on standardised features and keep its arrays.

    ``gamma`` defaults to scikit-learn's "scale" rule, 1 / (D * variance), computed here on the
    standardised features so that the stored head is self-contained.
    """
    from sklearn.svm import SVC

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need features (N, D) and labels (N,), got {x.shape} and {y.shape}")
    mean = x.mean(0)
    scale = np.maximum(x.std(0), _STD_FLOOR)
    xs = (x - mean) / scale
    if gamma is None:
        var = float(xs.var())
        gamma = 1.0 / (x.shape[1] * var) if var > 0 else 1.0
    clf = SVC(kernel="rbf", C=C, gamma=gamma, decision_function_shape="ovo")
    clf.fit(xs, y)
    dual, intercept = np.asarray(clf.dual_coef_, dtype=np.float64), np.asarray(clf.intercept_, dtype=np.float64)
    if len(clf.classes_) == 2:  # scikit-learn flips libsvm's signs for two classes only
        dual, intercept = -dual, -intercept
    return SVMHead(
        support_vectors=np.asarray(clf.support_vectors_, dtype=np.float64),
        dual_coef=dual,
        intercept=intercept,
        n_support=np.asarray(clf.n_support_, dtype=np.int64),
        classes=np.asarray(clf.classes_, dtype=np.int64),
        gamma=float(gamma),
        mean=mean,
        scale=scale,
    )


def save_svm(path: str | os.PathLike, head: SVMHead, extra: dict[str, Any] | None = None) -> None:
    """Write the head's arrays as safetensors tensors, with its kernel width and ``extra``
    (what it was fitted on, the weights digest of its model) as JSON metadata. Atomic."""
    from safetensors.numpy import save_file

    meta = {"format": SVM_FORMAT, "gamma": head.gamma, "feature_dim": head.feature_dim, **(extra or {})}
    tensors = {k: np.ascontiguousarray(v) for k, v in head.tensors().items()}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata={_SVM_META_KEY: json.dumps(meta)}))


def load_svm(path: str | os.PathLike) -> tuple[SVMHead, dict[str, Any]]:
    """Read a head written by ``save_svm``; refuses files whose arrays disagree with each other."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    meta = read_metadata(path, SVM_FORMAT, required=("gamma", "feature_dim", "model_weights"))
    try:
        t = load_file(str(path))
        head = SVMHead(
            support_vectors=t["support_vectors"].astype(np.float64),
            dual_coef=t["dual_coef"].astype(np.float64),
            intercept=t["intercept"].astype(np.float64),
            n_support=t["n_support"].astype(np.int64),
            classes=t["classes"].astype(np.int64),
            gamma=float(meta["gamma"]),
            mean=t["mean"].astype(np.float64),
            scale=t["scale"].astype(np.float64),
        )
    except (KeyError, SafetensorError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a valid SVM head ({exc})") from None
    if head.feature_dim != meta["feature_dim"]:
        raise CheckpointError(f"{path}: {head.feature_dim} features in the arrays, {meta['feature_dim']} in the metadata")
    return head, meta
