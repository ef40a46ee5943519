"""Where things live and how they are called: the container imports, the one dispatch to
a layer's backprop or its two lab methods, the process-wide settings, and the SGD
update's two branches (plain NumPy and ops.axpy) agreeing bit for bit.
"""
import importlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import minidl
from minidl import ops
from minidl.layers import FC, Conv, Flatten, ReLU, Residual, Sequential, SoftmaxCrossEntropy
from minidl.layers.base import call_backprop
from minidl.optim import SGD
from minidl.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LabScale:
    """A student's layer with only the two lab methods (no Layer base, no backprop):
    y = s * x with a parameter s of shape (1,)."""

    def __init__(self):
        self.s = np.array([1.5])
        self.x = None

    def forward(self, x):
        self.x = x
        return self.s * x

    def backward_inputs(self, grad_out):
        return self.s * grad_out

    def backward_params(self, grad_out):
        return [(self.s, np.array([np.sum(grad_out * self.x)]))]


def test_the_containers_import_from_one_module():
    from minidl.layers import containers
    assert minidl.Sequential is Sequential is containers.Sequential
    assert Residual is containers.Residual
    for gone in ("minidl.net", "minidl.layers.residual"):
        with pytest.raises(ImportError):
            importlib.import_module(gone)


def test_call_backprop_uses_the_lab_methods_of_a_layer_without_backprop(rng):
    layer = LabScale()
    x = rng.standard_normal((2, 3))
    layer.forward(x)
    g = rng.standard_normal((2, 3))
    grad_x, pairs = call_backprop(layer, g)
    np.testing.assert_array_equal(grad_x, 1.5 * g)
    assert pairs[0][0] is layer.s and pairs[0][1] == pytest.approx(np.sum(g * x))
    assert call_backprop(layer, g, need_input_grad=False)[0] is None


def test_lab_layers_work_inside_sequential_residual_and_the_trainer(rng):
    """The same gradients as by hand, through every container that dispatches."""
    scale = LabScale()
    block = Residual(Sequential([scale]), relu=False)         # y = s*x + x
    x = rng.standard_normal((4, 3))
    y = block.forward(x)
    np.testing.assert_allclose(y, 2.5 * x)
    g = rng.standard_normal(y.shape)
    grad_x, pairs = block.backprop(g)
    np.testing.assert_allclose(grad_x, 2.5 * g)
    assert pairs[0][0] is scale.s and pairs[0][1][0] == pytest.approx(np.sum(g * x))

    net = Sequential([FC(3, 3, dtype=np.float64, rng=0), LabScale()])
    trainer = Trainer(net, SoftmaxCrossEntropy(), SGD(0.1), batch_size=4)
    s_before = net[1].s.copy()
    trainer.train_step(x, np.array([0, 1, 2, 0]))
    assert net[1].s != s_before                               # the lab layer's parameter was updated


def test_the_trainer_trains_a_single_layer_that_is_not_a_sequential(rng):
    fc = FC(3, 2, dtype=np.float64, rng=0)
    before = fc.weights.copy()
    Trainer(fc, SoftmaxCrossEntropy(), SGD(0.1)).train_step(rng.standard_normal((5, 3)), np.arange(5) % 2)
    assert not np.array_equal(fc.weights, before)


# --------------------------------------------------------------- settings
def _python(code, env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(environ, **env), cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_settings_set_their_defaults_and_a_user_value_wins():
    code = ("import os, minidl; print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'], "
            "os.environ['OPENBLAS_THREAD_TIMEOUT'])")
    assert _python(code, {}) == ["PASSIVE", "10000", "4"]
    assert _python(code, {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "0", "OPENBLAS_THREAD_TIMEOUT": "0"}) \
        == ["ACTIVE", "0", "0"]
    from minidl import _settings
    assert set(_settings.DEFAULTS) == {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT"}


def test_only_the_settings_module_sets_environment_variables():
    """os.environ is written in minidl/_settings.py and nowhere else in the package."""
    offenders = []
    for root, _, files in os.walk(os.path.join(REPO, "minidl")):
        for name in files:
            if name.endswith((".py", ".pyx")) and name != "_settings.py":
                text = open(os.path.join(root, name), encoding="utf-8").read()
                if re.search(r"environ\.(setdefault|update)\(|environ\[[^]]+\]\s*=[^=]|putenv\(", text):
                    offenders.append(name)
    assert offenders == []


# ------------------------------------------------------------- the update
@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True},
                                    {"momentum": 0.5, "dampening": 0.5, "weight_decay": 1e-2}])
def test_sgd_plain_and_axpy_branches_agree_bit_for_bit(rng, kwargs):
    if ops.BACKEND != "compiled":
        pytest.skip("ops.axpy's compiled branch is not active")
    w0 = rng.standard_normal((300, 70)).astype(np.float32)
    grads = [rng.standard_normal(w0.shape).astype(np.float32) for _ in range(3)]
    results = []
    for backend in ("compiled", "numpy"):
        ops.use_backend(backend)            # the conftest fixture restores the suite's backend
        w, opt = w0.copy(), SGD(0.05, **kwargs)
        for g in grads:
            opt.step([(w, g)])
        results.append(w)
    np.testing.assert_array_equal(results[0], results[1])
    # and the rule itself, by hand in float64, to float32 rounding
    w, v = w0.astype(np.float64), None
    for g in grads:
        g = g + kwargs.get("weight_decay", 0.0) * w
        m = kwargs.get("momentum", 0.0)
        if m:
            v = g.copy() if v is None else m * v + (1 - kwargs.get("dampening", 0.0)) * g
            step = g + m * v if kwargs.get("nesterov") else v
        else:
            step = g
        w = w - 0.05 * step
    np.testing.assert_allclose(results[0], w, rtol=1e-5, atol=1e-5)


def test_conv_and_fc_run_without_the_compiled_kernels_through_the_same_code(rng):
    """The NumPy backend runs Conv's plain path; the numbers match the compiled backend's."""
    net = Sequential([Conv(2, 3, 3, padding=1, dtype=np.float64, rng=0), ReLU(), Flatten(),
                      FC(3 * 5 * 5, 4, dtype=np.float64, rng=1)])
    x = rng.standard_normal((2, 2, 5, 5))
    outs = []
    for backend in ("numpy", "compiled") if ops.BACKEND == "compiled" else ("numpy",):
        ops.use_backend(backend)
        y = net.forward(x)
        outs.append((y, net.backward(np.ones_like(y))))
        assert net[0].path == "plain"
    for y, pairs in outs[1:]:
        np.testing.assert_allclose(y, outs[0][0], rtol=1e-12)
        for (_, a), (_, b) in zip(pairs, outs[0][1]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_big_arrays_are_reused_from_the_heap_not_faulted_in_again():
    """After minidl is imported, freeing a 50 MiB array and making another costs no page faults
    (glibc's default returns it to the system, and the next one is faulted in page by page)."""
    code = """
import resource, numpy as np, minidl, minidl._settings as s
def faults_of_a_fresh_array():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(50 << 18, np.float32)             # 50 MiB, every page touched
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del a
    return after - before
faults_of_a_fresh_array()
print(s.MALLOC_SET, faults_of_a_fresh_array())
"""
    set_, faults = _python(code, {})
    if set_ != "True":
        pytest.skip("this C library does not take mallopt's thresholds")
    assert int(faults) < 10           # at least 25 (huge pages of 2 MiB) if the memory had gone back
    # the user's own setting wins: with glibc's default threshold the pages come back as faults
    set_, faults = _python(code, {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)})
    assert int(faults) >= 25


def test_star_import_of_layers_brings_every_layer_class():
    """`from minidl.layers import *` (as a lab may write it) gives every Layer subclass there."""
    import minidl.layers as layers_module
    namespace = {}
    exec("from minidl.layers import *", namespace)
    classes = [name for name, obj in vars(layers_module).items()
               if isinstance(obj, type) and issubclass(obj, layers_module.Layer)]
    assert "Sequential" in classes and "Residual" in classes
    assert [name for name in classes if name not in namespace] == []
