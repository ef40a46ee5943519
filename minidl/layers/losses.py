"""Losses: scalar functions of the logits and the targets, averaged over the batch.

Symbols: N batch, C classes. A loss has ``forward(logits, targets) -> float``
and ``backward_inputs(logits, targets) -> dL/dlogits`` (N, C); it keeps no state.
``targets`` are integer labels (N,) in [0, C), or distributions (N, C) whose
rows are one-hot or soft probabilities. Logits and targets are made C-contiguous
first (no copy if they already are), so a strided or transposed array sums its
terms in the order of its copy and gives the same numbers.
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
        """The logits, checked (float32/float64, (N, C), finite) and made C-contiguous."""
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
        return np.ascontiguousarray(logits)

    def _target_distribution(self, logits, targets):
        """targets as a (N, C) distribution in the dtype of the logits."""
        n, c = logits.shape
        targets = np.ascontiguousarray(targets)
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
    """Row-wise log softmax, stable for logits of any magnitude: shift by the row max.

    A logit more than the dtype's range below its row max gets -inf (probability 0).
    """
    with np.errstate(over="ignore"):
        shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    """Row-wise softmax (N, C) -> (N, C), rows summing to 1."""
    with np.errstate(over="ignore"):
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
        logits = self._check_logits(logits)
        dist = self._target_distribution(logits, targets)
        # classes with target 0 contribute 0, even where log softmax underflows to -inf
        with np.errstate(invalid="ignore"):
            terms = np.where(dist > 0, dist * log_softmax(logits), 0.0)
        loss = float(-terms.sum(dtype=np.float64) / logits.shape[0])
        return loss + 0.0   # a perfect fit negates a sum of zeros, -0.0; adding 0.0 makes it 0.0

    def backward_inputs(self, logits, targets):
        """logits (N, C), targets -> dL/dlogits (N, C)."""
        logits = self._check_logits(logits)
        dist = self._target_distribution(logits, targets)
        grad = softmax(logits) * dist.sum(axis=1, keepdims=True) - dist
        grad /= logits.shape[0]
        return grad


class MulticlassHingeLoss(Loss):
    """Mean multiclass hinge (SVM) loss, Weston & Watkins / CS231n form.

    logits x (N, C), labels y (N,) or one-hot rows (N, C):

        L = (1/N) sum_n sum_{j != y_n} max(0, x_nj - x_{n,y_n} + delta)

    Each wrong class j whose score comes within ``delta`` of the true one
    (margin m_nj = x_nj - x_{n,y_n} + delta > 0) adds m_nj. A subgradient:

        dL/dx_nj     =  [m_nj > 0] / N                       for j != y_n
        dL/dx_{n,y_n} = -(number of j != y_n with m_nj > 0) / N

    taking 0 for the slope of max(0, m) at the kink m = 0.
    """

    def __init__(self, delta=1.0, name=None):
        super().__init__(name)
        if isinstance(delta, bool) or not np.isfinite(delta) or delta < 0:
            raise ValueError(f"{self._describe()}: delta must be a number >= 0, got {delta!r}")
        self.delta = float(delta)

    def _labels(self, logits, targets):
        """Integer labels (N,) from labels or one-hot rows."""
        targets = np.ascontiguousarray(targets)
        dist = self._target_distribution(logits, targets)
        if targets.ndim == 1:
            return targets.astype(np.int64, copy=False)
        one_hot = np.all((dist == 0) | (dist == 1), axis=1) & (dist.sum(axis=1) == 1)
        if not one_hot.all():
            first = int(np.argmin(one_hot))
            raise ValueError(f"{self._describe()}: targets (N, C) must be one-hot rows (the hinge loss "
                             f"needs one true class), row {first} is {targets[first]}")
        return dist.argmax(axis=1)

    def _margins(self, logits, labels):
        """m (N, C) with m_nj = x_nj - x_{n,y_n} + delta, and 0 at j = y_n (in float64, so
        float32 logits near the end of their range cannot overflow)."""
        rows = np.arange(logits.shape[0])
        logits = logits.astype(np.float64)
        margins = logits - logits[rows, labels][:, None] + self.delta
        margins[rows, labels] = 0
        return margins

    def forward(self, logits, targets):
        """logits (N, C), targets (N,) or one-hot (N, C) -> mean loss (float)."""
        logits = self._check_logits(logits)
        labels = self._labels(logits, targets)
        margins = self._margins(logits, labels)
        return float(np.maximum(margins, 0).sum() / logits.shape[0])

    def backward_inputs(self, logits, targets):
        """logits (N, C), targets -> dL/dlogits (N, C)."""
        logits = self._check_logits(logits)
        labels = self._labels(logits, targets)
        active = (self._margins(logits, labels) > 0).astype(logits.dtype)   # 0 at j = y_n
        grad = active
        grad[np.arange(logits.shape[0]), labels] = -active.sum(axis=1)
        grad /= logits.shape[0]
        return grad


class MeanSquaredError(Loss):
    """Half the squared Euclidean distance, averaged over the batch.

    predictions x (N, D), targets t (N, D) of real numbers, or integer labels
    (N,) which stand for their one-hot rows (regression onto one-hot codes):

        L = (1/N) sum_n 0.5 * ||x_n - t_n||^2          dL/dx = (x - t) / N

    Note the convention: a sum over the D outputs and a mean over the batch,
    with the 1/2 that cancels the square's 2. PyTorch's ``MSELoss()`` is the
    mean over all N*D elements without the 1/2, i.e. 2/D times this loss.
    """

    def _targets(self, logits, targets):
        targets = np.ascontiguousarray(targets)
        if targets.ndim == 1:
            return self._target_distribution(logits, targets)      # labels -> one-hot
        if targets.shape != logits.shape:
            raise ValueError(f"{self._describe()}: expected targets of shape {logits.shape} "
                             f"(or labels ({logits.shape[0]},)), got {targets.shape}")
        if not (np.issubdtype(targets.dtype, np.floating) or np.issubdtype(targets.dtype, np.integer)):
            raise ValueError(f"{self._describe()}: expected numeric targets, got {targets.dtype}")
        bad = ~np.isfinite(targets)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{self._describe()}: {int(bad.sum())} non-finite targets, "
                             f"the first at index {first}")
        return targets.astype(logits.dtype, copy=False)

    def forward(self, logits, targets):
        """predictions (N, D), targets (N, D) or labels (N,) -> mean loss (float)."""
        logits = self._check_logits(logits)
        diff = logits.astype(np.float64) - self._targets(logits, targets)   # float64: no overflow
        return float(0.5 * np.sum(diff ** 2) / logits.shape[0])

    def backward_inputs(self, logits, targets):
        """predictions (N, D), targets -> dL/dpredictions (N, D)."""
        logits = self._check_logits(logits)
        return (logits - self._targets(logits, targets)) / logits.shape[0]
