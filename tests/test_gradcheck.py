"""Backprop of every layer against central differences, in float64, to 1e-6.

Inputs are chosen where the derivative exists: pooling windows hold distinct
values further apart than the finite-difference step, ReLU inputs stay away
from 0. The last tests show the checker itself can fail.
"""
import numpy as np
import pytest

from minidl.gradcheck import check_layer, check_loss, numerical_gradient, relative_error
from minidl.layers import FC, Conv, Flatten, L2Regularizer, MaxPool, RegularizedLoss, ReLU, SoftmaxCrossEntropy
from minidl.models import lab_net
from minidl.layers import Sequential

F64 = np.float64
TOL = 1e-6


def distinct(shape, rng, spacing=1e-2):
    """Values at least ``spacing`` apart in random order: no ties anywhere."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * spacing).reshape(shape)


def away_from_zero(shape, rng, margin=1e-2):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.copysign(margin, x), x)


def assert_passes(result):
    assert result.tensors, "nothing was checked"
    assert result.passed, result.report()
    assert result.max_rel_error < TOL, result.report()


# name, layer factory, input factory
LAYER_CASES = [
    ("conv-basic", lambda: Conv(2, 3, 3, dtype=F64, rng=0), lambda r: r.standard_normal((2, 2, 5, 5))),
    ("conv-stride-padding", lambda: Conv(3, 2, 3, stride=2, padding=1, dtype=F64, rng=0),
     lambda r: r.standard_normal((2, 3, 6, 7))),
    ("conv-non-square", lambda: Conv(2, 3, (2, 3), stride=(2, 1), padding=(0, 1), dtype=F64, rng=0),
     lambda r: r.standard_normal((3, 2, 5, 4))),
    ("conv-odd-sizes", lambda: Conv(1, 2, (3, 1), stride=(2, 3), dtype=F64, rng=0),
     lambda r: r.standard_normal((2, 1, 7, 5))),
    ("conv-dilation", lambda: Conv(2, 2, (2, 3), dilation=(2, 1), padding=(1, 2), dtype=F64, rng=0),
     lambda r: r.standard_normal((2, 2, 6, 5))),
    ("conv-same", lambda: Conv(2, 2, (3, 5), padding="same", dtype=F64, rng=0),
     lambda r: r.standard_normal((1, 2, 4, 6))),
    ("conv-no-bias-1x1", lambda: Conv(3, 2, 1, bias=False, dtype=F64, rng=0),
     lambda r: r.standard_normal((2, 3, 3, 2))),
    ("maxpool-2x2", lambda: MaxPool(2), lambda r: distinct((2, 3, 4, 6), r)),
    ("maxpool-odd", lambda: MaxPool(2), lambda r: distinct((2, 2, 5, 7), r)),
    ("maxpool-overlapping", lambda: MaxPool(3, stride=1), lambda r: distinct((2, 2, 5, 6), r)),
    ("maxpool-non-square-padding", lambda: MaxPool((3, 2), stride=(2, 1), padding=(1, 1)),
     lambda r: distinct((1, 2, 6, 5), r)),
    ("fc", lambda: FC(7, 4, dtype=F64, rng=0), lambda r: r.standard_normal((3, 7))),
    ("relu", lambda: ReLU(), lambda r: away_from_zero((2, 3, 4), r)),
    ("flatten", lambda: Flatten(), lambda r: r.standard_normal((2, 3, 2, 2))),
    ("sequential-nested", lambda: Sequential([
        Sequential([Conv(1, 2, (3, 2), padding=1, dtype=F64, rng=0), ReLU()]),
        MaxPool(2), Flatten(), FC(2 * 3 * 3, 3, dtype=F64, rng=1)]),
     lambda r: r.standard_normal((2, 1, 6, 5))),
]


@pytest.mark.parametrize("name,make,make_x", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_gradients(name, make, make_x):
    rng = np.random.default_rng(7)
    layer = make()
    for _, p in layer.params():
        if p.ndim == 1:                      # a non-zero bias, so its gradient path is exercised
            p[...] = rng.standard_normal(p.shape)
    result = check_layer(layer, make_x(rng), rng=rng, name=name)
    assert_passes(result)
    assert [t.name for t in result.tensors] == ["input"] + [n for n, _ in layer.params()]


def test_the_whole_lab_net():
    """The lab architecture (conv-pool-relu twice, FC-relu-FC), narrowed so every parameter is checked."""
    net = lab_net(image_size=8, conv1_width=2, conv2_width=3, fc_width=6, num_classes=4, dtype=F64, rng=0)
    rng = np.random.default_rng(3)
    result = check_layer(net, rng.standard_normal((2, 1, 8, 8)), rng=rng, name="lab_net")
    assert_passes(result)
    assert len(result.tensors) == 1 + 8


@pytest.mark.parametrize("kind", ["labels", "one-hot", "soft"])
def test_softmax_cross_entropy_gradient(kind):
    rng = np.random.default_rng(11)
    logits = 3 * rng.standard_normal((4, 5))
    labels = rng.integers(0, 5, 4)
    targets = {"labels": labels, "one-hot": np.eye(5)[labels],
               "soft": rng.dirichlet(np.ones(5), size=4)}[kind]
    assert_passes(check_loss(SoftmaxCrossEntropy(), logits, targets))


def test_regularized_loss_gradient_includes_the_penalty():
    rng = np.random.default_rng(5)
    fc = FC(4, 3, dtype=F64, rng=0)
    conv = Conv(1, 2, 2, dtype=F64, rng=1)
    loss = RegularizedLoss(SoftmaxCrossEntropy(), [L2Regularizer(fc.weights, 0.3),
                                                   L2Regularizer(conv.weights, 1e-2)])
    result = check_loss(loss, rng.standard_normal((3, 3)), np.array([0, 2, 1]))
    assert_passes(result)
    assert len(result.tensors) == 3          # logits and the two penalised weight arrays
    np.testing.assert_allclose(result.tensors[1].analytic, 0.3 * fc.weights)


# ------------------------------------------------------------ the checker
def test_relative_error_by_hand():
    rel, abs_err = relative_error(np.array([1.0, -2.0, 4.0]), np.array([1.0, -2.5, 3.0]))
    assert abs_err == 1.0 and rel == pytest.approx(1.0 / 4.0)
    assert relative_error(np.zeros(3), np.zeros(3)) == (0.0, 0.0)


def test_numerical_gradient_of_a_known_function_and_restores_the_array():
    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    saved = x.copy()
    grad = numerical_gradient(lambda: float(np.sum(x ** 3)), x)
    np.testing.assert_allclose(grad, 3 * saved ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, saved)


def test_check_layer_leaves_the_parameters_as_they_were():
    conv = Conv(2, 2, 3, padding=1, dtype=F64, rng=0)
    saved = [a.copy() for _, a in conv.params()]
    check_layer(conv, np.random.default_rng(0).standard_normal((1, 2, 4, 4)), rng=0)
    for (_, a), b in zip(conv.params(), saved):
        np.testing.assert_array_equal(a, b)


def test_check_layer_refuses_float32():
    with pytest.raises(ValueError, match="float64"):
        check_layer(Conv(1, 1, 2, dtype=np.float32, rng=0), np.ones((1, 1, 3, 3)))


class LeakyWrongReLU(ReLU):
    """A deliberately wrong backward: forgets the mask (the derivative of the identity)."""

    def backward_inputs(self, grad_out):
        return grad_out.copy()


class ScaledWrongReLU(ReLU):
    """Subtly wrong: off by 1 % everywhere."""

    def backward_inputs(self, grad_out):
        return 1.01 * super().backward_inputs(grad_out)


class TransposedWrongConv(Conv):
    """Weight gradient with the kernel axes swapped: right shape for a square kernel, wrong values."""

    def backward_params(self, grad_out):
        pairs = super().backward_params(grad_out)
        (w, gw), rest = pairs[0], pairs[1:]
        return [(w, gw.transpose(0, 1, 3, 2).copy())] + rest


@pytest.mark.parametrize("layer", [LeakyWrongReLU(), ScaledWrongReLU()], ids=["no-mask", "scaled"])
def test_gradcheck_catches_a_wrong_relu(layer):
    x = away_from_zero((3, 4), np.random.default_rng(0))
    result = check_layer(layer, x, rng=0)
    assert not result.passed
    assert result.tensors[0].name == "input" and result.tensors[0].max_rel_error > 1e-3
    assert "FAIL" in result.report() and "worst at" in result.report()


def test_gradcheck_catches_a_wrong_weight_gradient():
    conv = TransposedWrongConv(1, 2, 3, dtype=F64, rng=0)
    result = check_layer(conv, np.random.default_rng(1).standard_normal((2, 1, 5, 5)), rng=0)
    by_name = {t.name: t for t in result.tensors}
    assert by_name["input"].passed and by_name["bias"].passed
    assert not by_name["weights"].passed and not result.passed


def test_gradcheck_catches_a_wrong_loss_gradient():
    class WrongLoss(SoftmaxCrossEntropy):
        def backward_inputs(self, logits, targets):
            return super().backward_inputs(logits, targets) * logits.shape[0]   # forgot the 1/N

    rng = np.random.default_rng(2)
    result = check_loss(WrongLoss(), rng.standard_normal((3, 4)), np.array([0, 1, 3]))
    assert not result.passed


def test_an_exactly_zero_gradient_passes_but_a_wrong_one_does_not():
    """A conv bias before BatchNorm has gradient exactly 0: numeric noise must not fail it,
    while a wrong nonzero gradient of the same tensor must still fail."""
    from minidl.gradcheck import check_layer
    from minidl.layers import BatchNorm, Conv
    from minidl.layers import Sequential

    rng = np.random.default_rng(3)
    net = Sequential([Conv(2, 3, 3, padding=1, dtype=np.float64, rng=rng), BatchNorm(3, dtype=np.float64)])
    x = rng.standard_normal((4, 2, 5, 5))
    result = check_layer(net, x, rng=rng)
    bias = [t for t in result.tensors if t.name.endswith("bias") and t.name.startswith("0.")][0]
    assert np.all(bias.analytic == 0) or np.abs(bias.analytic).max() < 1e-12
    assert result.passed, result.report()

    class WrongBias(Conv):
        def backward_params(self, grad_out):
            pairs = super().backward_params(grad_out)
            return [pairs[0], (pairs[1][0], pairs[1][1] + 1e-3)]

        def backprop(self, grad_out, need_input_grad=True):
            return (self.backward_inputs(grad_out) if need_input_grad else None), self.backward_params(grad_out)

    wrong = Sequential([WrongBias(2, 3, 3, padding=1, dtype=np.float64, rng=rng), BatchNorm(3, dtype=np.float64)])
    assert not check_layer(wrong, x, rng=rng).passed
