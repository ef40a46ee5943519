"""The fast float32 path (minidl.ops.fast) against its plain twins.

matmul against float64 products; conv_forward / conv_backward against the loop
versions of minidl.ops.naive on awkward shapes (N, C, H, W all different,
non-square kernels, stride, padding and dilation different per axis) and
against Conv's plain im2col path in float64 on the lab network's shapes. Each
of these runs once per instruction set gemm.c can use on this CPU (the ``isa``
fixture: AVX-512 and AVX2+FMA on a CPU with AVX-512). Then the switches: when
the path runs, MINIDL_FAST=0, MINIDL_FAST_ISA, the NumPy backend.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from minidl import ops
from minidl.layers import Conv, ReLU
from minidl.ops import fast, naive

requires_fast = pytest.mark.skipif(
    not fast.available(np.float32), reason=f"the fast path does not run here: {fast.status()}")


@pytest.fixture(params=fast.isas() or [None], ids=lambda name: name or "no-isa")
def isa(request):
    """Each instruction set gemm.c can use on this CPU in turn (fast.use_isa), restored afterwards."""
    if request.param is None:
        pytest.skip(f"gemm.c runs no instruction set here: {fast.status()}")
    previous = fast.use_isa(request.param)
    assert fast.ISA == request.param
    yield request.param
    fast.use_isa(previous)

# (N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (DH, DW)
CONV_CASES = [
    ((2, 3, 7, 5), (3, 2), (1, 2), (1, 0), (1, 1)),
    ((3, 2, 6, 9), (2, 3), (2, 1), (0, 1), (1, 2)),
    ((1, 4, 8, 5), (1, 3), (3, 1), (0, 2), (1, 1)),
    ((2, 1, 5, 7), (3, 1), (1, 1), (2, 0), (2, 1)),
    ((4, 3, 5, 6), (5, 6), (1, 1), (0, 0), (1, 1)),    # kernel == input: 1x1 output
    ((2, 3, 9, 8), (3, 4), (2, 3), (1, 1), (2, 1)),    # strides that do not divide H+2P-K
    ((3, 2, 4, 3), (1, 1), (1, 1), (0, 0), (1, 1)),    # 1x1 kernel
    ((2, 2, 3, 4), (5, 4), (2, 1), (1, 2), (1, 2)),    # kernel == padded input along H
    ((3, 5, 11, 10), (3, 2), (1, 2), (2, 1), (3, 2)),  # a different dilation and stride per axis
    # stride 1 along the width (im2col.c's vector path), output rows longer than one 8-lane chunk:
    ((2, 2, 5, 19), (3, 5), (2, 1), (1, 3), (1, 2)),    # 17 columns: two full chunks and a ragged one
    ((1, 2, 4, 23), (1, 7), (1, 1), (0, 6), (1, 1)),    # 29 columns, runs clipped at both ends
    ((2, 1, 3, 2), (1, 3), (1, 1), (0, 4), (1, 1)),     # padding wider than the image: empty runs
]
CONV_IDS = [f"x{s}-k{k}-s{st}-p{p}-d{d}".replace(" ", "") for s, k, st, p, d in CONV_CASES]


# ---------------------------------------------------------- matrix product
def _matmul_tolerance(a, b):
    """float32 rounding bound for each entry: a few ulps of sum_k |a_ik| |b_kj|."""
    return 1e-6 * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))) + 1e-30


def _operand(rng, rows, cols, layout):
    """A float32 (rows, cols) operand stored as C order, a transposed view, or a strided slice."""
    if layout == "c":
        return rng.standard_normal((rows, cols)).astype(np.float32)
    if layout == "t":
        return rng.standard_normal((cols, rows)).astype(np.float32).T
    big = rng.standard_normal((2 * rows + 1, cols + 3)).astype(np.float32)
    return big[1::2, 2:cols + 2]            # row stride 2*(cols+3), an offset start


@requires_fast
@pytest.mark.parametrize("m", [1, 7, 16, 33])
@pytest.mark.parametrize("n", [1, 13, 32, 100])
@pytest.mark.parametrize("k", [1, 16, 33])
def test_fast_matmul_matches_float64_products(isa, rng, m, n, k):
    for la, lb in [("c", "c"), ("t", "c"), ("c", "t"), ("t", "t"), ("s", "s")]:
        a, b = _operand(rng, m, k, la), _operand(rng, k, n, lb)
        out = fast.matmul(a, b)
        assert out.dtype == np.float32 and out.shape == (m, n) and out.flags.c_contiguous
        exact = a.astype(np.float64) @ b.astype(np.float64)
        assert np.all(np.abs(out - exact) <= _matmul_tolerance(a, b)), (la, lb)


@requires_fast
@pytest.mark.parametrize("shape", [(32, 400, 9800), (400, 9800, 32), (25, 39200, 16), (50, 1568, 512),
                                   (300, 700, 1100)],
                         ids=["conv2-fwd", "conv2-dW", "conv1-dW-split-K", "fc-fwd", "blocked"])
def test_fast_matmul_on_the_networks_shapes(isa, rng, shape):
    """Shapes of the lab network (threaded, K split across threads, several cache blocks).

    With two threads, both instruction sets' kernel tables split these along N
    (conv2-fwd or conv2-dW, fc-fwd), along M (blocked) and along K (conv1-dW).
    """
    m, k, n = shape
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32).T     # the weight-gradient layout
    out = np.full((m, n), np.nan, dtype=np.float32)           # every entry must be overwritten
    assert fast.matmul(a, b, out=out) is out
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(out - exact) <= _matmul_tolerance(a, b))


AWKWARD = [1, 5, 7, 8, 15, 16, 17, 24, 25, 31, 33, 100, 257]


@requires_fast
@pytest.mark.parametrize("m", AWKWARD)
def test_fast_matmul_on_awkward_shapes(isa, rng, m):
    """Every micro-kernel's ragged edges and both in-place shortcuts (direct A: N <= NR;
    direct B: row-major B), K past one KC = 256 block (257, 520), single-thread sizes."""
    for n in AWKWARD:
        for k in (1, 5, 16, 17, 33, 257, 520):
            for la, lb in [("c", "c"), ("t", "t"), ("s", "c")]:
                a, b = _operand(rng, m, k, la), _operand(rng, k, n, lb)
                out = fast.matmul(a, b)
                exact = a.astype(np.float64) @ b.astype(np.float64)
                assert np.all(np.abs(out - exact) <= _matmul_tolerance(a, b)), (m, n, k, la, lb)


@requires_fast
def test_fast_matmul_reads_reversed_views_in_place(isa, rng):
    a = rng.standard_normal((40, 30)).astype(np.float32)[::-1, ::-1]
    b = rng.standard_normal((30, 50)).astype(np.float32)[::-1]
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(fast.matmul(a, b) - exact) <= _matmul_tolerance(a, b))


@requires_fast
def test_ops_matmul_hands_float32_to_the_fast_path(rng, monkeypatch):
    calls = []
    real = fast.matmul
    monkeypatch.setattr(fast, "matmul", lambda *a, **k: calls.append(1) or real(*a, **k))
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    ops.matmul(a, b)
    assert calls == [], "float64 products are numpy's"
    ops.matmul(a.astype(np.float32), b.astype(np.float32))
    assert calls == [1]


# ------------------------------------------------- convolution, image by image
@requires_fast
@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", CONV_CASES, ids=CONV_IDS)
def test_fast_conv_matches_the_naive_loops(isa, rng, shape, kernel, stride, padding, dilation):
    f = 3
    for with_bias in (True, False):
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal((f, shape[1], *kernel)).astype(np.float32)
        b = rng.standard_normal(f).astype(np.float32) if with_bias else None
        y = fast.conv_forward(x, w, b, stride, padding, dilation)
        assert y.dtype == np.float32 and y.flags.c_contiguous
        tol = 2e-5
        np.testing.assert_allclose(y, naive.conv_forward(x, w, b, stride, padding, dilation),
                                   rtol=tol, atol=tol)
        g = rng.standard_normal(y.shape).astype(np.float32)
        expected = naive.conv_backward(x, w, g, stride, padding, dilation)
        for got, want in zip(fast.conv_backward(x, w, g, stride, padding, dilation), expected):
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        grad_x, grad_w, grad_b = fast.conv_backward(x, w, g, stride, padding, dilation,
                                                    need_input_grad=False)
        assert grad_x is None
        np.testing.assert_allclose(grad_w, expected[1], rtol=tol, atol=tol)
        np.testing.assert_allclose(grad_b, expected[2], rtol=tol, atol=tol)


@requires_fast
@pytest.mark.parametrize("shape,weights", [((50, 1, 28, 28), (16, 1, 5, 5)), ((50, 16, 14, 14), (32, 16, 5, 5))],
                         ids=["conv1", "conv2"])
def test_fast_conv_agrees_with_the_plain_path_on_the_lab_shapes(isa, rng, shape, weights):
    """Conv in float32 (fast path) against the same Conv in float64 (plain im2col path)."""
    conv32 = Conv(weights[1], weights[0], weights[2:], padding=2, dtype=np.float32, rng=0)
    conv64 = Conv(weights[1], weights[0], weights[2:], padding=2, dtype=np.float64, rng=0)
    conv32.bias[...] = rng.standard_normal(weights[0])
    conv64.weights[...], conv64.bias[...] = conv32.weights, conv32.bias
    x = rng.random(shape, dtype=np.float32)
    y, y64 = conv32.forward(x), conv64.forward(x.astype(np.float64))
    assert conv32.path == "fast" and conv64.path == "plain"
    assert np.abs(y - y64).max() <= 1e-5 * np.abs(y64).max()
    g = rng.standard_normal(y.shape).astype(np.float32)
    grad_x, pairs = conv32.backprop(g)
    grad_x64, pairs64 = conv64.backprop(g.astype(np.float64))
    for got, want in [(grad_x, grad_x64)] + [(a, b) for (_, a), (_, b) in zip(pairs, pairs64)]:
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


# ------------------------------------- sparse.c: the weight gradient of a sparse dL/dy
requires_sparse = pytest.mark.skipif(
    not (fast.available(np.float32) and fast._fast.sparse_ok(1, 1, 1, 1)),
    reason="sparse.c does not run here (x86-64 with AVX2+FMA, gcc/clang, not Windows)")

# (N, C, H, W), (KH, KW), (PH, PW); stride and dilation 1. The kernel rows C*KH are chosen
# so that sparse.c's row blocks of 8, 4 and 1 all run: 16, 13 = 8+4+1, 7 = 4+1+1+1, 3, 1.
SPARSE_CASES = [
    ((3, 4, 9, 10), (4, 3), (1, 2)),      # C*KH = 16
    ((2, 13, 6, 7), (1, 5), (0, 2)),      # 13
    ((2, 7, 5, 12), (1, 8), (0, 7)),      # 7; KW = 8, every lane used
    ((3, 1, 11, 6), (3, 1), (1, 0)),      # 3; KW = 1
    ((2, 1, 4, 3), (1, 2), (3, 4)),       # 1; padding wider than the image
    ((2, 2, 8, 8), (5, 5), (0, 0)),       # no padding: OH, OW < H, W
    ((1, 3, 5, 17), (2, 6), (4, 1)),      # more padding on top than the kernel is high
]


def _sparse_grad(rng, shape, density):
    """dL/dy with about this fraction of non-zero entries, a different count per image."""
    values = rng.standard_normal(shape).astype(np.float32)
    keep = rng.random(shape) < density * rng.uniform(0.5, 1.0, size=(shape[0],) + (1,) * (len(shape) - 1))
    return values * keep


@requires_sparse
@pytest.mark.parametrize("shape,kernel,padding", SPARSE_CASES,
                         ids=[f"x{s}-k{k}-p{p}".replace(" ", "") for s, k, p in SPARSE_CASES])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.25])
def test_sparse_weight_gradient_matches_the_naive_loops(rng, monkeypatch, shape, kernel, padding, density):
    """Every image below the threshold goes through sparse.c: its weight and bias gradients
    against the naive loops (the oracle), the input gradient untouched (the dense product)."""
    monkeypatch.setattr(fast, "SPARSE_MIN_CHANNELS", 1)
    monkeypatch.setattr(fast, "SPARSE_BELOW", 0.3)
    f = 5
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((f, shape[1], *kernel)).astype(np.float32)
    oh = shape[2] + 2 * padding[0] - kernel[0] + 1
    ow = shape[3] + 2 * padding[1] - kernel[1] + 1
    g = _sparse_grad(rng, (shape[0], f, oh, ow), density)
    below = fast._sparse_args(shape[1], w, fast._geometry(shape, w.shape, (1, 1), padding, (1, 1))[0], 2)[0]
    assert (np.count_nonzero(g.reshape(len(g), -1), axis=1) <= below).all()   # sparse.c takes them all
    want = naive.conv_backward(x, w, g, (1, 1), padding, (1, 1))
    for need_input_grad in (True, False):
        got = fast.conv_backward(x, w, g, (1, 1), padding, (1, 1), need_input_grad=need_input_grad)
        for a, b in zip(got, want):
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


@requires_sparse
def test_a_batch_mixing_sparse_and_dense_images_sums_both(rng, monkeypatch):
    """Images above the threshold take the dense product, the others sparse.c; the gradients
    of the two kinds are added together."""
    monkeypatch.setattr(fast, "SPARSE_MIN_CHANNELS", 1)
    x = rng.standard_normal((6, 3, 7, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = rng.standard_normal((6, 4, 7, 9)).astype(np.float32)
    g[::2] *= rng.random(g[::2].shape) < 0.1            # images 0, 2, 4 sparse; 1, 3, 5 dense
    want = naive.conv_backward(x, w, g, (1, 1), (1, 1), (1, 1))
    for got, expected in zip(fast.conv_backward(x, w, g, (1, 1), (1, 1), (1, 1)), want):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    monkeypatch.setattr(fast, "SPARSE_BELOW", 0)           # all dense: the same gradients
    for got, expected in zip(fast.conv_backward(x, w, g, (1, 1), (1, 1), (1, 1)), want):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)


@requires_sparse
def test_the_lab_networks_conv2_gradient_after_pool_and_relu(rng):
    """conv2 -> MaxPool -> ReLU as in the lab network: the dL/dy the convolution receives is
    10-25% non-zero, sparse.c gathers dL/dW and dL/db, and they agree with Conv's plain path
    in float64."""
    from minidl.layers import MaxPool
    conv32 = Conv(16, 32, 5, padding=2, dtype=np.float32, rng=0)
    conv64 = Conv(16, 32, 5, padding=2, dtype=np.float64, rng=0)
    conv32.bias[...] = rng.standard_normal(32)
    conv64.weights[...], conv64.bias[...] = conv32.weights, conv32.bias
    x = rng.standard_normal((20, 16, 14, 14)).astype(np.float32)
    pool, relu = MaxPool(2), ReLU()
    h = relu.forward(pool.forward(conv32.forward(x)))
    g = pool.backward_inputs(relu.backward_inputs(rng.standard_normal(h.shape).astype(np.float32)))
    below = fast._sparse_args(16, conv32.weights, fast._geometry(x.shape, (32, 16, 5, 5), (1, 1), (2, 2),
                                                                  (1, 1))[0], 2)[0]
    assert 0 < below and (np.count_nonzero(g.reshape(20, -1), axis=1) <= below).all()  # all sparse
    conv64.forward(x.astype(np.float64))
    grad_x, pairs = conv32.backprop(g)
    grad_x64, pairs64 = conv64.backprop(g.astype(np.float64))
    for got, want in [(grad_x, grad_x64)] + [(a, b) for (_, a), (_, b) in zip(pairs, pairs64)]:
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@requires_sparse
def test_sparse_lists_a_nan_and_skips_negative_zero_as_the_naive_loops(rng, monkeypatch):
    """sparse.c lists an entry of dL/dy when it is not 0: a NaN is listed and spreads as in
    the naive loops (to its filter's dL/dW and dL/db, and to the inputs under its window);
    a -0.0 is not, and changes nothing."""
    monkeypatch.setattr(fast, "SPARSE_MIN_CHANNELS", 1)
    x = rng.standard_normal((2, 9, 6, 13)).astype(np.float32)
    w = rng.standard_normal((3, 9, 3, 3)).astype(np.float32)
    g = _sparse_grad(rng, (2, 3, 6, 13), 0.1)               # P = 78: 9 vectors of 8 and 6 more
    g[0, 1, 2, 3] = np.nan                                  # in a vector of 8
    g[1, 2, 5, 12] = np.nan                                 # among the last 6
    g[1, 0, 0, 0] = -0.0
    want = naive.conv_backward(x, w, g, (1, 1), (1, 1), (1, 1))
    got = fast.conv_backward(x, w, g, (1, 1), (1, 1), (1, 1))
    for a, b in zip(got, want):
        assert np.isnan(b).any() and (np.isnan(a) == np.isnan(b)).all()
        np.testing.assert_allclose(a[~np.isnan(b)], b[~np.isnan(b)], rtol=2e-5, atol=2e-5)


@requires_sparse
def test_count_nonzero_counts_nan_and_not_negative_zero():
    g = np.array([0.0, -0.0, 1.0, np.nan, -2.0, np.inf, 0.0], dtype=np.float32)
    assert fast._fast.count_nonzero(g) == 4 == np.count_nonzero(g)
    assert fast._fast.count_nonzero(np.zeros(0, dtype=np.float32)) == 0


# ------------------------------------------ direct.c: convolutions without im2col
requires_direct = pytest.mark.skipif(
    not (fast.available(np.float32) and "avx512" in fast.isas()),
    reason=f"direct.c does not run here (x86-64 with AVX-512, gcc/clang, not Windows): {fast.status()}")

# (N, H, W), F, (KH, KW), (PH, PW); one input channel, stride and dilation 1. direct.c works
# on rows of 1-4 vectors of 16 pixels (NV), 16/NV filters at a time in the forward pass, 4
# filters x 5 kernel columns in dL/dW, 4 rows in dL/dx: the cases cover each NV, ragged rows,
# ragged filter, column and row blocks.
DIRECT_CASES = [
    ((3, 28, 28), 16, (5, 5), (2, 2)),    # the lab's conv1: NV = 2, the last vector 12 lanes
    ((2, 9, 17), 5, (3, 1), (0, 0)),      # OW = 17: one lane in the second vector
    ((2, 20, 40), 7, (7, 3), (3, 1)),     # NV = 3, 5 + 2 filters; 20 rows = 5 blocks of 4
    ((2, 5, 64), 3, (1, 1), (0, 0)),      # NV = 4, every lane used; 5 rows = 4 + 1
    ((2, 10, 50), 9, (3, 3), (6, 2)),     # padding wider than the kernel; OW = 52
    ((1, 33, 1), 17, (2, 1), (1, 0)),     # one pixel wide; 16 + 1 filters
    ((2, 11, 33), 20, (4, 6), (1, 2)),    # KW = 6: column blocks 5 + 1; W = 33 is 3 vectors, OW = 32 is 2
    ((2, 6, 14), 4, (6, 8), (0, 0)),      # OH = 1, OW = 7: the kernel as high as the image
]


@pytest.fixture
def avx512(monkeypatch):
    """gemm.c (and with it direct.c) on AVX-512 for the test, restored afterwards; winograd.c
    off, so that the 5x5 forwards with several channels are direct.c's."""
    monkeypatch.setattr(fast, "WINOGRAD_MIN_CHANNELS", 0)
    previous = fast.use_isa("avx512")
    yield
    fast.use_isa(previous)


@requires_direct
@pytest.mark.parametrize("shape,f,kernel,padding", DIRECT_CASES,
                         ids=[f"x{s}-f{f}-k{k}-p{p}".replace(" ", "") for s, f, k, p in DIRECT_CASES])
def test_direct_conv_matches_the_naive_loops(avx512, rng, shape, f, kernel, padding):
    """Forward, dL/dW, dL/db and dL/dx from direct.c against the naive loops in float64."""
    n, h, w_in = shape
    x = rng.standard_normal((n, 1, h, w_in)).astype(np.float32)
    w = rng.standard_normal((f, 1, *kernel)).astype(np.float32)
    geometry = fast._geometry(x.shape, w.shape, (1, 1), padding, (1, 1))[0]
    assert fast._direct("forward", x.shape, geometry)          # direct.c takes both passes
    assert fast._direct("backward", x.shape, geometry)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for b in (rng.standard_normal(f).astype(np.float32), None):
        y = fast.conv_forward(x, w, b, (1, 1), padding, (1, 1))
        want = naive.conv_forward(x64, w64, None if b is None else b.astype(np.float64), (1, 1), padding, (1, 1))
        assert y.shape == want.shape and y.dtype == np.float32
        assert np.abs(y - want).max() <= 1e-5 * np.abs(want).max()
    g = rng.standard_normal(y.shape).astype(np.float32)
    want = naive.conv_backward(x64, w64, g.astype(np.float64), (1, 1), padding, (1, 1))
    for need_input_grad in (True, False):
        got = fast.conv_backward(x, w, g, (1, 1), padding, (1, 1), need_input_grad=need_input_grad)
        assert (got[0] is None) == (not need_input_grad)
        for a, b in zip(got, want):
            if a is not None:
                assert a.shape == b.shape and a.dtype == np.float32
                assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


# (N, C, H, W), F, (KH, KW), (PH, PW): the forward with several input channels. direct.c
# takes 8 filters x 2 rows at a time for rows of one vector (NV = 1), 16/NV filters x 1 row
# otherwise; the cases cover each NV, ragged filter and row blocks and the kept lanes.
DIRECT_CHANNEL_CASES = [
    ((3, 16, 14, 14), 32, (5, 5), (2, 2)),   # the lab's conv2: OW = 14, 14 rows = 7 blocks of 2
    ((2, 3, 15, 16), 13, (3, 3), (1, 1)),    # every lane; 15 rows: the last block half used; 8 + 5 filters
    ((2, 4, 9, 30), 9, (2, 3), (0, 1)),      # NV = 2, 14 lanes of the second vector
    ((2, 2, 7, 44), 7, (3, 1), (1, 0)),      # NV = 3: 5 + 2 filters
    ((1, 3, 5, 60), 6, (1, 5), (0, 2)),      # NV = 4: 4 + 2 filters
    ((2, 5, 6, 14), 3, (6, 8), (0, 4)),      # OH = 1, OW = 15, the kernel as high as the image
    ((2, 2, 4, 12), 10, (3, 3), (3, 2)),     # padding wider than the kernel: OW = 14, OH = 8
    ((2, 1, 12, 14), 5, (9, 3), (4, 1)),     # one channel, a kernel 9 rows high: the forward only
]


def _forward_matches_the_naive_loops(rng, x, w, padding, tolerance):
    """conv_forward (stride 1), with a bias and without, against the naive loops in float64:
    within ``tolerance`` times the output's largest entry."""
    for b in (rng.standard_normal(w.shape[0]).astype(np.float32), None):
        y = fast.conv_forward(x, w, b, (1, 1), padding, (1, 1))
        want = naive.conv_forward(x.astype(np.float64), w.astype(np.float64),
                                  None if b is None else b.astype(np.float64), (1, 1), padding, (1, 1))
        assert y.shape == want.shape and y.dtype == np.float32
        assert np.abs(y - want).max() <= tolerance * np.abs(want).max()


@requires_direct
@pytest.mark.parametrize("shape,f,kernel,padding", DIRECT_CHANNEL_CASES,
                         ids=[f"x{s}-f{f}-k{k}-p{p}".replace(" ", "") for s, f, k, p in DIRECT_CHANNEL_CASES])
def test_direct_forward_with_channels_matches_the_naive_loops(avx512, rng, shape, f, kernel, padding):
    """The forward of several input channels (or of a kernel too high for direct.c's backward)
    from direct.c against the naive loops in float64; the backward stays with im2col and the
    product (or sparse.c)."""
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((f, shape[1], *kernel)).astype(np.float32)
    geometry = fast._geometry(x.shape, w.shape, (1, 1), padding, (1, 1))[0]
    assert fast._direct("forward", x.shape, geometry) and not fast._direct("backward", x.shape, geometry)
    _forward_matches_the_naive_loops(rng, x, w, padding, 1e-5)


@requires_direct
def test_direct_conv_agrees_with_the_im2col_path(avx512, rng, monkeypatch):
    """The lab's conv1 through direct.c and through im2col and gemm.c: equal to float32 rounding."""
    x = rng.random((6, 1, 28, 28), dtype=np.float32)
    w = rng.standard_normal((16, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    g = rng.standard_normal((6, 16, 28, 28)).astype(np.float32) * (rng.random((6, 16, 28, 28)) < 0.2)
    x2 = rng.random((6, 16, 14, 14), dtype=np.float32)          # and the forward of its conv2
    w2 = rng.standard_normal((32, 16, 5, 5)).astype(np.float32)
    b2 = rng.standard_normal(32).astype(np.float32)

    def passes():
        return [fast.conv_forward(x, w, b, (1, 1), (2, 2), (1, 1)),
                *fast.conv_backward(x, w, g, (1, 1), (2, 2), (1, 1)),
                fast.conv_forward(x2, w2, b2, (1, 1), (2, 2), (1, 1))]
    direct = passes()
    monkeypatch.setattr(fast, "_direct", lambda *args: False)
    for a, b in zip(direct, passes()):
        assert np.abs(a - b).max() <= 1e-6 * np.abs(b).max()


@requires_direct
def test_direct_conv_only_where_it_applies(avx512):
    """Stride 1, dilation 1, rows of at most 64 pixels, AVX-512 in use; the backward for one
    input channel and kernels up to 7 rows high, the forward for one input channel or for
    output rows that fill 7/8 of their vectors and C*KH*KW <= 800."""
    def takes(which, x_shape, w_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
        return fast._direct(which, x_shape, fast._geometry(x_shape, w_shape, stride, padding, dilation)[0])

    def both(*args, **kwargs):
        return takes("forward", *args, **kwargs), takes("backward", *args, **kwargs)
    assert both((2, 1, 28, 28), (16, 1, 5, 5)) == (True, True)
    assert both((2, 1, 8, 64), (4, 1, 3, 1)) == (True, True)
    assert both((2, 1, 8, 9), (4, 1, 3, 3)) == (True, True)              # one channel: any width
    assert both((2, 1, 28, 28), (4, 1, 7, 9)) == (True, True)
    assert both((2, 1, 28, 28), (4, 1, 8, 3)) == (True, False)           # a kernel 8 rows high
    assert both((2, 1, 28, 28), (16, 1, 5, 5), stride=(1, 2)) == (False, False)
    assert both((2, 1, 28, 28), (16, 1, 5, 5), dilation=(2, 1)) == (False, False)
    assert both((2, 1, 8, 62), (4, 1, 3, 3), padding=(1, 2)) == (True, True)      # the output 64 wide
    assert both((2, 1, 8, 64), (4, 1, 3, 2), padding=(1, 1)) == (False, False)    # the output 65 wide
    assert both((2, 1, 8, 70), (4, 1, 3, 7)) == (False, False)                    # the input 70 wide
    # several channels: the forward only, and only where the lanes and the sum say so
    assert both((2, 16, 14, 14), (32, 16, 5, 5), padding=(2, 2)) == (True, False)  # the lab's conv2
    assert takes("forward", (2, 2, 28, 28), (16, 2, 5, 5), padding=(2, 2))
    assert not takes("forward", (2, 16, 13, 13), (32, 16, 5, 5), padding=(2, 2))   # 13 of 16 lanes
    assert takes("forward", (2, 16, 28, 28), (8, 16, 3, 3), padding=(1, 1))        # 28 of 32
    assert not takes("forward", (2, 16, 27, 27), (8, 16, 3, 3), padding=(1, 1))    # 27 of 32
    assert takes("forward", (2, 32, 16, 16), (8, 32, 5, 5), padding=(2, 2))        # C*KH*KW = 800
    assert not takes("forward", (2, 33, 16, 16), (8, 33, 5, 5), padding=(2, 2))    # 825
    assert not takes("forward", (2, 16, 14, 14), (32, 16, 5, 5), (1, 1), (2, 2), (2, 2))
    if "avx2" in fast.isas():
        fast.use_isa("avx2")
        assert both((2, 1, 28, 28), (16, 1, 5, 5)) == (False, False)         # AVX2 in use: im2col
        assert not takes("forward", (2, 16, 14, 14), (32, 16, 5, 5), padding=(2, 2))


# ------------------------------------------- winograd.c: 5x5 forwards by F(4x4, 5x5)
requires_winograd = pytest.mark.skipif(
    not (fast.available(np.float32) and fast._fast.winograd_ok(5, 5, 1, 1, 1, 1)),
    reason=f"winograd.c does not run here (x86-64 with AVX2+FMA, gcc/clang, not Windows): {fast.status()}")

# (N, C, H, W), F, (PH, PW). winograd.c takes 8 output tiles of 4x4 at a time from one image
# and blocks of 12, 8, 4, 2, 1 filters; the cases cover tiles cut at the edges, 8 tiles that
# start or end inside a row of tiles (the stage copied row by row), a call with 1 tile, every
# filter block, padding wider than the kernel and one channel.
WINOGRAD_CASES = [
    ((3, 16, 14, 14), 32, (2, 2)),   # the lab's conv2: 4x4 tiles, 2 of 4 columns of the last cut
    ((2, 5, 9, 11), 13, (0, 1)),     # OW = 9: 3 tiles a row, so 8 tiles end inside a row; 12 + 1 filters
    ((1, 20, 12, 12), 50, (0, 0)),   # 8x8 output; 4 x 12 + 2 filters
    ((2, 8, 28, 28), 16, (2, 2)),    # 7 x 7 tiles: 7 calls an image, the last with 1 tile; 12 + 4
    ((2, 4, 5, 5), 9, (0, 0)),       # a 1x1 output; 8 + 1 filters
    ((1, 9, 6, 40), 4, (4, 1)),      # padding wider than the kernel; 10 tiles a row
    ((3, 1, 7, 5), 3, (3, 2)),       # one channel; OW = 5: the last tile keeps 1 column
    ((2, 6, 10, 10), 8, (1, 1)),     # the second tile's 8 input columns end 1 past the row: masked
]


@requires_winograd
@pytest.mark.parametrize("shape,f,padding", WINOGRAD_CASES,
                         ids=[f"x{s}-f{f}-p{p}".replace(" ", "") for s, f, p in WINOGRAD_CASES])
def test_winograd_forward_matches_the_naive_loops(rng, monkeypatch, shape, f, padding):
    """winograd.c against the naive loops in float64, to its rounding: a few millionths of
    the output's largest entry (the direct sums: a few ten-millionths)."""
    monkeypatch.setattr(fast, "WINOGRAD_MIN_CHANNELS", 1)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((f, shape[1], 5, 5)).astype(np.float32)
    assert fast._winograd(x.shape, fast._geometry(x.shape, w.shape, (1, 1), padding, (1, 1))[0])
    _forward_matches_the_naive_loops(rng, x, w, padding, 2e-5)


@requires_winograd
def test_winograd_spreads_infinities_and_nans_as_the_naive_loops(rng):
    """An input tile with an infinity or a NaN is computed by the direct sums, so they reach
    only the outputs whose window holds them; non-finite weights send the layer elsewhere."""
    x = rng.standard_normal((2, 8, 14, 14)).astype(np.float32)
    w = rng.standard_normal((12, 8, 5, 5)).astype(np.float32)
    x[0, 3, 6, 6], x[1, 0, 0, 13], x[1, 7, 9, 2] = np.inf, -np.inf, np.nan
    for weights in (w, np.where(np.arange(w.size).reshape(w.shape) == 777, np.inf, w).astype(np.float32)):
        y = fast.conv_forward(x, weights, None, (1, 1), (2, 2), (1, 1))
        with np.errstate(invalid="ignore"):
            want = naive.conv_forward(x.astype(np.float64), weights.astype(np.float64), None, (1, 1), (2, 2), (1, 1))
        assert np.array_equal(np.isnan(y), np.isnan(want)) and np.array_equal(np.isinf(y), np.isinf(want))
        assert np.array_equal(np.sign(y[np.isinf(y)]), np.sign(want[np.isinf(want)]))
        finite = np.isfinite(want)
        assert 0 < finite.sum() < want.size
        assert np.abs(y[finite] - want[finite]).max() <= 2e-5 * np.abs(want[finite]).max()


@requires_winograd
def test_winograd_only_where_it_applies(monkeypatch):
    """5x5 kernels, stride 1, dilation 1, at least WINOGRAD_MIN_CHANNELS input channels (4),
    whatever instruction set gemm.c uses; WINOGRAD_MIN_CHANNELS = 0 turns it off."""
    def takes(x_shape, w_shape, stride=(1, 1), padding=(2, 2), dilation=(1, 1)):
        return fast._winograd(x_shape, fast._geometry(x_shape, w_shape, stride, padding, dilation)[0])
    assert takes((2, 16, 14, 14), (32, 16, 5, 5))                       # the lab's conv2
    assert takes((2, 4, 9, 30), (3, 4, 5, 5), padding=(0, 0))
    assert not takes((2, 3, 14, 14), (32, 3, 5, 5))                     # 3 channels
    assert not takes((2, 1, 28, 28), (16, 1, 5, 5))                     # the lab's conv1: direct.c
    assert not takes((2, 16, 14, 14), (32, 16, 3, 3), padding=(1, 1))
    assert not takes((2, 16, 14, 14), (32, 16, 5, 3))
    assert not takes((2, 16, 14, 14), (32, 16, 5, 5), stride=(1, 2))
    assert not takes((2, 16, 14, 14), (32, 16, 5, 5), dilation=(2, 1))
    for isa in fast.isas():
        previous = fast.use_isa(isa)
        assert takes((2, 16, 14, 14), (32, 16, 5, 5))
        fast.use_isa(previous)
    monkeypatch.setattr(fast, "WINOGRAD_MIN_CHANNELS", 0)
    assert not takes((2, 16, 14, 14), (32, 16, 5, 5))


# ------------------------------------------------------------------ switches
def test_the_fast_path_runs_for_float32_only():
    assert not fast.available(np.float64)
    assert fast.available(np.float32) == (fast.ENABLED and fast.CPU_SUPPORTED and ops.BACKEND == "compiled")


def test_the_switch_and_the_numpy_backend_turn_it_off(monkeypatch):
    monkeypatch.setattr(fast, "ENABLED", False)
    assert not fast.available(np.float32) and "off" in fast.status()
    monkeypatch.setattr(fast, "ENABLED", True)
    ops.use_backend("numpy")                          # the conftest fixture restores the backend
    assert not fast.available(np.float32)
    assert fast.status() in ("off (the NumPy backend is selected)",
                             "off (this CPU has neither AVX2+FMA nor AVX-512)") \
        or fast.status().startswith("off (not built")
    with pytest.raises(RuntimeError, match=r"fast\.conv_forward: the fast path does not run for float32"):
        fast.conv_forward(np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 3, 3), np.float32),
                          None, (1, 1), (0, 0), (1, 1))


def test_conv_takes_the_path_the_switch_says(rng, monkeypatch):
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    for enabled in (False, True):
        monkeypatch.setattr(fast, "ENABLED", enabled)
        conv = Conv(3, 4, (3, 2), padding=1, rng=0)
        conv.forward(x)
        if fast.available(np.float32):
            assert conv.path == "fast" and conv.x is x and conv.x_cols is None
        else:
            assert conv.path == "plain" and conv.x is None and conv.x_cols.shape == (3 * 6, 2 * 6 * 6)
        assert conv.x_shape == x.shape


def _run(code, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MINIDL_FAST", "MINIDL_FAST_ISA", "MINIDL_BACKEND")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(environ, **env), cwd=os.path.dirname(os.path.dirname(__file__)))


def test_minidl_fast_0_forces_the_plain_path():
    code = ("import numpy as np, minidl.ops as o; from minidl.layers import Conv\n"
            "c = Conv(1, 2, 3); c.forward(np.zeros((1, 1, 5, 5), np.float32))\n"
            "print(o.fast.available(np.float32), c.path, o.fast.status())")
    done = _run(code, MINIDL_FAST="0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("False plain off (")
    done = _run(code, MINIDL_FAST="yes")
    assert done.returncode != 0 and "MINIDL_FAST='yes': expected 0" in done.stderr


@requires_fast
def test_use_isa_switches_and_returns_the_previous_one():
    best = fast.isas()[0]
    assert fast.ISA == best or os.environ.get("MINIDL_FAST_ISA")
    previous = fast.use_isa("auto")
    try:
        assert fast.ISA == best and fast.status() == f"on for float32 (gemm.c, {fast._ISAS[best][1]})"
        for name in fast.isas()[::-1] + fast.isas():
            before = fast.ISA
            assert fast.use_isa(f" {name.upper()} ") == before
            assert fast.ISA == name and fast._fast.isa() == fast._ISAS[name][0]     # gemm.c's own
        with pytest.raises(ValueError, match="instruction set 'sse4': expected 'auto', 'avx512' or 'avx2'"):
            fast.use_isa("sse4")
        for name in set(fast._ISAS) - set(fast.isas()):     # only on a CPU without AVX-512
            with pytest.raises(ValueError, match=f"instruction set '{name}': this CPU runs"):
                fast.use_isa(name)
    finally:
        fast.use_isa(previous)


@pytest.mark.skipif("avx2" not in fast.isas(), reason=f"this CPU has no AVX2+FMA ({fast.status()})")
def test_minidl_fast_isa_avx2_runs_the_avx2_kernels():
    code = ("import numpy as np, minidl.ops as o; a = np.ones((20, 30), np.float32)\n"
            "print(o.fast.ISA, o.fast._fast.isa(), int((o.fast.matmul(a, a.T) == 30).all()), o.fast.status())")
    done = _run(code, MINIDL_FAST_ISA="avx2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "avx2 1 1 on for float32 (gemm.c, AVX2+FMA)"
    done = _run(code, MINIDL_FAST_ISA="avx2", MINIDL_FAST="0")
    assert done.returncode == 0 and done.stdout.startswith("avx2 1 1 off (MINIDL_FAST=0"), done.stderr


def test_minidl_fast_isa_rejects_what_it_cannot_run():
    done = _run("import minidl", MINIDL_FAST_ISA="avx1024")
    assert done.returncode != 0
    assert "MINIDL_FAST_ISA='avx1024': expected 'avx512', 'avx2' or 'auto' (the default)" in done.stderr
    missing = [name for name in ("avx512", "avx2") if name not in fast.isas()]
    if fast._fast is not None and missing:              # e.g. avx512 on a laptop
        done = _run("import minidl", MINIDL_FAST_ISA=missing[0])
        assert done.returncode != 0 and f"MINIDL_FAST_ISA='{missing[0]}': instruction set" in done.stderr


# ------------------------------------------------------------------------- ReLU
@requires_fast
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 5), (50, 16, 14, 14), (2, 3, 5, 17)])
def test_fast_relu_is_the_plain_relu_bit_for_bit(rng, monkeypatch, shape):
    """ReLU's fast path against its plain path (fast path switched off), special values included."""
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45], np.float32)
    if x.size >= special.size:
        x.reshape(-1)[:special.size] = special
        g.reshape(-1)[:special.size] = special[::-1]      # -0.0 and inf gradients meet both mask values
    fast_layer, plain_layer = ReLU(), ReLU()
    y_fast = fast_layer.forward(x)
    grad_fast = fast_layer.backward_inputs(g)
    monkeypatch.setattr(fast, "ENABLED", False)
    y_plain = plain_layer.forward(x)
    with np.errstate(invalid="ignore"):                   # inf * 0 where the mask is 0
        grad_plain = plain_layer.backward_inputs(g)
    for got, want in ((y_fast, y_plain), (grad_fast, grad_plain), (fast_layer.mask, plain_layer.mask)):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))   # bits, signs of zeros
    # and the definition: y = max(x, 0), dL/dx = dL/dy where x > 0, else 0 (loops, float64)
    x64, g64 = x.astype(np.float64).ravel(), g.astype(np.float64).ravel()
    for i in range(x64.size):
        want_y = x64[i] if (x64[i] > 0 or np.isnan(x64[i])) else 0.0
        got_y = y_fast.ravel()[i]
        assert (got_y == want_y and np.signbit(got_y) == np.signbit(want_y)) or (np.isnan(want_y) and np.isnan(got_y))
        with np.errstate(invalid="ignore"):
            want_g = g64[i] * (1.0 if x64[i] > 0 else 0.0)
        assert grad_fast.ravel()[i] == want_g or (np.isnan(want_g) and np.isnan(grad_fast.ravel()[i]))


@requires_fast
def test_fast_relu_reads_strided_input(rng):
    x = rng.standard_normal((4, 6, 10)).astype(np.float32)[:, ::2, ::-1]
    y, mask = fast.relu_forward(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(mask, x > 0)
