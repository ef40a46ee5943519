"""Dropout: random zeroing of activations at training time. Any input shape."""
import numbers

import numpy as np

from .base import Layer


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014).

    x (any shape) -> y (same shape). In training mode each element is kept with
    probability 1 - p, independently, and the kept ones are scaled up:

        y = x * keep / (1 - p),     keep ~ Bernoulli(1 - p) elementwise
        dL/dx = dL/dy * keep / (1 - p)

    so E[y] = x and evaluation mode needs no rescaling: there y = x and dL/dx = dL/dy.

    ``rng`` (a seed or a ``numpy.random.Generator``) makes the masks reproducible;
    pass the same Generator to several layers to share one stream.

    ``freeze_mask()`` makes every later training-mode forward reuse one mask
    (drawn by the next forward), so the layer becomes a fixed function of x:
    what a numerical gradient check needs. ``unfreeze_mask()`` goes back to a
    fresh mask per forward.
    """

    cache_slots = ("keep", "y_shape", "x_dtype")

    def __init__(self, p=0.5, rng=None, name=None):
        super().__init__(name)
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"Dropout '{self.name}': p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.scale = 1.0 / (1.0 - self.p)
        self.rng = np.random.default_rng(rng)
        self.keep = None       # boolean keep mask of the last training forward: read by backward_inputs
        self.y_shape = None    # shape of the last output: read by backward_inputs (None: no forward yet)
        self.x_dtype = None    # dtype of the last input: backward_inputs checks grad_out against it
        self.frozen = False    # reuse ``_frozen_keep`` instead of drawing a new mask
        self._frozen_keep = None

    def freeze_mask(self):
        """Reuse one mask in every training forward from now on (drawn by the next one)."""
        self.frozen = True
        return self

    def unfreeze_mask(self):
        """Draw a fresh mask in every training forward again."""
        self.frozen = False
        self._frozen_keep = None
        return self

    def _draw(self, shape):
        if not self.frozen:
            return self.rng.random(shape) >= self.p
        if self._frozen_keep is None:
            self._frozen_keep = self.rng.random(shape) >= self.p
        elif self._frozen_keep.shape != shape:
            raise ValueError(f"{self._describe()}: the frozen mask has shape {self._frozen_keep.shape}, "
                             f"the input {shape}; call unfreeze_mask() before changing shapes")
        return self._frozen_keep

    def forward(self, x):
        """x (any shape) -> y (same shape)."""
        self._check_float(x)
        self.y_shape = x.shape
        self.x_dtype = x.dtype
        if not self.training or self.p == 0:
            self.keep = None                            # identity: nothing to remember
            return x
        self.keep = self._draw(x.shape)
        return x * self.keep * self.scale

    def backward_inputs(self, grad_out):
        """grad_out (shape of x) -> dL/dx (shape of x)."""
        y_shape = self._cached("y_shape", "backward_inputs")
        self._check_grad(grad_out, y_shape, self.x_dtype)
        if self.keep is None:
            return grad_out
        return grad_out * self.keep * self.scale

    def config(self):
        return {"p": self.p, "name": self.name}

    def __repr__(self):
        return f"Dropout(p={self.p}, name={self.name!r})"
