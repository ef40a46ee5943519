"""Gradient checks: backprop against float64 central differences, as numbers.

For a layer y = f(x; params) and a random upstream gradient G of the shape of y,
the scalar

    s = sum(G * f(x; params))

has  ds/dx = backward_inputs(G)  and  ds/dparam = backward_params(G).  Two checks:

* ``check_layer``: every entry of every tensor against the central difference
  (s(v + eps) - s(v - eps)) / (2 eps); two forward passes per entry.
* ``check_directional``: for random directions V, the directional derivative
  <ds/dx, V> against (s(x + eps V) - s(x - eps V)) / (2 eps); two forward
  passes per direction and tensor, so it runs on a full-size image.

``check_loss`` does the same for a loss, whose value is the scalar.

The pass rule (``passes``, the only place it is applied). For a tensor with
analytic gradient a and numeric gradient n (or directional derivatives):

    max|a - n|  <=  max(tol * max(max|a|, max|n|),  noise_floor)
    noise_floor  =  NOISE_FACTOR * u * S / eps

with u = 2.2e-16 the float64 machine epsilon and S = sum|G * y| (for a loss,
|L|). Why: s is rounded by about u*S when it is evaluated (S bounds what is
summed), and a central difference divides two such roundings by 2 eps, so every
numeric gradient carries noise of order u*S/eps whatever the gradient's own
size. Below that floor no difference can be told from zero (the exactly zero
gradient of a bias before BatchNorm passes); above it errors count relative to
the tensor's own scale. The floor shrinks with the layer's outputs, so a layer
y = 1e-9 * x whose backward returns 2e-9 * G fails like any 2x error. (The
rounding of v + eps itself, about u*|v|, does not enter: differences are
divided by the step actually taken.)
"""
import importlib
import inspect
import json
from dataclasses import dataclass, field

import numpy as np

#: float64 machine epsilon: the relative rounding of one operation
U64 = float(np.finfo(np.float64).eps)

#: safety factor on u*S/eps: S bounds the rounding of the final sum but not of every intermediate
#: (BatchNorm in a deep net rounds more than its output shows); on the built-in cases the measured
#: noise stays below 2 u*S/eps
NOISE_FACTOR = 10.0


# ------------------------------------------------------------------ results
@dataclass
class TensorCheck:
    """The comparison for one tensor (the input, one parameter, or a list of directional derivatives)."""
    name: str
    max_rel_error: float     # max|a - n| / max(max|a|, max|n|); 0 when both are all zeros
    max_abs_error: float     # max|a - n|
    noise_floor: float       # differences below this are rounding noise of the central difference
    tol: float
    passed: bool
    analytic: np.ndarray = field(repr=False)
    numeric: np.ndarray = field(repr=False)

    @property
    def verdict(self):
        """'ok', 'ok (noise)' when only the noise floor lets it pass, or 'FAIL'."""
        if not self.passed:
            return "FAIL"
        return "ok" if self.max_rel_error <= self.tol else "ok (noise)"

    def worst(self):
        """(index, analytic, numeric) where the two differ most."""
        index = np.unravel_index(np.argmax(np.abs(self.analytic - self.numeric)), self.analytic.shape)
        index = tuple(int(i) for i in index)   # plain ints: reports print (0, 2, 1)
        return index, float(self.analytic[index]), float(self.numeric[index])


@dataclass
class CheckResult:
    """All tensors of one check; ``passed`` if every tensor passed."""
    name: str
    tensors: list
    tol: float

    @property
    def passed(self):
        return all(t.passed for t in self.tensors)

    @property
    def max_rel_error(self):
        return max((t.max_rel_error for t in self.tensors), default=0.0)

    def report(self):
        """Several lines: one per tensor, and where each failing tensor is worst."""
        lines = [f"{self.name}: {'PASS' if self.passed else 'FAIL'} (tolerance {self.tol:.0e})"]
        for t in self.tensors:
            lines.append(f"  {t.name:<16} rel {t.max_rel_error:.2e}  abs {t.max_abs_error:.2e}"
                         f"  floor {t.noise_floor:.1e}  {t.verdict}")
            if not t.passed:
                index, a, n = t.worst()
                lines.append(f"    worst at {index}: analytic {a:.8e} numeric {n:.8e}")
        return "\n".join(lines)


# --------------------------------------------------------------- the rule
def noise_floor(objective_scale, eps):
    """NOISE_FACTOR * u * S / eps: the rounding noise of a central difference of a sum of size S."""
    return NOISE_FACTOR * U64 * float(objective_scale) / eps


def relative_error(analytic, numeric):
    """(max|a - n| / max(max|a|, max|n|), max|a - n|); the ratio is 0 when both are all zeros.

    A NaN or infinity anywhere makes both NaN or infinite, which no rule passes."""
    diff = float(np.max(np.abs(analytic - numeric), initial=0.0))
    if not np.isfinite(diff):
        return diff, diff
    scale = max(float(np.max(np.abs(analytic), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)))
    return (diff / scale if scale > 0 else 0.0), diff


def passes(max_rel_error, max_abs_error, floor, tol):
    """The pass rule: the error is below ``tol`` relative to the tensor's scale, or below the noise floor."""
    return max_rel_error <= tol or max_abs_error <= floor


def compare(name, analytic, numeric, tol, floor):
    """A ``TensorCheck`` of two arrays of the same shape under the pass rule."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"gradcheck: the analytic gradient of {name} has shape {analytic.shape}, "
                         f"expected {numeric.shape}")
    rel, diff = relative_error(analytic, numeric)
    return TensorCheck(name, rel, diff, floor, tol, passes(rel, diff, floor, tol), analytic, numeric)


# ------------------------------------------------------ central differences
def numerical_gradient(f, array, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of ``array``.

    ``array`` is perturbed in place and restored exactly after each entry. The
    divisor is the step actually taken (v + eps is rounded), not 2 eps.
    """
    grad = np.zeros(array.shape, dtype=np.float64)
    flat = array.reshape(-1)  # a view: writing to it perturbs what f reads
    if not np.shares_memory(flat, array):
        raise ValueError("numerical_gradient: the array must be contiguous so it can be perturbed in place")
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        up, plus = flat[i], f()
        flat[i] = saved - eps
        down, minus = flat[i], f()
        flat[i] = saved
        gflat[i] = (plus - minus) / (up - down)
    return grad


def _named_params(layer, pairs, check):
    """[(name, param, grad)] for the pairs of backward_params, named by ``layer.params()`` when it exists."""
    names = {id(arr): pname for pname, arr in (layer.params() if hasattr(layer, "params") else [])}
    named = []
    for i, (param, grad) in enumerate(pairs):
        pname = names.get(id(param), f"param[{i}]")
        if not isinstance(param, np.ndarray) or param.dtype != np.float64:
            raise ValueError(f"{check}: parameter {pname} is {getattr(param, 'dtype', type(param).__name__)}; "
                             f"construct the layer with dtype=np.float64")
        named.append((pname, param, np.array(grad, dtype=np.float64, copy=True)))
    return named


def _prepare(layer, x, rng, upstream, check):
    """x as a float64 copy, G, and the analytic gradients at x (the cache belongs to x itself)."""
    x = np.array(x, dtype=np.float64, copy=True)
    y = layer.forward(x)
    if not isinstance(y, np.ndarray) or y.dtype != np.float64:
        raise ValueError(f"{check}: the layer returned {getattr(y, 'dtype', type(y).__name__)}; "
                         f"construct it with dtype=np.float64 so the check runs in double precision")
    grad_up = rng.standard_normal(y.shape) if upstream is None else np.asarray(upstream, dtype=np.float64)
    if grad_up.shape != y.shape:
        raise ValueError(f"{check}: upstream gradient of shape {grad_up.shape}, expected {y.shape}")
    grad_x = np.array(layer.backward_inputs(grad_up), dtype=np.float64, copy=True)
    params = _named_params(layer, layer.backward_params(grad_up), check)
    scale = float(np.sum(np.abs(grad_up * y)))
    return x, grad_up, grad_x, params, scale


# ------------------------------------------------------------------ checks
def check_layer(layer, x, eps=1e-6, tol=1e-6, rng=None, name=None, upstream=None):
    """Check ``backward_inputs`` and every pair of ``backward_params`` of ``layer`` at ``x``, entry by entry.

    x: any shape the layer takes; it and the layer's parameters must be float64.
    Works for any object with the layer contract; parameter names come from
    ``layer.params()`` when it exists, else from their position. ``upstream``
    (shape of y) replaces the random G. Returns a ``CheckResult``.
    """
    name = name or getattr(layer, "name", type(layer).__name__)
    rng = np.random.default_rng(rng)
    x, grad_up, grad_x, params, scale = _prepare(layer, x, rng, upstream, f"gradcheck '{name}'")
    floor = noise_floor(scale, eps)

    def objective():
        return float(np.sum(grad_up * layer.forward(x)))

    tensors = [compare("input", grad_x, numerical_gradient(objective, x, eps), tol, floor)]
    for pname, param, grad in params:
        tensors.append(compare(pname, grad, numerical_gradient(objective, param, eps), tol, floor))
    return CheckResult(name, tensors, tol)


def check_directional(layer, x, directions=3, eps=1e-6, tol=1e-6, rng=None, name=None, upstream=None):
    """Check backprop along random directions: one pair of forward passes per direction and tensor.

    For the input and each parameter v with gradient g = ds/dv, and ``directions``
    standard normal V of the shape of v, compares

        <g, V>   against   (s(v + eps V) - s(v - eps V)) / (2 eps)

    (the left side uses the step actually taken, (v + eps V) - (v - eps V), over
    2 eps). Each ``TensorCheck`` holds the ``directions`` values of each side.
    x and the parameters must be float64. Returns a ``CheckResult``.

    A direction moves every entry at once, so in a large input it meets the kinks
    of ReLU and the ties of max pooling that an entry-by-entry check steps around:
    there the two sides differ, without a bug. On a photo with flat regions, add a
    little noise (exact ties) and take a smaller ``eps`` such as 1e-8 (near ties).
    """
    name = name or getattr(layer, "name", type(layer).__name__)
    rng = np.random.default_rng(rng)
    x, grad_up, grad_x, params, scale = _prepare(layer, x, rng, upstream, f"directional check '{name}'")
    floor = noise_floor(scale, eps)

    def objective():
        return float(np.sum(grad_up * layer.forward(x)))

    tensors = []
    for tname, array, grad in [("input", x, grad_x)] + params:
        saved = array.copy()
        analytic, numeric = np.zeros(directions), np.zeros(directions)
        for k in range(directions):
            v = rng.standard_normal(array.shape)
            array[...] = saved + eps * v          # perturbed in place: what the layer reads
            plus, upper = objective(), array.copy()
            array[...] = saved - eps * v
            minus, lower = objective(), array.copy()
            array[...] = saved
            analytic[k] = np.sum(grad * (upper - lower)) / (2 * eps)
            numeric[k] = (plus - minus) / (2 * eps)
        tensors.append(compare(tname, analytic, numeric, tol, floor))
    return CheckResult(name, tensors, tol)


def check_loss(loss, logits, targets, eps=1e-6, tol=1e-6, name=None):
    """Check ``loss.backward_inputs(logits, targets)`` against central differences of
    ``loss.forward(logits, targets)``; for a loss with ``backward_params`` (a
    ``RegularizedLoss``) also its parameter pairs. logits (N, C) float64."""
    name = name or getattr(loss, "name", type(loss).__name__)
    logits = np.array(logits, dtype=np.float64, copy=True)
    value = float(loss.forward(logits, targets))
    analytic = np.array(loss.backward_inputs(logits, targets), dtype=np.float64, copy=True)
    floor = noise_floor(abs(value), eps)

    def objective():
        return float(loss.forward(logits, targets))

    tensors = [compare("logits", analytic, numerical_gradient(objective, logits, eps), tol, floor)]
    if hasattr(loss, "backward_params"):
        for pname, param, grad in _named_params(loss, loss.backward_params(logits, targets), f"gradcheck '{name}'"):
            tensors.append(compare(pname, grad, numerical_gradient(objective, param, eps), tol, floor))
    return CheckResult(name, tensors, tol)


# --------------------------------------------------- a user's layer, the table
def load_layer_class(spec):
    """'package.module:ClassName' -> the class."""
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"--layer must look like package.module:ClassName, got {spec!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {class_name!r}") from None


def parse_shape(text):
    """'2,3,8,8' -> (2, 3, 8, 8)."""
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except (AttributeError, ValueError):
        raise ValueError(f"--input-shape must be comma-separated integers, got {text!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"--input-shape must be positive integers, got {text!r}")
    return shape


def check_user_layer(spec, args_json, input_shape, tol=1e-6, seed=0):
    """Build the class ``spec`` ('package.module:ClassName') with the JSON keyword arguments
    (plus dtype=float64 and rng when the constructor takes them) and ``check_layer`` it
    on a standard normal input of ``input_shape`` ('2,3,8,8')."""
    if input_shape is None:
        raise ValueError("--input-shape is required with --layer")
    cls = load_layer_class(spec)
    kwargs = json.loads(args_json)
    if not isinstance(kwargs, dict):
        raise ValueError(f"--args must be a JSON object, got {args_json!r}")
    accepted = inspect.signature(cls).parameters
    rng = np.random.default_rng(seed)
    if "dtype" in accepted and "dtype" not in kwargs:
        kwargs["dtype"] = np.float64
    if "rng" in accepted and "rng" not in kwargs:
        kwargs["rng"] = rng
    layer = cls(**kwargs)
    return check_layer(layer, rng.standard_normal(parse_shape(input_shape)), tol=tol, rng=rng, name=spec)


def print_table(results, verbose=False, file=None):
    """Print one row per tensor; return the number of tensors that failed."""
    print(f"{'check':<40}{'tensor':<18}{'rel. error':>12}{'abs. error':>12}{'floor':>10}  result", file=file)
    print("-" * 100, file=file)
    failures = 0
    for result in results:
        for i, t in enumerate(result.tensors):
            label = result.name if i == 0 else ""
            print(f"{label:<40}{t.name:<18}{t.max_rel_error:>12.2e}{t.max_abs_error:>12.2e}"
                  f"{t.noise_floor:>10.1e}  {t.verdict}", file=file)
            if not t.passed:
                failures += 1
                if verbose:
                    index, a, n = t.worst()
                    print(f"{'':<40}worst at {index}: analytic {a:.8e}, numeric {n:.8e}", file=file)
    tensors = [t for r in results for t in r.tensors]
    at_noise = sum(t.verdict == "ok (noise)" for t in tensors)
    largest = max((t.max_rel_error for t in tensors if t.verdict != "ok (noise)"), default=0.0)
    print("-" * 100, file=file)
    print(f"{len(tensors) - failures} passed ({at_noise} at the noise floor), {failures} failed; "
          f"largest other relative error {largest:.2e} (tolerance "
          f"{', '.join(f'{tol:.0e}' for tol in sorted({t.tol for t in tensors}))})", file=file)
    return failures
