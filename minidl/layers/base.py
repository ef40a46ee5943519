"""The layer contract, stated once, and the argument checks every layer shares.

Symbols: N batch, C channels, H height, W width, D features.
"""
import abc
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Layer(abc.ABC):
    """One differentiable operation y = f(x; params).

    The contract every layer keeps:

    ``forward(x) -> y``
        Computes the output and caches what the backward methods need, and
        nothing more. The slots a layer caches are listed in ``cache_slots``
        and set to ``None`` in ``__init__``, each with a comment saying which
        backward method reads it.
    ``backward_inputs(grad_out) -> grad_inputs``
        Given dL/dy (shape of y), returns dL/dx (shape of x).
    ``backward_params(grad_out) -> [(param, grad), ...]``
        Given dL/dy, returns one pair per parameter. ``param`` is the live
        array that the optimiser updates in place; ``grad`` has its shape.
        A layer without parameters returns ``[]``.
    ``backprop(grad_out, need_input_grad=True) -> (grad_inputs or None, pairs)``
        Both at once; a layer overrides it when the two share work. Nets use
        it, and skip the input gradient of their first layer, which nobody needs.
        Such a layer answers the two lab methods from one ``backprop`` too
        (``_one_backprop``), so the lab's loop pays for no work twice.

    Backward methods read the cache of the last ``forward`` call; they never
    modify ``grad_out`` nor the cache, so calling them twice gives the same
    result. Calling them before ``forward`` raises ``RuntimeError``.
    """

    #: names of the attributes ``forward`` caches for the backward methods
    cache_slots = ()

    #: the half of one backprop kept for the second lab method (see ``_one_backprop``)
    _kept_half = None

    def __init__(self, name=None):
        self.name = name or type(self).__name__
        self.training = True

    # -------------------------------------------------------------- contract
    @abc.abstractmethod
    def forward(self, x):
        """x -> y; caches what the backward methods need."""

    @abc.abstractmethod
    def backward_inputs(self, grad_out):
        """dL/dy -> dL/dx."""

    def backward_params(self, grad_out):
        """No parameters, no parameter gradients."""
        return []

    def backprop(self, grad_out, need_input_grad=True):
        """(dL/dx or None, [(param, dL/dparam), ...]) for one upstream gradient."""
        pairs = self.backward_params(grad_out)
        grad_inputs = self.backward_inputs(grad_out) if need_input_grad else None
        return grad_inputs, pairs

    def params(self):
        """[(name, array), ...] of the trainable parameters, in a fixed order."""
        return []

    def buffers(self):
        """[(name, array), ...] of saved non-trainable state (running statistics)."""
        return []

    def config(self):
        """The constructor arguments that rebuild this layer (for model files)."""
        return {"name": self.name}

    def train(self, mode=True):
        """Switch to training (True) or evaluation (False) behaviour; returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def __call__(self, x):
        return self.forward(x)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"

    # ---------------------------------------- the two lab methods, one backprop
    def _one_backprop(self, grad_out, half):
        """``backward_inputs`` (half="inputs") or ``backward_params`` (half="params")
        for a layer whose ``backprop`` computes both in one pass (Conv's fast path,
        the containers), so that asking for both costs one backprop.

        The lab's loop asks each layer for both halves with the same grad_out, one
        after the other, in either order. The first call runs ``backprop`` and keeps
        the other half; the second, given the same array object, takes it instead
        of computing it again. Any other call, and the next ``forward``, drop it.
        So the kept half is the one computed from grad_out and the parameters as
        they were at the first call: change either in place between the two calls
        and the second returns the old numbers. A lone call computes both halves
        (``backprop`` with ``need_input_grad=False`` computes only the parameters').
        """
        kept, self._kept_half = self._kept_half, None
        if kept is not None and kept[0] is grad_out and kept[1] == half:
            return kept[2]
        grad_inputs, pairs = self.backprop(grad_out, need_input_grad=True)
        if half == "inputs":
            self._kept_half = (grad_out, "params", pairs)
            return grad_inputs
        self._kept_half = (grad_out, "inputs", grad_inputs)
        return pairs

    # ---------------------------------------------------------------- checks
    def _describe(self):
        return f"{type(self).__name__} '{self.name}'"

    def _cached(self, slot, method):
        """The cached value of ``slot``, or a clear error if forward has not run."""
        value = getattr(self, slot)
        if value is None:
            raise RuntimeError(f"{self._describe()}: {method} called before forward "
                               f"(nothing cached in '{slot}')")
        return value

    def _check_float(self, x, what="input", dtype=None):
        """x must be a float32/float64 ndarray (exactly ``dtype`` if given)."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self._describe()}: {what} must be a numpy array, got {type(x).__name__}")
        if dtype is not None:
            if x.dtype != dtype:
                raise ValueError(
                    f"{self._describe()}: expected {what} of dtype {np.dtype(dtype).name}, "
                    f"got {x.dtype.name} (convert with .astype(np.{np.dtype(dtype).name}))")
        elif x.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{self._describe()}: expected {what} of dtype float32 or float64, "
                             f"got {x.dtype.name}")

    def _check_ndim(self, x, ndim, layout, what="input"):
        if x.ndim != ndim:
            raise ValueError(f"{self._describe()}: expected a {ndim}-d {what} {layout}, "
                             f"got shape {x.shape}")

    def _check_grad(self, grad_out, expected_shape, dtype):
        """grad_out must match the shape and dtype of the last output."""
        self._check_float(grad_out, "grad_out", dtype)
        if grad_out.shape != tuple(expected_shape):
            raise ValueError(f"{self._describe()}: expected grad_out of shape {tuple(expected_shape)} "
                             f"(the shape of the last output), got {grad_out.shape}")


def call_backprop(layer, grad_out, need_input_grad=True):
    """(dL/dx or None, [(param, grad), ...]) from any object with the layer contract.

    A layer's own ``backprop`` if it has one (it may share work between the two
    gradients); otherwise the two lab methods, ``backward_params`` then
    ``backward_inputs``. Containers and the trainer go through here, so a
    student's layer with only the two lab methods fits anywhere a built-in does.
    """
    if hasattr(layer, "backprop"):
        return layer.backprop(grad_out, need_input_grad=need_input_grad)
    pairs = layer.backward_params(grad_out) if hasattr(layer, "backward_params") else []
    return (layer.backward_inputs(grad_out) if need_input_grad else None), pairs


# ----------------------------------------------------------- argument parsing
def as_pair(value, what, layer, minimum=1):
    """An int or a pair of ints -> (h, w), each >= minimum; numpy integers accepted."""
    if isinstance(value, (tuple, list, np.ndarray)):
        items = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
        if len(items) != 2:
            raise ValueError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")
    else:
        items = [value, value]
    pair = []
    for item in items:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Integral):
            raise ValueError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")
        if int(item) < minimum:
            raise ValueError(f"{layer}: {what} must be >= {minimum}, got {value!r}")
        pair.append(int(item))
    return tuple(pair)


def as_positive_int(value, what, layer):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{layer}: {what} must be a positive integer, got {value!r}")
    return int(value)


def as_float_dtype(dtype, layer):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"{layer}: dtype must be float32 or float64, got {dtype.name}")
    return dtype


def he_normal(shape, fan_in, rng, dtype):
    """Variance scaling (He, fan-in), as the lab: a normal with sigma = sqrt(2 / fan_in),
    truncated to +-2 sigma (draws outside are redrawn)."""
    rng = np.random.default_rng(rng)
    sigma = np.sqrt(2.0 / fan_in)
    z = rng.standard_normal(shape)
    redraw = np.flatnonzero(np.abs(z) > 2.0)     # flat positions outside, in order
    while redraw.size:                           # only the redrawn ones need checking again
        z.flat[redraw] = rng.standard_normal(redraw.size)
        redraw = redraw[np.abs(z.flat[redraw]) > 2.0]
    return (sigma * z).astype(dtype)
