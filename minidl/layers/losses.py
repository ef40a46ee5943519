"""Losses: scalar functions of the logits and the targets, averaged over the batch.

Symbols: N batch, C classes. A loss has ``forward(logits, targets) -> float``
and ``backward_inputs(logits, targets) -> dL/dlogits`` (N, C); it keeps no state.
``targets`` are integer labels (N,) in [0, C), or distributions (N, C) whose
rows are one-hot or soft probabilities.
"""
import numpy as np

from .base import FLOAT_DTYPES


class Loss:
    """Common argument checks of the classification losses."""

    def __init__(self, name=None):
        self.name = name or type(self).__name__

    def _describe(self):
        return f"{type(self).__name__} '{self.name}'"

    def backward_params(self, logits=None, targets=None):
        """A data loss has no parameters."""
        return []

    def _check_logits(self, logits):
        if not isinstance(logits, np.ndarray) or logits.dtype not in FLOAT_DTYPES:
            what = logits.dtype.name if isinstance(logits, np.ndarray) else type(logits).__name__
            raise ValueError(f"{self._describe()}: expected float32 or float64 logits, got {what}")
        if logits.ndim != 2:
            raise ValueError(f"{self._describe()}: expected logits of shape (N, C), got {logits.shape}")
        bad = ~np.isfinite(logits)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{self._describe()}: {int(bad.sum())} non-finite logits "
                             f"(NaN or inf), the first at index {first}")

    def _target_distribution(self, logits, targets):
        """targets as a (N, C) distribution in the dtype of the logits."""
        n, c = logits.shape
        targets = np.asarray(targets)
        if targets.ndim == 1:
            if targets.shape[0] != n:
                raise ValueError(f"{self._describe()}: expected {n} labels for logits {logits.shape}, "
                                 f"got {targets.shape[0]}")
            labels = self._check_labels(targets, c)
            dist = np.zeros((n, c), dtype=logits.dtype)
            dist[np.arange(n), labels] = 1
            return dist
        if targets.shape != (n, c):
            raise ValueError(f"{self._describe()}: expected targets of shape ({n},) or {(n, c)}, "
                             f"got {targets.shape}")
        if not np.issubdtype(targets.dtype, np.floating) and not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"{self._describe()}: expected numeric targets, got {targets.dtype}")
        bad = ~np.isfinite(targets) | (targets < 0)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{self._describe()}: {int(bad.sum())} negative or non-finite targets, "
                             f"the first at index {first}")
        return targets.astype(logits.dtype, copy=False)

    def _check_labels(self, targets, c):
        if not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"{self._describe()}: labels (N,) must be integers, got {targets.dtype}")
        bad = (targets < 0) | (targets >= c)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(f"{self._describe()}: {int(bad.sum())} labels outside [0, {c}), "
                             f"the first is {int(targets[first])} at index {first}")
        return targets


def log_softmax(logits):
    """Row-wise log softmax, stable for logits of any magnitude: shift by the row max."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    """Row-wise softmax (N, C) -> (N, C), rows summing to 1."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


class SoftmaxCrossEntropy(Loss):
    """Mean cross-entropy between softmax(logits) and the targets.

        L = (1/N) sum_n [ log sum_j exp(x_nj) - sum_i y_ni x_ni ]     (rows of y sum to 1)
        dL/dx_n = (softmax(x_n) - y_n) / N

    Computed through the log-sum-exp with the row max subtracted, so no logit
    overflows. For soft targets whose rows do not sum to 1 the gradient is
    (softmax(x_n) * sum_i y_ni - y_n) / N, the exact derivative of the first line
    written as -sum_i y_ni log softmax_i(x_n).
    """

    def forward(self, logits, targets):
        """logits (N, C), targets (N,) or (N, C) -> mean loss (float)."""
        self._check_logits(logits)
        dist = self._target_distribution(logits, targets)
        return float(-(dist * log_softmax(logits)).sum() / logits.shape[0])

    def backward_inputs(self, logits, targets):
        """logits (N, C), targets -> dL/dlogits (N, C)."""
        self._check_logits(logits)
        dist = self._target_distribution(logits, targets)
        grad = softmax(logits) * dist.sum(axis=1, keepdims=True) - dist
        grad /= logits.shape[0]
        return grad
