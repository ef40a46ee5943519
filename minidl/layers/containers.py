"""Containers: layers made of layers.

    Sequential            y = f_L(... f_2(f_1(x)))
    Residual              y = relu(body(x) + shortcut(x))  (He et al. 2016)
    projection_shortcut   1x1 strided convolution + BatchNorm
    resnet_block          the ResNet basic block

Symbols: N batch, C input channels, F output channels, H W input size,
OH OW output size of a residual body (its shortcut must produce the same shape).

A container declares in ``child_fields`` the attributes that hold its
sub-layers; ``minidl.io`` saves them beside ``config()`` and
``Sequential.summary`` follows them to count the activation memory.
"""
import copy

import numpy as np

from .activations import ReLU
from .base import Layer, call_backprop
from .conv import Conv
from .norm import BatchNorm


# ================================================================= Sequential


class Sequential(Layer):
    """y = f_L(... f_2(f_1(x))).

    Backprop runs the chain rule from the last layer to the first: each layer
    turns dL/d(its output) into dL/d(its input) and its parameter gradients.
    ``backward`` skips the first layer's input gradient, which no one needs.
    A Sequential is a layer, so Sequentials nest.
    """

    #: attributes holding sub-layers (containers declare theirs; see ``sublayers``)
    child_fields = ("layers",)

    def __init__(self, layers, name=None):
        super().__init__(name)
        self.layers = list(layers)
        for layer in self.layers:
            if not hasattr(layer, "forward") or not hasattr(layer, "backward_inputs"):
                raise TypeError(f"Sequential '{self.name}': {layer!r} does not have the layer contract "
                                f"(forward, backward_inputs, backward_params)")

    def forward(self, x):
        self._kept_half = None
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backprop(self, grad_out, need_input_grad=True):
        """(dL/dx or None, [(param, grad), ...] in the order of ``params()``)."""
        pairs = []
        grad = grad_out
        for i in range(len(self.layers) - 1, -1, -1):
            # the first layer's input gradient is needed only if our caller asked for it
            grad, layer_pairs = call_backprop(self.layers[i], grad, need_input_grad or i > 0)
            pairs[:0] = layer_pairs
        return grad, pairs

    def backward(self, grad_logits):
        """dL/dlogits -> [(param, grad), ...] for every parameter of the net."""
        return self.backprop(grad_logits, need_input_grad=False)[1]

    def backward_inputs(self, grad_out):
        return self._one_backprop(grad_out, "inputs")     # both halves in one backprop

    def backward_params(self, grad_out):
        return self._one_backprop(grad_out, "params")

    # --------------------------------------------------------------- state
    def named_layers(self, prefix=""):
        """[(dotted name, layer), ...] of the leaf layers, depth first."""
        out = []
        for i, layer in enumerate(self.layers):
            path = f"{prefix}{i}.{layer.name}"
            if isinstance(layer, Sequential):
                out.extend(layer.named_layers(path + "."))
            else:
                out.append((path, layer))
        return out

    def params(self):
        """[(name, array), ...] of every trainable array, in backprop order."""
        return [(f"{i}.{layer.name}.{pname}", arr)
                for i, layer in enumerate(self.layers)
                for pname, arr in (layer.params() if hasattr(layer, "params") else [])]

    def buffers(self):
        return [(f"{i}.{layer.name}.{bname}", arr)
                for i, layer in enumerate(self.layers)
                for bname, arr in (layer.buffers() if hasattr(layer, "buffers") else [])]

    def train(self, mode=True):
        self.training = bool(mode)
        for layer in self.layers:
            if hasattr(layer, "train"):
                layer.train(mode)
        return self

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n  {inner}\n])"

    # -------------------------------------------------------------- summary
    def summary(self, input_shape, batch_size=50, dtype=None, file=None):
        """Print and return a per-layer table for inputs of shape (batch_size, *input_shape).

        Columns: output shape, parameter count, and the bytes each layer caches in
        forward for backprop (measured by running a forward pass on zeros and
        summing the arrays named in ``cache_slots``, those of a container's
        sub-layers included). ``dtype`` defaults to that of the parameters. The
        pass runs on a copy of the net, so running statistics, random generators
        and caches of the net itself are untouched.
        """
        if dtype is None:  # the dtype of the parameters, float32 for a net without any
            dtype = next((arr.dtype for _, arr in self.params()), np.dtype(np.float32))
        x = np.zeros((batch_size, *input_shape), dtype=dtype)
        rows = []
        net = copy.deepcopy(self).train(True)
        for path, layer in net.named_layers():
            x = layer.forward(x)  # leaves in order: nested Sequentials are flattened
            n_params = sum(int(a.size) for _, a in layer.params()) if hasattr(layer, "params") else 0
            rows.append((path, type(layer).__name__, tuple(x.shape), n_params, cache_nbytes(layer)))
        lines = [f"{'layer':<24}{'type':<19}{'output shape':<22}{'params':>10}{'cache (KiB)':>14}"]
        for path, kind, shape, n_params, cache in rows:
            lines.append(f"{path:<24}{kind:<19}{str(shape):<22}{n_params:>10,}{cache / 1024:>14,.1f}")
        total_params = sum(r[3] for r in rows)
        total_cache = sum(r[4] for r in rows)
        lines.append(f"{'total':<65}{total_params:>10,}{total_cache / 1024:>14,.1f}")
        lines.append(f"(batch of {batch_size}, {np.dtype(dtype).name}; activation memory for backprop "
                     f"{total_cache / 2**20:.2f} MiB)")
        text = "\n".join(lines)
        print(text, file=file)
        return {"rows": rows, "total_params": total_params, "total_cache_bytes": total_cache, "text": text}


def sublayers(layer):
    """The direct sub-layers of a container, read from the attributes its ``child_fields``
    names (each a layer, a list of layers, or None); [] for a leaf layer."""
    out = []
    for field in getattr(layer, "child_fields", ()):
        value = getattr(layer, field, None)
        if isinstance(value, (list, tuple)):
            out.extend(value)
        elif value is not None:
            out.append(value)
    return out


def cache_nbytes(layer):
    """Bytes of the arrays named in ``cache_slots`` of ``layer`` and of all its sub-layers."""
    own = sum(getattr(layer, slot).nbytes for slot in getattr(layer, "cache_slots", ())
              if isinstance(getattr(layer, slot, None), np.ndarray))
    return own + sum(cache_nbytes(child) for child in sublayers(layer))


# =================================================================== Residual
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

    A container: ``child_fields`` names the attributes holding its sub-layers.
    """

    cache_slots = ("mask", "y_shape", "y_dtype")
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
        self.y_dtype = None  # dtype of the last output: backprop checks grad_out against it

    def children(self):
        """The sub-layers: [body] or [body, shortcut]."""
        return [self.body] + ([self.shortcut] if self.shortcut is not None else [])

    def forward(self, x):
        """x (N, C, H, W) -> y (N, F, OH, OW)."""
        self._check_float(x)
        self._kept_half = None
        body_out = self.body.forward(x)
        short_out = x if self.shortcut is None else self.shortcut.forward(x)
        if body_out.shape != short_out.shape:
            what = "the input (identity shortcut)" if self.shortcut is None else "the shortcut's output"
            hint = (" (give it a projection shortcut, e.g. projection_shortcut(...))"
                    if self.shortcut is None else "")
            raise ValueError(f"{self._describe()}: the body's output has shape {body_out.shape}, "
                             f"{what} {short_out.shape}; they must match to be added{hint}")
        total = body_out + short_out
        self.y_shape, self.y_dtype = total.shape, total.dtype
        if self.relu:
            self.mask = total > 0
            return total * self.mask
        self.mask = None
        return total

    def backprop(self, grad_out, need_input_grad=True):
        """grad_out (N, F, OH, OW) -> (dL/dx (N, C, H, W) or None, pairs of body then shortcut)."""
        y_shape = self._cached("y_shape", "backprop")
        self._check_grad(grad_out, y_shape, self.y_dtype)
        grad_sum = grad_out * self.mask if self.relu else grad_out     # dL/dz
        grad_body, pairs = call_backprop(self.body, grad_sum, need_input_grad)
        if self.shortcut is None:
            grad_short, short_pairs = grad_sum, []
        else:
            grad_short, short_pairs = call_backprop(self.shortcut, grad_sum, need_input_grad)
        grad_x = grad_body + grad_short if need_input_grad else None
        return grad_x, pairs + short_pairs

    def backward_inputs(self, grad_out):
        """grad_out (N, F, OH, OW) -> dL/dx (N, C, H, W)."""
        return self._one_backprop(grad_out, "inputs")     # both halves in one backprop

    def backward_params(self, grad_out):
        """grad_out (N, F, OH, OW) -> [(param, grad), ...] in the order of ``params()``."""
        return self._one_backprop(grad_out, "params")

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
    """The ResNet basic block (He et al. 2016): x (N, C, H, W) -> y (N, F, OH, OW),

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
