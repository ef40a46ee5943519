"""The built-in gradient checks that ``check_grads.py`` runs: every layer in several configurations.

Each case is a function ``rng -> CheckResult``. Inputs are "well conditioned":
away from the kinks of piecewise-linear functions (ReLU inputs are kept away
from 0, pooling windows hold distinct values further apart than the finite-
difference step), so central differences measure the derivative that backprop
computes.
"""
import numpy as np

from .gradcheck import check_layer, check_loss
from .layers import FC, Conv, Flatten, L2Regularizer, MaxPool, ReLU, RegularizedLoss, SoftmaxCrossEntropy
from .models import lab_net

F64 = np.float64


def distinct_values(shape, rng, spacing=1e-2):
    """A random arrangement of values at least ``spacing`` apart: no ties, no near-ties."""
    size = int(np.prod(shape))
    return (rng.permutation(size) - size / 2).reshape(shape) * spacing


def away_from_zero(shape, rng, margin=1e-2):
    """Standard normal values with |x| >= margin (ReLU's kink is at 0)."""
    x = rng.standard_normal(shape)
    x[np.abs(x) < margin] = margin
    return x


def _conv(name, c, f, k, shape, **kw):
    return name, lambda rng: check_layer(Conv(c, f, k, dtype=F64, rng=rng, **kw), rng.standard_normal(shape),
                                         rng=rng, name=name)


def _pool(name, k, shape, **kw):
    return name, lambda rng: check_layer(MaxPool(k, **kw), distinct_values(shape, rng), rng=rng, name=name)


def _loss(name, n, c, targets_fn, loss_fn=SoftmaxCrossEntropy):
    return name, lambda rng: check_loss(loss_fn(), rng.standard_normal((n, c)) * 3, targets_fn(rng, n, c),
                                        name=name)


def _labels(rng, n, c):
    return rng.integers(0, c, size=n)


def _one_hot(rng, n, c):
    return np.eye(c)[rng.integers(0, c, size=n)]


def _soft(rng, n, c):
    p = rng.random((n, c)) + 0.1
    return p / p.sum(axis=1, keepdims=True)


def _regularized(rng):
    fc = FC(6, 4, dtype=F64, rng=rng)
    loss = RegularizedLoss(SoftmaxCrossEntropy(), [L2Regularizer(fc.weights, 1e-2, name="l2_fc")])
    return check_loss(loss, rng.standard_normal((5, 4)), rng.integers(0, 4, size=5),
                      name="L2Regularizer + cross-entropy")


def _l2_alone(rng):
    """R(w) = lambda/2 ||w||^2 checked as a 'loss' of its weights."""
    w = rng.standard_normal((3, 4))
    reg = L2Regularizer(w, 0.1, name="l2")

    class _Penalty:
        name = "L2Regularizer"

        def forward(self, logits, targets):
            return reg.forward()

        def backward_inputs(self, logits, targets):
            return np.zeros_like(logits)

        def backward_params(self, logits=None, targets=None):
            return reg.backward_params()

    return check_loss(_Penalty(), np.zeros((1, 1)), np.zeros(1, dtype=np.int64), name="L2Regularizer")


def _lab_net(rng):
    net = lab_net(conv1_width=4, conv2_width=6, fc_width=16, dtype=F64, rng=rng)
    return check_layer(net, rng.standard_normal((2, 1, 28, 28)), rng=rng, name="lab network (small widths)")


def builtin_cases():
    """[(name, rng -> CheckResult), ...] of every built-in check."""
    return [
        _conv("Conv 3x3", 2, 3, 3, (2, 2, 6, 5)),
        _conv("Conv 5x5 same", 1, 4, 5, (2, 1, 7, 7), padding="same"),
        _conv("Conv 2x3 stride (2,1) pad (1,0)", 3, 2, (2, 3), (2, 3, 7, 6), stride=(2, 1), padding=(1, 0)),
        _conv("Conv 3x2 stride 3 odd size", 2, 3, (3, 2), (3, 2, 8, 7), stride=3, padding=1),
        _conv("Conv 1x1", 4, 3, 1, (2, 4, 3, 5)),
        _conv("Conv 3x3 dilation 2", 2, 2, 3, (2, 2, 9, 8), dilation=2, padding=1),
        _conv("Conv no bias", 2, 3, 3, (2, 2, 5, 5), bias=False),
        _pool("MaxPool 2x2", 2, (2, 3, 6, 6)),
        _pool("MaxPool 2x2 odd size", 2, (2, 2, 7, 5)),
        _pool("MaxPool 3x3 stride 2 overlapping", 3, (2, 2, 9, 8), stride=2),
        _pool("MaxPool 3x2 stride 1 pad 1", (3, 2), (1, 2, 5, 6), stride=1, padding=1),
        ("FC", lambda rng: check_layer(FC(7, 5, dtype=F64, rng=rng), rng.standard_normal((4, 7)), rng=rng, name="FC")),
        ("FC no bias", lambda rng: check_layer(FC(3, 4, bias=False, dtype=F64, rng=rng),
                                               rng.standard_normal((2, 3)), rng=rng, name="FC no bias")),
        ("ReLU", lambda rng: check_layer(ReLU(), away_from_zero((3, 2, 4, 4), rng), rng=rng, name="ReLU")),
        ("Flatten", lambda rng: check_layer(Flatten(), rng.standard_normal((2, 3, 4, 5)), rng=rng, name="Flatten")),
        _loss("SoftmaxCrossEntropy labels", 6, 5, _labels),
        _loss("SoftmaxCrossEntropy one-hot", 4, 3, _one_hot),
        _loss("SoftmaxCrossEntropy soft targets", 4, 6, _soft),
        ("L2Regularizer", _l2_alone),
        ("L2Regularizer + cross-entropy", _regularized),
        ("lab network", _lab_net),
    ]


def run_builtin(seed=0, select=None, tol=1e-6):
    """Run the built-in cases (those whose name contains ``select``) -> [CheckResult]."""
    results = []
    for name, case in builtin_cases():
        if select and select.lower() not in name.lower():
            continue
        result = case(np.random.default_rng(seed))
        for t in result.tensors:
            t.passed = t.max_rel_error < tol
        results.append(result)
    return results
