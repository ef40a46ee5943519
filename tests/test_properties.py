"""Property-based tests: random shapes and hyper-parameters, kernels and layers against naive loops.

Hypothesis draws N, C, H, W, a (usually non-square) kernel, and stride, padding
and dilation chosen independently for H and W, then compares every kernel (the
active backend and the NumPy reference; the compiled one against the reference
too when it is active) and every layer's forward and backward with the loops
of minidl/ops/naive.py, in float32 and float64.

The examples are derandomized (the same on every run, so CI is reproducible)
and few enough for the file to run in seconds.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minidl import ops
from minidl.layers import FC, Conv, Flatten, MaxPool, ReLU, SoftmaxCrossEntropy
from minidl.ops import naive, reference

DTYPES = [np.float32, np.float64]
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

pair = st.tuples


@st.composite
def conv_configs(draw):
    kernel = draw(pair(st.integers(1, 4), st.integers(1, 4)))
    stride = draw(pair(st.integers(1, 3), st.integers(1, 3)))
    dilation = draw(pair(st.integers(1, 2), st.integers(1, 2)))
    padding = draw(pair(st.integers(0, 2), st.integers(0, 2)))
    size = []
    for k, d, p in zip(kernel, dilation, padding):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)     # the kernel must fit the padded input
        size.append(draw(st.integers(smallest, smallest + 5)))
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return {"shape": (n, c, *size), "filters": f, "kernel": kernel, "stride": stride,
            "padding": padding, "dilation": dilation, "seed": seed}


@st.composite
def pool_configs(draw):
    kernel = draw(pair(st.integers(1, 4), st.integers(1, 4)))
    stride = draw(pair(st.integers(1, 3), st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    size = [draw(st.integers(max(1, k - 2 * p), max(1, k - 2 * p) + 5)) for k, p in zip(kernel, padding)]
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return {"shape": (n, c, *size), "kernel": kernel, "stride": stride, "padding": padding,
            "tied": draw(st.booleans()), "seed": draw(st.integers(0, 2**32 - 1))}


def conv_args(cfg):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"]
    return kh, kw, sh, sw, ph, pw, dh, dw


def pool_args(cfg):
    (kh, kw), (sh, sw), (ph, pw) = cfg["kernel"], cfg["stride"], cfg["padding"]
    return kh, kw, sh, sw, ph, pw


def pool_input(cfg, rng, dtype):
    if cfg["tied"]:
        return rng.integers(-2, 3, cfg["shape"]).astype(dtype)
    return rng.standard_normal(cfg["shape"]).astype(dtype)


def assert_close(actual, expected, dtype):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-12
    assert actual.shape == expected.shape
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=tol, atol=tol * scale)


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(cfg=conv_configs())
def test_im2col_and_col2im_kernels(dtype, cfg):
    rng = np.random.default_rng(cfg["seed"])
    args = conv_args(cfg)
    x = rng.standard_normal(cfg["shape"]).astype(dtype)
    expected_cols = naive.im2col(x, *args).astype(dtype)
    np.testing.assert_array_equal(reference.im2col(x, *args), expected_cols)
    cols = ops.im2col(x, *args)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, expected_cols)

    grad_cols = rng.standard_normal(expected_cols.shape).astype(dtype)
    expected_x = naive.col2im(grad_cols, cfg["shape"], *args)
    assert_close(reference.col2im(grad_cols, cfg["shape"], *args), expected_x, dtype)
    folded = ops.col2im(grad_cols, cfg["shape"], *args)
    assert folded.dtype == dtype
    assert_close(folded, expected_x, dtype)
    if ops.BACKEND == "compiled":
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(folded, reference.col2im(grad_cols, cfg["shape"], *args), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(cfg=pool_configs())
def test_maxpool_kernels(dtype, cfg):
    rng = np.random.default_rng(cfg["seed"])
    args = pool_args(cfg)
    x = pool_input(cfg, rng, dtype)
    expected_out, expected_argmax = naive.maxpool_forward(x, *args)
    grad_out = rng.standard_normal(expected_out.shape).astype(dtype)
    expected_grad = naive.maxpool_backward(x, grad_out, *args)
    for forward, backward in ((ops.maxpool_forward, ops.maxpool_backward),
                              (reference.maxpool_forward, reference.maxpool_backward)):
        out, argmax = forward(x, *args)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, expected_out.astype(dtype))
        np.testing.assert_array_equal(argmax, expected_argmax)
        grad_x = backward(grad_out, argmax, cfg["shape"])
        assert grad_x.dtype == dtype
        assert_close(grad_x, expected_grad, dtype)


# ------------------------------------------------------------------- layers
@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(cfg=conv_configs())
def test_conv_layer(dtype, cfg):
    rng = np.random.default_rng(cfg["seed"])
    stride, padding, dilation = cfg["stride"], cfg["padding"], cfg["dilation"]
    conv = Conv(cfg["shape"][1], cfg["filters"], cfg["kernel"], stride=stride, padding=padding,
                dilation=dilation, dtype=dtype, rng=rng)
    conv.bias[...] = rng.standard_normal(conv.bias.shape)
    x = rng.standard_normal(cfg["shape"]).astype(dtype)
    y = conv.forward(x)
    assert y.dtype == dtype
    assert_close(y, naive.conv_forward(x, conv.weights, conv.bias, stride, padding, dilation), dtype)
    grad_out = rng.standard_normal(y.shape).astype(dtype)
    grad_x, grad_w, grad_b = naive.conv_backward(x, conv.weights, grad_out, stride, padding, dilation)
    assert_close(conv.backward_inputs(grad_out), grad_x, dtype)
    (w, gw), (b, gb) = conv.backward_params(grad_out)
    assert w is conv.weights and b is conv.bias
    assert_close(gw, grad_w, dtype)
    assert_close(gb, grad_b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(cfg=pool_configs())
def test_maxpool_layer(dtype, cfg):
    rng = np.random.default_rng(cfg["seed"])
    args = pool_args(cfg)
    pool = MaxPool(cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"])
    x = pool_input(cfg, rng, dtype)
    y = pool.forward(x)
    expected_y, _ = naive.maxpool_forward(x, *args)
    np.testing.assert_array_equal(y, expected_y.astype(dtype))
    grad_out = rng.standard_normal(y.shape).astype(dtype)
    assert_close(pool.backward_inputs(grad_out), naive.maxpool_backward(x, grad_out, *args), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(n=st.integers(1, 4), d=st.integers(1, 6), m=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_fc_relu_flatten_layers(dtype, n, d, m, seed):
    rng = np.random.default_rng(seed)
    fc = FC(d, m, dtype=dtype, rng=rng)
    fc.bias[...] = rng.standard_normal(m)
    x = rng.standard_normal((n, d)).astype(dtype)
    assert_close(fc.forward(x), naive.fc_forward(x, fc.weights, fc.bias), dtype)
    g = rng.standard_normal((n, m)).astype(dtype)
    grad_x, grad_w, grad_b = naive.fc_backward(x, fc.weights, g)
    assert_close(fc.backward_inputs(g), grad_x, dtype)
    (_, gw), (_, gb) = fc.backward_params(g)
    assert_close(gw, grad_w, dtype)
    assert_close(gb, grad_b, dtype)

    relu = ReLU()
    x4 = rng.standard_normal((n, d, m, 2)).astype(dtype)
    np.testing.assert_array_equal(relu.forward(x4), naive.relu_forward(x4).astype(dtype))
    g4 = rng.standard_normal(x4.shape).astype(dtype)
    np.testing.assert_array_equal(relu.backward_inputs(g4), naive.relu_backward(x4, g4).astype(dtype))

    flat = Flatten()
    y = flat.forward(x4)
    np.testing.assert_array_equal(y, np.array([x4[i].ravel() for i in range(n)]))
    np.testing.assert_array_equal(flat.backward_inputs(y), x4)


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(n=st.integers(1, 5), c=st.integers(2, 6), scale=st.sampled_from([1.0, 10.0, 1e3]),
       soft=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_softmax_cross_entropy(dtype, n, c, scale, soft, seed):
    rng = np.random.default_rng(seed)
    logits = (scale * rng.standard_normal((n, c))).astype(dtype)
    targets = rng.dirichlet(np.ones(c), size=n) if soft else rng.integers(0, c, n)
    expected, expected_grad = naive.softmax_cross_entropy(logits, targets)
    loss = SoftmaxCrossEntropy()
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert loss.forward(logits, targets) == pytest.approx(expected, rel=tol, abs=tol)
    np.testing.assert_allclose(loss.backward_inputs(logits, targets), expected_grad, rtol=tol, atol=tol)
