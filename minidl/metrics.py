"""Classification metrics, all derived from the confusion matrix.

Symbols: N examples, K classes, k how many top predictions are kept.

    labels       (N,)    true class indices in [0, K)
    predictions  (N,)    predicted class indices in [0, K)
    confusion    (K, K)  confusion[t, p] = how many examples of true class t were predicted as p
    logits       (N, K)  scores (or probabilities); larger means more likely

Reading the confusion matrix: row t sums to the number of examples of class t
(its *support*), column p sums to the number of times p was predicted, and the
diagonal holds the correct predictions. Everything else follows:

    accuracy     = trace(confusion) / confusion.sum()
    precision[c] = confusion[c, c] / confusion[:, c].sum()   (of those predicted c, the fraction truly c)
    recall[c]    = confusion[c, c] / confusion[c, :].sum()   (of those truly c, the fraction found)
    f1[c]        = 2 * precision[c] * recall[c] / (precision[c] + recall[c])

Convention for empty denominators: a class that was never predicted has
precision 0, a class with no examples has recall 0, and f1 is 0 when both
precision and recall are 0. No division-by-zero warning is raised. (scikit-learn
makes the same choice with ``zero_division=0``.)
"""
import numpy as np

__all__ = ["confusion_matrix", "accuracy", "precision_recall", "f1_scores",
           "classification_report", "top_k", "top_k_accuracy"]


# ---------------------------------------------------------------- validation

def _as_index_vector(values, name):
    """``values`` as a 1-d int64 array; ValueError if it is not a vector of whole numbers."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of class indices (N,), got shape {array.shape}")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer)
                                   or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        # allow 0.0, 1.0, ... (labels that went through a float array), nothing else
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(f"{name} must hold whole-number class indices, got non-integer values")
    return array.astype(np.int64)


def _check_pair(labels, predictions):
    labels = _as_index_vector(labels, "labels")
    predictions = _as_index_vector(predictions, "predictions")
    if len(labels) != len(predictions):
        raise ValueError(f"labels and predictions differ in length: "
                         f"{len(labels)} labels, {len(predictions)} predictions")
    return labels, predictions


def _check_confusion(confusion):
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.shape[0] == 0:
        raise ValueError(f"confusion must be a non-empty square (K, K) matrix, got shape {confusion.shape}")
    if not np.issubdtype(confusion.dtype, np.number) or np.any(confusion < 0):
        raise ValueError("confusion must hold non-negative counts")
    return confusion


# ---------------------------------------------------------------- metrics

def confusion_matrix(labels, predictions, num_classes):
    """Count matrix (K, K) int64: rows are the true class, columns the predicted class.

    labels (N,) and predictions (N,) are class indices in [0, num_classes).
    Raises ValueError for a length mismatch, a non-vector input, or an index
    outside [0, num_classes) (the message names the first offending position).
    N = 0 gives a matrix of zeros.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    labels, predictions = _check_pair(labels, predictions)
    for name, values in (("labels", labels), ("predictions", predictions)):
        bad = np.flatnonzero((values < 0) | (values >= num_classes))
        if bad.size:
            i = bad[0]
            raise ValueError(f"{name}[{i}] = {values[i]} is outside [0, {num_classes}) "
                             f"({bad.size} value(s) out of range)")
    # each (true, predicted) pair gets one cell number t*K + p; counting cell numbers fills the matrix
    cells = labels * num_classes + predictions
    counts = np.bincount(cells, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def accuracy(labels, predictions):
    """Fraction (float) of positions where predictions (N,) equal labels (N,).

    Raises ValueError for a length mismatch or N = 0 (accuracy of nothing is undefined).
    """
    labels, predictions = _check_pair(labels, predictions)
    if len(labels) == 0:
        raise ValueError("accuracy of zero examples is undefined")
    return float(np.mean(labels == predictions))


def _safe_ratio(numerator, denominator):
    """numerator / denominator elementwise, 0 where the denominator is 0 (no warning)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def precision_recall(confusion):
    """Per-class (precision (K,), recall (K,)) float64, computed from a confusion matrix (K, K).

    precision[c] = confusion[c, c] / column sum c, and 0 if class c was never predicted;
    recall[c]    = confusion[c, c] / row sum c,    and 0 if class c has no examples.
    """
    confusion = _check_confusion(confusion)
    correct = np.diag(confusion)
    precision = _safe_ratio(correct, confusion.sum(axis=0))
    recall = _safe_ratio(correct, confusion.sum(axis=1))
    return precision, recall


def f1_scores(confusion):
    """Per-class F1 (K,): the harmonic mean of precision and recall, 0 where both are 0."""
    precision, recall = precision_recall(confusion)
    return _safe_ratio(2.0 * precision * recall, precision + recall)


def classification_report(confusion, class_names=None):
    """A printable table: precision, recall, F1 and support per class, then accuracy and means.

    confusion (K, K) as from ``confusion_matrix``; class_names: K strings (default "0".."K-1").
    The "macro avg" row is the unweighted mean over classes; accuracy is 0 for an empty matrix.
    """
    confusion = _check_confusion(confusion)
    num_classes = confusion.shape[0]
    if class_names is None:
        class_names = [str(c) for c in range(num_classes)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
    precision, recall = precision_recall(confusion)
    f1 = f1_scores(confusion)
    support = confusion.sum(axis=1)
    total = int(confusion.sum())
    overall = float(np.trace(confusion)) / total if total else 0.0

    width = max(len("macro avg"), max(len(name) for name in class_names))
    lines = [f"{'':<{width}}  precision  recall     f1  support"]
    for c, name in enumerate(class_names):
        lines.append(f"{name:<{width}}  {precision[c]:9.3f}  {recall[c]:6.3f}  {f1[c]:5.3f}  "
                     f"{int(support[c]):7d}")
    lines.append("")
    lines.append(f"{'accuracy':<{width}}  {'':9}  {'':6}  {overall:5.3f}  {total:7d}")
    lines.append(f"{'macro avg':<{width}}  {precision.mean():9.3f}  {recall.mean():6.3f}  "
                 f"{f1.mean():5.3f}  {total:7d}")
    return "\n".join(lines)


def top_k(logits, k):
    """Indices (N, k) of the k largest scores per row of logits (N, K), best first.

    Ties keep the lower class index first. A single row (K,) gives (k,).
    Raises ValueError unless 1 <= k <= K.
    """
    logits = np.asarray(logits)
    if logits.ndim not in (1, 2):
        raise ValueError(f"logits must be (N, K) or (K,), got shape {logits.shape}")
    num_classes = logits.shape[-1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_classes:
        raise ValueError(f"k must be an integer in [1, {num_classes}], got {k!r}")
    # a stable sort of the negated scores puts the largest first and keeps ties in index order
    order = np.argsort(-logits.astype(np.float64), axis=-1, kind="stable")
    return order[..., :k]


def top_k_accuracy(labels, logits, k):
    """Fraction of examples whose true label (N,) is among the k best of logits (N, K)."""
    labels = _as_index_vector(labels, "labels")
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] != len(labels):
        raise ValueError(f"logits must be (N, K) with N = {len(labels)} labels, got shape {logits.shape}")
    if len(labels) == 0:
        raise ValueError("accuracy of zero examples is undefined")
    best = top_k(logits, k)
    return float(np.mean(np.any(best == labels[:, None], axis=1)))
