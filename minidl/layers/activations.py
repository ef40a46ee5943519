"""Element-wise nonlinearities: any input shape, output of the same shape."""
import numpy as np

from .base import Layer


class ReLU(Layer):
    """y = max(0, x);   dL/dx = dL/dy * [x > 0]."""

    cache_slots = ("mask",)

    def __init__(self, name=None):
        super().__init__(name)
        self.mask = None  # boolean x > 0, one byte per element: read by backward_inputs

    def forward(self, x):
        self._check_float(x)
        self.mask = x > 0
        return np.maximum(x, 0, dtype=x.dtype)

    def backward_inputs(self, grad_out):
        mask = self._cached("mask", "backward_inputs")
        if grad_out.shape != mask.shape:
            raise ValueError(f"{self._describe()}: expected grad_out of shape {mask.shape}, got {grad_out.shape}")
        self._check_float(grad_out, "grad_out")
        return grad_out * mask
