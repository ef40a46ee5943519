"""The CNN toolbox: each layer, loss, optimiser and schedule against an
independent oracle: loops written from the definition, a closed form worked out
by hand, or PyTorch (used only here, as an oracle; those tests skip without it).

Symbols: N batch, C channels, H W size, F filters, KH KW kernel.
"""
import math
import warnings

import numpy as np
import pytest

from minidl import ops
from minidl.layers import (AvgPool, BatchNorm, Conv, Dropout, FC, Flatten, GlobalAvgPool, LeakyReLU,
                           LocalResponseNorm, MaxPool, MeanSquaredError, MulticlassHingeLoss, ReLU,
                           Residual, Sigmoid, SoftmaxCrossEntropy, Tanh, projection_shortcut, resnet_block)
from minidl.layers.pool import avg_pool_naive
from minidl.layers.norm import local_response_norm_backward_naive, local_response_norm_naive
from minidl.layers import Sequential
from minidl.layers.containers import cache_nbytes
from minidl.optim import (SGD, Adam, CosineDecay, DampedMomentumSGD, ExponentialDecay, RMSprop,
                          StepDecay)

F64 = np.float64


def torch_or_skip():
    return pytest.importorskip("torch")


# ===================================================================== oracles
def conv_loops(x, w, b, stride, padding, dilation):
    """Direct dilated cross-correlation, one output element at a time (float64).

    y[n, f, oh, ow] = b[f] + sum_{c,i,j} w[f, c, i, j] * x_pad[n, c, oh*SH + i*DH, ow*SW + j*DW]
    """
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n_img, channels, h, wd = x.shape
    filters, _, kh, kw = w.shape
    x_pad = np.zeros((n_img, channels, h + 2 * ph, wd + 2 * pw))
    x_pad[:, :, ph:ph + h, pw:pw + wd] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n_img, filters, oh, ow))
    for n in range(n_img):
        for f in range(filters):
            for r in range(oh):
                for s in range(ow):
                    total = b[f]
                    for c in range(channels):
                        for i in range(kh):
                            for j in range(kw):
                                total += w[f, c, i, j] * x_pad[n, c, r * sh + i * dh, s * sw + j * dw]
                    y[n, f, r, s] = total
    return y


def conv_input_grad_loops(x_shape, w, g, stride, padding, dilation):
    """dL/dx of the dilated convolution: every output spreads g * w back to the pixels it read."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n_img, channels, h, wd = x_shape
    filters, _, kh, kw = w.shape
    grad_pad = np.zeros((n_img, channels, h + 2 * ph, wd + 2 * pw))
    for n in range(n_img):
        for f in range(filters):
            for r in range(g.shape[2]):
                for s in range(g.shape[3]):
                    for c in range(channels):
                        for i in range(kh):
                            for j in range(kw):
                                grad_pad[n, c, r * sh + i * dh, s * sw + j * dw] += w[f, c, i, j] * g[n, f, r, s]
    return grad_pad[:, :, ph:ph + h, pw:pw + wd]


def avgpool_loops(x, kh, kw, sh, sw, ph, pw):
    """Mean of each window of the zero-padded input, divisor KH*KW always; and its adjoint."""
    n_img, channels, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n_img, channels, oh, ow))
    for n in range(n_img):
        for c in range(channels):
            for r in range(oh):
                for s in range(ow):
                    total = 0.0
                    for i in range(kh):
                        for j in range(kw):
                            row, col = r * sh + i - ph, s * sw + j - pw
                            if 0 <= row < h and 0 <= col < w:
                                total += x[n, c, row, col]
                    y[n, c, r, s] = total / (kh * kw)
    return y


def avgpool_grad_loops(x_shape, g, kh, kw, sh, sw, ph, pw):
    n_img, channels, h, w = x_shape
    grad = np.zeros(x_shape)
    for n in range(n_img):
        for c in range(channels):
            for r in range(g.shape[2]):
                for s in range(g.shape[3]):
                    for i in range(kh):
                        for j in range(kw):
                            row, col = r * sh + i - ph, s * sw + j - pw
                            if 0 <= row < h and 0 <= col < w:
                                grad[n, c, row, col] += g[n, c, r, s] / (kh * kw)
    return grad


def lrn_loops(x, size, alpha, beta, k):
    """Element by element: y_cv = x_cv / (k + alpha/size * sum_{j in G(c)} x_jv^2)^beta,
    G(c) = [c - floor(size/2), c + floor((size-1)/2)] intersected with {0..C-1} (size channels)."""
    n_img, channels, h, w = x.shape
    y = np.zeros(x.shape)
    for n in range(n_img):
        for c in range(channels):
            group = [j for j in range(channels) if c - size // 2 <= j <= c + (size - 1) // 2]
            for r in range(h):
                for s in range(w):
                    total = sum(x[n, j, r, s] ** 2 for j in group)
                    y[n, c, r, s] = x[n, c, r, s] / (k + alpha / size * total) ** beta
    return y


def central_differences(f, x, g, step=1e-6):
    """d/dx of sum(g * f(x)) by central differences, one element at a time (float64)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        grad[index] = (np.sum(g * f(plus)) - np.sum(g * f(minus))) / (2 * step)
    return grad


# ===================================================================== Conv dilation
@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    (3, (1, 1), (0, 0), (2, 2)),
    ((2, 3), (2, 1), (1, 2), (3, 2)),
    ((3, 2), (1, 2), (2, 0), (1, 3)),
])
def test_conv_dilation_matches_naive_loops(rng, kernel, stride, padding, dilation):
    conv = Conv(2, 3, kernel, stride=stride, padding=padding, dilation=dilation, dtype=F64, rng=rng)
    conv.bias[:] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 11, 10))
    y = conv.forward(x)
    np.testing.assert_allclose(y, conv_loops(x, conv.weights, conv.bias, stride, padding, dilation),
                               rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(conv.backward_inputs(g),
                               conv_input_grad_loops(x.shape, conv.weights, g, stride, padding, dilation),
                               rtol=1e-12, atol=1e-12)


def test_conv_dilation_output_size_formula():
    # H=10, K=3, D=4: the dilated kernel spans 1 + 4*2 = 9 pixels, so 2 positions
    conv = Conv(1, 1, 3, dilation=4)
    assert conv.forward(np.zeros((1, 1, 10, 12), np.float32)).shape == (1, 1, 2, 4)
    with pytest.raises(ValueError, match="does not fit"):
        conv.forward(np.zeros((1, 1, 8, 12), np.float32))


def test_maxpool_padding_never_wins_with_negative_inputs(rng):
    x = -1 - rng.random((2, 2, 5, 4))           # every value < 0, the zero padding would win
    y = MaxPool(3, stride=1, padding=1).forward(x)
    assert (y < -1 + 1e-12).all()
    np.testing.assert_array_equal(y[0, 0, 0, 0], x[0, 0, :2, :2].max())


# ===================================================================== AvgPool
AVG_CONFIGS = [  # kernel, stride, padding
    (2, None, 0),
    (3, 2, 1),
    ((2, 3), (1, 2), (1, 1)),
    ((3, 1), (2, 1), (1, 0)),
    (3, 1, 0),
]


@pytest.mark.parametrize("kernel,stride,padding", AVG_CONFIGS)
def test_avgpool_matches_loops(rng, kernel, stride, padding):
    pool = AvgPool(kernel, stride=stride, padding=padding)
    (kh, kw), (sh, sw), (ph, pw) = pool.kernel_size, pool.stride, pool.padding
    x = rng.standard_normal((2, 3, 7, 6))
    y = pool.forward(x)
    np.testing.assert_allclose(y, avgpool_loops(x, kh, kw, sh, sw, ph, pw), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(avg_pool_naive(x, pool.kernel_size, pool.stride, pool.padding), y,
                               rtol=1e-13, atol=1e-14)
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(pool.backward_inputs(g), avgpool_grad_loops(x.shape, g, kh, kw, sh, sw, ph, pw),
                               rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kernel,stride,padding", AVG_CONFIGS)
def test_avgpool_matches_torch(rng, kernel, stride, padding):
    torch = torch_or_skip()
    pool = AvgPool(kernel, stride=stride, padding=padding)
    x = rng.standard_normal((2, 3, 7, 6))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.avg_pool2d(xt, pool.kernel_size, pool.stride, pool.padding)  # count_include_pad
    y = pool.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    g = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(pool.backward_inputs(g), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_avgpool_counts_padding_by_hand():
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    y = AvgPool(2, stride=1, padding=1).forward(x)
    # each corner window holds one pixel and three zeros; the centre window all four pixels
    expected = np.array([[1, 3, 2], [4, 10, 6], [3, 7, 4]]) / 4
    np.testing.assert_array_equal(y[0, 0], expected)


def test_avgpool_keeps_float32_and_checks_arguments(rng):
    pool = AvgPool(2)
    y = pool.forward(rng.standard_normal((1, 2, 4, 4)).astype(np.float32))
    assert y.dtype == np.float32 and y.shape == (1, 2, 2, 2)
    assert pool.backward_inputs(np.ones_like(y)).dtype == np.float32
    with pytest.raises(ValueError, match="padding"):
        AvgPool(2, padding=2)
    with pytest.raises(ValueError, match="dtype"):
        pool.backward_inputs(np.ones((1, 2, 2, 2)))
    with pytest.raises(RuntimeError, match="before forward"):
        AvgPool(2).backward_inputs(np.ones((1, 1, 1, 1), np.float32))


def test_global_avgpool(rng):
    x = rng.standard_normal((3, 4, 5, 2))
    pool = GlobalAvgPool()
    y = pool.forward(x)
    assert y.shape == (3, 4)
    np.testing.assert_allclose(y[1, 2], sum(x[1, 2].ravel()) / 10, rtol=1e-14)
    g = rng.standard_normal((3, 4))
    grad = pool.backward_inputs(g)
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad[2, 3], np.full((5, 2), g[2, 3] / 10), rtol=1e-14)
    # it is AvgPool with the window of the whole image
    np.testing.assert_allclose(AvgPool((5, 2)).forward(x)[:, :, 0, 0], y, rtol=1e-13)


# ===================================================================== activations
def test_tanh_values_and_derivative(rng):
    x = rng.standard_normal((3, 4)) * 3
    layer = Tanh()
    y = layer.forward(x)
    np.testing.assert_allclose(y, [[math.tanh(v) for v in row] for row in x], rtol=1e-14)
    g = rng.standard_normal(x.shape)
    sech2 = np.array([[1 / math.cosh(v) ** 2 for v in row] for row in x])
    np.testing.assert_allclose(layer.backward_inputs(g), g * sech2, rtol=1e-12, atol=1e-15)


def test_sigmoid_values_derivative_and_no_overflow(rng):
    layer = Sigmoid()
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    y = layer.forward(x)
    np.testing.assert_allclose(y, [1 / (1 + math.exp(-v)) for v in x], rtol=1e-15)
    np.testing.assert_allclose(layer.backward_inputs(np.ones(5)), [math.exp(-v) / (1 + math.exp(-v)) ** 2 for v in x],
                               rtol=1e-14)
    for dtype in (np.float32, np.float64):
        big = np.array([-1e4, -800.0, -100.0, 100.0, 800.0, 1e4], dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                y = Sigmoid().forward(big)
        assert y.dtype == dtype
        # exact 0 and 1 where rounding says so; e^-100 is a subnormal in float32
        np.testing.assert_allclose(y, [0, 0, math.exp(-100), 1, 1, 1], rtol=1e-13, atol=1e-44)
        assert np.isfinite(y).all()


def test_leaky_relu_by_hand():
    layer = LeakyReLU(0.1)
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_allclose(layer.forward(x), [[-0.2, -0.05, 0.0, 0.5, 3.0]], rtol=1e-15)
    np.testing.assert_allclose(layer.backward_inputs(np.full((1, 5), 2.0)), [[0.2, 0.2, 0.2, 2.0, 2.0]], rtol=1e-15)
    assert LeakyReLU().negative_slope == 0.01
    assert LeakyReLU(0.2).config() == {"negative_slope": 0.2, "name": "LeakyReLU"}


def test_activations_keep_float32_and_do_not_touch_grad(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    for layer in (Tanh(), Sigmoid(), LeakyReLU()):
        y = layer.forward(x)
        g = rng.standard_normal(y.shape).astype(np.float32)
        g_copy = g.copy()
        gx = layer.backward_inputs(g)
        assert y.dtype == gx.dtype == np.float32
        np.testing.assert_array_equal(g, g_copy)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "leaky_relu"])
def test_activations_match_torch(rng, name):
    torch = torch_or_skip()
    layer = {"tanh": Tanh(), "sigmoid": Sigmoid(), "leaky_relu": LeakyReLU(0.03)}[name]
    fn = {"tanh": torch.tanh, "sigmoid": torch.sigmoid,
          "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.03)}[name]
    x = rng.standard_normal((4, 5)) * 5
    xt = torch.tensor(x, requires_grad=True)
    yt = fn(xt)
    g = rng.standard_normal(x.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(layer.forward(x), yt.detach().numpy(), rtol=1e-14, atol=1e-300)
    # 1 - y^2 cancels where |x| is large: compare on the scale of the gradient there
    np.testing.assert_allclose(layer.backward_inputs(g), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


# ===================================================================== LRN
LRN_PARAMS = [(1, 0.5, 0.75, 1.0), (2, 1.0, 0.75, 2.0), (3, 0.7, 0.5, 1.5), (4, 1.5, 0.6, 1.0),
              (5, 1e-4, 0.75, 1.0), (6, 2.0, 1.0, 0.5), (11, 3.0, 0.75, 1.0)]


@pytest.mark.parametrize("size,alpha,beta,k", LRN_PARAMS)
def test_lrn_forward_matches_loops(rng, size, alpha, beta, k):
    x = rng.standard_normal((2, 7, 3, 2))
    y = LocalResponseNorm(size, alpha, beta, k).forward(x)
    np.testing.assert_allclose(y, lrn_loops(x, size, alpha, beta, k), rtol=1e-13)
    np.testing.assert_allclose(local_response_norm_naive(x, size, alpha, beta, k), y, rtol=1e-13)


def test_lrn_window_holds_size_channels_by_hand():
    # one nonzero channel j=3 of value 1: channel c feels it iff 3 is in G(c); alpha / size = 1
    x = np.zeros((1, 8, 1, 1))
    x[0, 3] = 1.0
    odd = LocalResponseNorm(3, alpha=3.0, beta=1.0, k=1.0)      # G(c) = [c - 1, c + 1]
    odd.forward(x)
    np.testing.assert_array_equal(odd.denom[0, :, 0, 0], [1, 1, 2, 2, 2, 1, 1, 1])   # c = 2, 3, 4
    even = LocalResponseNorm(4, alpha=4.0, beta=1.0, k=1.0)     # G(c) = [c - 2, c + 1]
    even.forward(x)
    np.testing.assert_array_equal(even.denom[0, :, 0, 0], [1, 1, 2, 2, 2, 2, 1, 1])  # c = 2, 3, 4, 5


def test_lrn_even_size_backward_by_hand():
    """Size 2, beta 1, k 1, alpha/size 1, one pixel, channels (a, b, c): G = {0}, {0, 1}, {1, 2}.

    y = (a / (1 + a^2), b / (1 + a^2 + b^2), c / (1 + b^2 + c^2)); the derivative of
    y_1 + y_2 + y_3 with respect to b: y_2 gives (1 + a^2 - b^2) / d_1^2, y_3 gives
    -2 b c / d_2^2; y_1 does not depend on b (b is not in G(0): the window is not symmetric).
    """
    a, b, c = 0.5, -1.5, 2.0
    x = np.array([a, b, c]).reshape(1, 3, 1, 1)
    layer = LocalResponseNorm(2, alpha=2.0, beta=1.0, k=1.0)
    layer.forward(x)
    grad = layer.backward_inputs(np.ones_like(x))[0, :, 0, 0]
    d0, d1, d2 = 1 + a * a, 1 + a * a + b * b, 1 + b * b + c * c
    expected = [(1 - a * a) / d0 ** 2 - 2 * a * b / d1 ** 2,
                (1 + a * a - b * b) / d1 ** 2 - 2 * b * c / d2 ** 2,
                (1 + b * b - c * c) / d2 ** 2]
    np.testing.assert_allclose(grad, expected, rtol=1e-14)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("channels", [1, 2, 3, 5, 8])
def test_lrn_backward_matches_central_differences_and_loops(rng, size, channels):
    """Without torch: float64 central differences of sum(g * y), and the loop version of the
    backward, which walks each forward window instead of the mirrored one."""
    alpha, beta, k = 1.3, 0.75, 1.1
    layer = LocalResponseNorm(size, alpha, beta, k)
    x = rng.standard_normal((2, channels, 2, 2))
    g = rng.standard_normal(x.shape)
    layer.forward(x)
    grad = layer.backward_inputs(g)
    numeric = central_differences(lambda v: local_response_norm_naive(v, size, alpha, beta, k), x, g)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-8)
    loops = local_response_norm_backward_naive(x, g, size, alpha, beta, k)
    np.testing.assert_allclose(grad, loops, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(loops, numeric, rtol=1e-7, atol=1e-8)


def test_lrn_l2_normalisation(rng):
    # local_response_norm(x, 5, alpha=5, beta=0.5, k=0) on 3 channels is x / ||x|| across channels
    x = rng.standard_normal((1, 3, 6, 5))
    y = LocalResponseNorm(5, alpha=5, beta=0.5, k=0).forward(x)
    np.testing.assert_allclose(y, x / np.sqrt((x ** 2).sum(axis=1)), rtol=1e-13)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("channels", [1, 2, 3, 5, 8])
def test_lrn_matches_torch(rng, size, channels):
    torch = torch_or_skip()
    alpha, beta, k = 0.8, 0.75, 1.2
    layer = LocalResponseNorm(size, alpha, beta, k)
    x = rng.standard_normal((2, channels, 3, 4))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.local_response_norm(xt, size, alpha=alpha, beta=beta, k=k)
    y = layer.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13, atol=1e-15)
    g = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(layer.backward_inputs(g), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_lrn_keeps_float32(rng):
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    layer = LocalResponseNorm(3, alpha=0.5)
    y = layer.forward(x)
    assert y.dtype == np.float32 and layer.backward_inputs(np.ones_like(y)).dtype == np.float32
    np.testing.assert_allclose(y, lrn_loops(x.astype(F64), 3, 0.5, 0.75, 1.0), rtol=1e-5)


# ===================================================================== BatchNorm
def test_batchnorm_training_forward_closed_form(rng):
    bn = BatchNorm(3, dtype=F64)
    bn.gamma[:] = [2.0, -1.0, 0.5]
    bn.beta[:] = [0.0, 1.0, -3.0]
    x = rng.standard_normal((4, 3, 5, 2)) * 3 + 7
    y = bn.forward(x)
    for c in range(3):
        values = x[:, c].ravel()
        mean = sum(values) / values.size
        var = sum((v - mean) ** 2 for v in values) / values.size
        expected = bn.gamma[c] * (x[:, c] - mean) / math.sqrt(var + 1e-5) + bn.beta[c]
        np.testing.assert_allclose(y[:, c], expected, rtol=1e-12, atol=1e-12)
    # normalised per channel: mean beta, standard deviation |gamma| (up to eps)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), bn.beta, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), np.abs(bn.gamma), rtol=1e-5)


def test_batchnorm_running_statistics_by_hand(rng):
    bn = BatchNorm(2, momentum=0.25, dtype=F64)
    batches = [rng.standard_normal((3, 2, 2, 2)) * s + m for s, m in ((1.0, 2.0), (3.0, -1.0))]
    mean, var = np.zeros(2), np.ones(2)
    for x in batches:
        bn.forward(x)
        m = x.shape[0] * x.shape[2] * x.shape[3]
        batch_mean = x.sum(axis=(0, 2, 3)) / m
        unbiased = ((x - batch_mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3)) / (m - 1)
        mean = 0.75 * mean + 0.25 * batch_mean
        var = 0.75 * var + 0.25 * unbiased
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-13)
    np.testing.assert_allclose(bn.running_var, var, rtol=1e-13)
    assert [name for name, _ in bn.buffers()] == ["running_mean", "running_var"]
    assert bn.buffers()[0][1] is bn.running_mean            # the live arrays


def test_batchnorm_eval_uses_running_statistics_and_freezes_them(rng):
    bn = BatchNorm(3, dtype=F64)
    for _ in range(4):
        bn.forward(rng.standard_normal((5, 3)) * 2 + 1)
    bn.gamma[:] = [1.5, 0.5, -2.0]
    bn.beta[:] = [0.1, 0.2, 0.3]
    saved_mean, saved_var = bn.running_mean.copy(), bn.running_var.copy()
    bn.eval()
    x = rng.standard_normal((4, 3))
    y = bn.forward(x)
    expected = bn.gamma * (x - saved_mean) / np.sqrt(saved_var + 1e-5) + bn.beta
    np.testing.assert_allclose(y, expected, rtol=1e-13)
    np.testing.assert_array_equal(bn.running_mean, saved_mean)
    np.testing.assert_array_equal(bn.running_var, saved_var)
    # one example at a time gives the same answer: no batch statistics in eval mode
    np.testing.assert_allclose(bn.forward(x[1:2]), y[1:2], rtol=1e-14)
    # in eval mode the map is affine: dL/dx = gamma * g / sqrt(running_var + eps)
    g = rng.standard_normal((1, 3))
    np.testing.assert_allclose(bn.backward_inputs(g), g * bn.gamma / np.sqrt(saved_var + 1e-5), rtol=1e-13)
    bn.train()
    bn.forward(x)
    assert not np.array_equal(bn.running_mean, saved_mean)


def batchnorm_backward_staged(x, gamma, g, eps, axes):
    """The backward pass through the computational graph, node by node (CS231n's staged form)."""
    shape = [1] * x.ndim
    shape[1] = -1
    m = x.size // x.shape[1]
    mean = x.mean(axis=axes).reshape(shape)
    centred = x - mean
    var = (centred ** 2).mean(axis=axes).reshape(shape)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = centred * inv_std
    grad_x_hat = g * gamma.reshape(shape)
    grad_inv_std = (grad_x_hat * centred).sum(axis=axes).reshape(shape)
    grad_var = grad_inv_std * -0.5 * (var + eps) ** -1.5
    grad_centred = grad_x_hat * inv_std + grad_var * 2 * centred / m
    grad_mean = -grad_centred.sum(axis=axes).reshape(shape)
    grad_x = grad_centred + grad_mean / m
    return grad_x, (g * x_hat).sum(axis=axes), g.sum(axis=axes)


@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (7, 5)])
def test_batchnorm_backward_matches_staged_chain_rule(rng, shape):
    bn = BatchNorm(shape[1], dtype=F64)
    bn.gamma[:] = rng.standard_normal(shape[1])
    x = rng.standard_normal(shape) * 2 - 1
    bn.forward(x)
    g = rng.standard_normal(shape)
    axes = (0, 2, 3) if len(shape) == 4 else (0,)
    grad_x, grad_gamma, grad_beta = batchnorm_backward_staged(x, bn.gamma, g, 1e-5, axes)
    np.testing.assert_allclose(bn.backward_inputs(g), grad_x, rtol=1e-10, atol=1e-12)
    (p_gamma, d_gamma), (p_beta, d_beta) = bn.backward_params(g)
    assert p_gamma is bn.gamma and p_beta is bn.beta
    np.testing.assert_allclose(d_gamma, grad_gamma, rtol=1e-12)
    np.testing.assert_allclose(d_beta, grad_beta, rtol=1e-12)
    # the input gradient of batch norm sums to zero per channel (the mean was subtracted)
    np.testing.assert_allclose(bn.backward_inputs(g).sum(axis=axes), 0, atol=1e-11)


@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (6, 4)])
def test_batchnorm_matches_torch(rng, shape):
    torch = torch_or_skip()
    c = shape[1]
    bn = BatchNorm(c, momentum=0.2, dtype=F64)
    ref = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(c, momentum=0.2).double()
    with torch.no_grad():
        ref.weight[:] = torch.tensor(rng.standard_normal(c))
        ref.bias[:] = torch.tensor(rng.standard_normal(c))
    bn.gamma[:] = ref.weight.detach().numpy()
    bn.beta[:] = ref.bias.detach().numpy()
    for _ in range(3):
        x = rng.standard_normal(shape) * 2 + 0.5
        xt = torch.tensor(x, requires_grad=True)
        ref.weight.grad = ref.bias.grad = None
        yt = ref(xt)
        g = rng.standard_normal(shape)
        yt.backward(torch.tensor(g))
        y = bn.forward(x)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bn.backward_inputs(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.backward_params(g)[0][1], ref.weight.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(bn.running_mean, ref.running_mean.numpy(), rtol=1e-13)
        np.testing.assert_allclose(bn.running_var, ref.running_var.numpy(), rtol=1e-13)
    bn.eval()
    ref.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(bn.forward(x), ref(torch.tensor(x)).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_batchnorm_arguments(rng):
    bn = BatchNorm(3)
    assert bn.gamma.dtype == np.float32 and bn.running_var.dtype == np.float32
    np.testing.assert_array_equal(bn.gamma, 1)
    np.testing.assert_array_equal(bn.beta, 0)
    np.testing.assert_array_equal(bn.running_var, 1)
    with pytest.raises(ValueError, match="more than one value"):
        bn.forward(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        bn.forward(np.ones((2, 4, 2, 2), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        bn.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm(3, eps=0)
    y = bn.forward(rng.standard_normal((2, 3, 2, 2)).astype(np.float32))
    assert y.dtype == np.float32
    assert bn.backward_inputs(np.ones_like(y)).dtype == np.float32


# ===================================================================== Dropout
def test_dropout_eval_is_identity(rng):
    layer = Dropout(0.7, rng=0).eval()
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(layer.forward(x), x)
    g = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(layer.backward_inputs(g), g)


def test_dropout_training_statistics_and_scale(rng):
    p = 0.3
    layer = Dropout(p, rng=1)
    x = rng.standard_normal((200, 500)) + 2
    y = layer.forward(x)
    kept = y != 0
    n = x.size
    # the kept fraction is Binomial(n, 1 - p) / n: within 5 standard deviations
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-15)      # inverted: scaled up
    assert abs(y.mean() - x.mean()) < 0.02                                     # E[y] = x
    g = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward_inputs(g), np.where(kept, g / (1 - p), 0), rtol=1e-15)


def test_dropout_reproducible_fresh_and_frozen_masks(rng):
    x = rng.standard_normal((4, 6)) + 5
    a, b = Dropout(0.5, rng=42), Dropout(0.5, rng=42)
    first = a.forward(x)
    np.testing.assert_array_equal(first, b.forward(x))               # the same seed, the same masks
    second = a.forward(x)
    assert not np.array_equal(first == 0, second == 0)                # a fresh mask per forward
    frozen = Dropout(0.5, rng=3).freeze_mask()
    masks = [frozen.forward(x) != 0 for _ in range(3)]
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], masks[2])
    with pytest.raises(ValueError, match="frozen mask"):
        frozen.forward(np.ones((2, 2)))
    frozen.unfreeze_mask()
    assert frozen.forward(np.ones((2, 2))).shape == (2, 2)
    with pytest.raises(ValueError, match="p must be"):
        Dropout(1.0)
    assert Dropout(0.0).forward(x) is x


# ===================================================================== Residual
def test_residual_identity_forward_and_backward_by_hand(rng):
    conv = Conv(3, 3, 3, padding=1, dtype=F64, rng=rng)
    block = Residual(conv, relu=False)
    x = rng.standard_normal((2, 3, 4, 5))
    y = block.forward(x)
    np.testing.assert_allclose(y, conv_loops(x, conv.weights, conv.bias, (1, 1), (1, 1), (1, 1)) + x, rtol=1e-12)
    g = rng.standard_normal(y.shape)
    grad_x, pairs = block.backprop(g)
    conv.forward(x)
    np.testing.assert_allclose(grad_x, conv.backward_inputs(g) + g, rtol=1e-13)   # both paths add up
    assert len(pairs) == 2 and pairs[0][0] is conv.weights and pairs[1][0] is conv.bias


def test_residual_relu_gates_both_paths(rng):
    conv = Conv(2, 2, 1, dtype=F64, rng=rng)
    block = Residual(conv)
    x = rng.standard_normal((3, 2, 3, 3))
    z = conv.forward(x) + x
    np.testing.assert_array_equal(block.forward(x), np.maximum(z, 0))
    g = rng.standard_normal(z.shape)
    conv.forward(x)
    np.testing.assert_allclose(block.backward_inputs(g), conv.backward_inputs(g * (z > 0)) + g * (z > 0),
                               rtol=1e-13)


def test_residual_projection_shortcut_and_recursion(rng):
    block = resnet_block(2, 4, stride=2, dtype=F64, rng=rng)
    assert block.shortcut is not None
    assert resnet_block(4, 4, rng=rng).shortcut is None                  # same shape: identity
    assert resnet_block(4, 8, rng=rng).shortcut is not None              # more channels: projection
    x = rng.standard_normal((2, 2, 7, 6))
    y = block.forward(x)
    assert y.shape == (2, 4, 4, 3)                                       # OH = (7 - 1) // 2 + 1
    names = [name for name, _ in block.params()]
    assert names == ["body.0.conv1.weights", "body.1.bn1.gamma", "body.1.bn1.beta", "body.3.conv2.weights",
                     "body.4.bn2.gamma", "body.4.bn2.beta", "shortcut.0.proj.weights",
                     "shortcut.1.proj_bn.gamma", "shortcut.1.proj_bn.beta"]
    assert len(block.buffers()) == 6
    assert block.buffers()[0][1] is block.body[1].running_mean
    block.eval()
    assert not block.body[1].training and not block.shortcut[1].training
    block.train()
    assert block.shortcut[1].training
    # parameter gradients in params() order, the live arrays
    pairs = block.backward_params(rng.standard_normal(y.shape))
    assert all(p is q for (p, _), (_, q) in zip(pairs, block.params()))
    with pytest.raises(ValueError, match="projection"):
        Residual(Conv(2, 4, 1, dtype=F64)).forward(x)


def test_resnet_block_matches_a_torch_basic_block(rng):
    torch = torch_or_skip()
    nn = torch.nn

    def torch_block(cin, cout, stride):
        main = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(), nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False),
                             nn.BatchNorm2d(cout)).double()
        short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)).double()
        return main, short

    block = resnet_block(3, 5, stride=2, dtype=F64, rng=rng)
    main, short = torch_block(3, 5, 2)
    with torch.no_grad():
        main[0].weight[:] = torch.tensor(block.body[0].weights)
        main[3].weight[:] = torch.tensor(block.body[3].weights)
        short[0].weight[:] = torch.tensor(block.shortcut[0].weights)
    x = rng.standard_normal((2, 3, 8, 7))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.relu(main(xt) + short(xt))
    y = block.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-11, atol=1e-12)
    g = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(g))
    grad_x, pairs = block.backprop(g)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-10, atol=1e-11)
    torch_grads = [main[0].weight.grad, main[1].weight.grad, main[1].bias.grad, main[3].weight.grad,
                   main[4].weight.grad, main[4].bias.grad, short[0].weight.grad, short[1].weight.grad,
                   short[1].bias.grad]
    for (_, grad), ref in zip(pairs, torch_grads):
        np.testing.assert_allclose(grad, ref.numpy(), rtol=1e-10, atol=1e-11)


def test_residual_inside_sequential_backward(rng):
    block = resnet_block(2, 3, stride=2, dtype=F64, rng=rng)
    head = FC(3 * 3 * 3, 4, dtype=F64, rng=rng)
    net = Sequential([block, Flatten(), head])
    x = rng.standard_normal((2, 2, 5, 5))
    y = net.forward(x)
    g = rng.standard_normal(y.shape)
    pairs = net.backward(g)
    assert all(p is q for (p, _), (_, q) in zip(pairs, net.params()))
    assert len(pairs) == len(net.params()) == len(block.params()) + 2
    # the same gradients layer by layer by hand
    head_pairs = head.backward_params(g)
    block_pairs = block.backward_params(net[1].backward_inputs(head.backward_inputs(g)))
    for (_, got), (_, want) in zip(pairs, block_pairs + head_pairs):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    np.testing.assert_array_equal([n for n, _ in net.params()][:2],
                                  ["0.resblock.body.0.conv1.weights", "0.resblock.body.1.bn1.gamma"])


def test_summary_handles_residual_blocks(rng):
    net = Sequential([Conv(1, 4, 3, padding=1, rng=rng), BatchNorm(4), ReLU(),
                      resnet_block(4, 8, stride=2, rng=rng, name="block"), Dropout(0.5, rng=0),
                      LocalResponseNorm(3), AvgPool(2), GlobalAvgPool(), FC(8, 10, rng=rng)])
    before = [arr.copy() for _, arr in net.buffers()]
    report = net.summary((1, 12, 12), batch_size=5, file=open("/dev/null", "w"))
    shapes = [row[2] for row in report["rows"]]
    assert shapes == [(5, 4, 12, 12), (5, 4, 12, 12), (5, 4, 12, 12), (5, 8, 6, 6), (5, 8, 6, 6),
                      (5, 8, 6, 6), (5, 8, 3, 3), (5, 8), (5, 10)]
    assert report["rows"][3][3] == sum(arr.size for _, arr in net[3].params())
    assert report["total_params"] == sum(arr.size for _, arr in net.params())
    # the summary ran on a copy: running statistics untouched
    for saved, (_, arr) in zip(before, net.buffers()):
        np.testing.assert_array_equal(saved, arr)
    # the block's cache counts what its sub-layers keep: run it by hand and sum their slots
    block = net[3]
    block.forward(np.zeros((5, 4, 12, 12), np.float32))
    leaves = [block] + list(block.body) + list(block.shortcut)
    by_hand = sum(getattr(layer, slot).nbytes for layer in leaves for slot in layer.cache_slots
                  if isinstance(getattr(layer, slot), np.ndarray))
    assert report["rows"][3][4] == cache_nbytes(block) == by_hand > 0


# ===================================================================== losses
def test_hinge_loss_by_hand():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.5, -1.0]])
    labels = np.array([0, 1])
    loss = MulticlassHingeLoss()
    # row 0: max(0, 2-1+1) + max(0, 3-1+1) = 5;  row 1: max(0, 0-0.5+1) + max(0, -1-0.5+1) = 0.5
    assert loss.forward(logits, labels) == pytest.approx(2.75, abs=1e-15)
    np.testing.assert_allclose(loss.backward_inputs(logits, labels),
                               [[-1.0, 0.5, 0.5], [0.5, -0.5, 0.0]], rtol=1e-15)
    assert loss.forward(logits, np.eye(3)[labels]) == pytest.approx(2.75, abs=1e-15)
    assert MulticlassHingeLoss(delta=0.0).forward(logits, labels) == pytest.approx(3.0 / 2)  # 1 + 2, 0
    with pytest.raises(ValueError, match="one-hot"):
        loss.forward(logits, np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="labels outside"):
        loss.forward(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match="non-finite"):
        loss.forward(np.array([[np.nan, 1.0]]), np.array([0]))


def test_hinge_loss_matches_torch_multi_margin(rng):
    torch = torch_or_skip()
    logits = rng.standard_normal((6, 5)) * 2
    labels = rng.integers(0, 5, size=6)
    xt = torch.tensor(logits, requires_grad=True)
    # torch divides each row's sum by the number of classes C
    ref = torch.nn.functional.multi_margin_loss(xt, torch.tensor(labels), margin=0.7) * 5
    ref.backward()
    loss = MulticlassHingeLoss(0.7)
    assert loss.forward(logits, labels) == pytest.approx(ref.item(), rel=1e-13)
    np.testing.assert_allclose(loss.backward_inputs(logits, labels), xt.grad.numpy(), rtol=1e-12)


def test_mse_by_hand_and_labels():
    loss = MeanSquaredError()
    x = np.array([[1.0, 2.0], [0.0, -1.0]])
    t = np.array([[0.0, 0.0], [1.0, 1.0]])
    # 0.5 * ((1 + 4) + (1 + 4)) / 2
    assert loss.forward(x, t) == pytest.approx(2.5, abs=1e-15)
    np.testing.assert_allclose(loss.backward_inputs(x, t), [[0.5, 1.0], [-0.5, -1.0]], rtol=1e-15)
    labels = np.array([1, 0])                     # one-hot targets [[0, 1], [1, 0]]
    assert loss.forward(x, labels) == pytest.approx(0.5 * (1 + 1 + 1 + 1) / 2)
    np.testing.assert_allclose(loss.backward_inputs(x, labels), [[0.5, 0.5], [-0.5, -0.5]], rtol=1e-15)
    assert loss.forward(x, -t) == pytest.approx(0.5 * ((1 + 4) + (1 + 0)) / 2)   # negative targets allowed
    with pytest.raises(ValueError, match="shape"):
        loss.forward(x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        loss.forward(x, np.array([[np.inf, 0], [0, 0]]))


def test_mse_matches_torch(rng):
    torch = torch_or_skip()
    x, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.mse_loss(xt, torch.tensor(t), reduction="sum") / (2 * 5)
    ref.backward()
    assert MeanSquaredError().forward(x, t) == pytest.approx(ref.item(), rel=1e-14)
    np.testing.assert_allclose(MeanSquaredError().backward_inputs(x, t), xt.grad.numpy(), rtol=1e-14)


def test_losses_keep_float32_gradients(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 1])
    for loss in (MulticlassHingeLoss(), MeanSquaredError()):
        assert loss.backward_inputs(x, labels).dtype == np.float32
        assert loss.backward_params() == []


# ===================================================================== optimisers
def test_sgd_momentum_variants_by_hand():
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 1.0])
    # classical: v1 = g1, v2 = 0.9 v1 + g2
    w = np.array([1.0, 1.0])
    opt = SGD(0.1, momentum=0.9)
    opt.step([(w, g1)])
    opt.step([(w, g2)])
    v2 = 0.9 * g1 + g2
    np.testing.assert_allclose(w, 1 - 0.1 * g1 - 0.1 * v2, rtol=1e-14)
    # dampened (PyTorch): v1 = g1, v2 = 0.9 v1 + 0.1 g2
    w = np.array([1.0, 1.0])
    opt = SGD(0.1, momentum=0.9, dampening=0.9)
    opt.step([(w, g1)])
    opt.step([(w, g2)])
    v2 = 0.9 * g1 + 0.1 * g2
    np.testing.assert_allclose(w, 1 - 0.1 * g1 - 0.1 * v2, rtol=1e-14)
    # Nesterov with weight decay: g' = g + 0.5 w;  v1 = g1';  w1 = w0 - lr (g1' + 0.9 v1)
    w = np.array([2.0])
    opt = SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.5)
    opt.step([(w, np.array([1.0]))])
    gd = 1.0 + 0.5 * 2.0
    np.testing.assert_allclose(w, [2.0 - 0.1 * (gd + 0.9 * gd)], rtol=1e-14)


def _skip_unless_compiled():
    """Skip (without the missing-build warning) when the compiled kernels are not built."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = ops._load_compiled() is not None
    if not built:
        pytest.skip("the compiled kernels are not built: there is no fast path to compare")


@pytest.mark.parametrize("options", [{}, {"dampening": 0.9, "weight_decay": 1e-3}, {"nesterov": True}],
                         ids=["classical", "dampened", "nesterov"])
def test_sgd_momentum_fast_path_gives_the_plain_paths_numbers(rng, options, monkeypatch):
    """With the compiled kernels the momentum update runs as ops.momentum_step in one pass;
    its parameters and velocities must be those of the NumPy statements, bit for bit."""
    _skip_unless_compiled()
    shapes = [(300, 400), (7, 3)]                       # one split over threads, one not
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    results, calls = {}, []
    real_momentum_step = ops.momentum_step

    def counted(*args):                                 # the fast path must really be taken
        calls.append(args)
        return real_momentum_step(*args)

    monkeypatch.setattr(ops, "momentum_step", counted)
    for backend in ("numpy", "compiled"):
        ops.use_backend(backend)                        # the conftest fixture restores the suite's
        params, opt = [w.copy() for w in start], SGD(0.05, momentum=0.9, **options)
        for step in grads:
            opt.step(list(zip(params, step)))
        results[backend] = params + [opt._slot(w)["velocity"] for w in params]
    # the first step sets v = g; the next two take the fast path, for each of the 2 parameters
    assert len(calls) == (0 if options.get("nesterov") else 4)
    for plain, fast in zip(results["numpy"], results["compiled"]):
        np.testing.assert_array_equal(fast, plain)


def test_an_np_float64_learning_rate_updates_float32_parameters_as_the_kernel_does(rng):
    """A schedule may return np.float64. The optimiser keeps lr a Python float, so the plain
    update of float32 parameters is computed in float32, as the compiled one is: the same
    numbers from both backends (with an np.float64 lr NumPy 2 computes lr * g in float64)."""
    _skip_unless_compiled()
    start = rng.standard_normal((64, 33)).astype(np.float32)
    grads = [rng.standard_normal(start.shape).astype(np.float32) for _ in range(3)]
    results = {}
    for backend in ("numpy", "compiled"):
        ops.use_backend(backend)                        # the conftest fixture restores the suite's
        w, opt = start.copy(), SGD(0.1)
        for epoch, g in enumerate(grads, start=1):
            opt.lr = np.float64(0.1) / np.float64(3.0) ** epoch   # as a user's schedule might
            assert type(opt.lr) is float
            opt.step([(w, g)])
        results[backend] = w
    np.testing.assert_array_equal(results["numpy"], results["compiled"])


def test_damped_momentum_sgd_is_the_vgg_practicals_loop(rng):
    """The VGG practical's update: mu = m*mu + (1-m)*(grad + shrinkage*w), mu starting at 0; w -= rate * mu."""
    rate, momentum, shrinkage = 0.5, 0.9, 1e-2
    w = rng.standard_normal((3, 3))
    w_ref = w.copy()
    mu = np.zeros_like(w)
    opt = DampedMomentumSGD(rate, momentum, weight_decay=shrinkage)
    for _ in range(4):
        grad = rng.standard_normal((3, 3))
        mu = momentum * mu + (1 - momentum) * (grad + shrinkage * w_ref)
        w_ref = w_ref - rate * mu
        opt.step([(w, grad)])
        np.testing.assert_allclose(w, w_ref, rtol=1e-14)
    # and PyTorch's dampening differs from it in the first step only: v1 = g, not (1 - m) g
    w1, w2 = np.zeros(2), np.zeros(2)
    SGD(1.0, momentum=0.9, dampening=0.9).step([(w1, np.ones(2))])
    DampedMomentumSGD(1.0, 0.9).step([(w2, np.ones(2))])
    np.testing.assert_allclose(w1, [-1.0, -1.0])
    np.testing.assert_allclose(w2, [-0.1, -0.1])


def test_rmsprop_by_hand():
    w = np.array([1.0, -1.0])
    opt = RMSprop(lr=0.01, alpha=0.9, eps=1e-8)
    g1, g2 = np.array([2.0, 0.5]), np.array([-1.0, 0.5])
    opt.step([(w, g1)])
    s1 = 0.1 * g1 ** 2
    expected = np.array([1.0, -1.0]) - 0.01 * g1 / (np.sqrt(s1) + 1e-8)
    np.testing.assert_allclose(w, expected, rtol=1e-14)
    opt.step([(w, g2)])
    s2 = 0.9 * s1 + 0.1 * g2 ** 2
    np.testing.assert_allclose(w, expected - 0.01 * g2 / (np.sqrt(s2) + 1e-8), rtol=1e-14)


def test_adam_by_hand():
    w = np.array([1.0])
    opt = Adam(lr=0.1)
    # step 1: m = 0.1 g, v = 0.001 g^2; bias-corrected both are g and g^2: a step of lr * sign(g)
    opt.step([(w, np.array([4.0]))])
    np.testing.assert_allclose(w, [1.0 - 0.1 * 4 / (4 + 1e-8)], rtol=1e-14)
    # step 2 with g = 1
    m = 0.9 * 0.4 + 0.1 * 1.0
    v = 0.999 * 0.016 + 0.001 * 1.0
    m_hat, v_hat = m / (1 - 0.9 ** 2), v / (1 - 0.999 ** 2)
    before = w.copy()
    opt.step([(w, np.array([1.0]))])
    np.testing.assert_allclose(w, before - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8), rtol=1e-12)
    assert int(opt.state_dict([w])["0.step"]) == 2


@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "sgd_dampened", "sgd_nesterov", "rmsprop", "adam"])
def test_optimisers_match_torch(rng, name):
    torch = torch_or_skip()
    make = {
        "sgd": (lambda: SGD(0.1, weight_decay=0.01), lambda p: torch.optim.SGD(p, 0.1, weight_decay=0.01)),
        "sgd_momentum": (lambda: SGD(0.1, momentum=0.9), lambda p: torch.optim.SGD(p, 0.1, momentum=0.9)),
        "sgd_dampened": (lambda: SGD(0.1, momentum=0.9, dampening=0.9, weight_decay=1e-3),
                         lambda p: torch.optim.SGD(p, 0.1, momentum=0.9, dampening=0.9, weight_decay=1e-3)),
        "sgd_nesterov": (lambda: SGD(0.1, momentum=0.8, nesterov=True, weight_decay=1e-2),
                         lambda p: torch.optim.SGD(p, 0.1, momentum=0.8, nesterov=True, weight_decay=1e-2)),
        "rmsprop": (lambda: RMSprop(0.01, weight_decay=0.1), lambda p: torch.optim.RMSprop(p, 0.01, weight_decay=0.1)),
        "adam": (lambda: Adam(0.01, betas=(0.8, 0.99), weight_decay=0.1),
                 lambda p: torch.optim.Adam(p, 0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    }[name]
    ours, theirs = make
    weights = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    tensors = [torch.tensor(w.copy(), requires_grad=True) for w in weights]
    opt, ref = ours(), theirs(tensors)
    for _ in range(6):
        grads = [rng.standard_normal(w.shape) for w in weights]
        opt.step(list(zip(weights, grads)))
        for t, g in zip(tensors, grads):
            t.grad = torch.tensor(g)
        ref.step()
    for w, t in zip(weights, tensors):
        np.testing.assert_allclose(w, t.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make", [lambda: Adam(0.01), lambda: RMSprop(0.01), lambda: DampedMomentumSGD(0.1)])
def test_optimiser_state_round_trip_continues_exactly(rng, make, tmp_path):
    from minidl.io import atomic_savez, load_npz
    w = rng.standard_normal((2, 3)).astype(np.float32)
    grads = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(6)]
    straight = w.copy()
    opt = make()
    for g in grads:
        opt.step([(straight, g)])
    resumed = w.copy()
    first = make()
    for g in grads[:3]:
        first.step([(resumed, g)])
    atomic_savez(tmp_path / "opt.npz", first.state_dict([resumed]))
    state, _ = load_npz(tmp_path / "opt.npz")
    second = make()
    second.load_state_dict([resumed], state)
    for g in grads[3:]:
        second.step([(resumed, g)])
    np.testing.assert_array_equal(resumed, straight)
    if isinstance(second, Adam):
        assert state["0.step"].shape == () and int(second.state_dict([resumed])["0.step"]) == 6


def test_load_state_dict_still_rejects_wrong_shapes():
    w = np.zeros((2, 3))
    with pytest.raises(ValueError, match="shape"):
        Adam().load_state_dict([w], {"lr": np.array(0.1), "0.exp_avg": np.zeros((3, 2))})


# ===================================================================== schedules
def test_schedules_by_hand():
    step = StepDecay(0.1, step_size=3, gamma=0.5)
    assert [step(e) for e in range(1, 8)] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    expo = ExponentialDecay(1.0, 0.9)
    assert [expo(e) for e in (1, 2, 3)] == pytest.approx([1.0, 0.9, 0.81])
    cosine = CosineDecay(1.0, total_epochs=4, min_lr=0.2)
    # min + (lr - min) (1 + cos(pi (e - 1) / 4)) / 2
    assert [cosine(e) for e in (1, 2, 3, 4, 5, 9)] == pytest.approx(
        [1.0, 0.2 + 0.8 * (1 + math.sqrt(0.5)) / 2, 0.6, 0.2 + 0.8 * (1 - math.sqrt(0.5)) / 2, 0.2, 0.2])
    with pytest.raises(ValueError):
        StepDecay(0.1, step_size=0, gamma=0.5)
    with pytest.raises(ValueError):
        CosineDecay(0.1, 10, min_lr=0.5)


def test_schedules_match_torch():
    torch = torch_or_skip()

    def torch_lrs(make, epochs):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
        sched = make(opt)
        lrs = []
        for _ in range(epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return lrs

    lr = torch.optim.lr_scheduler
    cases = [(StepDecay(0.3, 2, 0.5), lambda o: lr.StepLR(o, 2, 0.5)),
             (ExponentialDecay(0.3, 0.8), lambda o: lr.ExponentialLR(o, 0.8)),
             (CosineDecay(0.3, 6, 0.01), lambda o: lr.CosineAnnealingLR(o, 6, eta_min=0.01))]
    for ours, theirs in cases:
        np.testing.assert_allclose([ours(e) for e in range(1, 7)], torch_lrs(theirs, 6), rtol=1e-12)


def test_trainer_uses_new_pieces_together(rng):
    """A residual net with BatchNorm, Dropout and Adam learns a separable toy problem."""
    from minidl.trainer import Trainer, evaluate
    x = rng.standard_normal((300, 2, 4, 4)).astype(np.float32)
    y = (x[:, 0].mean(axis=(1, 2)) > x[:, 1].mean(axis=(1, 2))).astype(np.int64)
    net = Sequential([Conv(2, 4, 3, padding=1, bias=False, rng=rng), BatchNorm(4), ReLU(),
                      resnet_block(4, 4, rng=rng), GlobalAvgPool(), Dropout(0.1, rng=0), FC(4, 2, rng=rng)])
    trainer = Trainer(net, SoftmaxCrossEntropy(), Adam(0.02), lr_schedule=CosineDecay(0.02, 8), batch_size=30)
    trainer.fit(x, y, epochs=8)
    assert evaluate(net, None, x, y)["accuracy"] > 0.9
    assert ops.BACKEND in ("compiled", "numpy")


def test_losses_exact_for_float32_logits_near_the_range_end():
    x = np.array([[3e38, -3e38]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hinge = MulticlassHingeLoss().forward(x, np.array([1]))
        mse = MeanSquaredError().forward(x, np.array([[-3e38, 3e38]], np.float32))
    assert hinge == pytest.approx(float(np.float32(3e38)) * 2 + 1, rel=1e-12)
    assert mse == pytest.approx(0.5 * 2 * (2 * float(np.float32(3e38))) ** 2, rel=1e-12)
