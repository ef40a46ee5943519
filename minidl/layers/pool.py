"""Pooling layers.

Symbols: N batch, C channels, H W input size, KH KW window, SH SW stride,
PH PW padding, OH OW output size;  OH = floor((H + 2*PH - KH) / SH) + 1.
"""
import numpy as np

from .. import ops
from .base import Layer, as_pair


class MaxPool(Layer):
    """Max over each KH x KW window, per channel.

    x (N, C, H, W) -> y (N, C, OH, OW),   y[n, c, oh, ow] = max over the window of x.

    The derivative is 1 at the input pixel that won the window and 0 elsewhere:
    dL/dx[n, c, argmax] += dL/dy[n, c, oh, ow]. Where a window holds several equal
    maxima, the first in row-major order wins. Padding counts as -inf and never wins.
    ``stride`` defaults to the kernel size; windows may overlap and need not tile
    the input (PyTorch's floor semantics).
    """

    cache_slots = ("argmax", "x_shape")

    def __init__(self, kernel_size, stride=None, padding=0, name=None):
        super().__init__(name)
        who = f"MaxPool '{self.name}'"
        self.kernel_size = as_pair(kernel_size, "kernel_size", who)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", who)
        self.padding = as_pair(padding, "padding", who, minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{who}: padding {self.padding} must be at most half the kernel "
                             f"{self.kernel_size}, or a window could hold only padding")
        self.argmax = None   # (N, C, OH, OW) flat index of each window's winner: backward_inputs
        self.x_shape = None  # (N, C, H, W): backward_inputs
        self._dtype = None   # dtype of the last input: backward_inputs checks grad_out against it

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
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        y, self.argmax = ops.maxpool_forward(x, kh, kw, sh, sw, ph, pw)
        self.x_shape = x.shape
        self._dtype = x.dtype
        return y

    def backward_inputs(self, grad_out):
        """grad_out (N, C, OH, OW) -> dL/dx (N, C, H, W)."""
        argmax = self._cached("argmax", "backward_inputs")
        self._check_grad(grad_out, argmax.shape, self._dtype)
        return ops.maxpool_backward(grad_out, argmax, self.x_shape)

    def config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "name": self.name}

    def __repr__(self):
        return f"MaxPool(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"
