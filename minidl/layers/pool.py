"""Pooling layers.

Symbols: N batch, C channels, H W input size, KH KW window, SH SW stride,
PH PW padding, OH OW output size;  OH = floor((H + 2*PH - KH) / SH) + 1.
"""
import numpy as np

from .. import ops
from .base import Layer, as_pair


def window_arguments(who, kernel_size, stride, padding):
    """(kernel, stride, padding) pairs of a pooling window; stride defaults to the kernel.

    Padding may be at most half the window (as PyTorch): a wider one would let a
    window hold only padding.
    """
    kernel_size = as_pair(kernel_size, "kernel_size", who)
    stride = kernel_size if stride is None else as_pair(stride, "stride", who)
    padding = as_pair(padding, "padding", who, minimum=0)
    if any(2 * p > k for p, k in zip(padding, kernel_size)):
        raise ValueError(f"{who}: padding {padding} must be at most half the kernel "
                         f"{kernel_size}, or a window could hold only padding")
    return kernel_size, stride, padding


class MaxPool(Layer):
    """Max over each KH x KW window, per channel.

    x (N, C, H, W) -> y (N, C, OH, OW),   y[n, c, oh, ow] = max over the window of x.

    The derivative is 1 at the input pixel that won the window and 0 elsewhere:
    dL/dx[n, c, argmax] += dL/dy[n, c, oh, ow]. Where a window holds several equal
    maxima, the first in row-major order wins. Padding counts as -inf and never wins.
    ``stride`` defaults to the kernel size; windows may overlap and need not tile
    the input (PyTorch's floor semantics).

    That is the plain path below. The fast path (``minidl.ops.fast``: float32,
    compiled, the 2x2 window with stride 2 and no padding only) computes the same
    numbers and keeps, instead of the argmax, one byte per output: which of the
    window's 4 pixels won.
    """

    cache_slots = ("path", "argmax", "x_shape", "x_dtype")

    def __init__(self, kernel_size, stride=None, padding=0, name=None):
        super().__init__(name)
        self.kernel_size, self.stride, self.padding = window_arguments(
            f"MaxPool '{self.name}'", kernel_size, stride, padding)
        self.path = None     # "plain" or "fast": which forward ran; backward_inputs follows it
        self.argmax = None   # (N, C, OH, OW) each window's winner, read by backward_inputs: on the
        #                      plain path its flat index h*W + w, on the fast path 0..3 in the window
        self.x_shape = None  # (N, C, H, W): backward_inputs
        self.x_dtype = None  # dtype of the input: backward_inputs checks grad_out against it

    def output_hw(self, height, width):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return ops.output_size(height, kh, sh, ph), ops.output_size(width, kw, sw, pw)

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, OH, OW)."""
        self._check_float(x)
        self._check_ndim(x, 4, "(N, C, H, W)")
        h, w = x.shape[2:]
        oh, ow = self.output_hw(h, w)
        if oh < 1 or ow < 1:
            raise ValueError(f"{self._describe()}: a {self.kernel_size[0]}x{self.kernel_size[1]} "
                             f"window does not fit an input of {h}x{w} padded by {self.padding}")
        self.x_shape = x.shape
        self.x_dtype = x.dtype
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        two_by_two = (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0)
        self.path = "fast" if two_by_two and ops.fast.available(x.dtype) else "plain"
        if self.path == "plain":
            y, self.argmax = ops.maxpool_forward(x, kh, kw, sh, sw, ph, pw)
        else:                                   # fast path: the same numbers, a byte per winner
            y, self.argmax = ops.fast.maxpool2x2_forward(x)
        return y

    def backward_inputs(self, grad_out):
        """grad_out (N, C, OH, OW) -> dL/dx (N, C, H, W)."""
        argmax = self._cached("argmax", "backward_inputs")
        self._check_grad(grad_out, argmax.shape, self.x_dtype)
        if self.path == "plain":
            return ops.maxpool_backward(grad_out, argmax, self.x_shape)
        return ops.fast.maxpool2x2_backward(grad_out, argmax, self.x_shape)     # fast path

    def config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "name": self.name}

    def __repr__(self):
        return f"MaxPool(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


# ------------------------------------------------------------ average pooling
def avg_pool_naive(x, kernel_size, stride, padding):
    """The obvious loops: x (N, C, H, W) -> y (N, C, OH, OW), zero padding counted.

    y[n, c, oh, ow] = (1 / (KH*KW)) * sum_{i<KH, j<KW} x_pad[n, c, oh*SH + i, ow*SW + j].
    The reader's version and the oracle of ``AvgPool``; one Python step per output pixel.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    n, c, h, w = x.shape
    oh, ow = ops.output_size(h, kh, sh, ph), ops.output_size(w, kw, sw, pw)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    for row in range(oh):
        for col in range(ow):
            window = x_pad[:, :, row * sh:row * sh + kh, col * sw:col * sw + kw]
            y[:, :, row, col] = window.sum(axis=(2, 3)) / (kh * kw)
    return y


class AvgPool(Layer):
    """Mean over each KH x KW window, per channel; zero padding counts in the mean.

    x (N, C, H, W) -> y (N, C, OH, OW),

        y[n, c, oh, ow] = (1 / (KH*KW)) * sum_{i, j} x_pad[n, c, oh*SH + i, ow*SW + j]

    so every window divides by KH*KW, also at the border where part of it is
    padding (PyTorch's ``count_include_pad=True``, its default). The layer is
    linear, each input pixel receives 1/(KH*KW) of the gradient of every window
    that covers it:

        dL/dx_pad[n, c, oh*SH + i, ow*SW + j] += dL/dy[n, c, oh, ow] / (KH*KW)

    Both directions loop over the KH*KW offsets (i, j) of the window, each one a
    strided slice of the whole batch; ``avg_pool_naive`` is the per-pixel version.
    ``stride`` defaults to the kernel size.
    """

    cache_slots = ("x_shape", "x_dtype")

    def __init__(self, kernel_size, stride=None, padding=0, name=None):
        super().__init__(name)
        self.kernel_size, self.stride, self.padding = window_arguments(
            f"AvgPool '{self.name}'", kernel_size, stride, padding)
        self.x_shape = None  # (N, C, H, W) of the last input: read by backward_inputs
        self.x_dtype = None  # dtype of the last input: backward_inputs checks grad_out against it

    def output_hw(self, height, width):
        """(OH, OW) for an input of height x width."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return ops.output_size(height, kh, sh, ph), ops.output_size(width, kw, sw, pw)

    def _window_slices(self, oh, ow):
        """For each offset (i, j) of the window, the slices of x_pad that it reads for all outputs."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        for i in range(kh):
            for j in range(kw):
                yield (slice(None), slice(None), slice(i, i + sh * (oh - 1) + 1, sh),
                       slice(j, j + sw * (ow - 1) + 1, sw))

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, OH, OW)."""
        self._check_float(x)
        self._check_ndim(x, 4, "(N, C, H, W)")
        n, c, h, w = x.shape
        oh, ow = self.output_hw(h, w)
        if oh < 1 or ow < 1:
            raise ValueError(f"{self._describe()}: a {self.kernel_size[0]}x{self.kernel_size[1]} "
                             f"window does not fit an input of {h}x{w} padded by {self.padding}")
        ph, pw = self.padding
        x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        window_sum = np.zeros((n, c, oh, ow), dtype=x.dtype)
        for window in self._window_slices(oh, ow):
            window_sum += x_pad[window]
        self.x_shape = x.shape
        self.x_dtype = x.dtype
        return window_sum / (self.kernel_size[0] * self.kernel_size[1])

    def backward_inputs(self, grad_out):
        """grad_out (N, C, OH, OW) -> dL/dx (N, C, H, W)."""
        x_shape = self._cached("x_shape", "backward_inputs")
        n, c, h, w = x_shape
        oh, ow = self.output_hw(h, w)
        self._check_grad(grad_out, (n, c, oh, ow), self.x_dtype)
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        share = grad_out / (kh * kw)                   # what each covered pixel receives
        grad_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad_out.dtype)
        for window in self._window_slices(oh, ow):
            grad_pad[window] += share                  # overlapping windows add up
        return np.ascontiguousarray(grad_pad[:, :, ph:ph + h, pw:pw + w])

    def config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "name": self.name}

    def __repr__(self):
        return f"AvgPool(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


class GlobalAvgPool(Layer):
    """Mean over all spatial positions of each channel (ResNet's head).

    x (N, C, H, W) -> y (N, C),   y[n, c] = (1 / (H*W)) * sum_{h, w} x[n, c, h, w]

        dL/dx[n, c, h, w] = dL/dy[n, c] / (H*W)      (the same for every position)

    x is made C-contiguous first, so a strided view sums in the order of its copy.
    """

    cache_slots = ("x_shape", "x_dtype")

    def __init__(self, name=None):
        super().__init__(name)
        self.x_shape = None  # (N, C, H, W) of the last input: read by backward_inputs
        self.x_dtype = None  # dtype of the last input: backward_inputs checks grad_out against it

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C)."""
        self._check_float(x)
        self._check_ndim(x, 4, "(N, C, H, W)")
        self.x_shape = x.shape
        self.x_dtype = x.dtype
        return np.ascontiguousarray(x).mean(axis=(2, 3))

    def backward_inputs(self, grad_out):
        """grad_out (N, C) -> dL/dx (N, C, H, W)."""
        x_shape = self._cached("x_shape", "backward_inputs")
        self._check_grad(grad_out, x_shape[:2], self.x_dtype)
        n, c, h, w = x_shape
        share = grad_out / (h * w)
        return np.ascontiguousarray(np.broadcast_to(share[:, :, None, None], x_shape))


# ---------------------------------------------------- adaptive average pooling
def adaptive_windows(size, out_size):
    """[(start, stop), ...]: output index i averages input indices start <= h < stop, with

        start = floor(i * size / out_size),   stop = ceil((i + 1) * size / out_size)

    (PyTorch's rule). The windows cover the input; neighbours overlap by at most one
    index, and when out_size > size some indices are repeated.
    """
    return [((i * size) // out_size, -(-(i + 1) * size // out_size)) for i in range(out_size)]


class AdaptiveAvgPool(Layer):
    """Mean over windows sized so that the output is always OH x OW (PyTorch's AdaptiveAvgPool2d).

    x (N, C, H, W) -> y (N, C, OH, OW),

        y[n, c, i, j] = mean of x[n, c, rows_i, cols_j]

    with rows_i = ``adaptive_windows(H, OH)[i]`` and cols_j likewise. When H and W are
    multiples of OH and OW this is ``AvgPool`` with kernel = stride = (H/OH, W/OW); for
    OH = OW = 1 it is ``GlobalAvgPool`` keeping the two spatial axes. The layer is linear,
    each window spreads its gradient evenly over the pixels it read:

        dL/dx[n, c, rows_i, cols_j] += dL/dy[n, c, i, j] / (|rows_i| * |cols_j|)

    It lets a network end in fully connected layers whatever the input size (AlexNet's
    6x6 before its classifier). Loops over the OH*OW windows, each a slice of the whole batch.
    """

    cache_slots = ("x_shape", "x_dtype")

    def __init__(self, output_size, name=None):
        super().__init__(name)
        self.output_size = as_pair(output_size, "output_size", f"AdaptiveAvgPool '{self.name}'")
        self.x_shape = None  # (N, C, H, W) of the last input: read by backward_inputs
        self.x_dtype = None  # dtype of the last input: backward_inputs checks grad_out against it

    def _windows(self, height, width):
        """[(i, j, row slice, column slice), ...] of every output pixel."""
        oh, ow = self.output_size
        return [(i, j, slice(*rows), slice(*cols))
                for i, rows in enumerate(adaptive_windows(height, oh))
                for j, cols in enumerate(adaptive_windows(width, ow))]

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, OH, OW)."""
        self._check_float(x)
        self._check_ndim(x, 4, "(N, C, H, W)")
        n, c, h, w = x.shape
        y = np.empty((n, c, *self.output_size), dtype=x.dtype)
        for i, j, rows, cols in self._windows(h, w):
            y[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
        self.x_shape = x.shape
        self.x_dtype = x.dtype
        return y

    def backward_inputs(self, grad_out):
        """grad_out (N, C, OH, OW) -> dL/dx (N, C, H, W)."""
        x_shape = self._cached("x_shape", "backward_inputs")
        n, c, h, w = x_shape
        self._check_grad(grad_out, (n, c, *self.output_size), self.x_dtype)
        grad_x = np.zeros(x_shape, dtype=grad_out.dtype)
        for i, j, rows, cols in self._windows(h, w):
            count = (rows.stop - rows.start) * (cols.stop - cols.start)
            grad_x[:, :, rows, cols] += (grad_out[:, :, i, j] / count)[:, :, None, None]  # overlaps add up
        return grad_x

    def config(self):
        return {"output_size": list(self.output_size), "name": self.name}

    def __repr__(self):
        return f"AdaptiveAvgPool(output_size={self.output_size}, name={self.name!r})"
