"""The kernels: the NumPy references against naive loops, the Cython kernels against the references.

Shapes are deliberately awkward: N, C, H, W all different, non-square kernels,
and stride, padding and dilation that differ between H and W (a kernel that
mixes up KH and KW, or H and W, fails here).
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minidl import ops
from minidl.ops import naive, reference

requires_compiled = pytest.mark.skipif(
    ops.BACKEND != "compiled", reason="compiled kernels not active (MINIDL_BACKEND=numpy or not built)")

DTYPES = [np.float32, np.float64]

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
]
CONV_IDS = [f"x{s}-k{k}-s{st}-p{p}-d{d}".replace(" ", "") for s, k, st, p, d in CONV_CASES]

# (N, C, H, W), (KH, KW), (SH, SW), (PH, PW)
POOL_CASES = [
    ((2, 3, 7, 5), (2, 2), (2, 2), (0, 0)),    # odd sizes: the last row and column are dropped
    ((3, 2, 6, 9), (3, 2), (1, 1), (1, 1)),    # overlapping windows, padding
    ((1, 4, 8, 5), (3, 3), (2, 1), (1, 0)),
    ((2, 1, 5, 7), (1, 3), (1, 2), (0, 1)),
    ((4, 3, 5, 6), (5, 6), (1, 1), (2, 3)),    # windows as large as the input, maximal padding
    ((2, 3, 9, 4), (3, 2), (3, 2), (0, 0)),
]
POOL_IDS = [f"x{s}-k{k}-s{st}-p{p}".replace(" ", "") for s, k, st, p in POOL_CASES]


def conv_args(kernel, stride, padding, dilation):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    return kh, kw, sh, sw, ph, pw, dh, dw


def cols_shape(shape, kernel, stride, padding, dilation):
    n, c, h, w = shape
    oh = naive.output_size(h, kernel[0], stride[0], padding[0], dilation[0])
    ow = naive.output_size(w, kernel[1], stride[1], padding[1], dilation[1])
    return (c * kernel[0] * kernel[1], n * oh * ow)


def tied_input(rng, shape, dtype):
    """Small integers: many windows hold several equal maxima."""
    return rng.integers(-3, 4, size=shape).astype(dtype)


# ---------------------------------------------------------------- backend
def test_the_active_backend_is_reported():
    requested = os.environ.get("MINIDL_BACKEND", "compiled").strip().lower()
    assert ops.BACKEND in ("compiled", "numpy")
    if requested == "numpy":
        assert ops.BACKEND == "numpy"
        assert ops._compiled is None
    elif importlib.util.find_spec("minidl.ops._kernels") is not None:
        assert ops.BACKEND == "compiled"
        assert ops._compiled is not None


def test_use_backend_switches_the_kernels_that_run(monkeypatch, rng):
    x = rng.standard_normal((2, 3, 5, 4))
    expected = reference.im2col(x, 3, 2, 1, 1, 1, 0)
    calls = []
    real = reference.im2col
    monkeypatch.setattr(reference, "im2col", lambda *a, **k: calls.append(1) or real(*a, **k))

    assert ops.use_backend("numpy") == "numpy"
    assert ops.BACKEND == "numpy"
    np.testing.assert_array_equal(ops.im2col(x, 3, 2, 1, 1, 1, 0), expected)
    assert calls == [1], "the numpy backend must run minidl.ops.reference"

    if importlib.util.find_spec("minidl.ops._kernels") is None:
        with pytest.raises(RuntimeError, match="not available"):
            ops.use_backend("compiled")
        return
    assert ops.use_backend("compiled") == "compiled"
    assert ops.BACKEND == "compiled"
    np.testing.assert_array_equal(ops.im2col(x, 3, 2, 1, 1, 1, 0), expected)
    assert calls == [1], "the compiled backend must not call the reference"


def _run_python(code, **env):
    """Run code in a fresh interpreter that imports minidl from where this suite imported it."""
    root = str(Path(ops.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
           **env}
    env = {k: v for k, v in env.items() if v is not None}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_without_the_extension_minidl_warns_once_and_runs_the_references():
    """A failed build (the install goes on without the extension) leaves a working minidl."""
    out = _run_python("""
import sys, warnings
sys.modules["minidl.ops._kernels"] = None        # import fails: as if it had not been built
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
    from minidl import ops
    from minidl.layers import Conv
    y = Conv(1, 2, 3, rng=0).forward(np.ones((1, 1, 5, 5), np.float32))
messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
print(ops.BACKEND, y.shape, bool(np.isfinite(y).all()), len(messages))
print(*messages)
""", MINIDL_BACKEND=None)
    summary, message = out.split("\n", 1)
    assert summary == "numpy (1, 2, 3, 3) True 1"
    assert "compiled kernels (minidl.ops._kernels) are not built" in message
    assert "pip install -v ." in message


# A fresh interpreter with OMP_NUM_THREADS=3 (read when the OpenMP runtime starts) reports
# whether the extension was built with OpenMP, its thread count, and, if the image-by-image
# convolution runs on this CPU, how many of its per-thread gradient slots the images filled.
_THREADS_PROBE = """
import numpy as np
from minidl import ops
from minidl.ops import _kernels as k
t = k.max_threads()
used = -1
if ops.fast.available(np.float32):
    from minidl.ops.fast import _fast
    n, f, kk, p = 12, 2, 9, 4                  # 12 images of 1x4x4, 2 filters 3x3 -> 2x2
    x = np.ones((n, 1, 4, 4), np.float32)
    w2d = np.ones((f, kk), np.float32)
    g = np.ones((n, f, p), np.float32)
    grad_bwt = np.zeros((t, 1 + kk, f), np.float32)         # per thread: [db; dW^T]
    work = np.empty((t, (1 + kk) * p + _fast.slack()), np.float32)
    work[:, :p] = 1                                          # each block's row of ones
    work2 = np.empty((t, kk * p + _fast.col2im_scratch(1, 4, 4, 3, 3, 1, 0, 0, 1, 2)), np.float32)
    _fast.conv_backward_f32(x, w2d, g, np.zeros(x.shape, np.float32), grad_bwt, work, work2,
                            True, 3, 3, 1, 1, 0, 0, 1, 1, 2, 2)
    grad_b = grad_bwt[:, 0]
    assert grad_b.sum() == n * f * p
    used = int((grad_b != 0).any(axis=1).sum())
print(k.openmp_enabled(), t, used)
"""


@requires_compiled
def test_the_extension_reports_whether_it_was_built_with_openmp():
    """With OpenMP the kernels follow OMP_NUM_THREADS and really split images over the threads;
    a build without it (no OpenMP runtime, as with Apple's clang) runs everything on one thread."""
    enabled, threads, used = _run_python(_THREADS_PROBE, OMP_NUM_THREADS="3").split()
    if enabled == "True":
        assert threads == "3"
        assert used in ("3", "-1")      # -1: this CPU does not run the image-by-image kernels
    else:
        assert enabled == "False"
        assert threads == "1"
        assert used in ("1", "-1")


def test_use_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        ops.use_backend("cuda")


# ------------------------------------------------------------ output size
@pytest.mark.parametrize("size,kernel,stride,padding,dilation", [
    (7, 3, 1, 0, 1), (7, 3, 2, 1, 1), (8, 2, 2, 0, 1), (9, 4, 3, 1, 2), (5, 5, 1, 0, 1),
    (5, 5, 7, 2, 1), (28, 5, 1, 2, 1), (6, 3, 4, 0, 2), (1, 1, 1, 0, 1),
])
def test_output_size_is_pytorchs_floor_formula(size, kernel, stride, padding, dilation):
    import math
    expected = math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1)
    assert ops.output_size(size, kernel, stride, padding, dilation) == expected
    assert reference.output_size(size, kernel, stride, padding, dilation) == expected


# ------------------------------------------- reference im2col vs naive loops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", CONV_CASES, ids=CONV_IDS)
def test_reference_im2col_matches_naive_loops(rng, dtype, shape, kernel, stride, padding, dilation):
    x = rng.standard_normal(shape).astype(dtype)
    args = conv_args(kernel, stride, padding, dilation)
    cols = reference.im2col(x, *args)
    assert cols.dtype == dtype
    assert cols.shape == cols_shape(shape, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(cols, naive.im2col(x, *args).astype(dtype))


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", CONV_CASES, ids=CONV_IDS)
def test_active_im2col_matches_naive_loops(rng, shape, kernel, stride, padding, dilation):
    x = rng.standard_normal(shape)
    args = conv_args(kernel, stride, padding, dilation)
    np.testing.assert_array_equal(ops.im2col(x, *args), naive.im2col(x, *args))


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", CONV_CASES, ids=CONV_IDS)
def test_col2im_is_the_adjoint_of_im2col(rng, shape, kernel, stride, padding, dilation):
    """<im2col(x), c> == <x, col2im(c)> for every x and c: col2im is im2col transposed."""
    args = conv_args(kernel, stride, padding, dilation)
    x = rng.standard_normal(shape)
    c = rng.standard_normal(cols_shape(shape, kernel, stride, padding, dilation))
    for im2col, col2im in ((ops.im2col, ops.col2im), (reference.im2col, reference.col2im)):
        lhs = np.sum(im2col(x, *args) * c)
        back = col2im(c, shape, *args)
        assert back.shape == shape
        assert np.isclose(lhs, np.sum(x * back), rtol=1e-12, atol=1e-12)


def test_col2im_sums_overlapping_fields_by_hand():
    """A 2x2 kernel at stride 1 on a 3x3 image: the centre pixel is in all 4 fields."""
    cols = np.ones((4, 4))
    x = ops.col2im(cols, (1, 1, 3, 3), 2, 2, 1, 1, 0, 0)
    np.testing.assert_array_equal(x[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


# ---------------------------------------- compiled kernels vs the references
@requires_compiled
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", CONV_CASES, ids=CONV_IDS)
def test_compiled_im2col_equals_reference(rng, dtype, shape, kernel, stride, padding, dilation):
    x = rng.standard_normal(shape).astype(dtype)
    args = conv_args(kernel, stride, padding, dilation)
    cols = ops.im2col(x, *args)
    assert cols.dtype == dtype and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, reference.im2col(x, *args))


@requires_compiled
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", CONV_CASES, ids=CONV_IDS)
def test_compiled_col2im_matches_reference(rng, dtype, shape, kernel, stride, padding, dilation):
    args = conv_args(kernel, stride, padding, dilation)
    cols = rng.standard_normal(cols_shape(shape, kernel, stride, padding, dilation)).astype(dtype)
    x = ops.col2im(cols, shape, *args)
    assert x.dtype == dtype and x.shape == shape
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(x, reference.col2im(cols, shape, *args), rtol=rtol, atol=rtol)


@requires_compiled
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kernel,stride,padding", POOL_CASES, ids=POOL_IDS)
def test_compiled_maxpool_equals_reference(rng, dtype, shape, kernel, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    for x in (rng.standard_normal(shape).astype(dtype), tied_input(rng, shape, dtype)):
        out, argmax = ops.maxpool_forward(x, kh, kw, sh, sw, ph, pw)
        ref_out, ref_argmax = reference.maxpool_forward(x, kh, kw, sh, sw, ph, pw)
        assert out.dtype == dtype and argmax.dtype == np.int64
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(argmax, ref_argmax)
        grad_out = rng.standard_normal(out.shape).astype(dtype)
        grad_x = ops.maxpool_backward(grad_out, argmax, shape)
        assert grad_x.dtype == dtype
        np.testing.assert_array_equal(grad_x, reference.maxpool_backward(grad_out, ref_argmax, shape))


@requires_compiled
@pytest.mark.parametrize("bad", [np.int32, np.int64, np.float16])
def test_compiled_kernels_reject_other_dtypes_with_a_clear_message(bad):
    x = np.ones((1, 2, 4, 4), dtype=bad)
    calls = [lambda: ops.im2col(x, 2, 2), lambda: ops.col2im(np.ones((8, 9), dtype=bad), x.shape, 2, 2),
             lambda: ops.maxpool_forward(x, 2, 2, 2, 2),
             lambda: ops.maxpool_backward(np.ones((1, 2, 2, 2), dtype=bad),
                                          np.zeros((1, 2, 2, 2), dtype=np.int64), x.shape)]
    for call in calls:
        with pytest.raises(TypeError) as err:
            call()
        assert np.dtype(bad).name in str(err.value)
        assert "float32 or float64" in str(err.value)
        assert "No matching signature" not in str(err.value)


# ---------------------------------------------- max pooling vs naive loops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kernel,stride,padding", POOL_CASES, ids=POOL_IDS)
def test_maxpool_kernels_match_naive_loops(rng, dtype, shape, kernel, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    for x in (rng.standard_normal(shape).astype(dtype), tied_input(rng, shape, dtype)):
        expected_out, expected_argmax = naive.maxpool_forward(x, kh, kw, sh, sw, ph, pw)
        for forward in (ops.maxpool_forward, reference.maxpool_forward):
            out, argmax = forward(x, kh, kw, sh, sw, ph, pw)
            np.testing.assert_array_equal(out, expected_out.astype(dtype))
            np.testing.assert_array_equal(argmax, expected_argmax)
        grad_out = rng.standard_normal(expected_out.shape).astype(dtype)
        expected_grad = naive.maxpool_backward(x, grad_out, kh, kw, sh, sw, ph, pw)
        for backward in (ops.maxpool_backward, reference.maxpool_backward):
            grad_x = backward(grad_out, expected_argmax, shape)
            tol = 1e-6 if dtype == np.float32 else 1e-14
            np.testing.assert_allclose(grad_x, expected_grad, rtol=tol, atol=tol)


def test_maxpool_ties_go_to_the_first_maximum_in_row_major_order():
    x = np.array([[[[0., 5., 1., 1.],
                    [5., 5., 1., 1.]]]])
    out, argmax = ops.maxpool_forward(x, 2, 2, 2, 2)
    np.testing.assert_array_equal(out, [[[[5., 1.]]]])
    np.testing.assert_array_equal(argmax, [[[[1, 2]]]])   # (0, 1) and (0, 2): first in each window


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", [((2, 2), (2, 2), (0, 0)), ((3, 2), (1, 2), (1, 0))],
                         ids=["2x2-fast-path", "general"])
def test_maxpool_propagates_the_first_nan_of_a_window(dtype, kernel, stride, padding):
    """A NaN anywhere in a window wins it (as PyTorch), the first one if there are several."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    x = np.arange(2 * 3 * 6 * 8, dtype=dtype).reshape(2, 3, 6, 8) % 7
    for flat in (0, 1, 8, 9, 17, 26, 47):   # every corner of a 2x2 window, and more
        xn = x.copy()
        xn[1, 2].flat[flat] = np.nan
        xn[0, 1].flat[flat] = np.nan
        xn[0, 1].flat[(flat + 1) % 48] = np.nan   # two NaNs, maybe in one window
        out, argmax = ops.maxpool_forward(xn, kh, kw, sh, sw, ph, pw)
        # the oracle: naive loops, then every window that holds a NaN, by hand
        expected, expected_argmax = naive.maxpool_forward(xn, kh, kw, sh, sw, ph, pw)
        for n, c, y, z in np.ndindex(*out.shape):
            h0, w0 = y * sh - ph, z * sw - pw
            window = [(hh, ww) for hh in range(max(h0, 0), min(h0 + kh, 6))
                      for ww in range(max(w0, 0), min(w0 + kw, 8))]
            nans = [hh * 8 + ww for hh, ww in window if np.isnan(xn[n, c, hh, ww])]
            if nans:
                expected[n, c, y, z], expected_argmax[n, c, y, z] = np.nan, nans[0]
        np.testing.assert_array_equal(out, expected)          # NaNs compare equal here
        np.testing.assert_array_equal(argmax, expected_argmax)
        assert np.isnan(out[1, 2]).any()
        ref_out, ref_argmax = reference.maxpool_forward(xn, kh, kw, sh, sw, ph, pw)
        np.testing.assert_array_equal(ref_out, expected)
        np.testing.assert_array_equal(ref_argmax, expected_argmax)


def test_maxpool_rejects_padding_larger_than_half_the_window():
    """A window made only of padding has no maximum; the kernels must not read outside x."""
    x = np.ones((1, 1, 2, 2))
    with pytest.raises(ValueError, match="padding"):
        ops.maxpool_forward(x, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="padding"):
        ops.maxpool_forward(x, 3, 2, 1, 1, 2, 0)


def test_kernels_accept_non_contiguous_inputs(rng):
    base = rng.standard_normal((5, 4, 3, 2))
    x = base.transpose(3, 2, 0, 1)          # (2, 3, 5, 4), Fortran-ordered view
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(ops.im2col(x, 2, 3, 1, 2, 1, 0), naive.im2col(x, 2, 3, 1, 2, 1, 0))
    out, argmax = ops.maxpool_forward(x[:, :, ::-1], 2, 3, 1, 1, 1, 1)
    ref_out, ref_argmax = naive.maxpool_forward(x[:, :, ::-1], 2, 3, 1, 1, 1, 1)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_argmax)
    cols = rng.standard_normal((4 * 4 * 3, 3 * 2 * 2)).T   # (12, 48), a transposed view
    assert not cols.flags.c_contiguous
    np.testing.assert_allclose(ops.col2im(cols, (4, 3, 5, 4), 2, 2, 1, 1, 0, 0),
                               naive.col2im(cols, (4, 3, 5, 4), 2, 2, 1, 1, 0, 0))


def test_im2col_rejects_a_kernel_larger_than_the_padded_input():
    with pytest.raises(ValueError, match=r"4x2 kernel .* 3x3 padded by 0x0"):
        ops.im2col(np.ones((1, 1, 3, 3)), 4, 2)


def test_col2im_rejects_cols_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"expected cols of shape \(8, 9\), got \(8, 10\)"):
        ops.col2im(np.ones((8, 10)), (1, 2, 4, 4), 2, 2)


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", CONV_CASES, ids=CONV_IDS)
def test_col2im_matches_naive_loops(rng, shape, kernel, stride, padding, dilation):
    args = conv_args(kernel, stride, padding, dilation)
    cols = rng.standard_normal(cols_shape(shape, kernel, stride, padding, dilation))
    expected = naive.col2im(cols, shape, *args)
    np.testing.assert_allclose(reference.col2im(cols, shape, *args), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ops.col2im(cols, shape, *args), expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- axpy
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 5, 2), (512, 300)], ids=["tiny", "3d", "threaded"])
def test_axpy_adds_a_scaled_array_in_place(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    expected = y.astype(np.float64) + -0.37 * x.astype(np.float64)   # the obvious formula, in float64
    out = ops.axpy(-0.37, x, y)
    assert out is y and y.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


def test_axpy_matches_the_reference_bit_for_bit(rng):
    x = rng.standard_normal((600, 200)).astype(np.float32)
    y = rng.standard_normal((600, 200)).astype(np.float32)
    y_ref = y.copy()
    ops.axpy(-0.01, x, y)
    reference.axpy(-0.01, x, y_ref)
    np.testing.assert_array_equal(y, y_ref)


def test_axpy_handles_non_contiguous_operands(rng):
    x = rng.standard_normal((6, 4)).T        # a transposed view
    y = rng.standard_normal((4, 6))
    expected = y + 2.5 * x
    ops.axpy(2.5, x, y)
    np.testing.assert_allclose(y, expected, rtol=1e-15)


def test_axpy_rejects_mismatched_operands():
    y = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"axpy: x of shape \(4, 3\)"):
        ops.axpy(1.0, np.zeros((4, 3), dtype=np.float32), y)
    with pytest.raises(TypeError, match="axpy: .*float64 and float32"):
        ops.axpy(1.0, np.zeros((3, 4)), y)
    y.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        ops.axpy(1.0, np.zeros((3, 4), dtype=np.float32), y)


# ------------------------------------------------------- SGD's momentum step
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 5, 2), (512, 300)], ids=["tiny", "3d", "threaded"])
def test_momentum_step_updates_velocity_and_parameter_in_place(rng, dtype, shape):
    v, g, w = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    v64, g64, w64 = (a.astype(np.float64) for a in (v, g, w))
    v_expected = 0.9 * v64 + 0.75 * g64                          # the formulas, in float64
    w_expected = w64 - 0.05 * v_expected
    out = ops.momentum_step(0.9, 0.75, -0.05, v, g, w)
    assert out is w and w.dtype == v.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(v, v_expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(w, w_expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1000, 300_001], ids=["one-thread", "threaded"])
def test_momentum_step_matches_the_reference_bit_for_bit(rng, size, dtype):
    v, g, w = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    v_ref, w_ref = v.copy(), w.copy()
    ops.momentum_step(0.9, 0.1, -0.01, v, g, w)      # 0.1: a scale whose product rounds
    reference.momentum_step(0.9, 0.1, -0.01, v_ref, g, w_ref)
    np.testing.assert_array_equal(v, v_ref)
    np.testing.assert_array_equal(w, w_ref)


def test_momentum_step_handles_non_contiguous_operands(rng):
    g = rng.standard_normal((6, 4)).T        # a transposed view
    v, w = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    v_expected = 0.5 * v + 2.0 * g
    w_expected = w + 0.1 * v_expected
    ops.momentum_step(0.5, 2.0, 0.1, v, g, w)
    np.testing.assert_allclose(v, v_expected, rtol=1e-15)
    np.testing.assert_allclose(w, w_expected, rtol=1e-15)


def test_momentum_step_rejects_mismatched_operands():
    v, w = np.zeros((3, 4), dtype=np.float32), np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"momentum_step: .*gradient \(4, 3\)"):
        ops.momentum_step(0.9, 1.0, -0.1, v, np.zeros((4, 3), dtype=np.float32), w)
    with pytest.raises(TypeError, match="momentum_step: .*gradient float64"):
        ops.momentum_step(0.9, 1.0, -0.1, v, np.zeros((3, 4)), w)
    v.setflags(write=False)
    with pytest.raises(ValueError, match="the velocity is read-only"):
        ops.momentum_step(0.9, 1.0, -0.1, v, np.zeros((3, 4), dtype=np.float32), w)


# ---------------------------------------------------------- matrix product
def test_matmul_follows_numpy_for_everything_else(rng):
    a64, b64 = rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    np.testing.assert_array_equal(ops.matmul(a64, b64), np.matmul(a64, b64))  # float64: numpy itself
    a, b = a64.astype(np.float32), b64.astype(np.float32)
    assert ops.matmul(a[:, :0], b[:0]).shape == (5, 4)                         # K = 0: zeros
    np.testing.assert_array_equal(ops.matmul(a[:, :0], b[:0]), np.zeros((5, 4), np.float32))
    assert ops.matmul(a[:0], b).shape == (0, 4)
    with pytest.raises(ValueError):
        ops.matmul(a, a)                                                       # (5,3) @ (5,3)
    square = rng.standard_normal((6, 6)).astype(np.float32)
    expected = square.astype(np.float64) @ square.astype(np.float64)
    result = ops.matmul(square, square, out=square)                            # out aliases both inputs
    assert result is square
    np.testing.assert_allclose(square, expected, rtol=1e-5, atol=1e-5)
