"""Layers against the naive loops of minidl/ops/naive.py and against hand-computed values.

Also: initialisation, output sizes, Sequential, and the robustness promises of
the layer contract (backward never modifies its arguments, is repeatable,
accepts non-contiguous arrays, and copes with changing batch sizes).
"""
import io
import math

import numpy as np
import pytest

from minidl import layers, ops
from minidl.layers import (FC, AvgPool, BatchNorm, Conv, Dropout, Flatten, GlobalAvgPool, L2Regularizer, LeakyReLU,
                           LocalResponseNorm, MaxPool, MeanSquaredError, MulticlassHingeLoss, RegularizedLoss, ReLU,
                           Residual, Sequential, Sigmoid, SoftmaxCrossEntropy, Tanh, resnet_block)
from minidl.models import lab_net
from minidl.ops import naive

DTYPES = [np.float32, np.float64]


def assert_close(actual, expected, dtype):
    """float64 to ~1e-12, float32 to ~1e-5 of the scale of the expected values."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    tol = 2e-5 if np.dtype(dtype) == np.float32 else 1e-12
    assert actual.shape == expected.shape
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=tol, atol=tol * scale)


def with_random_bias(layer, rng):
    layer.bias[...] = rng.standard_normal(layer.bias.shape)
    return layer


# ===================================================================== Conv
# C, F, (H, W), kernel, stride, padding, dilation, N
CONV_CASES = [
    (3, 2, (7, 5), (3, 2), (1, 2), (1, 0), (1, 1), 2),
    (2, 4, (6, 9), (2, 3), (2, 1), (0, 1), (1, 2), 3),
    (1, 3, (8, 5), (1, 3), (3, 1), (0, 2), (1, 1), 1),      # C == 1, N == 1
    (2, 1, (5, 7), (3, 1), (1, 1), (2, 0), (2, 1), 2),
    (3, 2, (5, 6), (5, 6), (1, 1), (0, 0), (1, 1), 4),      # kernel == input
    (2, 3, (3, 4), (5, 4), (2, 1), (1, 2), (1, 2), 2),      # kernel == padded input (along H)
    (3, 2, (9, 8), (3, 4), (2, 3), (1, 1), (2, 1), 2),      # strides that do not divide
    (4, 3, (4, 3), (1, 1), (1, 1), (0, 0), (1, 1), 3),      # 1x1 kernel
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c,f,hw,kernel,stride,padding,dilation,n", CONV_CASES)
def test_conv_matches_naive_direct_convolution(rng, dtype, c, f, hw, kernel, stride, padding, dilation, n):
    conv = with_random_bias(Conv(c, f, kernel, stride=stride, padding=padding, dilation=dilation,
                                 dtype=dtype, rng=1), rng)
    x = rng.standard_normal((n, c, *hw)).astype(dtype)
    y = conv.forward(x)
    assert y.dtype == dtype
    expected_y = naive.conv_forward(x, conv.weights, conv.bias, stride, padding, dilation)
    assert_close(y, expected_y, dtype)

    grad_out = rng.standard_normal(y.shape).astype(dtype)
    grad_x, grad_w, grad_b = naive.conv_backward(x, conv.weights, grad_out, stride, padding, dilation)
    dx = conv.backward_inputs(grad_out)
    assert dx.dtype == dtype
    assert_close(dx, grad_x, dtype)
    pairs = conv.backward_params(grad_out)
    assert [p is q for (p, _), q in zip(pairs, (conv.weights, conv.bias))] == [True, True]
    assert_close(pairs[0][1], grad_w, dtype)
    assert_close(pairs[1][1], grad_b, dtype)
    # backprop (the shared-work path Sequential uses) agrees with the two methods
    dx2, pairs2 = conv.backprop(grad_out)
    np.testing.assert_array_equal(dx2, dx)
    for (p1, g1), (p2, g2) in zip(pairs, pairs2):
        assert p1 is p2
        np.testing.assert_array_equal(g1, g2)
    assert conv.backprop(grad_out, need_input_grad=False)[0] is None


@pytest.mark.parametrize("kernel,dilation", [(3, 1), ((3, 5), 1), ((5, 3), (2, 1)), (1, 3)])
def test_conv_padding_same_keeps_the_size(rng, kernel, dilation):
    conv = with_random_bias(Conv(2, 3, kernel, padding="same", dilation=dilation, dtype=np.float64, rng=0), rng)
    x = rng.standard_normal((2, 2, 7, 6))
    y = conv.forward(x)
    assert y.shape == (2, 3, 7, 6)
    kh, kw = conv.kernel_size
    dh, dw = conv.dilation
    padding = (dh * (kh - 1) // 2, dw * (kw - 1) // 2)
    assert conv.padding == padding
    assert_close(y, naive.conv_forward(x, conv.weights, conv.bias, (1, 1), padding, conv.dilation), np.float64)


def test_conv_without_bias(rng):
    conv = Conv(2, 3, (2, 3), bias=False, dtype=np.float64, rng=0)
    assert conv.bias is None and [name for name, _ in conv.params()] == ["weights"]
    x = rng.standard_normal((2, 2, 4, 5))
    assert_close(conv.forward(x), naive.conv_forward(x, conv.weights, None), np.float64)
    assert len(conv.backward_params(np.ones((2, 3, 3, 3)))) == 1


@pytest.mark.parametrize("h,w,kernel,stride,padding,dilation", [
    (28, 28, 5, 1, 2, 1), (7, 5, (3, 2), (2, 3), (1, 0), 1), (9, 8, (3, 4), (2, 3), (1, 1), (2, 1)),
    (6, 11, (2, 5), (3, 2), (0, 2), (1, 2)), (4, 4, 4, 5, 0, 1),
])
def test_conv_output_size_is_pytorchs(rng, h, w, kernel, stride, padding, dilation):
    conv = Conv(1, 2, kernel, stride=stride, padding=padding, dilation=dilation, dtype=np.float64)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    expected = (math.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh + 1),
                math.floor((w + 2 * pw - dw * (kw - 1) - 1) / sw + 1))
    assert conv.output_hw(h, w) == expected
    assert conv.forward(rng.standard_normal((1, 1, h, w))).shape == (1, 2, *expected)


def test_conv_and_maxpool_agree_with_pytorch(rng):
    """An outside oracle, when PyTorch happens to be installed (it is never a dependency)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((2, 3, 9, 8))
    conv = with_random_bias(Conv(3, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 3),
                                 dtype=np.float64, rng=0), rng)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(conv.weights), torch.from_numpy(conv.bias),
                        stride=(2, 1), padding=(1, 2), dilation=(1, 3)).numpy()
    assert_close(conv.forward(x), expected, np.float64)
    pool = MaxPool((3, 2), stride=(2, 1), padding=(1, 1))
    expected = F.max_pool2d(torch.from_numpy(x), (3, 2), stride=(2, 1), padding=(1, 1)).numpy()
    np.testing.assert_array_equal(pool.forward(x), expected)


# ================================================================== MaxPool
# N, C, (H, W), kernel, stride, padding
POOL_CASES = [
    (2, 3, (7, 5), 2, None, 0),              # odd sizes, 2x2 pooling
    (3, 2, (6, 9), (3, 2), (1, 1), (1, 1)),  # overlapping windows
    (1, 1, (8, 5), 3, (2, 1), (1, 0)),
    (2, 4, (5, 7), (1, 3), (1, 2), (0, 1)),
    (4, 3, (5, 6), (5, 6), 1, 0),            # window == input
    (2, 3, (9, 4), (3, 2), (3, 2), 0),       # strides that do not divide
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c,hw,kernel,stride,padding", POOL_CASES)
def test_maxpool_matches_naive_loops(rng, dtype, n, c, hw, kernel, stride, padding):
    pool = MaxPool(kernel, stride=stride, padding=padding)
    (kh, kw), (sh, sw), (ph, pw) = pool.kernel_size, pool.stride, pool.padding
    for x in (rng.standard_normal((n, c, *hw)), rng.integers(-2, 3, (n, c, *hw))):  # distinct, tied
        x = x.astype(dtype)
        y = pool.forward(x)
        expected_y, _ = naive.maxpool_forward(x, kh, kw, sh, sw, ph, pw)
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, expected_y.astype(dtype))
        grad_out = rng.standard_normal(y.shape).astype(dtype)
        assert_close(pool.backward_inputs(grad_out),
                     naive.maxpool_backward(x, grad_out, kh, kw, sh, sw, ph, pw), dtype)
        assert pool.backward_params(grad_out) == []


def test_maxpool_tie_sends_the_gradient_to_the_first_maximum():
    x = np.array([[[[1., 1., 0., 3.],
                    [1., 1., 3., 3.]]]])
    pool = MaxPool(2)
    np.testing.assert_array_equal(pool.forward(x), [[[[1., 3.]]]])
    grad = pool.backward_inputs(np.array([[[[10., 20.]]]]))
    np.testing.assert_array_equal(grad, [[[[10., 0., 0., 20.],
                                           [0., 0., 0., 0.]]]])


def test_maxpool_overlapping_windows_add_up_at_a_shared_winner():
    x = np.array([[[[0., 1., 0.],
                    [2., 9., 3.],
                    [0., 4., 0.]]]])
    pool = MaxPool(2, stride=1)
    np.testing.assert_array_equal(pool.forward(x), np.full((1, 1, 2, 2), 9.))
    grad = pool.backward_inputs(np.array([[[[1., 2.], [3., 4.]]]]))
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 10.
    np.testing.assert_array_equal(grad, expected)


def test_maxpool_2x2_on_odd_sizes_drops_the_last_row_and_column(rng):
    x = rng.standard_normal((1, 2, 5, 7))
    pool = MaxPool(2)
    y = pool.forward(x)
    assert y.shape == (1, 2, 2, 3)
    np.testing.assert_array_equal(y, x[:, :, :4, :6].reshape(1, 2, 2, 2, 3, 2).max(axis=(3, 5)))
    grad = pool.backward_inputs(np.ones_like(y))
    assert not grad[:, :, 4, :].any() and not grad[:, :, :, 6].any()
    assert grad.sum() == y.size


def test_maxpool_stride_defaults_to_the_kernel():
    assert MaxPool(3).stride == (3, 3)
    assert MaxPool((2, 3)).stride == (2, 3)
    assert MaxPool(2, stride=1).stride == (1, 1)


# ============================================================ FC, ReLU, Flatten
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d,m", [(3, 5, 4), (1, 1, 1), (2, 7, 1)])
def test_fc_matches_naive_loops(rng, dtype, n, d, m):
    fc = with_random_bias(FC(d, m, dtype=dtype, rng=0), rng)
    x = rng.standard_normal((n, d)).astype(dtype)
    y = fc.forward(x)
    assert y.dtype == dtype
    assert_close(y, naive.fc_forward(x, fc.weights, fc.bias), dtype)
    grad_out = rng.standard_normal((n, m)).astype(dtype)
    grad_x, grad_w, grad_b = naive.fc_backward(x, fc.weights, grad_out)
    assert_close(fc.backward_inputs(grad_out), grad_x, dtype)
    (w, gw), (b, gb) = fc.backward_params(grad_out)
    assert w is fc.weights and b is fc.bias
    assert_close(gw, grad_w, dtype)
    assert_close(gb, grad_b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_naive_loops(rng, dtype):
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    x[0, 0, 0, :3] = 0.0                      # the kink: dy/dx = 0 at x == 0
    relu = ReLU()
    y = relu.forward(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, naive.relu_forward(x).astype(dtype))
    grad_out = rng.standard_normal(x.shape).astype(dtype)
    grad = relu.backward_inputs(grad_out)
    assert grad.dtype == dtype
    np.testing.assert_array_equal(grad, naive.relu_backward(x, grad_out).astype(dtype))
    assert relu.backward_params(grad_out) == []


def test_flatten_reshapes_and_restores(rng):
    x = rng.standard_normal((3, 2, 4, 5))
    flat = Flatten()
    y = flat.forward(x)
    assert y.shape == (3, 40)
    for n in range(3):
        np.testing.assert_array_equal(y[n], [x[n, c, h, w] for c in range(2) for h in range(4) for w in range(5)])
    g = rng.standard_normal((3, 40))
    grad = flat.backward_inputs(g)
    assert grad.shape == x.shape
    np.testing.assert_array_equal(grad.reshape(3, -1), g)


# ==================================================================== losses
def test_softmax_cross_entropy_hand_computed():
    logits = np.array([[1.0, 2.0, 3.0],
                       [0.0, 0.0, 0.0]])
    labels = np.array([2, 0])
    z0 = math.exp(1) + math.exp(2) + math.exp(3)
    expected = ((math.log(z0) - 3.0) + math.log(3.0)) / 2
    loss = SoftmaxCrossEntropy()
    assert loss.forward(logits, labels) == pytest.approx(expected, rel=1e-14)
    p0 = np.array([math.exp(1), math.exp(2), math.exp(3)]) / z0
    expected_grad = np.array([p0 - [0, 0, 1], np.full(3, 1 / 3) - [1, 0, 0]]) / 2
    np.testing.assert_allclose(loss.backward_inputs(logits, labels), expected_grad, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_labels_one_hot_and_soft_targets(rng, dtype):
    logits = (3 * rng.standard_normal((5, 4))).astype(dtype)
    labels = rng.integers(0, 4, 5)
    one_hot = np.eye(4)[labels]
    soft = rng.random((5, 4))
    soft /= soft.sum(axis=1, keepdims=True)
    loss = SoftmaxCrossEntropy()
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for targets in (labels, one_hot, one_hot.astype(np.int64), soft):
        expected_value, expected_grad = naive.softmax_cross_entropy(logits, targets)
        assert loss.forward(logits, targets) == pytest.approx(expected_value, rel=tol)
        grad = loss.backward_inputs(logits, targets)
        assert grad.dtype == dtype
        np.testing.assert_allclose(grad, expected_grad, rtol=tol, atol=tol)
    assert loss.forward(logits, labels) == loss.forward(logits, one_hot)
    np.testing.assert_array_equal(loss.backward_inputs(logits, labels), loss.backward_inputs(logits, one_hot))


def test_softmax_cross_entropy_of_a_perfect_fit_is_plus_zero():
    """All the probability on the right class: the loss is 0.0, not -0.0 (which prints as such)."""
    loss = SoftmaxCrossEntropy().forward(np.array([[0.0, -1e4], [-1e4, 0.0]]), np.array([0, 1]))
    assert loss == 0.0 and not math.copysign(1.0, loss) < 0 and str(loss) == "0.0"


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_is_stable_for_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4 + 1, -1e4]], dtype=dtype)
    labels = np.array([1, 1])
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, labels)
    # row 0: log-sum-exp = 1e4, minus x_1 = -1e4 -> 2e4; row 1: log(1 + 2/e) in closed form
    expected = (2e4 + math.log(1 + 2 * math.exp(-1))) / 2
    assert math.isfinite(value) and value == pytest.approx(expected, rel=1e-6)
    grad = loss.backward_inputs(logits, labels)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad[0], [0.5, -0.5, 0.0], atol=1e-7)


def test_l2_regularizer_and_regularized_loss_values():
    w = np.array([[1.0, 2.0], [3.0, -4.0]])
    v = np.array([0.5, -0.5])
    reg_w, reg_v = L2Regularizer(w, 0.1), L2Regularizer(v, 2.0)
    assert reg_w.forward() == pytest.approx(0.5 * 0.1 * 30.0, rel=1e-15)
    assert reg_v.forward() == pytest.approx(0.5 * 2.0 * 0.5, rel=1e-15)
    ((param, grad),) = reg_w.backward_params()
    assert param is w
    np.testing.assert_allclose(grad, 0.1 * w)

    logits = np.array([[0.0, math.log(3.0)]])
    data_loss = SoftmaxCrossEntropy()
    total = RegularizedLoss(data_loss, [reg_w, reg_v])
    assert total.forward(logits, np.array([1])) == pytest.approx(math.log(4 / 3) + 1.5 + 0.5, rel=1e-14)
    np.testing.assert_array_equal(total.backward_inputs(logits, np.array([1])),
                                  data_loss.backward_inputs(logits, np.array([1])))
    pairs = total.backward_params()
    assert [p is q for (p, _), q in zip(pairs, (w, v))] == [True, True]
    np.testing.assert_allclose(pairs[1][1], [1.0, -1.0])


# ================================================================ initialisation
def truncated_normal_std():
    """Std of a standard normal truncated to [-2, 2]: sqrt(1 - 2*b*phi(b)/Z) with b = 2, Z = erf(b/sqrt 2)."""
    b = 2.0
    phi = math.exp(-b * b / 2) / math.sqrt(2 * math.pi)
    z = math.erf(b / math.sqrt(2))
    return math.sqrt(1 - 2 * b * phi / z)


def test_truncated_normal_std_constant():
    assert truncated_normal_std() == pytest.approx(0.8796, abs=1e-4)


@pytest.mark.parametrize("make,fan_in", [
    (lambda: FC(200, 400, dtype=np.float64, rng=5), 200),
    (lambda: Conv(16, 128, (3, 5), dtype=np.float64, rng=5), 16 * 3 * 5),
])
def test_he_initialisation_statistics(make, fan_in):
    layer = make()
    w = layer.weights
    sigma = math.sqrt(2.0 / fan_in)
    assert np.abs(w).max() <= 2 * sigma * (1 + 1e-12)        # truncated at +-2 sigma
    assert abs(w.mean()) < 0.02 * sigma
    assert w.std() == pytest.approx(sigma * truncated_normal_std(), rel=0.02)
    assert not layer.bias.any()


@pytest.mark.parametrize("shape,seed", [((400, 200), 5), ((7, 3, 5, 5), 0), ((1,), 3), ((0, 4), 1)])
def test_he_normal_redraws_as_the_plain_loop_does(shape, seed):
    """he_normal re-checks only the draws it has just redrawn; the values are those of the
    plain loop that redraws every |z| > 2 of the whole array until none is left (the
    oracle), for the same generator."""
    from minidl.layers.base import he_normal
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape)
    outside = np.abs(z) > 2.0
    while outside.any():
        z[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(z) > 2.0
    expected = (np.sqrt(2.0 / 10) * z).astype(np.float64)
    np.testing.assert_array_equal(he_normal(shape, 10, seed, np.float64), expected)


def test_same_seed_same_weights():
    for make in (lambda r: Conv(3, 4, (2, 3), rng=r), lambda r: FC(5, 6, rng=r)):
        a, b, c = make(7), make(7), make(8)
        np.testing.assert_array_equal(a.weights, b.weights)
        assert not np.array_equal(a.weights, c.weights)
    net_a, net_b = lab_net(rng=3), lab_net(rng=3)
    for (na, pa), (nb, pb) in zip(net_a.params(), net_b.params()):
        assert na == nb
        np.testing.assert_array_equal(pa, pb)
    assert Conv(3, 4, 3, dtype=np.float32, rng=1).weights.dtype == np.float32
    assert Conv(3, 4, 3, dtype=np.float64, rng=1).weights.dtype == np.float64


# ================================================================ Sequential
def small_net(dtype=np.float64, rng=0):
    return Sequential([Conv(2, 3, (3, 2), padding=(1, 0), dtype=dtype, rng=rng), MaxPool(2), ReLU(),
                       Flatten(), FC(3 * 2 * 2, 4, dtype=dtype, rng=rng + 1)])


def test_sequential_chain_rule_and_live_parameter_pairs(rng):
    net = small_net()
    for layer in (net[0], net[4]):
        with_random_bias(layer, rng)
    x = rng.standard_normal((3, 2, 5, 5))
    y = net.forward(x)
    manual = x
    for layer in net:
        manual = layer.forward(manual)
    np.testing.assert_array_equal(y, manual)

    g = rng.standard_normal(y.shape)
    pairs = net.backward(g)
    live = [arr for _, arr in net.params()]
    assert len(pairs) == len(live) == 4
    assert all(p is q for (p, _), q in zip(pairs, live)), "pairs must hold the live arrays, in params() order"
    # the same gradients by hand, layer by layer
    g_fc = g
    fc_pairs = net[4].backward_params(g_fc)
    g_flat = net[4].backward_inputs(g_fc)
    g_relu = net[3].backward_inputs(g_flat)
    g_pool = net[2].backward_inputs(g_relu)
    g_conv = net[1].backward_inputs(g_pool)
    conv_pairs = net[0].backward_params(g_conv)
    for (_, got), (_, want) in zip(pairs, conv_pairs + fc_pairs):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(net.backward_inputs(g_fc), net[0].backward_inputs(g_conv))


def test_nested_sequential(rng):
    inner = Sequential([FC(4, 5, dtype=np.float64, rng=0), ReLU()], name="block")
    net = Sequential([inner, FC(5, 3, dtype=np.float64, rng=1)])
    flat = Sequential([inner[0], inner[1], net[1]])
    x = rng.standard_normal((2, 4))
    np.testing.assert_array_equal(net.forward(x), flat.forward(x))
    g = rng.standard_normal((2, 3))
    net.forward(x)
    pairs = net.backward(g)
    flat.forward(x)
    flat_pairs = flat.backward(g)
    assert [p for p, _ in pairs] == [p for p, _ in flat_pairs]   # identity through == on the same objects
    assert all(p is q for (p, _), (q, _) in zip(pairs, flat_pairs))
    for (_, a), (_, b) in zip(pairs, flat_pairs):
        np.testing.assert_array_equal(a, b)
    assert [name for name, _ in net.named_layers()] == ["0.block.0.FC", "0.block.1.ReLU", "1.FC"]
    assert len(net.params()) == 4


def test_lab_net_summary():
    net = lab_net(rng=0)
    report = net.summary((1, 28, 28), batch_size=2, file=io.StringIO())
    rows = report["rows"]
    assert [r[2] for r in rows] == [(2, 16, 28, 28), (2, 16, 14, 14), (2, 16, 14, 14), (2, 32, 14, 14),
                                    (2, 32, 7, 7), (2, 32, 7, 7), (2, 1568), (2, 512), (2, 512), (2, 10)]
    # conv1: 16*1*5*5 + 16; conv2: 32*16*5*5 + 32; fc3: 1568*512 + 512; logits: 512*10 + 10
    assert [r[3] for r in rows] == [416, 0, 0, 12832, 0, 0, 0, 803328, 0, 5130]
    assert report["total_params"] == 416 + 12832 + 803328 + 5130
    assert report["total_params"] == sum(a.size for _, a in net.params())
    assert "821,706" in report["text"]


# ================================================================ robustness
def batchnorm(channels, training, rng=0):
    """A float64 BatchNorm with random gamma and beta; in eval mode, running statistics away
    from their initial 0 and 1."""
    gen = np.random.default_rng(rng)
    bn = BatchNorm(channels, dtype=np.float64)
    bn.gamma[:] = gen.standard_normal(channels)
    bn.beta[:] = gen.standard_normal(channels)
    if not training:
        bn.running_mean[:] = gen.standard_normal(channels)
        bn.running_var[:] = gen.random(channels) + 0.5
        bn.eval()
    return bn


def layer_cases():
    """(id, factory, input shape) for every layer; float64 unless the id says float32."""
    return [
        ("conv", lambda: Conv(2, 3, (3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2),
                              dtype=np.float64, rng=0), (3, 2, 6, 5)),
        ("conv-same", lambda: Conv(2, 2, 3, padding="same", dtype=np.float64, rng=0), (2, 2, 5, 4)),
        ("conv-float32", lambda: Conv(3, 4, 3, padding=1, rng=0), (2, 3, 6, 5)),
        ("maxpool", lambda: MaxPool((3, 2), stride=1, padding=(1, 0)), (2, 3, 5, 4)),
        ("maxpool-2x2", lambda: MaxPool(2), (2, 3, 5, 7)),
        ("fc", lambda: FC(6, 4, dtype=np.float64, rng=0), (3, 6)),
        ("fc-float32", lambda: FC(37, 19, rng=0), (23, 37)),
        ("relu", lambda: ReLU(), (2, 3, 4, 5)),
        ("flatten", lambda: Flatten(), (2, 3, 4, 5)),
        ("sequential", lambda: small_net(), (3, 2, 5, 5)),
        # the CNN toolbox
        ("avgpool", lambda: AvgPool((3, 2), stride=(2, 1), padding=(1, 1)), (2, 3, 6, 5)),
        ("avgpool-2x2", lambda: AvgPool(2), (2, 3, 5, 7)),
        ("global-avgpool", lambda: GlobalAvgPool(), (3, 4, 5, 6)),
        ("leaky-relu", lambda: LeakyReLU(0.1), (2, 3, 4, 5)),
        ("tanh", lambda: Tanh(), (2, 3, 4, 5)),
        ("sigmoid", lambda: Sigmoid(), (4, 7)),
        ("batchnorm-4d-train", lambda: batchnorm(3, True), (4, 3, 5, 6)),
        ("batchnorm-2d-train", lambda: batchnorm(5, True), (6, 5)),
        ("batchnorm-4d-eval", lambda: batchnorm(3, False), (4, 3, 5, 6)),
        ("batchnorm-2d-eval", lambda: batchnorm(5, False), (6, 5)),
        ("lrn-3", lambda: LocalResponseNorm(3, alpha=0.5), (2, 6, 4, 3)),
        ("lrn-4", lambda: LocalResponseNorm(4, alpha=1.5, beta=0.6, k=1.2), (2, 7, 3, 4)),
        ("dropout-train", lambda: Dropout(0.4, rng=0), (3, 4, 5, 2)),
        ("dropout-eval", lambda: Dropout(0.4, rng=0).eval(), (3, 4, 5, 2)),
        ("residual-projection", lambda: resnet_block(2, 3, stride=2, dtype=np.float64, rng=0), (3, 2, 7, 6)),
        ("residual-identity-linear", lambda: Residual(Conv(3, 3, 3, padding=1, dtype=np.float64, rng=0),
                                                      relu=False), (2, 3, 5, 4)),
    ]


CASES = layer_cases()
CASE_IDS = [c[0] for c in CASES]


def random_input(layer, shape, rng):
    """Standard normal values of ``shape`` in the dtype of the layer's parameters (float64 without)."""
    params = layer.params()
    return rng.standard_normal(shape).astype(params[0][1].dtype if params else np.float64)


def run_backward(layer, grad_out):
    """Every backward entry point, results copied so later calls cannot alias them."""
    results = {"inputs": np.array(layer.backward_inputs(grad_out), copy=True)}
    results["params"] = [np.array(g, copy=True) for _, g in layer.backward_params(grad_out)]
    grad_in, pairs = layer.backprop(grad_out)
    results["backprop"] = [np.array(grad_in, copy=True)] + [np.array(g, copy=True) for _, g in pairs]
    return results


def assert_same_results(got, expected):
    """Bit for bit, every array of two ``run_backward`` results."""
    assert got.keys() == expected.keys()
    for key in expected:
        a = expected[key] if isinstance(expected[key], list) else [expected[key]]
        b = got[key] if isinstance(got[key], list) else [got[key]]
        assert len(a) == len(b)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(v, u, err_msg=key)


def cache_copies(layer):
    """Copies of every cached slot of ``layer`` and, for a container, of its sub-layers."""
    slots = {s: np.array(getattr(layer, s), copy=True) if isinstance(getattr(layer, s), np.ndarray)
             else getattr(layer, s) for s in getattr(layer, "cache_slots", ())}
    children = []
    for field in getattr(layer, "child_fields", ()):
        value = getattr(layer, field)
        children.extend(value if isinstance(value, (list, tuple)) else [value] if value is not None else [])
    return {"slots": slots, "children": [cache_copies(child) for child in children]}


def assert_same_cache(a, b):
    assert a["slots"].keys() == b["slots"].keys()
    for k in a["slots"]:
        if isinstance(a["slots"][k], np.ndarray):
            np.testing.assert_array_equal(a["slots"][k], b["slots"][k], err_msg=f"cache slot {k} changed")
        else:
            assert a["slots"][k] == b["slots"][k]
    assert len(a["children"]) == len(b["children"])
    for x, y in zip(a["children"], b["children"]):
        assert_same_cache(x, y)


@pytest.mark.parametrize("name,make,shape", CASES, ids=CASE_IDS)
def test_backward_modifies_neither_grad_out_nor_input_nor_cache(rng, name, make, shape):
    layer = make()
    x = random_input(layer, shape, rng)
    x_copy = x.copy()
    y = layer.forward(x)
    grad_out = rng.standard_normal(y.shape).astype(y.dtype)
    grad_copy = grad_out.copy()
    cache = cache_copies(layer)
    assert cache["slots"] or cache["children"], "nothing cached: the test would check nothing"
    params = [a.copy() for _, a in layer.params()]
    buffers = [a.copy() for _, a in layer.buffers()]
    first = run_backward(layer, grad_out)
    np.testing.assert_array_equal(grad_out, grad_copy, err_msg="grad_out was modified")
    np.testing.assert_array_equal(x, x_copy, err_msg="the input was modified")
    assert_same_cache(cache, cache_copies(layer))
    for (_, a), b in zip(layer.params() + layer.buffers(), params + buffers):
        np.testing.assert_array_equal(a, b, err_msg="a parameter or buffer was modified")
    # calling the backward methods again gives the same result
    assert_same_results(run_backward(layer, grad_out), first)


def test_parameter_gradients_are_not_views_of_grad_out(rng):
    """An optimiser may scale a gradient in place; that must not corrupt the upstream gradient."""
    for name, make, shape in CASES:
        layer = make()
        y = layer.forward(random_input(layer, shape, rng))
        grad_out = rng.standard_normal(y.shape).astype(y.dtype)
        keep = grad_out.copy()
        for _, g in layer.backward_params(grad_out):
            g *= 0.0
        np.testing.assert_array_equal(grad_out, keep, err_msg=name)


def loss_cases():
    """(id, loss factory, logits shape, targets factory rng -> targets) for every loss."""
    def labels(rng, n, c):
        return rng.integers(0, c, size=n)

    def one_hot(rng, n, c):
        return np.eye(c)[rng.integers(0, c, size=n)]

    def soft(rng, n, c):
        p = rng.random((n, c)) + 0.1
        return p / p.sum(axis=1, keepdims=True)

    def real(rng, n, c):
        return rng.standard_normal((n, c))

    def regularized():
        gen = np.random.default_rng(1)
        return RegularizedLoss(SoftmaxCrossEntropy(), [L2Regularizer(gen.standard_normal((3, 4)), 0.5),
                                                       L2Regularizer(gen.standard_normal(5), 1e-2)])

    return [
        ("cross-entropy-labels", SoftmaxCrossEntropy, (5, 11), labels),
        ("cross-entropy-one-hot", SoftmaxCrossEntropy, (5, 11), one_hot),
        ("cross-entropy-soft", SoftmaxCrossEntropy, (5, 11), soft),
        ("hinge-labels", MulticlassHingeLoss, (6, 9), labels),
        ("hinge-one-hot", lambda: MulticlassHingeLoss(0.5), (6, 9), one_hot),
        ("mse-real", MeanSquaredError, (7, 10), real),
        ("mse-labels", MeanSquaredError, (7, 10), labels),
        ("regularized-cross-entropy", regularized, (4, 13), soft),
    ]


LOSS_CASES = loss_cases()
LOSS_IDS = [c[0] for c in LOSS_CASES]


def run_loss(loss, logits, targets):
    """Loss value, dL/dlogits and the parameter gradients, copied."""
    return {"value": np.array(loss.forward(logits, targets)),
            "inputs": np.array(loss.backward_inputs(logits, targets), copy=True),
            "params": [np.array(g, copy=True) for _, g in loss.backward_params(logits, targets)]}


@pytest.mark.parametrize("name,make,shape,make_targets", LOSS_CASES, ids=LOSS_IDS)
def test_losses_do_not_modify_logits_or_targets(rng, name, make, shape, make_targets):
    loss = make()
    logits = 3 * rng.standard_normal(shape)
    targets = make_targets(rng, *shape)
    saved_logits, saved_targets = logits.copy(), targets.copy()
    saved_params = [w.copy() for w, _ in loss.backward_params(logits, targets)]
    first = run_loss(loss, logits, targets)
    np.testing.assert_array_equal(logits, saved_logits, err_msg="the logits were modified")
    np.testing.assert_array_equal(targets, saved_targets, err_msg="the targets were modified")
    for (w, _), saved in zip(loss.backward_params(logits, targets), saved_params):
        np.testing.assert_array_equal(w, saved, err_msg="a regularised parameter was modified")
    # the gradient is a new array: scaling it in place changes neither the logits nor a second call
    grad = loss.backward_inputs(logits, targets)
    assert not np.shares_memory(grad, logits) and not np.shares_memory(grad, targets)
    grad *= 0.0
    assert_same_results(run_loss(loss, logits, targets), first)


@pytest.mark.parametrize("name,make,shape,make_targets", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_of_non_contiguous_and_transposed_arrays(rng, name, make, shape, make_targets, dtype):
    """Bit for bit the results on contiguous copies: strided views, and (C, N) arrays transposed."""
    logits = (3 * rng.standard_normal(shape)).astype(dtype)
    targets = make_targets(rng, *shape)
    expected = run_loss(make(), logits, targets)
    assert_same_results(run_loss(make(), non_contiguous(logits), non_contiguous(targets)), expected)
    transposed = np.ascontiguousarray(logits.T).T
    assert not transposed.flags.c_contiguous
    targets_t = np.ascontiguousarray(targets.T).T
    assert_same_results(run_loss(make(), transposed, targets_t), expected)


def non_contiguous(array):
    """The same values in a transposed, strided buffer of the same dtype."""
    big = np.zeros(tuple(2 * s for s in array.shape[::-1]), dtype=array.dtype)
    view = big[tuple(slice(None, None, 2) for _ in array.shape)].transpose(*range(array.ndim)[::-1])
    view[...] = array
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    return view


@pytest.mark.parametrize("name,make,shape", CASES, ids=CASE_IDS)
def test_non_contiguous_inputs_give_the_same_results(rng, name, make, shape):
    """Bit for bit: forward on a strided, transposed view of x, and every backward method on
    such a view of grad_out, equal the results on contiguous arrays. (Two layers from the same
    factory, so a Dropout draws the same mask for both.)"""
    layer = make()
    x = random_input(layer, shape, rng)
    y = layer.forward(x).copy()
    grad_out = rng.standard_normal(y.shape).astype(y.dtype)
    expected = run_backward(layer, grad_out)
    other = make()
    np.testing.assert_array_equal(other.forward(non_contiguous(x)), y)
    assert_same_results(run_backward(other, non_contiguous(grad_out)), expected)


@pytest.mark.parametrize("name,make,shape", CASES, ids=CASE_IDS)
def test_transposed_inputs_give_the_same_results(rng, name, make, shape):
    """An array stored with its axes in another order (e.g. images kept as (H, W, C, N)) and
    transposed to the layer's layout: forward and backward equal those of a contiguous copy."""
    order = tuple(range(len(shape)))[::-1]
    layer, other = make(), make()
    x = random_input(layer, shape[::-1], rng).transpose(order)         # (N, ...) view of (..., N)
    y = layer.forward(np.ascontiguousarray(x)).copy()
    np.testing.assert_array_equal(other.forward(x), y)
    grad_out = rng.standard_normal(y.shape[::-1]).astype(y.dtype).transpose(tuple(range(y.ndim))[::-1])
    assert_same_results(run_backward(other, grad_out), run_backward(layer, np.ascontiguousarray(grad_out)))


def test_transposed_image_batches(rng):
    """An (H, W, C, N) array transposed to (N, C, H, W) gives the same convolution as a copy."""
    conv = Conv(3, 2, (2, 3), stride=(1, 2), padding=1, dtype=np.float64, rng=0)
    hwcn = rng.standard_normal((5, 6, 3, 2))
    x = hwcn.transpose(3, 2, 0, 1)
    np.testing.assert_array_equal(conv.forward(x), conv.forward(np.ascontiguousarray(x)))


# a training-mode Dropout draws a fresh mask per call, so its second call differs from a fresh
# layer's first; BatchNorm in training mode needs more than one value per channel
BATCH_SIZE_CASES = [c for c in CASES if c[0] not in ("dropout-train", "batchnorm-2d-train")]


@pytest.mark.parametrize("name,make,shape", BATCH_SIZE_CASES, ids=[c[0] for c in BATCH_SIZE_CASES])
def test_batch_size_may_change_between_calls(rng, name, make, shape):
    layer, fresh = make(), make()
    big = random_input(layer, (shape[0] + 2, *shape[1:]), rng)
    small = random_input(layer, (1, *shape[1:]), rng)       # N == 1, e.g. the last batch
    layer.forward(big)
    y = layer.forward(small)
    np.testing.assert_array_equal(y, fresh.forward(small))
    g = rng.standard_normal(y.shape).astype(y.dtype)
    assert_same_results(run_backward(layer, g), run_backward(fresh, g))


def test_pinned_positional_signatures():
    """The constructors' positional order is part of the API; other code relies on it."""
    import inspect

    from minidl.layers import FC, Conv, L2Regularizer, MaxPool
    from minidl.optim import SGD

    def names(cls):
        return list(inspect.signature(cls).parameters)

    assert names(Conv)[:9] == ["in_channels", "out_channels", "kernel_size", "stride", "padding", "bias",
                               "name", "dtype", "rng"]
    assert names(MaxPool)[:2] == ["kernel_size", "stride"]
    assert names(FC)[:6] == ["in_features", "out_features", "bias", "name", "dtype", "rng"]
    assert names(L2Regularizer)[:3] == ["weights", "weight_decay", "name"]
    assert names(SGD)[:4] == ["lr", "momentum", "nesterov", "weight_decay"]
    conv = Conv(1, 4, 3, 1, 1, False, "c", np.float64, 0)
    assert conv.bias is None and conv.name == "c" and conv.weights.dtype == np.float64


CONV_PATHS = ["plain", pytest.param("fast", marks=pytest.mark.skipif(
    not ops.fast.available(np.float32), reason=f"no fast path here: {ops.fast.status()}"))]


@pytest.fixture
def conv_path(request, monkeypatch):
    """Run the test with float32 Conv on the plain path, then on the fast path (if it runs here)."""
    monkeypatch.setattr(ops.fast, "ENABLED", request.param == "fast")
    return request.param


@pytest.mark.parametrize("conv_path", CONV_PATHS, indirect=True)
def test_conv_lab_methods_give_the_numbers_of_backprop(rng, conv_path):
    """The lab's loop (backward_inputs, then backward_params, per layer) against backprop."""
    conv = with_random_bias(Conv(3, 4, (3, 2), stride=(1, 2), padding=1, dilation=(2, 1), rng=0), rng)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    y = conv.forward(x)
    assert conv.path == conv_path
    g = rng.standard_normal(y.shape).astype(np.float32)
    grad_x = conv.backward_inputs(g)
    pairs = conv.backward_params(g)
    grad_x2, pairs2 = conv.backprop(g)
    assert [p for p, _ in pairs] == [p for p, _ in pairs2] == [conv.weights, conv.bias]
    np.testing.assert_array_equal(grad_x, grad_x2)
    for (_, a), (_, b) in zip(pairs, pairs2):
        np.testing.assert_array_equal(a, b)
    assert conv.backprop(g, need_input_grad=False)[0] is None
    # and the numbers are right: the loop version
    want_x, want_w, want_b = naive.conv_backward(x, conv.weights, g, conv.stride, conv.padding, conv.dilation)
    assert_close(grad_x, want_x, np.float32)
    assert_close(pairs[0][1], want_w, np.float32)
    assert_close(pairs[1][1], want_b, np.float32)


def _lab_loop(layers_, grad, inputs_first=True):
    """The FER lab's own backward loop: per layer, last to first, both lab methods."""
    pairs = []
    for layer in reversed(layers_):
        if inputs_first:
            grad_in = layer.backward_inputs(grad)
            pairs[:0] = layer.backward_params(grad)
        else:
            pairs[:0] = layer.backward_params(grad)
            grad_in = layer.backward_inputs(grad)
        grad = grad_in
    return grad, pairs


@pytest.mark.parametrize("inputs_first", [True, False], ids=["inputs-then-params", "params-then-inputs"])
@pytest.mark.parametrize("conv_path", CONV_PATHS, indirect=True)
def test_the_lab_loop_costs_one_backprop_and_gives_its_numbers(rng, monkeypatch, conv_path, inputs_first):
    """The lab's loop, in either order, gives the numbers of Sequential.backprop, and on the
    fast path runs one conv_backward per convolution (the pass that gives both halves)."""
    net = lab_net(rng=0)
    x = rng.random((3, 1, 28, 28), dtype=np.float32)
    g = rng.standard_normal(net.forward(x).shape).astype(np.float32)
    want_x, want_pairs = net.backprop(g, need_input_grad=True)
    calls = []
    conv_backward = ops.fast.conv_backward
    monkeypatch.setattr(ops.fast, "conv_backward", lambda *a: calls.append(a[-1]) or conv_backward(*a))
    net.forward(x)
    got_x, got_pairs = _lab_loop(net.layers, g, inputs_first)
    assert calls == ([True, True] if conv_path == "fast" else [])
    np.testing.assert_array_equal(got_x, want_x)
    assert [p for p, _ in got_pairs] == [p for p, _ in want_pairs]
    for (_, a), (_, b) in zip(got_pairs, want_pairs):
        np.testing.assert_array_equal(a, b)


class _CountingLayer(layers.Layer):
    """y = 2x; counts its backprops (to see a container's two lab methods share one)."""

    def __init__(self):
        super().__init__("counting")
        self.scale = np.ones(1)
        self.backprops = 0

    def forward(self, x):
        self.x = x
        return 2 * x

    def backward_inputs(self, grad_out):
        return 2 * self.scale * grad_out

    def backward_params(self, grad_out):
        return [(self.scale, np.array([2 * np.sum(grad_out * self.x)]))]

    def backprop(self, grad_out, need_input_grad=True):
        self.backprops += 1
        return (self.backward_inputs(grad_out) if need_input_grad else None), self.backward_params(grad_out)


@pytest.mark.parametrize("container", ["sequential", "residual"])
def test_a_containers_two_lab_methods_share_one_backprop(rng, container):
    inner = _CountingLayer()
    net = (Sequential([inner, ReLU()]) if container == "sequential"
           else Residual(Sequential([inner]), relu=True))
    x = rng.standard_normal((2, 3, 4, 4))
    g = rng.standard_normal(net.forward(x).shape)
    want_x, want_pairs = net.backprop(g)
    for first, second in (("backward_inputs", "backward_params"), ("backward_params", "backward_inputs")):
        net.forward(x)
        inner.backprops = 0
        results = {first: getattr(net, first)(g), second: getattr(net, second)(g)}
        assert inner.backprops == 1, (first, second)
        np.testing.assert_array_equal(results["backward_inputs"], want_x)
        np.testing.assert_array_equal(results["backward_params"][0][1], want_pairs[0][1])
    # a different upstream gradient is computed afresh, and so is a half asked for twice
    g2 = 3 * g
    net.forward(x)
    inner.backprops = 0
    net.backward_inputs(g)
    np.testing.assert_allclose(net.backward_params(g2)[0][1], 3 * want_pairs[0][1], rtol=1e-12)
    np.testing.assert_allclose(net.backward_inputs(g2), 3 * want_x, rtol=1e-12)
    np.testing.assert_allclose(net.backward_inputs(g2), 3 * want_x, rtol=1e-12)
    assert inner.backprops == 3
    # the next forward drops the kept half: the new input's gradients, not the old ones
    net.backward_inputs(g)
    net.forward(2 * x)
    np.testing.assert_allclose(net.backward_params(g)[0][1], 2 * want_pairs[0][1], rtol=1e-12)


@pytest.mark.parametrize("conv_path", CONV_PATHS, indirect=True)
def test_sequential_backprop_does_each_convolution_once(rng, monkeypatch, conv_path):
    """Sequential.backward: one im2col per Conv (in forward), and on the fast path one
    conv_backward per Conv, the first without the input gradient nobody needs."""
    net = lab_net(rng=0)
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    calls = {"im2col": 0, "conv_backward": []}
    im2col, conv_backward = ops.im2col, ops.fast.conv_backward
    monkeypatch.setattr(ops, "im2col", lambda *a, **k: calls.__setitem__("im2col", calls["im2col"] + 1)
                        or im2col(*a, **k))
    monkeypatch.setattr(ops.fast, "conv_backward",
                        lambda *a: calls["conv_backward"].append(a[-1]) or conv_backward(*a))
    logits = net.forward(x)
    net.backward(rng.standard_normal(logits.shape).astype(np.float32))
    if conv_path == "fast":
        assert calls == {"im2col": 0, "conv_backward": [True, False]}   # conv2, then conv1
    else:
        assert calls == {"im2col": 2, "conv_backward": []}
