"""Fully connected layers and the reshape between convolutions and them.

Symbols: N batch, D input features, M output features.
"""
import numpy as np

from .. import ops
from .base import Layer, as_float_dtype, as_positive_int, he_normal


class FC(Layer):
    """Fully connected (affine) layer.

    x (N, D) -> y (N, M),   y = x @ W^T + b,   W (M, D), b (M,).

        dL/dx = dL/dy @ W        dL/dW = dL/dy^T @ x        dL/db = sum_n dL/dy[n]

    Parameters: ``weights`` (M, D), He-initialised; ``bias`` (M,), zeros.
    A 4-d input must be flattened first (see ``Flatten``).

    x and grad_out are made C-contiguous first (no copy if they already are): the
    rounding of a matrix product can depend on the memory layout of its operands,
    and a strided or transposed array must give the same numbers as its copy.
    """

    cache_slots = ("x",)

    def __init__(self, in_features, out_features, bias=True, name=None, dtype=np.float32, rng=None):
        super().__init__(name)
        who = f"FC '{self.name}'"
        self.in_features = as_positive_int(in_features, "in_features", who)
        self.out_features = as_positive_int(out_features, "out_features", who)
        self.dtype = as_float_dtype(dtype, who)
        self.weights = he_normal((self.out_features, self.in_features), self.in_features, rng, self.dtype)
        self.bias = np.zeros(self.out_features, dtype=self.dtype) if bias else None
        self.x = None  # (N, D) the input: read by backward_params

    def forward(self, x):
        """x (N, D) -> y (N, M)."""
        self._check_float(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            hint = " (put a Flatten layer before it)" if x.ndim > 2 else ""
            raise ValueError(f"{self._describe()}: expected input of shape (N, {self.in_features}), "
                             f"got {x.shape}{hint}")
        x = np.ascontiguousarray(x)                # one layout, one rounding (see above)
        self.x = x
        y = ops.matmul(x, self.weights.T)          # x @ W^T
        if self.bias is not None:
            y += self.bias
        return y

    def backward_inputs(self, grad_out):
        """grad_out (N, M) -> dL/dx (N, D)."""
        x = self._cached("x", "backward_inputs")
        self._check_grad(grad_out, (x.shape[0], self.out_features), self.dtype)
        grad_out = np.ascontiguousarray(grad_out)
        return ops.matmul(grad_out, self.weights)  # dL/dy @ W

    def backward_params(self, grad_out):
        """grad_out (N, M) -> [(weights, dL/dW (M, D)), (bias, dL/db (M,))]."""
        x = self._cached("x", "backward_params")
        self._check_grad(grad_out, (x.shape[0], self.out_features), self.dtype)
        grad_out = np.ascontiguousarray(grad_out)
        pairs = [(self.weights, ops.matmul(grad_out.T, x))]  # dL/dy^T @ x
        if self.bias is not None:
            pairs.append((self.bias, grad_out.sum(axis=0)))
        return pairs

    def params(self):
        return [("weights", self.weights)] + ([("bias", self.bias)] if self.bias is not None else [])

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "name": self.name, "dtype": self.dtype.name}

    def __repr__(self):
        return f"FC({self.in_features}, {self.out_features}, name={self.name!r})"


class Flatten(Layer):
    """x (N, d1, d2, ...) -> y (N, d1*d2*...); the gradient is reshaped back."""

    cache_slots = ("x_shape",)

    def __init__(self, name=None):
        super().__init__(name)
        self.x_shape = None  # shape of the input: read by backward_inputs

    def forward(self, x):
        self._check_float(x)
        if x.ndim < 2:
            raise ValueError(f"{self._describe()}: expected at least a 2-d input (N, ...), got shape {x.shape}")
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward_inputs(self, grad_out):
        x_shape = self._cached("x_shape", "backward_inputs")
        expected = (x_shape[0], int(np.prod(x_shape[1:])))
        if grad_out.shape != expected:
            raise ValueError(f"{self._describe()}: expected grad_out of shape {expected}, got {grad_out.shape}")
        return grad_out.reshape(x_shape)
