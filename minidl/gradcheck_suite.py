"""The built-in gradient checks that ``check_grads.py`` runs: every layer in several configurations.

Each case is a function ``rng -> CheckResult``. Inputs are "well conditioned":
away from the kinks of piecewise-linear functions (ReLU inputs are kept away
from 0, pooling windows hold distinct values further apart than the finite-
difference step), so central differences measure the derivative that backprop
computes.
"""
import numpy as np

from .gradcheck import check_layer, check_loss, passes
from .layers import FC, Conv, Flatten, L2Regularizer, MaxPool, ReLU, RegularizedLoss, SoftmaxCrossEntropy
from .layers import (AvgPool, BatchNorm, Dropout, GlobalAvgPool, LeakyReLU, LocalResponseNorm,
                     MeanSquaredError, MulticlassHingeLoss, Residual, Sigmoid, Tanh, resnet_block)
from .layers import Sequential
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


# ------------------------------------------------------------ the CNN toolbox
def _avgpool(name, k, shape, **kw):
    return name, lambda rng: check_layer(AvgPool(k, **kw), rng.standard_normal(shape), rng=rng, name=name)


def _batchnorm(name, shape, training=True):
    def case(rng):
        bn = BatchNorm(shape[1], dtype=F64)
        bn.gamma[:] = rng.standard_normal(shape[1])
        bn.beta[:] = rng.standard_normal(shape[1])
        if not training:  # running statistics away from their initial 0 and 1
            for _ in range(3):
                bn.forward(rng.standard_normal(shape) * 2 + 1)
            bn.eval()
        return check_layer(bn, rng.standard_normal(shape) * 3 + 0.5, rng=rng, name=name)
    return name, case


def _lrn(name, size, shape, alpha=0.5, beta=0.75, k=1.5):
    return name, lambda rng: check_layer(LocalResponseNorm(size, alpha=alpha, beta=beta, k=k),
                                         rng.standard_normal(shape), rng=rng, name=name)


def _dropout(name, p, shape):
    return name, lambda rng: check_layer(Dropout(p, rng=rng).freeze_mask(), rng.standard_normal(shape),
                                         rng=rng, name=name)


def _residual_identity(rng):
    """relu(body(x) + x) with body conv-BN-ReLU-conv-BN keeping the shape (BatchNorm training mode)."""
    # no conv bias before BatchNorm: BN subtracts the mean, so that bias's gradient is exactly 0
    body = Sequential([Conv(3, 3, 3, padding=1, bias=False, dtype=F64, rng=rng), BatchNorm(3, dtype=F64), ReLU(),
                       Conv(3, 3, 3, padding=1, bias=False, dtype=F64, rng=rng), BatchNorm(3, dtype=F64)])
    return check_layer(Residual(body), rng.standard_normal((2, 3, 5, 4)), rng=rng,
                       name="Residual identity shortcut")


def _residual_projection(rng):
    block = resnet_block(2, 4, stride=2, dtype=F64, rng=rng)
    return check_layer(block, rng.standard_normal((3, 2, 7, 6)), rng=rng,
                       name="Residual projection shortcut (resnet_block 2->4 stride 2)")


def _residual_linear(rng):
    """body(x) + shortcut(x) without the final ReLU; both branches plain convolutions."""
    block = Residual(Conv(2, 3, 3, padding=1, dtype=F64, rng=rng), Conv(2, 3, 1, dtype=F64, rng=rng), relu=False)
    return check_layer(block, rng.standard_normal((2, 2, 4, 5)), rng=rng, name="Residual no ReLU, conv shortcut")


def _small_resnet(rng):
    net = Sequential([Conv(1, 3, 3, padding=1, bias=False, dtype=F64, rng=rng), BatchNorm(3, dtype=F64), ReLU(),
                      resnet_block(3, 3, dtype=F64, rng=rng), resnet_block(3, 4, stride=2, dtype=F64, rng=rng),
                      GlobalAvgPool(), FC(4, 5, dtype=F64, rng=rng)])
    return check_layer(net, rng.standard_normal((3, 1, 6, 6)), rng=rng, name="small residual network")


def hinge_logits(rng, n, c, labels, delta, margin=0.05):
    """Logits whose hinge margins x_nj - x_ny + delta all keep |.| >= margin: away from the kinks."""
    rows = np.arange(n)
    while True:
        logits = rng.standard_normal((n, c)) * 2
        margins = logits - logits[rows, labels][:, None] + delta
        margins[rows, labels] = 1.0
        if np.abs(margins).min() >= margin:
            return logits


def _hinge(name, n, c, delta=1.0, one_hot=False):
    def case(rng):
        labels = rng.integers(0, c, size=n)
        logits = hinge_logits(rng, n, c, labels, delta)
        targets = np.eye(c)[labels] if one_hot else labels
        return check_loss(MulticlassHingeLoss(delta), logits, targets, name=name)
    return name, case


def _mse(name, n, d, labels=False):
    def case(rng):
        targets = rng.integers(0, d, size=n) if labels else rng.standard_normal((n, d))
        return check_loss(MeanSquaredError(), rng.standard_normal((n, d)) * 2, targets, name=name)
    return name, case


def toolbox_cases():
    """Checks of pooling, activations, normalisation, dropout, residual blocks and the extra losses."""
    return [
        _avgpool("AvgPool 2x2", 2, (2, 3, 6, 6)),
        _avgpool("AvgPool 3x3 stride 2 pad 1 odd size", 3, (2, 2, 7, 9), stride=2, padding=1),
        _avgpool("AvgPool 2x3 stride (1,2) pad 1", (2, 3), (1, 2, 5, 6), stride=(1, 2), padding=1),
        _avgpool("AvgPool 3x3 stride 1 overlapping", 3, (2, 1, 5, 5), stride=1),
        ("GlobalAvgPool", lambda rng: check_layer(GlobalAvgPool(), rng.standard_normal((3, 4, 5, 2)), rng=rng,
                                                  name="GlobalAvgPool")),
        ("Tanh", lambda rng: check_layer(Tanh(), 2 * rng.standard_normal((2, 3, 4, 5)), rng=rng, name="Tanh")),
        ("Sigmoid", lambda rng: check_layer(Sigmoid(), 4 * rng.standard_normal((3, 4, 5)), rng=rng,
                                            name="Sigmoid")),
        ("LeakyReLU", lambda rng: check_layer(LeakyReLU(), away_from_zero((2, 3, 4, 4), rng), rng=rng,
                                              name="LeakyReLU")),
        ("LeakyReLU slope 0.2 2-d", lambda rng: check_layer(LeakyReLU(0.2), away_from_zero((5, 7), rng), rng=rng,
                                                            name="LeakyReLU slope 0.2 2-d")),
        _batchnorm("BatchNorm 4-d training", (4, 3, 5, 6)),
        _batchnorm("BatchNorm 2-d training", (6, 5)),
        _batchnorm("BatchNorm 4-d eval", (3, 2, 4, 3), training=False),
        _lrn("LocalResponseNorm size 1", 1, (2, 6, 3, 4)),
        _lrn("LocalResponseNorm size 2", 2, (2, 6, 3, 4)),
        _lrn("LocalResponseNorm size 3", 3, (2, 6, 3, 4), alpha=1.0, beta=0.5, k=2.0),
        _lrn("LocalResponseNorm size 5", 5, (2, 7, 3, 3)),
        _lrn("LocalResponseNorm size 8 > C", 8, (1, 5, 4, 3), alpha=2.0, beta=0.75, k=1.0),
        _dropout("Dropout p=0.5 fixed mask", 0.5, (2, 3, 4, 5)),
        _dropout("Dropout p=0.2 fixed mask 2-d", 0.2, (6, 7)),
        ("Residual identity shortcut", _residual_identity),
        ("Residual projection shortcut", _residual_projection),
        ("Residual no ReLU", _residual_linear),
        ("small residual network", _small_resnet),
        _hinge("MulticlassHingeLoss labels", 6, 5),
        _hinge("MulticlassHingeLoss delta 0.5 one-hot", 5, 4, delta=0.5, one_hot=True),
        _mse("MeanSquaredError", 5, 3),
        _mse("MeanSquaredError labels", 4, 6, labels=True),
    ]


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
    ] + toolbox_cases()


def run_builtin(seed=0, select=None, tol=1e-6):
    """Run the built-in cases (those whose name contains ``select``) -> [CheckResult]."""
    results = []
    for name, case in builtin_cases():
        if select and select.lower() not in name.lower():
            continue
        result = case(np.random.default_rng(seed))
        for t in result.tensors:
            t.passed = passes(t.max_rel_error, t.max_abs_error, tol)
        results.append(result)
    return results
