"""What ``check_grads.py`` does, importable: load a user's layer, print the results table."""
import importlib
import inspect
import json

import numpy as np

from .gradcheck import check_layer, passes


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
    """Build ``spec`` with the JSON keyword arguments (plus dtype=float64 and rng when the
    constructor takes them) and check it on a standard normal input of ``input_shape``."""
    if input_shape is None:
        raise ValueError("--input-shape is required with --layer")
    cls = load_layer_class(spec)
    kwargs = json.loads(args_json)
    if not isinstance(kwargs, dict):
        raise ValueError(f"--args must be a JSON object, got {args_json!r}")
    params = inspect.signature(cls).parameters
    rng = np.random.default_rng(seed)
    if "dtype" in params and "dtype" not in kwargs:
        kwargs["dtype"] = np.float64
    if "rng" in params and "rng" not in kwargs:
        kwargs["rng"] = rng
    layer = cls(**kwargs)
    result = check_layer(layer, rng.standard_normal(parse_shape(input_shape)), rng=rng, name=spec)
    for t in result.tensors:
        t.passed = passes(t.max_rel_error, t.max_abs_error, tol)
    return result


def print_table(results, tol, verbose=False, file=None):
    """Print one row per tensor; return 0 if all passed, else 1."""
    print(f"{'check':<40}{'tensor':<18}{'rel. error':>12}{'abs. error':>12}  result", file=file)
    print("-" * 90, file=file)
    failures = 0
    for result in results:
        for i, t in enumerate(result.tensors):
            label = result.name if i == 0 else ""
            print(f"{label:<40}{t.name:<18}{t.max_rel_error:>12.2e}{t.max_abs_error:>12.2e}  "
                  f"{'ok' if t.passed else 'FAIL'}", file=file)
            if not t.passed:
                failures += 1
                if verbose:
                    worst = np.unravel_index(np.argmax(np.abs(t.analytic - t.numeric)), t.analytic.shape)
                    print(f"{'':<40}worst at {worst}: analytic {t.analytic[worst]:.8e}, "
                          f"numeric {t.numeric[worst]:.8e}", file=file)
    total = sum(len(r.tensors) for r in results)
    worst = max((r.max_rel_error for r in results), default=0.0)
    print("-" * 90, file=file)
    print(f"{total - failures} passed, {failures} failed (tolerance {tol:.0e}, largest error {worst:.2e})",
          file=file)
    return 0 if failures == 0 else 1
