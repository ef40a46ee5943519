"""minidl.functional against torch.nn.functional (when installed) and against loops (always).

Shapes have N, C, H, W all different, non-square kernels, and stride, padding and
dilation different per axis; every case runs in float32 and float64.
"""
import math

import numpy as np
import pytest

import minidl.functional as F
from minidl.layers import AvgPool, Conv, LocalResponseNorm, MaxPool
from minidl.ops import naive

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the loop oracles still run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def t(x):
    return torch.from_numpy(np.ascontiguousarray(x))


# --------------------------------------------------------------- loop oracles
def avg_pool_loops(x, kernel, stride, padding):
    """Mean of each window of the zero-padded input, divided by KH*KW (count_include_pad)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    oh, ow = naive.output_size(h, kh, sh, ph), naive.output_size(w, kw, sw, pw)
    y = np.zeros((n, c, oh, ow))
    for a in range(n):
        for b in range(c):
            for i in range(oh):
                for j in range(ow):
                    total = 0.0
                    for u in range(kh):
                        for v in range(kw):
                            r, s = i * sh - ph + u, j * sw - pw + v
                            if 0 <= r < h and 0 <= s < w:
                                total += x[a, b, r, s]
                    y[a, b, i, j] = total / (kh * kw)
    return y


def adaptive_avg_pool_loops(x, out_h, out_w):
    """Output (i, j) averages rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1 (and the columns alike)."""
    n, c, h, w = x.shape
    y = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        r0, r1 = math.floor(i * h / out_h), math.ceil((i + 1) * h / out_h)
        for j in range(out_w):
            s0, s1 = math.floor(j * w / out_w), math.ceil((j + 1) * w / out_w)
            y[:, :, i, j] = x[:, :, r0:r1, s0:s1].mean(axis=(2, 3))
    return y


def lrn_loops(x, size, alpha, beta, k):
    """PyTorch's definition: channel c divided by (k + alpha/size * sum of squares of the
    channels c - size//2 .. c + (size-1)//2 that exist) ** beta: a window of exactly ``size``."""
    n, channels, h, w = x.shape
    y = np.zeros(x.shape)
    for c in range(channels):
        total = np.zeros((n, h, w))
        for j in range(c - size // 2, c + (size - 1) // 2 + 1):
            if 0 <= j < channels:
                total += x[:, j].astype(np.float64) ** 2
        y[:, c] = x[:, c] / (k + alpha / size * total) ** beta
    return y


# ------------------------------------------------------------------ conv2d
# (input shape, weight shape, stride, padding, dilation, bias)
CONV_CASES = [
    ((2, 3, 9, 8), (4, 3, 3, 3), 1, 0, 1, True),
    ((3, 2, 10, 7), (5, 2, 2, 3), (2, 1), (1, 2), 1, True),
    ((1, 4, 11, 12), (2, 4, 3, 2), (1, 3), (2, 0), (2, 3), False),
    ((2, 1, 7, 9), (3, 1, 5, 3), 2, 2, 1, True),
    ((2, 3, 6, 5), (2, 3, 1, 1), 1, 0, 1, False),
    ((2, 2, 8, 9), (3, 2, 3, 5), 1, "same", 1, True),
    ((1, 3, 9, 10), (2, 3, 3, 3), 1, "same", (2, 1), True),
    ((2, 2, 6, 7), (3, 2, 3, 2), (1, 2), "valid", 1, True),
]


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_conv(x, w, b, stride, padding, dilation):
    dh, dw = pair(dilation)
    if padding == "same":
        padding = (dh * (w.shape[2] - 1) // 2, dw * (w.shape[3] - 1) // 2)
    elif padding == "valid":
        padding = 0
    return naive.conv_forward(x, w, b, pair(stride), pair(padding), (dh, dw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(c[:5]) for c in CONV_CASES])
def test_conv2d_equals_loops(case, dtype, rng):
    x_shape, w_shape, stride, padding, dilation, with_bias = case
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if with_bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, naive_conv(x, w, b, stride, padding, dilation), **tol(dtype))


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(c[:5]) for c in CONV_CASES])
def test_conv2d_equals_torch(case, dtype, rng):
    x_shape, w_shape, stride, padding, dilation, with_bias = case
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if with_bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    expected = TF.conv2d(t(x), t(w), None if b is None else t(b), stride=stride, padding=padding,
                         dilation=dilation).numpy()
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, **tol(dtype))


def test_conv2d_defaults_and_unbatched_image(rng):
    """No bias, stride 1, no padding, dilation 1 by default; a (C, H, W) image gives (F, OH, OW)."""
    x = rng.standard_normal((3, 7, 6))
    w = rng.standard_normal((2, 3, 3, 3))
    y = F.conv2d(x, w)
    assert y.shape == (2, 5, 4)
    np.testing.assert_allclose(y, naive.conv_forward(x[None], w, None)[0], rtol=1e-12, atol=1e-12)


def test_conv2d_by_hand():
    """A 2x2 filter of ones sums each 2x2 block of arange(9): the four sums 8, 12, 20, 24, plus the bias."""
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    y = F.conv2d(x, np.ones((1, 1, 2, 2)), np.array([0.5]))
    np.testing.assert_array_equal(y, [[[[8.5, 12.5], [20.5, 24.5]]]])


def test_conv2d_uses_the_callers_filters_not_a_random_init(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    w = np.zeros((3, 2, 3, 3))
    np.testing.assert_array_equal(F.conv2d(x, w), np.zeros((1, 3, 3, 3)))


# ----------------------------------------------------------------- pooling
# (input shape, kernel, stride, padding)
POOL_CASES = [
    ((2, 3, 8, 6), 2, None, 0),
    ((3, 2, 9, 7), 3, 2, 1),
    ((1, 4, 7, 10), (3, 2), (2, 1), (1, 0)),
    ((2, 1, 11, 9), (2, 4), (3, 2), (1, 2)),
    ((2, 3, 6, 6), 3, 1, 0),
]


def distinct(shape, rng, dtype):
    """Values with no ties, so the max of every window is unique in either precision."""
    size = int(np.prod(shape))
    return (rng.permutation(size) - size / 2).reshape(shape).astype(dtype) / 8


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(c) for c in POOL_CASES])
def test_max_pool2d_equals_loops_and_torch(case, dtype, rng):
    shape, kernel, stride, padding = case
    x = distinct(shape, rng, dtype)
    y = F.max_pool2d(x, kernel, stride, padding)
    kh, kw = pair(kernel)
    sh, sw = pair(kernel if stride is None else stride)
    ph, pw = pair(padding)
    np.testing.assert_array_equal(y, naive.maxpool_forward(x, kh, kw, sh, sw, ph, pw)[0])
    if torch is not None:
        np.testing.assert_array_equal(y, TF.max_pool2d(t(x), kernel, stride, padding).numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(c) for c in POOL_CASES])
def test_avg_pool2d_equals_loops_and_torch(case, dtype, rng):
    shape, kernel, stride, padding = case
    x = rng.standard_normal(shape).astype(dtype)
    y = F.avg_pool2d(x, kernel, stride, padding)
    expected = avg_pool_loops(x, pair(kernel), pair(kernel if stride is None else stride), pair(padding))
    np.testing.assert_allclose(y, expected, **tol(dtype))
    if torch is not None:  # torch's default count_include_pad=True is what AvgPool does
        np.testing.assert_allclose(y, TF.avg_pool2d(t(x), kernel, stride, padding).numpy(), **tol(dtype))


def test_avg_pool2d_counts_the_padding_by_hand():
    """A 2x2 window at the corner of ones padded by 1 holds one real pixel: 1/4, not 1."""
    y = F.avg_pool2d(np.ones((1, 1, 2, 2)), 2, stride=2, padding=1)
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 0.25))


def test_pooling_takes_an_unbatched_image(rng):
    x = distinct((2, 6, 4), rng, np.float64)
    assert F.max_pool2d(x, 2).shape == (2, 3, 2)
    np.testing.assert_array_equal(F.avg_pool2d(x, 2), F.avg_pool2d(x[None], 2)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,out", [((2, 3, 7, 5), (3, 2)), ((1, 2, 12, 9), 6), ((2, 2, 2, 3), (4, 5)),
                                       ((3, 1, 6, 6), 1), ((1, 2, 1, 1), 6)])
def test_adaptive_avg_pool2d_equals_loops_and_torch(shape, out, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    y = F.adaptive_avg_pool2d(x, out)
    np.testing.assert_allclose(y, adaptive_avg_pool_loops(x, *pair(out)), **tol(dtype))
    if torch is not None:
        np.testing.assert_allclose(y, TF.adaptive_avg_pool2d(t(x), out).numpy(), **tol(dtype))


# ------------------------------------------------ relu, LRN, linear, softmax
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu(dtype, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    np.testing.assert_array_equal(F.relu(x), naive.relu_forward(x).astype(dtype))
    if torch is not None:
        np.testing.assert_array_equal(F.relu(x), TF.relu(t(x)).numpy())


LRN_CASES = [(size, channels) for size in (1, 2, 3, 5) for channels in (3, 8)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,channels", LRN_CASES)
def test_local_response_norm_equals_loops(size, channels, dtype, rng):
    """The window of exactly ``size`` channels [c - size//2, c + (size-1)//2], alpha divided by size."""
    x = rng.standard_normal((2, channels, 3, 4)).astype(dtype)
    y = F.local_response_norm(x, size, alpha=0.3, beta=0.75, k=1.5)
    np.testing.assert_allclose(y, lrn_loops(x, size, 0.3, 0.75, 1.5), **tol(dtype))


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,channels", LRN_CASES)
def test_local_response_norm_equals_torch(size, channels, dtype, rng):
    x = rng.standard_normal((2, channels, 3, 4)).astype(dtype)
    for alpha, beta, k in ((1e-4, 0.75, 1.0), (0.5, 0.6, 2.0)):
        y = F.local_response_norm(x, size, alpha, beta, k)
        np.testing.assert_allclose(y, TF.local_response_norm(t(x), size, alpha, beta, k).numpy(), **tol(dtype))


def test_local_response_norm_defaults_are_torchs(rng):
    x = rng.standard_normal((1, 6, 2, 2))
    np.testing.assert_allclose(F.local_response_norm(x, 3), lrn_loops(x, 3, 1e-4, 0.75, 1.0), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(4, 7), (2, 3, 7), (7,)])
def test_linear_equals_loops_and_torch(x_shape, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((5, 7)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    y = F.linear(x, w, b)
    assert y.shape == x_shape[:-1] + (5,) and y.dtype == dtype
    rows = x.reshape(-1, 7)
    np.testing.assert_allclose(y.reshape(-1, 5), naive.fc_forward(rows, w, b), **tol(dtype))
    np.testing.assert_allclose(F.linear(x, w).reshape(-1, 5), naive.fc_forward(rows, w, None), **tol(dtype))
    if torch is not None:
        np.testing.assert_allclose(y, TF.linear(t(x), t(w), t(b)).numpy(), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1, 2])
def test_softmax_and_log_softmax_along_any_axis(dim, dtype, rng):
    x = (rng.standard_normal((3, 4, 5)) * 4).astype(dtype)
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=dim, keepdims=True))
    expected = e / e.sum(axis=dim, keepdims=True)
    np.testing.assert_allclose(F.softmax(x, dim), expected, **tol(dtype))
    np.testing.assert_allclose(F.log_softmax(x, dim), np.log(expected), **tol(dtype))
    if torch is not None:
        np.testing.assert_allclose(F.log_softmax(x, dim), TF.log_softmax(t(x), dim).numpy(), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_labels_and_distributions(dtype, rng):
    logits = rng.standard_normal((6, 4)).astype(dtype) * 3
    labels = rng.integers(0, 4, size=6)
    expected, _ = naive.softmax_cross_entropy(logits, labels)
    assert F.cross_entropy(logits, labels) == pytest.approx(expected, rel=1e-5)
    probs = rng.random((6, 4))
    probs /= probs.sum(axis=1, keepdims=True)
    expected_soft, _ = naive.softmax_cross_entropy(logits, probs)
    assert F.cross_entropy(logits, probs.astype(dtype)) == pytest.approx(expected_soft, rel=1e-5)
    if torch is not None:
        assert F.cross_entropy(logits, labels) == pytest.approx(
            float(TF.cross_entropy(t(logits), torch.from_numpy(labels))), rel=1e-5)


# --------------------------------------------------- same code as the layers
def test_the_functions_return_what_the_layers_compute(rng):
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    conv = Conv(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), rng=1)
    np.testing.assert_array_equal(F.conv2d(x, conv.weights, conv.bias, (2, 1), (1, 0), (1, 2)), conv.forward(x))
    np.testing.assert_array_equal(F.max_pool2d(x, 3, 2, 1), MaxPool(3, 2, 1).forward(x))
    np.testing.assert_array_equal(F.avg_pool2d(x, (2, 3), 1, 1), AvgPool((2, 3), 1, 1).forward(x))
    np.testing.assert_array_equal(F.local_response_norm(x, 3, 0.1), LocalResponseNorm(3, 0.1).forward(x))


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("bad_dtype", [np.int64, np.float16, np.uint8])
def test_other_dtypes_are_refused_by_name(bad_dtype):
    x = np.ones((1, 1, 4, 4), dtype=bad_dtype)
    for call, name in ((lambda: F.conv2d(x, np.ones((1, 1, 2, 2))), "conv2d"),
                       (lambda: F.max_pool2d(x, 2), "max_pool2d"), (lambda: F.avg_pool2d(x, 2), "avg_pool2d"),
                       (lambda: F.relu(x), "relu"), (lambda: F.local_response_norm(x, 2), "local_response_norm"),
                       (lambda: F.softmax(x, 1), "softmax"), (lambda: F.linear(x, np.ones((2, 4))), "linear")):
        with pytest.raises(ValueError, match=rf"functional\.{name}: expected input of dtype float32 or float64, "
                                             rf"got {np.dtype(bad_dtype).name}"):
            call()


def test_weight_of_another_dtype_is_refused():
    x = np.ones((1, 1, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="conv2d: weight is float64 but the input is float32"):
        F.conv2d(x, np.ones((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="linear: bias is float64 but the input is float32"):
        F.linear(x, np.ones((3, 4), dtype=np.float32), np.ones(3))


def test_shape_errors_say_what_was_expected():
    x = np.ones((2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"expects 2 input channels, the input \(2, 3, 5, 5\) has 3"):
        F.conv2d(x, np.ones((4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"expected a bias of shape \(4,\), got \(3,\)"):
        F.conv2d(x, np.ones((4, 3, 3, 3)), np.ones(3))
    with pytest.raises(ValueError, match=r"expected an input \(N, C, H, W\) or \(C, H, W\), got shape \(5, 5\)"):
        F.max_pool2d(np.ones((5, 5)), 2)
    with pytest.raises(ValueError, match=r"same D, got weight \(2, 4\) and input \(2, 3, 5, 5\)"):
        F.linear(x, np.ones((2, 4)))
    with pytest.raises(ValueError, match="does not fit"):
        F.conv2d(x, np.ones((1, 3, 7, 7)))
    with pytest.raises(TypeError, match="input must be a numpy array, got list"):
        F.relu([1.0, -1.0])
    with pytest.raises(ValueError, match="dim 3 is out of range"):
        F.softmax(np.ones((2, 3, 4)), 3)
