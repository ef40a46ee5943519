"""Numerical gradient checks: analytic backprop against central differences.

For a layer y = f(x; params) and a random upstream gradient G of the shape of y,
the scalar  s(x, params) = sum(G * f(x; params))  has

    ds/dx = backward_inputs(G)         ds/dparam = backward_params(G)

and each is compared against the central difference
(s(v + eps) - s(v - eps)) / (2 eps), one element at a time, in float64.

The error of a tensor is  max_i |analytic_i - numeric_i| / max(max_i |analytic_i|, max_i |numeric_i|),
the largest deviation relative to the tensor's scale. It does not blow up on
entries that happen to be near zero, where an element-wise ratio measures only
rounding noise. A tensor passes when that error is below the tolerance, or when
the largest absolute difference is below ``ABS_TOL`` (a gradient that is exactly
zero has no scale to be relative to).
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TensorCheck:
    """The result for one tensor (the input or one parameter)."""
    name: str
    max_rel_error: float
    max_abs_error: float
    passed: bool
    analytic: np.ndarray = field(repr=False)
    numeric: np.ndarray = field(repr=False)


@dataclass
class CheckResult:
    """All tensors of one check; ``passed`` if every tensor passed."""
    name: str
    tensors: list

    @property
    def passed(self):
        return all(t.passed for t in self.tensors)

    @property
    def max_rel_error(self):
        return max((t.max_rel_error for t in self.tensors), default=0.0)

    def report(self):
        lines = [f"{self.name}: {'PASS' if self.passed else 'FAIL'}"]
        for t in self.tensors:
            lines.append(f"  {t.name:<16} rel {t.max_rel_error:.2e}  abs {t.max_abs_error:.2e}"
                         f"  {'ok' if t.passed else 'FAIL'}")
            if not t.passed:
                worst = np.unravel_index(np.argmax(np.abs(t.analytic - t.numeric)), t.analytic.shape)
                lines.append(f"    worst at {worst}: analytic {t.analytic[worst]:.8e} "
                             f"numeric {t.numeric[worst]:.8e}")
        return "\n".join(lines)


def relative_error(analytic, numeric):
    """max |a - n| / max(max |a|, max |n|); 0 when both are exactly zero."""
    diff = float(np.max(np.abs(analytic - numeric))) if analytic.size else 0.0
    scale = max(float(np.max(np.abs(analytic), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)))
    if scale == 0.0:
        return 0.0, diff
    return diff / scale, diff


def numerical_gradient(f, array, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of ``array``.

    ``array`` is perturbed in place and restored exactly after each entry.
    """
    grad = np.zeros(array.shape, dtype=np.float64)
    flat = array.reshape(-1)  # a view: writing to it perturbs what f reads
    if not np.shares_memory(flat, array):
        raise ValueError("numerical_gradient: the array must be contiguous so it can be perturbed in place")
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        plus = f()
        flat[i] = saved - eps
        minus = f()
        flat[i] = saved
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def _param_list(layer):
    if hasattr(layer, "params"):
        return [(name, arr) for name, arr in layer.params()]
    return []


def check_layer(layer, x, eps=1e-6, tol=1e-6, rng=None, name=None, upstream=None):
    """Check ``backward_inputs`` and every pair of ``backward_params`` of ``layer`` at ``x``.

    ``x`` and the layer's parameters must be float64 (a float32 check cannot reach
    1e-6). Works for any object with the layer contract; parameter names come from
    ``layer.params()`` when it exists, else from their position.
    Returns a ``CheckResult``.
    """
    name = name or getattr(layer, "name", type(layer).__name__)
    x = np.array(x, dtype=np.float64, copy=True)
    rng = np.random.default_rng(rng)
    y = layer.forward(x)
    if y.dtype != np.float64:
        raise ValueError(f"gradcheck '{name}': the layer returned {y.dtype}; construct it with "
                         f"dtype=np.float64 so the check runs in double precision")
    grad_up = rng.standard_normal(y.shape) if upstream is None else np.asarray(upstream, dtype=np.float64)

    # analytic gradients at x (forward again so the cache belongs to x itself)
    layer.forward(x)
    analytic_x = np.array(layer.backward_inputs(grad_up), copy=True)
    pairs = [(p, np.array(g, copy=True)) for p, g in layer.backward_params(grad_up)]

    def objective():
        return float(np.sum(grad_up * layer.forward(x)))

    tensors = []
    numeric_x = numerical_gradient(objective, x, eps)
    tensors.append(_tensor("input", analytic_x, numeric_x, tol))

    names = {id(arr): pname for pname, arr in _param_list(layer)}
    for i, (param, grad) in enumerate(pairs):
        if param.dtype != np.float64:
            raise ValueError(f"gradcheck '{name}': parameter {names.get(id(param), i)} is "
                             f"{param.dtype}; construct the layer with dtype=np.float64")
        numeric = numerical_gradient(objective, param, eps)
        tensors.append(_tensor(names.get(id(param), f"param[{i}]"), grad, numeric, tol))
    return CheckResult(name, tensors)


def check_loss(loss, logits, targets, eps=1e-6, tol=1e-6, name=None):
    """Check ``loss.backward_inputs(logits, targets)`` against central differences of
    ``loss.forward(logits, targets)``; for a ``RegularizedLoss`` also its parameter pairs."""
    name = name or getattr(loss, "name", type(loss).__name__)
    logits = np.array(logits, dtype=np.float64, copy=True)
    analytic = np.array(loss.backward_inputs(logits, targets), copy=True)

    def objective():
        return float(loss.forward(logits, targets))

    tensors = [_tensor("logits", analytic, numerical_gradient(objective, logits, eps), tol)]
    if hasattr(loss, "backward_params"):
        for i, (param, grad) in enumerate(loss.backward_params(logits, targets)):
            tensors.append(_tensor(f"param[{i}]", np.array(grad, copy=True),
                                   numerical_gradient(objective, param, eps), tol))
    return CheckResult(name, tensors)


#: below this largest absolute difference a tensor passes whatever its relative error: a
#: gradient that is exactly zero (a bias before BatchNorm) is compared with pure rounding
#: noise of the central difference, about 1e-16 * |s| / eps
ABS_TOL = 1e-8


def passes(max_rel_error, max_abs_error, tol):
    """The pass rule: relative error below ``tol``, or absolute error below ``ABS_TOL``."""
    return max_rel_error < tol or max_abs_error < ABS_TOL


def _tensor(name, analytic, numeric, tol):
    if analytic.shape != numeric.shape:
        raise ValueError(f"gradcheck: analytic gradient of {name} has shape {analytic.shape}, "
                         f"expected {numeric.shape}")
    rel, abs_err = relative_error(analytic, numeric)
    return TensorCheck(name, rel, abs_err, passes(rel, abs_err, tol), analytic, numeric)
