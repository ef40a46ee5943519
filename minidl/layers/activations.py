"""Element-wise nonlinearities: any input shape, output of the same shape."""
import numpy as np

from .. import ops
from .base import Layer


class ReLU(Layer):
    """y = max(0, x);   dL/dx = dL/dy * [x > 0].

    The fast path (``minidl.ops.fast``, float32) computes the same numbers in one
    pass each way instead of two.
    """

    cache_slots = ("mask",)

    def __init__(self, name=None):
        super().__init__(name)
        self.mask = None  # boolean x > 0, one byte per element: read by backward_inputs

    def forward(self, x):
        self._check_float(x)
        if not ops.fast.available(x.dtype):
            self.mask = x > 0
            return np.maximum(x, 0, dtype=x.dtype)
        y, self.mask = ops.fast.relu_forward(x)          # fast path: one pass
        return y

    def backward_inputs(self, grad_out):
        mask = self._cached("mask", "backward_inputs")
        if grad_out.shape != mask.shape:
            raise ValueError(f"{self._describe()}: expected grad_out of shape {mask.shape}, got {grad_out.shape}")
        self._check_float(grad_out, "grad_out")
        if grad_out.dtype != np.float32 or not ops.fast.available(grad_out.dtype):
            return grad_out * mask
        return ops.fast.relu_backward(grad_out, mask)    # fast path: one pass


class Tanh(Layer):
    """y = tanh(x);   dy/dx = 1 - tanh(x)^2 = 1 - y^2,   so dL/dx = dL/dy * (1 - y^2)."""

    cache_slots = ("y",)

    def __init__(self, name=None):
        super().__init__(name)
        self.y = None  # the output tanh(x): read by backward_inputs

    def forward(self, x):
        """x (any shape) -> y (same shape)."""
        self._check_float(x)
        self.y = np.tanh(x)
        return self.y

    def backward_inputs(self, grad_out):
        y = self._cached("y", "backward_inputs")
        self._check_grad(grad_out, y.shape, y.dtype)
        return grad_out * (1 - y * y)


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: exp is only taken of -|x| <= 0.

        x >= 0:  1 / (1 + e^-x)          x < 0:  e^x / (1 + e^x)       (the same number)
    """
    e = np.exp(-np.abs(x))                 # in (0, 1], never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x));   dy/dx = y (1 - y),   so dL/dx = dL/dy * y * (1 - y).

    Stable for inputs of any magnitude (see ``sigmoid``): no overflow warning
    at x = -1000, and y is exactly 0 or 1 only where float rounding says so.
    """

    cache_slots = ("y",)

    def __init__(self, name=None):
        super().__init__(name)
        self.y = None  # the output sigmoid(x): read by backward_inputs

    def forward(self, x):
        """x (any shape) -> y (same shape), values in [0, 1]."""
        self._check_float(x)
        self.y = sigmoid(x)
        return self.y

    def backward_inputs(self, grad_out):
        y = self._cached("y", "backward_inputs")
        self._check_grad(grad_out, y.shape, y.dtype)
        return grad_out * (y * (1 - y))


class LeakyReLU(Layer):
    """y = x for x > 0, negative_slope * x otherwise;

        dL/dx = dL/dy * (1 if x > 0 else negative_slope)

    (at x = 0 the slope on the left is taken, as PyTorch).
    """

    cache_slots = ("mask", "x_dtype")

    def __init__(self, negative_slope=0.01, name=None):
        super().__init__(name)
        if isinstance(negative_slope, bool) or not np.isfinite(negative_slope):
            raise ValueError(f"LeakyReLU '{self.name}': negative_slope must be a finite number, "
                             f"got {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        self.mask = None     # boolean x > 0, one byte per element: read by backward_inputs
        self.x_dtype = None  # dtype of the input: backward_inputs checks grad_out against it

    def forward(self, x):
        """x (any shape) -> y (same shape)."""
        self._check_float(x)
        self.mask = x > 0
        self.x_dtype = x.dtype
        return np.where(self.mask, x, x * self.negative_slope)

    def backward_inputs(self, grad_out):
        mask = self._cached("mask", "backward_inputs")
        self._check_grad(grad_out, mask.shape, self.x_dtype)
        return np.where(mask, grad_out, grad_out * self.negative_slope)

    def config(self):
        return {"negative_slope": self.negative_slope, "name": self.name}

    def __repr__(self):
        return f"LeakyReLU(negative_slope={self.negative_slope}, name={self.name!r})"
