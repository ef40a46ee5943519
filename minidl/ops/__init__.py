"""The kernels under the layers: the matrix product, im2col, col2im, max pooling, axpy.

Two implementations share one interface:

* ``compiled``: the Cython extension ``minidl.ops._kernels`` (built by
  ``pip install``), typed loops parallelised with OpenMP;
* ``numpy``: ``minidl.ops.reference``, the slow, obvious NumPy versions.

``matmul`` is the exception to "slow": its reference is ``np.matmul`` (OpenBLAS).
The compiled one (``gemm.c``, AVX-512) runs only for float32 on CPUs that have
AVX-512; ``FAST_MATMUL`` says whether it does.

``BACKEND`` says which one is active. The compiled one is used when it imports;
setting the environment variable ``MINIDL_BACKEND=numpy`` before importing
minidl forces the NumPy references (the test suite runs once each way). If the
extension is missing, one warning says so and the references run.

Symbols and the column layout are documented in ``minidl/ops/reference.py``.
"""
import os
import warnings

import numpy as np

from . import reference
from .reference import output_size

__all__ = ["BACKEND", "FAST_MATMUL", "axpy", "conv_backward", "conv_forward", "fused_conv",
           "im2col", "matmul", "col2im", "maxpool_forward", "maxpool_backward",
           "output_size", "use_backend"]

_compiled = None
BACKEND = "numpy"


def _load_compiled():
    """Import the extension, or explain (once) why the references run instead."""
    try:
        from . import _kernels as compiled
    except ImportError as exc:
        warnings.warn(
            "minidl: the compiled kernels (minidl.ops._kernels) are not built "
            f"({exc}); running the slow NumPy reference kernels instead. "
            "Install with `pip install .` to build them.",
            RuntimeWarning, stacklevel=3)
        return None
    return compiled


def use_backend(name):
    """Select ``"compiled"`` or ``"numpy"`` kernels at run time; returns the active name."""
    global _compiled, BACKEND, FAST_MATMUL
    if name == "numpy":
        _compiled, BACKEND = None, "numpy"
        FAST_MATMUL = False
    elif name == "compiled":
        compiled = _load_compiled()
        if compiled is None:
            raise RuntimeError("minidl: the compiled kernels are not available")
        _compiled, BACKEND = compiled, "compiled"
        FAST_MATMUL = compiled.sgemm_supported()
    else:
        raise ValueError(f"minidl: unknown backend {name!r}; expected 'compiled' or 'numpy'")
    return BACKEND


_requested = os.environ.get("MINIDL_BACKEND", "compiled").strip().lower()
if _requested == "numpy":
    use_backend("numpy")
elif _requested in ("compiled", ""):
    _compiled = _load_compiled()
    BACKEND = "compiled" if _compiled is not None else "numpy"
else:
    raise ValueError(f"MINIDL_BACKEND={_requested!r}: expected 'compiled' or 'numpy'")


FAST_MATMUL = _compiled is not None and _compiled.sgemm_supported()


def _float_array(x, what):
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{what}: expected a float32 or float64 array, got {x.dtype}")
    return np.ascontiguousarray(x)


# ------------------------------------------------------------- matrix product
_INT_MAX = 2**31 - 1


def matmul(a, b, out=None):
    """a (M, K) @ b (K, N) -> (M, N), like ``np.matmul(a, b, out=out)`` for 2-d arrays.

    float32 on an AVX-512 CPU runs ``gemm.c``: about twice numpy's OpenBLAS here
    (which the environment limits to AVX2), with the same OpenMP threads as the
    other kernels. Transposed views (``w.T``) are read in place, never copied.
    Everything else (float64, other CPUs, the numpy backend) is ``np.matmul``.
    ``out``: an optional C-contiguous (M, N) array of the result dtype, overwritten.
    """
    if (not FAST_MATMUL or a.dtype != np.float32 or b.dtype != np.float32 or a.ndim != 2
            or b.ndim != 2 or a.shape[1] != b.shape[0] or a.shape[1] == 0
            or max(a.shape + b.shape) > _INT_MAX
            or a.strides[0] % 4 or a.strides[1] % 4 or b.strides[0] % 4 or b.strides[1] % 4):
        return np.matmul(a, b, out=out)   # also raises numpy's errors for bad shapes
    m, n = a.shape[0], b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=np.float32)
    elif (out.shape != (m, n) or out.dtype != np.float32 or not out.flags.c_contiguous
          or not out.flags.writeable or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return np.matmul(a, b, out=out)
    if m and n:
        _compiled.sgemm_into(a, b, out)
    return out


# ------------------------------------------------- convolution, image by image
def fused_conv(dtype):
    """True if ``conv_forward``/``conv_backward`` run compiled for this dtype (float32, AVX-512)."""
    return FAST_MATMUL and np.dtype(dtype) == np.float32


def _conv_geometry(x_shape, w_shape, stride, padding, dilation):
    (f, c, kh, kw), (sh, sw), (ph, pw), (dh, dw) = w_shape, stride, padding, dilation
    oh = output_size(x_shape[2], kh, sh, ph, dh)
    ow = output_size(x_shape[3], kw, sw, pw, dw)
    return (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow), f, c * kh * kw, oh * ow


def conv_forward(x, weights, bias, stride, padding, dilation):
    """x (N, C, H, W), weights (F, C, KH, KW), bias (F,) or None -> y (N, F, OH, OW).

    The same numbers as ``weights.reshape(F, K) @ im2col(x) + bias`` (the
    reference), computed one image at a time so that the image's column block
    stays in cache and the product lands in NCHW order with no copy. float32 with
    the compiled kernels only (``fused_conv``); the caller checked the shapes.
    """
    geometry, f, k, p = _conv_geometry(x.shape, weights.shape, stride, padding, dilation)
    if not fused_conv(x.dtype):
        return reference.conv_forward(x, weights, bias, stride, padding, dilation)
    x = np.ascontiguousarray(x)
    y = np.empty((x.shape[0], f, geometry[-2], geometry[-1]), dtype=np.float32)
    bias = np.zeros(f, np.float32) if bias is None else bias
    work = np.empty((_compiled.max_threads(), k, p), dtype=np.float32)
    _compiled.conv_forward_f32(x, weights.reshape(f, k), bias, y.reshape(x.shape[0], f, p), work,
                               *geometry)
    return y


def conv_backward(x, weights, grad_out, stride, padding, dilation, need_input_grad=True):
    """The gradients of ``conv_forward``: (dL/dx or None, dL/dweights, dL/dbias).

    Per image n, with X = im2col(x[n]) and G = dL/dy[n] as (F, OH*OW):
    dL/dW += G @ X^T,  dL/db += G summed over positions,  dL/dx[n] = col2im(W^T @ G).
    """
    geometry, f, k, p = _conv_geometry(x.shape, weights.shape, stride, padding, dilation)
    if not fused_conv(x.dtype):
        return reference.conv_backward(x, weights, grad_out, stride, padding, dilation,
                                       need_input_grad)
    x = np.ascontiguousarray(x)
    grad_out = np.ascontiguousarray(grad_out, dtype=np.float32)
    threads = _compiled.max_threads()
    work = np.empty((threads, k, p), dtype=np.float32)
    work2 = np.empty((threads, k, p), dtype=np.float32) if need_input_grad else work
    grad_x = np.zeros(x.shape, dtype=np.float32) if need_input_grad else x[:1, :1, :1, :1].copy()
    grad_wt = np.zeros((threads, k, f), dtype=np.float32)    # transposed, one per thread
    grad_b = np.zeros((threads, f), dtype=np.float32)
    _compiled.conv_backward_f32(x, weights.reshape(f, k), grad_out.reshape(x.shape[0], f, p),
                                grad_x, grad_wt, grad_b, work, work2, need_input_grad, *geometry)
    grad_w = grad_wt.sum(axis=0).T.reshape(weights.shape)
    return (grad_x if need_input_grad else None), grad_w, grad_b.sum(axis=0)


# ---------------------------------------------------------------- convolution
def im2col(x, kh, kw, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1, out=None):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), same dtype as x.

    ``out``: an optional C-contiguous array of that shape and dtype to fill
    (a buffer reused across steps); every entry is overwritten.
    """
    n, c, h, w = x.shape
    oh = output_size(h, kh, sh, ph, dh)
    ow = output_size(w, kw, sw, pw, dw)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"im2col: a {kh}x{kw} kernel (dilation {dh}x{dw}) does not fit "
                         f"an input of {h}x{w} padded by {ph}x{pw}")
    shape = (c * kh * kw, n * oh * ow)
    if out is not None and (out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous):
        raise ValueError(f"im2col: out must be a C-contiguous {x.dtype} array of shape {shape}, "
                         f"got {out.dtype} {out.shape}")
    x = _float_array(x, "im2col")
    if _compiled is None:
        cols = reference.im2col(x, kh, kw, sh, sw, ph, pw, dh, dw)
        if out is None:
            return cols
        out[...] = cols
        return out
    cols = np.empty(shape, dtype=x.dtype) if out is None else out
    _compiled.im2col_into(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    return cols


def col2im(cols, x_shape, kh, kw, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1):
    """cols (C*KH*KW, N*OH*OW) -> x (N, C, H, W), summing overlaps (the adjoint of im2col)."""
    n, c, h, w = x_shape
    oh = output_size(h, kh, sh, ph, dh)
    ow = output_size(w, kw, sw, pw, dw)
    if cols.shape != (c * kh * kw, n * oh * ow):
        raise ValueError(f"col2im: expected cols of shape {(c * kh * kw, n * oh * ow)}, "
                         f"got {cols.shape}")
    cols = _float_array(cols, "col2im")
    if _compiled is None:
        return reference.col2im(cols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw)
    x = np.zeros(x_shape, dtype=cols.dtype)
    _compiled.col2im_into(cols, x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    return x


# -------------------------------------------------------------------- pooling
def maxpool_forward(x, kh, kw, sh, sw, ph=0, pw=0):
    """x (N, C, H, W) -> (out, argmax), both (N, C, OH, OW); argmax is int64 h*W + w."""
    n, c, h, w = x.shape
    oh = output_size(h, kh, sh, ph)
    ow = output_size(w, kw, sw, pw)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"maxpool: a {kh}x{kw} window does not fit an input of {h}x{w} "
                         f"padded by {ph}x{pw}")
    if 2 * ph > kh or 2 * pw > kw:  # else a window could hold only padding (and no maximum)
        raise ValueError(f"maxpool: padding {ph}x{pw} must be at most half the {kh}x{kw} window")
    x = _float_array(x, "maxpool_forward")
    if _compiled is None:
        return reference.maxpool_forward(x, kh, kw, sh, sw, ph, pw)
    out = np.empty((n * c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n * c, oh, ow), dtype=np.int64)
    _compiled.maxpool_forward_into(x.reshape(n * c, h, w), out, argmax, kh, kw, sh, sw, ph, pw)
    return out.reshape(n, c, oh, ow), argmax.reshape(n, c, oh, ow)


def maxpool_backward(grad_out, argmax, x_shape):
    """grad_out, argmax (N, C, OH, OW) -> grad_x (N, C, H, W), overlaps summed."""
    grad_out = _float_array(grad_out, "maxpool_backward")
    if _compiled is None:
        return reference.maxpool_backward(grad_out, argmax, x_shape)
    n, c, h, w = x_shape
    oh, ow = grad_out.shape[2:]
    grad_x = np.zeros((n * c, h * w), dtype=grad_out.dtype)
    _compiled.maxpool_backward_into(grad_out.reshape(n * c, oh, ow),
                                   np.ascontiguousarray(argmax, dtype=np.int64).reshape(n * c, oh, ow),
                                   grad_x)
    return grad_x.reshape(x_shape)


# ------------------------------------------------------------------- updates
def axpy(alpha, x, y):
    """y += alpha * x in place (y: the parameter, x: its gradient); returns y.

    One pass over memory instead of numpy's two (``alpha * x`` into a
    temporary, then the add), split over threads for large arrays.
    """
    if x.shape != y.shape:
        raise ValueError(f"axpy: x of shape {x.shape} does not match y of shape {y.shape}")
    if y.dtype not in (np.float32, np.float64) or x.dtype != y.dtype:
        raise TypeError(f"axpy: expected x and y of one float dtype, got {x.dtype} and {y.dtype}")
    if not y.flags.writeable:
        raise ValueError("axpy: y is read-only")
    if _compiled is None or not (x.flags.c_contiguous and y.flags.c_contiguous):
        return reference.axpy(alpha, x, y)
    _compiled.axpy_into(float(alpha), x.reshape(-1), y.reshape(-1))
    return y
