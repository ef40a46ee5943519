"""The gradient checker: every built-in case, and proof that the checker itself fails when it should.

Each case of ``minidl.gradcheck_cases`` (every layer and loss, several
configurations each) is one test here; ``check_grads.py`` prints the same cases
as a table. The suite runs once per backend, so each case runs on both kernels.
"""
import numpy as np
import pytest

from minidl.gradcheck import (check_directional, check_layer, check_loss, noise_floor, numerical_gradient, passes,
                              relative_error)
from minidl.gradcheck_cases import CASES, away_from_zero, distinct_values
from minidl.layers import BatchNorm, Conv, Layer, MaxPool, ReLU, SoftmaxCrossEntropy
from minidl import Sequential

F64 = np.float64
TOL = 1e-6


# ---------------------------------------------------------- the built-in cases
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_builtin_case(case):
    result = case.run(np.random.default_rng(0), TOL)
    assert result.tensors, "nothing was checked"
    assert result.passed, result.report()


def test_case_ids_are_unique_and_readable():
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids)
    assert "conv-2x3-stride-1,2-dilation-2,1-pad-1,2" in ids


def test_every_parameter_is_checked_under_its_name():
    net = Sequential([Conv(2, 3, (3, 2), dtype=F64, rng=0), ReLU(), Conv(3, 1, 1, bias=False, dtype=F64, rng=1)])
    result = check_layer(net, np.random.default_rng(0).standard_normal((2, 2, 5, 4)), rng=0)
    assert [t.name for t in result.tensors] == ["input"] + [name for name, _ in net.params()]
    assert len(result.tensors) == 4 and result.passed, result.report()


def test_a_regularized_loss_is_checked_with_its_penalised_weights():
    case = next(case for case in CASES if case.name == "L2Regularizer + cross-entropy")
    result = case.run(np.random.default_rng(0), TOL)
    assert [t.name for t in result.tensors] == ["logits", "param[0]", "param[1]"]
    assert result.passed, result.report()


# ------------------------------------------------------------------ pieces
def test_relative_error_by_hand():
    rel, abs_err = relative_error(np.array([1.0, -2.0, 4.0]), np.array([1.0, -2.5, 3.0]))
    assert abs_err == 1.0 and rel == pytest.approx(1.0 / 4.0)
    assert relative_error(np.zeros(3), np.zeros(3)) == (0.0, 0.0)


def test_the_pass_rule_by_hand():
    # relative error 1e-3 fails at tol 1e-6 unless the difference is under the noise floor
    assert not passes(1e-3, 1e-9, floor=1e-10, tol=1e-6)
    assert passes(1e-3, 1e-9, floor=1e-9, tol=1e-6)
    assert passes(1e-7, 5.0, floor=0.0, tol=1e-6)
    assert noise_floor(0.0, 1e-6) == 0.0
    assert noise_floor(2.0, 1e-6) == pytest.approx(2 * noise_floor(1.0, 1e-6))
    assert noise_floor(1.0, 1e-7) == pytest.approx(10 * noise_floor(1.0, 1e-6))


def test_numerical_gradient_of_a_known_function_and_restores_the_array():
    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    saved = x.copy()
    grad = numerical_gradient(lambda: float(np.sum(x ** 3)), x)
    np.testing.assert_allclose(grad, 3 * saved ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, saved)


def test_numerical_gradient_divides_by_the_step_actually_taken():
    """At 1e8 the spacing of float64 is 1.5e-8: 1e8 + 1e-6 is rounded by a percent of the step.
    The slope of f(x) = x[0] is still exactly 1 when the difference is divided by the real step."""
    x = np.array([1e8, 0.5])
    assert ((1e8 + 1e-6) - (1e8 - 1e-6)) / 2e-6 != pytest.approx(1.0, rel=1e-3)   # the trap
    np.testing.assert_array_equal(numerical_gradient(lambda: float(x[0]), x), [1.0, 0.0])


def test_check_layer_leaves_the_parameters_as_they_were():
    conv = Conv(2, 2, 3, padding=1, dtype=F64, rng=0)
    saved = [a.copy() for _, a in conv.params()]
    check_layer(conv, np.random.default_rng(0).standard_normal((1, 2, 4, 4)), rng=0)
    check_directional(conv, np.random.default_rng(0).standard_normal((1, 2, 4, 4)), rng=0)
    for (_, a), b in zip(conv.params(), saved):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("check", [check_layer, check_directional])
def test_the_checks_refuse_float32(check):
    with pytest.raises(ValueError, match="float64"):
        check(Conv(1, 1, 2, dtype=np.float32, rng=0), np.ones((1, 1, 3, 3)))


# ------------------------------------------------ layers with a wrong backward
class Scaled(Layer):
    """y = scale * x; ``wrong`` multiplies the returned gradient (1.0 is the right one)."""

    def __init__(self, scale, wrong=1.0):
        super().__init__()
        self.scale, self.wrong = scale, wrong

    def forward(self, x):
        return self.scale * x

    def backward_inputs(self, grad_out):
        return self.wrong * self.scale * grad_out


class NoMaskReLU(ReLU):
    """Forgets the mask: the derivative of the identity."""

    def backward_inputs(self, grad_out):
        return grad_out.copy()


class ScaledReLU(ReLU):
    """Off by 1 % everywhere."""

    def backward_inputs(self, grad_out):
        return 1.01 * super().backward_inputs(grad_out)


class TransposedWeightGradConv(Conv):
    """Weight gradient with the kernel axes swapped: right shape for a square kernel, wrong values."""

    def backward_params(self, grad_out):
        (w, gw), *rest = super().backward_params(grad_out)
        return [(w, gw.transpose(0, 1, 3, 2).copy())] + rest


class TransposedKernelConv(Conv):
    """Input gradient computed with the kernel transposed (KH and KW swapped)."""

    def backward_inputs(self, grad_out):
        kept = self.weights.copy()
        self.weights[...] = kept.transpose(0, 1, 3, 2)
        try:
            return super().backward_inputs(grad_out)
        finally:
            self.weights[...] = kept


class OffByFactorConv(Conv):
    """Input gradient 0.1 % too large."""

    def backward_inputs(self, grad_out):
        return 1.001 * super().backward_inputs(grad_out)


@pytest.mark.parametrize("layer", [NoMaskReLU(), ScaledReLU()], ids=["no-mask", "scaled"])
def test_check_layer_catches_a_wrong_relu(layer):
    result = check_layer(layer, away_from_zero((3, 4), np.random.default_rng(0)), rng=0)
    assert not result.passed
    assert result.tensors[0].name == "input" and result.tensors[0].max_rel_error > 1e-3
    assert "FAIL" in result.report() and "worst at" in result.report()


def test_the_worst_entry_is_reported_with_plain_integers():
    """The report names the worst entry as (0, 1, 2), not as (np.int64(0), ...)."""
    result = check_layer(MaxPool(2), np.full((1, 1, 2, 2), 3.0), upstream=np.ones((1, 1, 1, 1)))
    index, analytic, numeric = result.tensors[0].worst()
    assert all(type(i) is int for i in index)
    assert f"worst at {index}:" in result.report() and "np.int64" not in result.report()


def test_check_layer_catches_a_wrong_weight_gradient():
    conv = TransposedWeightGradConv(1, 2, 3, dtype=F64, rng=0)
    result = check_layer(conv, np.random.default_rng(1).standard_normal((2, 1, 5, 5)), rng=0)
    by_name = {t.name: t for t in result.tensors}
    assert by_name["input"].passed and by_name["bias"].passed
    assert not by_name["weights"].passed and not result.passed


def test_check_loss_catches_a_wrong_loss_gradient():
    class WrongLoss(SoftmaxCrossEntropy):
        def backward_inputs(self, logits, targets):
            return super().backward_inputs(logits, targets) * logits.shape[0]   # forgot the 1/N

    rng = np.random.default_rng(2)
    assert not check_loss(WrongLoss(), rng.standard_normal((3, 4)), np.array([0, 1, 3])).passed


@pytest.mark.parametrize("scale", [1e-9, 1.0, 1e9])
def test_a_wrong_backward_fails_at_every_scale(scale):
    """y = scale * x with backward 2 * scale * G is 50 % wrong whatever the scale; the right one passes."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    for check in (check_layer, check_directional):
        wrong = check(Scaled(scale, wrong=2.0), x, rng=0)
        assert not wrong.passed, wrong.report()
        assert wrong.tensors[0].max_rel_error == pytest.approx(0.5, rel=1e-6)
        right = check(Scaled(scale), x, rng=0)
        assert right.passed and right.max_rel_error < 1e-8, right.report()


def test_a_nan_gradient_fails():
    class NanScaled(Scaled):
        def backward_inputs(self, grad_out):
            grad = super().backward_inputs(grad_out)
            grad[0, 0] = np.nan
            return grad

    x = np.random.default_rng(0).standard_normal((2, 3))
    for check in (check_layer, check_directional):
        assert not check(NanScaled(1.0), x, rng=0).passed


def test_an_exactly_zero_gradient_passes_but_a_wrong_one_does_not():
    """A conv bias before BatchNorm has gradient exactly 0 and its central difference is rounding
    noise: the noise floor passes it; a wrong nonzero gradient of the same tensor still fails."""
    class WrongBias(Conv):
        def backprop(self, grad_out, need_input_grad=True):
            grad_x, (weights, bias) = super().backprop(grad_out, need_input_grad)
            return grad_x, [weights, (bias[0], bias[1] + 1e-4)]

        def backward_params(self, grad_out):
            return self.backprop(grad_out, need_input_grad=False)[1]

    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 2, 5, 5))
    for cls, ok in ((Conv, True), (WrongBias, False)):
        net = Sequential([cls(2, 3, 3, padding=1, dtype=F64, rng=1), BatchNorm(3, dtype=F64)])
        net.layers[0].bias[...] = [0.5, -1.0, 2.0]
        bias_name = net.params()[1][0]
        for check in (check_layer, check_directional):
            result = check(net, x, rng=0)
            bias = {t.name: t for t in result.tensors}[bias_name]
            assert result.passed is ok, result.report()
            if ok:
                assert np.abs(bias.analytic).max() < 1e-12
                assert bias.verdict == "ok (noise)" and 0 < bias.max_abs_error <= bias.noise_floor
            else:
                assert bias.verdict == "FAIL"


# ------------------------------------------------------ the directional check
@pytest.mark.parametrize("make_layer,make_x", [
    (lambda: Conv(3, 4, (3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1), dtype=F64, rng=0),
     lambda rng: rng.standard_normal((2, 3, 9, 8))),
    (lambda: MaxPool((3, 2), stride=(2, 1), padding=1), lambda rng: distinct_values((2, 3, 7, 6), rng)),
    (lambda: Sequential([Conv(3, 4, 3, padding=1, dtype=F64, rng=0), MaxPool(2)]),
     lambda rng: rng.standard_normal((2, 3, 10, 12))),
], ids=["conv", "maxpool", "conv+maxpool"])
def test_directional_check_passes_for_right_layers(make_layer, make_x):
    layer = make_layer()
    rng = np.random.default_rng(4)
    result = check_directional(layer, make_x(rng), directions=4, rng=rng)
    assert result.passed, result.report()
    assert [t.name for t in result.tensors] == ["input"] + [name for name, _ in layer.params()]
    for t in result.tensors:
        assert t.analytic.shape == (4,) and np.all(t.analytic != 0), "each direction gives one number"
        assert t.max_rel_error < 1e-8


@pytest.mark.parametrize("cls,wrong_tensor", [
    (OffByFactorConv, "input"), (TransposedKernelConv, "input"), (TransposedWeightGradConv, "weights")],
    ids=["input-off-by-0.1%", "input-transposed-kernel", "weights-transposed"])
def test_directional_check_catches_a_wrong_backward(cls, wrong_tensor):
    conv = cls(2, 3, 3, padding=1, dtype=F64, rng=0)
    result = check_directional(conv, np.random.default_rng(5).standard_normal((2, 2, 6, 7)), rng=0)
    assert not result.passed
    assert [t.name for t in result.tensors if not t.passed] == [wrong_tensor], result.report()


def test_directional_check_costs_one_forward_pair_per_direction_and_tensor():
    class Counting(Conv):
        forwards = 0

        def forward(self, x):
            Counting.forwards += 1
            return super().forward(x)

    conv = Counting(2, 3, 3, dtype=F64, rng=0)            # input, weights, bias
    check_directional(conv, np.random.default_rng(0).standard_normal((1, 2, 5, 5)), directions=5, rng=0)
    assert Counting.forwards == 1 + 3 * 5 * 2


def test_directional_check_on_a_photo_with_conv_and_max_pooling():
    """A real photo has flat regions, where max-pooling windows tie; a little noise breaks the ties
    and a small step keeps the perturbed maxima in place. A transposed kernel still fails."""
    skimage_data = pytest.importorskip("skimage.data")
    photo = skimage_data.coffee()[100:196, 200:328].astype(F64) / 255       # (96, 128, 3)
    rng = np.random.default_rng(6)
    x = photo.transpose(2, 0, 1)[None] + 1e-3 * rng.standard_normal((1, 3, 96, 128))
    net = Sequential([Conv(3, 4, 3, padding=1, dtype=F64, rng=0), MaxPool(2)])
    result = check_directional(net, x, eps=1e-8, rng=rng)
    assert result.passed, result.report()
    wrong = check_directional(TransposedKernelConv(3, 4, 3, padding=1, dtype=F64, rng=0), x, eps=1e-8, rng=rng)
    assert not wrong.tensors[0].passed and wrong.tensors[0].max_rel_error > 1e-3
