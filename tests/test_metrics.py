"""Metrics against small cases worked out by hand, conventions for empty classes, errors."""
import warnings

import numpy as np
import pytest

from minidl import metrics

# A 3-class example worked out by hand.
#
#   labels      = 0 0 0 0 1 1 2 2 2
#   predictions = 0 0 1 2 1 0 2 2 1
#
# (true, predicted) pairs: (0,0) x2, (0,1), (0,2), (1,1), (1,0), (2,2) x2, (2,1)
#
#                 predicted 0  1  2   row sum (support)
#   true 0                  2  1  1   4
#   true 1                  1  1  0   2
#   true 2                  0  1  2   3
#   column sum              3  3  3   9
#
#   accuracy  = (2 + 1 + 2) / 9 = 5/9
#   precision = diagonal / column sums = 2/3, 1/3, 2/3
#   recall    = diagonal / row sums    = 2/4, 1/2, 2/3
#   f1        = 2PR/(P+R): class 0: 2*(2/3)(1/2)/(2/3+1/2) = (2/3)/(7/6) = 4/7
#                          class 1: 2*(1/3)(1/2)/(1/3+1/2) = (1/3)/(5/6) = 2/5
#                          class 2: 2/3
# Row sums differ from column sums, so a transposed matrix would give wrong answers.
LABELS = [0, 0, 0, 0, 1, 1, 2, 2, 2]
PREDICTIONS = [0, 0, 1, 2, 1, 0, 2, 2, 1]
CONFUSION = np.array([[2, 1, 1],
                      [1, 1, 0],
                      [0, 1, 2]])


# ---------------------------------------------------------------- confusion matrix

def test_confusion_matrix_hand_example():
    confusion = metrics.confusion_matrix(LABELS, PREDICTIONS, 3)
    np.testing.assert_array_equal(confusion, CONFUSION)
    assert confusion.dtype == np.int64


def test_confusion_matrix_matches_counting_loop():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=200)
    predictions = rng.integers(0, 5, size=200)
    expected = np.zeros((5, 5), dtype=np.int64)
    for t, p in zip(labels, predictions):
        expected[t, p] += 1
    np.testing.assert_array_equal(metrics.confusion_matrix(labels, predictions, 5), expected)


def test_confusion_matrix_keeps_classes_that_never_occur():
    confusion = metrics.confusion_matrix([0, 0], [0, 0], 4)
    assert confusion.shape == (4, 4)
    assert confusion[0, 0] == 2 and confusion.sum() == 2


def test_confusion_matrix_accepts_whole_number_floats():
    np.testing.assert_array_equal(
        metrics.confusion_matrix(np.array(LABELS, dtype=np.float32), PREDICTIONS, 3), CONFUSION)


def test_confusion_matrix_of_nothing_is_zeros():
    np.testing.assert_array_equal(metrics.confusion_matrix([], [], 2), np.zeros((2, 2)))


@pytest.mark.parametrize("labels, predictions, match", [
    ([0, 1, 3], [0, 1, 2], r"labels\[2\] = 3 is outside \[0, 3\)"),
    ([0, -1, 2], [0, 1, 2], r"labels\[1\] = -1 is outside"),
    ([0, 1, 2], [0, 5, 2], r"predictions\[1\] = 5 is outside"),
    ([0, 1, 2], [0, 1], r"differ in length: 3 labels, 2 predictions"),
    ([[0, 1], [1, 0]], [[0, 1], [1, 0]], r"1-d array"),
    ([0.0, 1.5, 2.0], [0, 1, 2], r"whole-number"),
    ([True, False], [0, 1], r"integer class indices"),
])
def test_confusion_matrix_rejects_bad_input(labels, predictions, match):
    with pytest.raises(ValueError, match=match):
        metrics.confusion_matrix(labels, predictions, 3)


@pytest.mark.parametrize("num_classes", [0, -2, 2.5, True])
def test_confusion_matrix_rejects_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        metrics.confusion_matrix([0], [0], num_classes)


# ---------------------------------------------------------------- accuracy

def test_accuracy_hand_example():
    assert metrics.accuracy(LABELS, PREDICTIONS) == pytest.approx(5 / 9)


def test_accuracy_equals_trace_over_total():
    confusion = metrics.confusion_matrix(LABELS, PREDICTIONS, 3)
    assert metrics.accuracy(LABELS, PREDICTIONS) == pytest.approx(np.trace(confusion) / confusion.sum())


def test_accuracy_errors():
    with pytest.raises(ValueError, match="zero examples"):
        metrics.accuracy([], [])
    with pytest.raises(ValueError, match="differ in length"):
        metrics.accuracy([0, 1], [0])


# ---------------------------------------------------------------- precision and recall

def test_precision_recall_hand_example():
    precision, recall = metrics.precision_recall(CONFUSION)
    np.testing.assert_allclose(precision, [2 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(recall, [2 / 4, 1 / 2, 2 / 3])


def test_f1_hand_example():
    np.testing.assert_allclose(metrics.f1_scores(CONFUSION), [4 / 7, 2 / 5, 2 / 3])


def test_class_never_predicted_has_zero_precision_without_warning():
    # labels 0 1 2 2, predictions 0 1 1 1: class 2 is never predicted (column 2 is empty)
    #   [[1, 0, 0],
    #    [0, 1, 0],
    #    [0, 2, 0]]   precision = 1/1, 1/3, 0 (by convention); recall = 1, 1, 0/2
    confusion = metrics.confusion_matrix([0, 1, 2, 2], [0, 1, 1, 1], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")    # a 0/0 division would raise here
        precision, recall = metrics.precision_recall(confusion)
        f1 = metrics.f1_scores(confusion)
    np.testing.assert_allclose(precision, [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(recall, [1.0, 1.0, 0.0])
    assert f1[2] == 0.0
    assert np.all(np.isfinite(precision)) and np.all(np.isfinite(recall))


def test_class_without_examples_has_zero_recall_without_warning():
    # labels 0 0 1, predictions 0 2 1: class 2 has no examples (row 2 is empty) but was predicted once
    confusion = metrics.confusion_matrix([0, 0, 1], [0, 2, 1], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision, recall = metrics.precision_recall(confusion)
    assert recall[2] == 0.0
    assert precision[2] == 0.0           # predicted once, never right
    np.testing.assert_allclose(recall[:2], [0.5, 1.0])


def test_precision_recall_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        metrics.precision_recall(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        metrics.precision_recall(np.array([[1, -1], [0, 1]]))


def test_classification_report_lists_classes_and_numbers():
    report = metrics.classification_report(CONFUSION, class_names=["cat", "dog", "bird"])
    lines = report.splitlines()
    cat = next(line for line in lines if line.startswith("cat"))
    assert cat.split()[1:] == ["0.667", "0.500", "0.571", "4"]
    dog = next(line for line in lines if line.startswith("dog"))
    assert dog.split()[1:] == ["0.333", "0.500", "0.400", "2"]
    accuracy_line = next(line for line in lines if line.startswith("accuracy"))
    assert accuracy_line.split()[1:] == ["0.556", "9"]
    with pytest.raises(ValueError, match="2 names for 3 classes"):
        metrics.classification_report(CONFUSION, class_names=["a", "b"])


# ---------------------------------------------------------------- top-k

def test_top_k_hand_example_best_first():
    logits = np.array([[0.1, 2.0, -1.0, 0.5],
                       [3.0, 3.0, 1.0, 4.0]])   # a tie between classes 0 and 1
    np.testing.assert_array_equal(metrics.top_k(logits, 3), [[1, 3, 0], [3, 0, 1]])
    np.testing.assert_array_equal(metrics.top_k(logits, 1), [[1], [3]])
    np.testing.assert_array_equal(metrics.top_k(logits[0], 2), [1, 3])


def test_top_k_ties_keep_the_lower_class_first_in_long_rows():
    # 200 classes with only three distinct scores: ties everywhere, long enough for unstable sorts to reorder
    logits = np.random.default_rng(1).integers(0, 3, size=(4, 200)).astype(np.float32)
    best = metrics.top_k(logits, 60)
    for row, indices in zip(logits, best):
        top_score = row.max()
        expected = np.flatnonzero(row == top_score)[:60]      # ascending indices of the top score
        np.testing.assert_array_equal(indices[:len(expected)], expected)


def test_top_k_first_column_is_argmax():
    logits = np.random.default_rng(0).normal(size=(50, 7))
    np.testing.assert_array_equal(metrics.top_k(logits, 4)[:, 0], logits.argmax(axis=1))


@pytest.mark.parametrize("k", [0, 5, -1, 1.5])
def test_top_k_rejects_bad_k(k):
    with pytest.raises(ValueError, match="k must be"):
        metrics.top_k(np.zeros((2, 4)), k)


def test_top_k_accuracy_hand_example():
    logits = np.array([[0.1, 2.0, -1.0],     # label 0: ranked 2nd
                       [3.0, 0.0, 1.0],      # label 2: ranked 2nd
                       [0.0, 1.0, 2.0]])     # label 0: ranked 3rd
    labels = [0, 2, 0]
    assert metrics.top_k_accuracy(labels, logits, 1) == 0.0
    assert metrics.top_k_accuracy(labels, logits, 2) == pytest.approx(2 / 3)
    assert metrics.top_k_accuracy(labels, logits, 3) == 1.0
