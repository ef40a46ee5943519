"""The kernels under the layers: im2col, col2im, max pooling, the matrix product, SGD's updates.

Each operation exists in three versions, slowest and clearest first:

* ``minidl.ops.naive``: loops, one output element at a time, straight from the
  definition: the reader's version, and the oracle of the test suite;
* ``minidl.ops.reference``: vectorised NumPy, the same arguments and layouts as
  the compiled kernels; it runs when they are not built;
* compiled: the Cython extension ``minidl.ops._kernels`` (built by ``pip install``),
  typed loops parallelised with OpenMP (on one thread if the compiler has no
  OpenMP: ``_kernels.openmp_enabled()`` says which).

``BACKEND`` says which of the last two the functions below run. The compiled one
is used when it imports; ``MINIDL_BACKEND=numpy`` in the environment before
importing minidl forces the NumPy references (the test suite runs once each way),
and ``use_backend`` switches at run time. If the extension is missing, one warning
says so and the references run.

On top sits ``minidl.ops.fast``, the float32 fast path (minidl's own matrix
product and the image-by-image convolution) with its own README; ``matmul`` below
hands float32 products to it when it runs.

Symbols and the column layout are documented in ``minidl/ops/reference.py``.
"""
import importlib
import os
import warnings

import numpy as np

from . import fast, reference
from .reference import output_size

__all__ = ["BACKEND", "axpy", "col2im", "fast", "im2col", "matmul", "maxpool_backward",
           "maxpool_forward", "momentum_step", "output_size", "use_backend"]

_compiled = None
BACKEND = "numpy"


def _load_compiled():
    """Import the extension, or explain (once) why the references run instead."""
    try:
        # not `from . import _kernels`: when the module is missing, that names a circular import
        compiled = importlib.import_module(__name__ + "._kernels")
    except ImportError as exc:
        warnings.warn(
            "minidl: the compiled kernels (minidl.ops._kernels) are not built "
            f"({exc}); running the slow NumPy reference kernels instead. "
            "`pip install -v .` builds them and shows why they could not be built.",
            RuntimeWarning, stacklevel=3)
        return None
    if fast.IMPORT_ERROR is not None:
        warnings.warn(f"minidl: the fast float32 kernels are not built ({fast.IMPORT_ERROR}); "
                      "float32 runs the plain path", RuntimeWarning, stacklevel=3)
    return compiled


def use_backend(name):
    """Select ``"compiled"`` or ``"numpy"`` kernels at run time; returns the active name."""
    global _compiled, BACKEND
    if name == "numpy":
        _compiled, BACKEND = None, "numpy"
    elif name == "compiled":
        compiled = _load_compiled()
        if compiled is None:
            raise RuntimeError("minidl: the compiled kernels are not available")
        _compiled, BACKEND = compiled, "compiled"
    else:
        raise ValueError(f"minidl: unknown backend {name!r}; expected 'compiled' or 'numpy'")
    fast._backend_allows = BACKEND == "compiled"     # no compiled code at all on the NumPy backend
    return BACKEND


_requested = os.environ.get("MINIDL_BACKEND", "compiled").strip().lower()
if _requested == "numpy":
    use_backend("numpy")
elif _requested in ("compiled", ""):
    _compiled = _load_compiled()
    BACKEND = "compiled" if _compiled is not None else "numpy"
    fast._backend_allows = BACKEND == "compiled"
else:
    raise ValueError(f"MINIDL_BACKEND={_requested!r}: expected 'compiled' or 'numpy'")


def _float_array(x, what):
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{what}: expected a float32 or float64 array, got {x.dtype}")
    return np.ascontiguousarray(x)


# ------------------------------------------------------------- matrix product
def matmul(a, b, out=None):
    """a (M, K) @ b (K, N) -> (M, N), as ``np.matmul(a, b, out=out)`` for 2-d arrays.

    ``out``: an optional (M, N) array of the result dtype, overwritten.
    """
    if fast.available(a.dtype):          # fast path: float32 products by gemm.c (ops/fast)
        return fast.matmul(a, b, out=out)
    return np.matmul(a, b, out=out)


# ---------------------------------------------------------------- convolution
def im2col(x, kh, kw, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), same dtype as x (layout: reference.py)."""
    n, c, h, w = x.shape
    oh = output_size(h, kh, sh, ph, dh)
    ow = output_size(w, kw, sw, pw, dw)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"im2col: a {kh}x{kw} kernel (dilation {dh}x{dw}) does not fit "
                         f"an input of {h}x{w} padded by {ph}x{pw}")
    x = _float_array(x, "im2col")
    if _compiled is None:
        return reference.im2col(x, kh, kw, sh, sw, ph, pw, dh, dw)
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
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


def momentum_step(momentum, scale, alpha, velocity, grad, param):
    """SGD's momentum update in place: v = momentum * v + scale * g, then w += alpha * v.

    One pass over the three arrays, split over threads for large ones, where NumPy
    (``reference.momentum_step``, the oracle) makes five passes and two temporaries:
    the same numbers, each product and sum rounded on its own. Returns param.
    """
    if not velocity.shape == grad.shape == param.shape:
        raise ValueError(f"momentum_step: velocity {velocity.shape}, gradient {grad.shape} and "
                         f"parameter {param.shape} must have one shape")
    if param.dtype not in (np.float32, np.float64) or not velocity.dtype == grad.dtype == param.dtype:
        raise TypeError(f"momentum_step: expected float32 or float64 for all three, got velocity "
                        f"{velocity.dtype}, gradient {grad.dtype} and parameter {param.dtype}")
    for name, array in (("velocity", velocity), ("parameter", param)):
        if not array.flags.writeable:
            raise ValueError(f"momentum_step: the {name} is read-only")
    if (_compiled is None or not (velocity.flags.c_contiguous and grad.flags.c_contiguous
                                  and param.flags.c_contiguous)):
        return reference.momentum_step(momentum, scale, alpha, velocity, grad, param)
    _compiled.momentum_step_into(float(momentum), float(scale), float(alpha), velocity.reshape(-1),
                                 grad.reshape(-1), param.reshape(-1))
    return param
