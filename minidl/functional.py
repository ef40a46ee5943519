"""torch.nn.functional's names, arguments and defaults, on NumPy arrays: forward only.

    import minidl.functional as F
    y = F.conv2d(x, w, b, stride=2, padding=1)          # x (N, C, H, W), w (F, C, KH, KW)
    y = F.max_pool2d(F.relu(y), 3, stride=2)

Each function builds the layer of ``minidl.layers`` that does the same thing, with
the arrays the caller gives as its parameters, and returns the layer's ``forward``:
the numbers are those of the layers, the code the gradient checks cover. For the
derivatives, build the layer itself and call its ``backward_inputs`` and
``backward_params``.

Symbols: N batch, C channels, H W input size, F filters, KH KW kernel, D M features.
Inputs are float32 or float64 NumPy arrays, all the arrays of one call in the same
dtype; the result has that dtype. ``conv2d`` and the pooling functions also take one
unbatched image (C, H, W), as PyTorch does, and return (C', OH, OW).
"""
import numpy as np

from . import ops
from .layers import (AdaptiveAvgPool, AvgPool, Conv, LocalResponseNorm, MaxPool, ReLU,
                     SoftmaxCrossEntropy)
from .layers import log_softmax as _log_softmax_rows
from .layers import softmax as _softmax_rows
from .layers.base import FLOAT_DTYPES

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "relu", "local_response_norm",
           "linear", "softmax", "log_softmax", "cross_entropy"]


# ------------------------------------------------------------------ checks
def _check_array(function, x, what="input", dtype=None):
    """x must be a float32/float64 ndarray (of ``dtype``, the input's, when given)."""
    where = f"minidl.functional.{function}"
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: {what} must be a numpy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{where}: expected {what} of dtype float32 or float64, got {x.dtype.name} "
                         f"(convert with .astype(np.float32))")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(f"{where}: {what} is {x.dtype.name} but the input is {np.dtype(dtype).name}; "
                         f"give both the same dtype")


def _batched(function, x):
    """(x as (N, C, H, W), whether the caller gave one unbatched (C, H, W) image)."""
    _check_array(function, x)
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"minidl.functional.{function}: expected an input (N, C, H, W) or (C, H, W), "
                         f"got shape {x.shape}")
    return x, False


def _unbatched(y, unbatched):
    return y[0] if unbatched else y


# ------------------------------------------------------------ convolution
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """x (N, C, H, W) * weight (F, C, KH, KW) + bias (F,) -> (N, F, OH, OW), as ``Conv``.

        y[n, f, oh, ow] = bias[f] + sum_{c,i,j} weight[f, c, i, j] * x_pad[n, c, oh*SH + i*DH, ow*SW + j*DW]
        OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1

    ``stride``, ``padding`` and ``dilation`` are an int or a pair (per axis);
    ``padding`` may also be ``"valid"`` (0) or ``"same"`` (odd kernels, stride 1).
    Zero padding. No groups: every filter sees every input channel.
    """
    x, unbatched = _batched("conv2d", x)
    _check_array("conv2d", weight, "weight", x.dtype)
    if weight.ndim != 4:
        raise ValueError(f"minidl.functional.conv2d: expected a weight (F, C, KH, KW), got shape {weight.shape}")
    n_filters, channels, kh, kw = weight.shape
    if channels != x.shape[1]:
        raise ValueError(f"minidl.functional.conv2d: the weight {weight.shape} expects {channels} input "
                         f"channels, the input {x.shape} has {x.shape[1]} (groups are not supported)")
    if bias is not None:
        _check_array("conv2d", bias, "bias", x.dtype)
        if bias.shape != (n_filters,):
            raise ValueError(f"minidl.functional.conv2d: expected a bias of shape ({n_filters},), "
                             f"got {bias.shape}")
    if isinstance(padding, str) and padding == "valid":
        padding = 0
    layer = Conv(channels, n_filters, (kh, kw), stride=stride, padding=padding, dilation=dilation,
                 bias=bias is not None, dtype=x.dtype, name="functional.conv2d", rng=0)
    layer.weights = np.ascontiguousarray(weight)
    layer.bias = bias
    return _unbatched(layer.forward(x), unbatched)


# ---------------------------------------------------------------- pooling
def max_pool2d(x, kernel_size, stride=None, padding=0):
    """x (N, C, H, W) -> (N, C, OH, OW): the max of each window, as ``MaxPool``.

    ``stride`` defaults to ``kernel_size``; padding counts as -inf (never the max)
    and may be at most half the window. OH = floor((H + 2*PH - KH) / SH) + 1.
    """
    x, unbatched = _batched("max_pool2d", x)
    layer = MaxPool(kernel_size, stride=stride, padding=padding, name="functional.max_pool2d")
    return _unbatched(layer.forward(x), unbatched)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """x (N, C, H, W) -> (N, C, OH, OW): the mean of each window, as ``AvgPool``.

    Zero padding counts in the mean: every window divides by KH*KW, which is
    PyTorch's default (``count_include_pad=True``). ``stride`` defaults to ``kernel_size``.
    """
    x, unbatched = _batched("avg_pool2d", x)
    layer = AvgPool(kernel_size, stride=stride, padding=padding, name="functional.avg_pool2d")
    return _unbatched(layer.forward(x), unbatched)


def adaptive_avg_pool2d(x, output_size):
    """x (N, C, H, W) -> (N, C, OH, OW) for ``output_size`` (OH, OW) or an int, as ``AdaptiveAvgPool``."""
    x, unbatched = _batched("adaptive_avg_pool2d", x)
    layer = AdaptiveAvgPool(output_size, name="functional.adaptive_avg_pool2d")
    return _unbatched(layer.forward(x), unbatched)


# ------------------------------------------------- nonlinearity, normalisation
def relu(x):
    """max(0, x), any shape, as ``ReLU``."""
    _check_array("relu", x)
    return ReLU(name="functional.relu").forward(x)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """x (N, C, H, W) -> same shape, normalised across channels, as ``LocalResponseNorm``:

        y[:, c] = x[:, c] / (k + alpha / size * sum of x[:, j]^2 over the window of channel c) ** beta
    """
    _check_array("local_response_norm", x)
    layer = LocalResponseNorm(size, alpha=alpha, beta=beta, k=k, name="functional.local_response_norm")
    return layer.forward(x)


# ----------------------------------------------------------------- linear
def linear(x, weight, bias=None):
    """x (..., D) -> (..., M):  y = x @ weight^T + bias,  weight (M, D), bias (M,).

    ``FC``'s forward (weights in the same (out, in) layout), on the last axis of an
    input of any number of axes. It runs FC's two lines here rather than building an
    ``FC``, whose He initialisation of a large weight matrix would cost more than the product.
    """
    _check_array("linear", x)
    _check_array("linear", weight, "weight", x.dtype)
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"minidl.functional.linear: expected a weight (M, D) and an input (..., D) with the "
                         f"same D, got weight {weight.shape} and input {x.shape}")
    if bias is not None:
        _check_array("linear", bias, "bias", x.dtype)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"minidl.functional.linear: expected a bias of shape ({weight.shape[0]},), "
                             f"got {bias.shape}")
    rows = x.reshape(-1, x.shape[-1])
    y = ops.matmul(rows, weight.T)                      # FC.forward: x @ W^T
    if bias is not None:
        y += bias                                       # ... + b
    return y.reshape(*x.shape[:-1], weight.shape[0])


def _along(function, row_function, x, dim):
    """Apply a row-wise (N, C) function along axis ``dim`` of x."""
    _check_array(function, x)
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"minidl.functional.{function}: dim {dim} is out of range for an input of shape {x.shape}")
    moved = np.moveaxis(x, dim, -1)
    out = row_function(moved.reshape(-1, moved.shape[-1]))
    return np.moveaxis(out.reshape(moved.shape), -1, dim)


def softmax(x, dim):
    """exp(x) / sum of exp(x) along ``dim`` (shifted by the max: no overflow)."""
    return _along("softmax", _softmax_rows, x, dim)


def log_softmax(x, dim):
    """x - log sum exp(x) along ``dim``, computed stably."""
    return _along("log_softmax", _log_softmax_rows, x, dim)


def cross_entropy(input, target):
    """Mean cross-entropy of logits ``input`` (N, C) against labels (N,) or target
    distributions (N, C), as ``SoftmaxCrossEntropy``; returns a float.

        L = (1/N) sum_n [ log sum_j exp(x_nj) - sum_i t_ni x_ni ]
    """
    _check_array("cross_entropy", input)
    return SoftmaxCrossEntropy(name="functional.cross_entropy").forward(input, target)
