"""Sequential: a chain of layers that is itself a layer."""
import copy

import numpy as np

from .layers.base import Layer


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
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backprop(self, grad_out, need_input_grad=True):
        """(dL/dx or None, [(param, grad), ...] in the order of ``params()``)."""
        pairs = []
        grad = grad_out
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            need = need_input_grad or i > 0
            if hasattr(layer, "backprop"):
                grad_in, layer_pairs = layer.backprop(grad, need_input_grad=need)
            else:  # a user's layer with only the two lab methods
                layer_pairs = layer.backward_params(grad)
                grad_in = layer.backward_inputs(grad) if need else None
            pairs[:0] = layer_pairs
            grad = grad_in
        return grad, pairs

    def backward(self, grad_logits):
        """dL/dlogits -> [(param, grad), ...] for every parameter of the net."""
        return self.backprop(grad_logits, need_input_grad=False)[1]

    def backward_inputs(self, grad_out):
        return self.backprop(grad_out, need_input_grad=True)[0]

    def backward_params(self, grad_out):
        return self.backprop(grad_out, need_input_grad=False)[1]

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
