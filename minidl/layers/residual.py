"""Residual connections (He et al. 2016) and the ResNet basic block.

Symbols: N batch, C input channels, F output channels, H W input size,
OH OW output size of the body (the shortcut must produce the same shape).
"""
import numpy as np

from ..net import Sequential
from .activations import ReLU
from .base import Layer
from .conv import Conv
from .norm import BatchNorm


def _backprop(layer, grad_out, need_input_grad):
    """(dL/dx or None, pairs) from any object with the layer contract."""
    if hasattr(layer, "backprop"):
        return layer.backprop(grad_out, need_input_grad=need_input_grad)
    pairs = layer.backward_params(grad_out)
    return (layer.backward_inputs(grad_out) if need_input_grad else None), pairs


class Residual(Layer):
    """y = relu(body(x) + shortcut(x)), or without the ReLU if ``relu=False``.

    x (N, C, H, W) -> y (N, F, OH, OW): ``body`` and ``shortcut`` are layers (a
    ``Sequential`` or any object with the layer contract) whose outputs have
    the same shape. ``shortcut=None`` is the identity, so then body(x) must
    have the shape of x.

    Backward, with z = body(x) + shortcut(x) and g = dL/dy:

        dL/dz = g * [z > 0]    (or g itself without the ReLU)
        dL/dx = body'(x)^T dL/dz + shortcut'(x)^T dL/dz     (= ... + dL/dz for the identity)

    the gradient reaches x along both paths and the two contributions add up;
    the parameters of each branch receive dL/dz through that branch alone.
    ``params()``, ``buffers()`` and ``train()`` recurse into body and shortcut;
    parameter names are prefixed ``body.`` and ``shortcut.``.

    A container: ``child_fields`` names the attributes holding its sub-layers,
    which ``minidl.io`` saves beside ``config()`` and ``Sequential.summary``
    follows to count the activation memory of the whole block.
    """

    cache_slots = ("mask",)
    child_fields = ("body", "shortcut")

    def __init__(self, body, shortcut=None, relu=True, name=None):
        super().__init__(name)
        for what, layer in (("body", body), ("shortcut", shortcut)):
            if layer is not None and not (hasattr(layer, "forward") and hasattr(layer, "backward_inputs")):
                raise TypeError(f"Residual '{self.name}': the {what} {layer!r} does not have the layer "
                                f"contract (forward, backward_inputs, backward_params)")
        if body is None:
            raise TypeError(f"Residual '{self.name}': a body layer is required")
        self.body = body
        self.shortcut = shortcut
        self.relu = bool(relu)
        self.mask = None     # boolean z > 0 (with the ReLU): read by backprop
        self.y_shape = None  # shape of the last output: read by backprop's checks
        self._dtype = None   # dtype of the last output: backprop checks grad_out against it

    def children(self):
        """The sub-layers: [body] or [body, shortcut]."""
        return [self.body] + ([self.shortcut] if self.shortcut is not None else [])

    def forward(self, x):
        """x (N, C, H, W) -> y (N, F, OH, OW)."""
        self._check_float(x)
        body_out = self.body.forward(x)
        short_out = x if self.shortcut is None else self.shortcut.forward(x)
        if body_out.shape != short_out.shape:
            what = "the input (identity shortcut)" if self.shortcut is None else "the shortcut's output"
            hint = (" (give it a projection shortcut, e.g. projection_shortcut(...))"
                    if self.shortcut is None else "")
            raise ValueError(f"{self._describe()}: the body's output has shape {body_out.shape}, "
                             f"{what} {short_out.shape}; they must match to be added{hint}")
        total = body_out + short_out
        self.y_shape, self._dtype = total.shape, total.dtype
        if self.relu:
            self.mask = total > 0
            return total * self.mask
        self.mask = None
        return total

    def backprop(self, grad_out, need_input_grad=True):
        """grad_out (N, F, OH, OW) -> (dL/dx (N, C, H, W) or None, pairs of body then shortcut)."""
        y_shape = self._cached("y_shape", "backprop")
        self._check_grad(grad_out, y_shape, self._dtype)
        grad_sum = grad_out * self.mask if self.relu else grad_out     # dL/dz
        grad_body, pairs = _backprop(self.body, grad_sum, need_input_grad)
        if self.shortcut is None:
            grad_short, short_pairs = grad_sum, []
        else:
            grad_short, short_pairs = _backprop(self.shortcut, grad_sum, need_input_grad)
        grad_x = grad_body + grad_short if need_input_grad else None
        return grad_x, pairs + short_pairs

    def backward_inputs(self, grad_out):
        """grad_out (N, F, OH, OW) -> dL/dx (N, C, H, W)."""
        return self.backprop(grad_out, need_input_grad=True)[0]

    def backward_params(self, grad_out):
        """grad_out (N, F, OH, OW) -> [(param, grad), ...] in the order of ``params()``."""
        return self.backprop(grad_out, need_input_grad=False)[1]

    def _named(self, method):
        out = []
        for prefix, layer in (("body", self.body), ("shortcut", self.shortcut)):
            if layer is not None and hasattr(layer, method):
                out.extend((f"{prefix}.{name}", arr) for name, arr in getattr(layer, method)())
        return out

    def params(self):
        return self._named("params")

    def buffers(self):
        return self._named("buffers")

    def train(self, mode=True):
        self.training = bool(mode)
        for layer in self.children():
            if hasattr(layer, "train"):
                layer.train(mode)
        return self

    def config(self):
        """The constructor arguments except the sub-layers (``minidl.io`` stores those)."""
        return {"relu": self.relu, "name": self.name}

    def __repr__(self):
        body = repr(self.body).replace("\n", "\n  ")
        short = repr(self.shortcut).replace("\n", "\n  ") if self.shortcut is not None else "identity"
        return f"Residual(name={self.name!r}, relu={self.relu},\n  body={body},\n  shortcut={short})"


def projection_shortcut(in_channels, out_channels, stride=1, dtype=np.float32, rng=None, name="shortcut"):
    """1x1 strided convolution (no bias) + BatchNorm: (N, C, H, W) -> (N, F, OH, OW),
    the shortcut of a ResNet block whose body changes the number of channels or the size."""
    rng = np.random.default_rng(rng)
    return Sequential([
        Conv(in_channels, out_channels, 1, stride=stride, bias=False, name="proj", dtype=dtype, rng=rng),
        BatchNorm(out_channels, name="proj_bn", dtype=dtype),
    ], name=name)


def resnet_block(in_channels, out_channels, stride=1, dtype=np.float32, rng=None, name=None):
    """The ResNet basic block (seed 003's ResNetBlock): x (N, C, H, W) -> y (N, F, OH, OW),

        body:     conv 3x3 (stride, pad 1, no bias) -> BatchNorm -> ReLU -> conv 3x3 (pad 1, no bias) -> BatchNorm
        shortcut: identity if stride == 1 and C == F, else conv 1x1 (stride, no bias) -> BatchNorm
        y = relu(body(x) + shortcut(x))

    with OH = floor((H - 1) / stride) + 1. Convolutions are He-initialised from ``rng``.
    """
    rng = np.random.default_rng(rng)
    body = Sequential([
        Conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, name="conv1",
             dtype=dtype, rng=rng),
        BatchNorm(out_channels, name="bn1", dtype=dtype),
        ReLU(name="relu1"),
        Conv(out_channels, out_channels, 3, stride=1, padding=1, bias=False, name="conv2",
             dtype=dtype, rng=rng),
        BatchNorm(out_channels, name="bn2", dtype=dtype),
    ], name="body")
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = projection_shortcut(in_channels, out_channels, stride, dtype, rng)
    return Residual(body, shortcut, relu=True, name=name or "resblock")
