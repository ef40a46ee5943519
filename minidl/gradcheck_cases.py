"""The built-in gradient checks: every layer and loss in several configurations.

``check_grads.py`` prints them as a table; the test suite runs each as one test.
A ``Case`` is a name and a function ``(rng, tol) -> CheckResult``.

Inputs are chosen where the derivative exists: pooling windows hold distinct
values further apart than the finite-difference step, ReLU inputs and hinge
margins stay away from their kinks. Shapes are awkward on purpose: N, C, H, W
all different, non-square kernels, and stride, padding and dilation that differ
between the two axes (a kernel that mixes up H and W fails here).
"""
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .gradcheck import check_layer, check_loss
from .layers import (FC, AdaptiveAvgPool, AvgPool, BatchNorm, Conv, Dropout, Flatten, GlobalAvgPool,
                     L2Regularizer, LeakyReLU, LocalResponseNorm, MaxPool, MeanSquaredError, MulticlassHingeLoss,
                     RegularizedLoss, ReLU, Residual, Sigmoid, SoftmaxCrossEntropy, Tanh, resnet_block)
from .models import lab_net
from . import Sequential

F64 = np.float64


@dataclass(frozen=True)
class Case:
    """One built-in check: ``run(rng, tol) -> CheckResult``."""
    name: str
    run: Callable

    @property
    def id(self):
        """The name as a test id: 'Conv 2x3 stride (1,2)' -> 'conv-2x3-stride-1,2'."""
        return re.sub(r"[^a-z0-9.,+=]+", "-", self.name.lower()).strip("-")


# ------------------------------------------------------------------- inputs
def distinct_values(shape, rng, spacing=1e-2):
    """A random arrangement of values at least ``spacing`` apart: no ties, no near-ties."""
    size = int(np.prod(shape))
    return (rng.permutation(size) - size / 2).reshape(shape) * spacing


def away_from_zero(shape, rng, margin=1e-2):
    """Standard normal values with |x| >= margin (ReLU's kink is at 0)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.copysign(margin, x), x)


def hinge_logits(rng, n, c, labels, delta, margin=0.05):
    """Logits whose hinge margins x_nj - x_ny + delta all keep |.| >= margin: away from the kinks."""
    rows = np.arange(n)
    while True:
        logits = rng.standard_normal((n, c)) * 2
        margins = logits - logits[rows, labels][:, None] + delta
        margins[rows, labels] = 1.0
        if np.abs(margins).min() >= margin:
            return logits


def normal(*shape):
    """An input factory: standard normal values of ``shape``."""
    return lambda rng: rng.standard_normal(shape)


# ---------------------------------------------------------- case factories
def layer_case(name, make_layer, make_input):
    """check_layer(make_layer(rng), make_input(rng))."""
    def run(rng, tol=1e-6):
        layer = make_layer(rng)
        return check_layer(layer, make_input(rng), tol=tol, rng=rng, name=name)
    return Case(name, run)


def loss_case(name, make_loss, make_logits, make_targets):
    """check_loss(make_loss(rng), logits, targets); make_targets(rng, logits)."""
    def run(rng, tol=1e-6):
        loss = make_loss(rng)
        logits = make_logits(rng)
        return check_loss(loss, logits, make_targets(rng, logits), tol=tol, name=name)
    return Case(name, run)


def conv(c, f, kernel, **kw):
    """A float64 Conv factory with a random (non-zero) bias."""
    def make(rng):
        layer = Conv(c, f, kernel, dtype=F64, rng=rng, **kw)
        if layer.bias is not None:
            layer.bias[...] = rng.standard_normal(layer.bias.shape)
        return layer
    return make


def batchnorm(channels, training=True, shape=None):
    def make(rng):
        bn = BatchNorm(channels, dtype=F64)
        bn.gamma[:] = rng.standard_normal(channels)
        bn.beta[:] = rng.standard_normal(channels)
        if not training:  # running statistics away from their initial 0 and 1
            for _ in range(3):
                bn.forward(rng.standard_normal(shape) * 2 + 1)
            bn.eval()
        return bn
    return make


def labels(rng, logits):
    return rng.integers(0, logits.shape[1], size=logits.shape[0])


def one_hot(rng, logits):
    return np.eye(logits.shape[1])[labels(rng, logits)]


def soft(rng, logits):
    p = rng.random(logits.shape) + 0.1
    return p / p.sum(axis=1, keepdims=True)


def hinge_case(name, n, c, delta=1.0, one_hot_targets=False):
    def run(rng, tol=1e-6):
        y = rng.integers(0, c, size=n)
        targets = np.eye(c)[y] if one_hot_targets else y
        return check_loss(MulticlassHingeLoss(delta), hinge_logits(rng, n, c, y, delta), targets, tol=tol, name=name)
    return Case(name, run)


class PenaltyOnly:
    """L2Regularizer seen as a loss: the value is the penalty, the logits do not matter."""

    def __init__(self, regularizer):
        self.regularizer = regularizer

    def forward(self, logits, targets):
        return self.regularizer.forward()

    def backward_inputs(self, logits, targets):
        return np.zeros_like(logits)

    def backward_params(self, logits=None, targets=None):
        return self.regularizer.backward_params()


def regularized(rng):
    """Cross-entropy plus penalties on two layers' weights."""
    fc = FC(4, 3, dtype=F64, rng=rng)
    conv_layer = Conv(1, 2, 2, dtype=F64, rng=rng)
    return RegularizedLoss(SoftmaxCrossEntropy(), [L2Regularizer(fc.weights, 0.3, name="l2_fc"),
                                                   L2Regularizer(conv_layer.weights, 1e-2, name="l2_conv")])


def residual_identity(rng):
    """relu(body(x) + x), body conv-BN-ReLU-conv-BN keeping the shape (BatchNorm training mode).

    The convolutions have no bias: BatchNorm subtracts the mean, so that bias's gradient is exactly 0.
    """
    return Residual(Sequential([Conv(3, 3, 3, padding=1, bias=False, dtype=F64, rng=rng), BatchNorm(3, dtype=F64),
                                ReLU(), Conv(3, 3, 3, padding=1, bias=False, dtype=F64, rng=rng),
                                BatchNorm(3, dtype=F64)]))


def small_resnet(rng):
    return Sequential([Conv(1, 3, 3, padding=1, bias=False, dtype=F64, rng=rng), BatchNorm(3, dtype=F64), ReLU(),
                       resnet_block(3, 3, dtype=F64, rng=rng), resnet_block(3, 4, stride=2, dtype=F64, rng=rng),
                       GlobalAvgPool(), FC(4, 5, dtype=F64, rng=rng)])


def conv_pool_fc(rng):
    """Sequentials nested: [conv 3x2 pad 1, ReLU], maxpool, flatten, FC."""
    return Sequential([Sequential([conv(1, 2, (3, 2), padding=1)(rng), ReLU()]),
                       MaxPool(2), Flatten(), FC(2 * 3 * 3, 3, dtype=F64, rng=rng)])


def conv_bias_before_batchnorm(rng):
    """A conv bias whose gradient is exactly zero (BatchNorm removes it): the noise floor at work."""
    return Sequential([conv(2, 3, 3, padding=1)(rng), BatchNorm(3, dtype=F64)])


# -------------------------------------------------------------------- cases
CASES = [
    # convolution: (C, F, kernel), input (N, C, H, W)
    layer_case("Conv 3x3", conv(2, 3, 3), normal(2, 2, 6, 5)),
    layer_case("Conv 3x3 stride 2 pad 1", conv(3, 2, 3, stride=2, padding=1), normal(2, 3, 6, 7)),
    layer_case("Conv 5x5 same", conv(1, 4, 5, padding="same"), normal(2, 1, 7, 7)),
    layer_case("Conv 3x5 same", conv(2, 2, (3, 5), padding="same"), normal(1, 2, 4, 6)),
    layer_case("Conv 2x3 stride (2,1) pad (1,0)", conv(3, 2, (2, 3), stride=(2, 1), padding=(1, 0)),
               normal(2, 3, 7, 6)),
    layer_case("Conv 3x2 stride 3 pad 1", conv(2, 3, (3, 2), stride=3, padding=1), normal(3, 2, 8, 7)),
    layer_case("Conv 3x1 stride (2,3)", conv(1, 2, (3, 1), stride=(2, 3)), normal(2, 1, 7, 5)),
    layer_case("Conv 1x1", conv(4, 3, 1), normal(2, 4, 3, 5)),
    layer_case("Conv 1x1 no bias", conv(3, 2, 1, bias=False), normal(2, 3, 3, 2)),
    layer_case("Conv 3x3 no bias", conv(2, 3, 3, bias=False), normal(2, 2, 5, 5)),
    layer_case("Conv 3x3 dilation 2 pad 1", conv(2, 2, 3, dilation=2, padding=1), normal(2, 2, 9, 8)),
    # dilation and stride differ per axis, and differently: a kernel that swaps DH and DW or SH and SW fails
    layer_case("Conv 2x3 stride (1,2) dilation (2,1) pad (1,2)",
               conv(2, 3, (2, 3), stride=(1, 2), dilation=(2, 1), padding=(1, 2)), normal(2, 2, 7, 9)),
    layer_case("Conv 3x2 stride (2,1) dilation (1,3) pad (2,1)",
               conv(3, 2, (3, 2), stride=(2, 1), dilation=(1, 3), padding=(2, 1)), normal(3, 3, 8, 6)),
    # max pooling: distinct input values
    layer_case("MaxPool 2x2", lambda rng: MaxPool(2), lambda rng: distinct_values((2, 3, 6, 6), rng)),
    layer_case("MaxPool 2x2 odd size", lambda rng: MaxPool(2), lambda rng: distinct_values((2, 2, 7, 5), rng)),
    layer_case("MaxPool 3x3 stride 2 overlapping", lambda rng: MaxPool(3, stride=2),
               lambda rng: distinct_values((2, 2, 9, 8), rng)),
    layer_case("MaxPool 3x3 stride 1 overlapping", lambda rng: MaxPool(3, stride=1),
               lambda rng: distinct_values((2, 2, 5, 6), rng)),
    layer_case("MaxPool 3x2 stride 1 pad 1", lambda rng: MaxPool((3, 2), stride=1, padding=1),
               lambda rng: distinct_values((1, 2, 5, 6), rng)),
    layer_case("MaxPool 3x2 stride (2,1) pad (1,1)", lambda rng: MaxPool((3, 2), stride=(2, 1), padding=(1, 1)),
               lambda rng: distinct_values((1, 2, 6, 5), rng)),
    layer_case("MaxPool 2x3 stride (1,2) pad (0,1)", lambda rng: MaxPool((2, 3), stride=(1, 2), padding=(0, 1)),
               lambda rng: distinct_values((2, 3, 5, 8), rng)),
    # average pooling
    layer_case("AvgPool 2x2", lambda rng: AvgPool(2), normal(2, 3, 6, 6)),
    layer_case("AvgPool 3x3 stride 2 pad 1 odd size", lambda rng: AvgPool(3, stride=2, padding=1), normal(2, 2, 7, 9)),
    layer_case("AvgPool 2x3 stride (1,2) pad 1", lambda rng: AvgPool((2, 3), stride=(1, 2), padding=1),
               normal(1, 2, 5, 6)),
    layer_case("AvgPool 3x3 stride 1 overlapping", lambda rng: AvgPool(3, stride=1), normal(2, 1, 5, 5)),
    layer_case("GlobalAvgPool", lambda rng: GlobalAvgPool(), normal(3, 4, 5, 2)),
    layer_case("AdaptiveAvgPool 7x5 to 3x2 (overlaps)", lambda rng: AdaptiveAvgPool((3, 2)),
               normal(2, 3, 7, 5)),
    layer_case("AdaptiveAvgPool 2x3 to 4x5 (repeats)", lambda rng: AdaptiveAvgPool((4, 5)), normal(2, 2, 2, 3)),
    # fully connected, activations, shape
    layer_case("FC", lambda rng: FC(7, 5, dtype=F64, rng=rng), normal(4, 7)),
    layer_case("FC no bias", lambda rng: FC(3, 4, bias=False, dtype=F64, rng=rng), normal(2, 3)),
    layer_case("Flatten", lambda rng: Flatten(), normal(2, 3, 4, 5)),
    layer_case("ReLU", lambda rng: ReLU(), lambda rng: away_from_zero((3, 2, 4, 4), rng)),
    layer_case("LeakyReLU", lambda rng: LeakyReLU(), lambda rng: away_from_zero((2, 3, 4, 4), rng)),
    layer_case("LeakyReLU slope 0.2 2-d", lambda rng: LeakyReLU(0.2), lambda rng: away_from_zero((5, 7), rng)),
    layer_case("Tanh", lambda rng: Tanh(), lambda rng: 2 * rng.standard_normal((2, 3, 4, 5))),
    layer_case("Sigmoid", lambda rng: Sigmoid(), lambda rng: 4 * rng.standard_normal((3, 4, 5))),
    # normalisation, dropout
    layer_case("BatchNorm 4-d training", batchnorm(3), lambda rng: rng.standard_normal((4, 3, 5, 6)) * 3 + 0.5),
    layer_case("BatchNorm 2-d training", batchnorm(5), lambda rng: rng.standard_normal((6, 5)) * 3 + 0.5),
    layer_case("BatchNorm 4-d eval", batchnorm(2, training=False, shape=(3, 2, 4, 3)),
               lambda rng: rng.standard_normal((3, 2, 4, 3)) * 3 + 0.5),
    layer_case("LocalResponseNorm size 1", lambda rng: LocalResponseNorm(1, alpha=0.5, beta=0.75, k=1.5),
               normal(2, 6, 3, 4)),
    layer_case("LocalResponseNorm size 2", lambda rng: LocalResponseNorm(2, alpha=0.5, beta=0.75, k=1.5),
               normal(2, 6, 3, 4)),
    layer_case("LocalResponseNorm size 3", lambda rng: LocalResponseNorm(3, alpha=1.0, beta=0.5, k=2.0),
               normal(2, 6, 3, 4)),
    layer_case("LocalResponseNorm size 4", lambda rng: LocalResponseNorm(4, alpha=1.5, beta=0.6, k=1.0),
               normal(2, 7, 3, 3)),
    layer_case("LocalResponseNorm size 5", lambda rng: LocalResponseNorm(5, alpha=0.5, beta=0.75, k=1.5),
               normal(2, 7, 3, 3)),
    layer_case("LocalResponseNorm size 6 > C", lambda rng: LocalResponseNorm(6, alpha=1.0, beta=1.0, k=0.5),
               normal(2, 4, 3, 2)),
    layer_case("LocalResponseNorm size 8 > C", lambda rng: LocalResponseNorm(8, alpha=2.0, beta=0.75, k=1.0),
               normal(1, 5, 4, 3)),
    layer_case("Dropout p=0.5 fixed mask", lambda rng: Dropout(0.5, rng=rng).freeze_mask(), normal(2, 3, 4, 5)),
    layer_case("Dropout p=0.2 fixed mask 2-d", lambda rng: Dropout(0.2, rng=rng).freeze_mask(), normal(6, 7)),
    # containers and networks
    layer_case("Sequential nested conv-ReLU-pool-FC", conv_pool_fc, normal(2, 1, 6, 5)),
    layer_case("Conv bias before BatchNorm (zero gradient)", conv_bias_before_batchnorm, normal(4, 2, 5, 5)),
    layer_case("Residual identity shortcut", residual_identity, normal(2, 3, 5, 4)),
    layer_case("Residual projection shortcut 2->4 stride 2", lambda rng: resnet_block(2, 4, stride=2, dtype=F64,
                                                                                      rng=rng), normal(3, 2, 7, 6)),
    layer_case("Residual no ReLU conv shortcut",
               lambda rng: Residual(Conv(2, 3, 3, padding=1, dtype=F64, rng=rng), Conv(2, 3, 1, dtype=F64, rng=rng),
                                    relu=False), normal(2, 2, 4, 5)),
    layer_case("small residual network", small_resnet, normal(3, 1, 6, 6)),
    layer_case("lab network 8x8 small widths",
               lambda rng: lab_net(image_size=8, conv1_width=2, conv2_width=3, fc_width=6, num_classes=4,
                                   dtype=F64, rng=rng), normal(2, 1, 8, 8)),
    # losses
    loss_case("SoftmaxCrossEntropy labels", lambda rng: SoftmaxCrossEntropy(),
              lambda rng: 3 * rng.standard_normal((6, 5)), labels),
    loss_case("SoftmaxCrossEntropy one-hot", lambda rng: SoftmaxCrossEntropy(),
              lambda rng: 3 * rng.standard_normal((4, 3)), one_hot),
    loss_case("SoftmaxCrossEntropy soft targets", lambda rng: SoftmaxCrossEntropy(),
              lambda rng: 3 * rng.standard_normal((4, 6)), soft),
    hinge_case("MulticlassHingeLoss labels", 6, 5),
    hinge_case("MulticlassHingeLoss delta 0.5 one-hot", 5, 4, delta=0.5, one_hot_targets=True),
    loss_case("MeanSquaredError", lambda rng: MeanSquaredError(), lambda rng: 2 * rng.standard_normal((5, 3)),
              lambda rng, logits: rng.standard_normal(logits.shape)),
    loss_case("MeanSquaredError labels", lambda rng: MeanSquaredError(), lambda rng: 2 * rng.standard_normal((4, 6)),
              labels),
    loss_case("L2Regularizer", lambda rng: PenaltyOnly(L2Regularizer(rng.standard_normal((3, 4)), 0.1)),
              lambda rng: np.zeros((1, 1)), lambda rng, logits: np.zeros(1, dtype=np.int64)),
    loss_case("L2Regularizer + cross-entropy", regularized, normal(3, 3), labels),
]


def select(text=None):
    """The cases whose name contains ``text`` (case-insensitive); all of them for None."""
    return [case for case in CASES if not text or text.lower() in case.name.lower()]


def run_cases(cases, seed=0, tol=1e-6):
    """[CheckResult] of each case, each with its own generator seeded by ``seed``."""
    return [case.run(np.random.default_rng(seed), tol) for case in cases]
