"""check_grads.py as a user runs it: a separate process, judged by its exit status."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import check_grads
from minidl import gradcheck_cases
from minidl.gradcheck_cases import Case, layer_case, normal

ROOT = Path(__file__).resolve().parents[1]

USER_LAYERS = '''
import numpy as np
from minidl.layers import Layer


class Tiny(Layer):
    """y = 1e-9 * x; ``factor`` scales the returned gradient (1.0 is right)."""
    factor = 1.0

    def __init__(self, dtype=np.float64):
        super().__init__()

    def forward(self, x):
        return 1e-9 * x

    def backward_inputs(self, grad_out):
        return self.factor * 1e-9 * grad_out


class TinyWrong(Tiny):
    factor = 2.0                     # 50 % wrong, at a scale under any absolute tolerance


class Affine(Layer):
    """y = x * w + b over the last axis, with parameters."""

    def __init__(self, size, dtype=np.float32, rng=None):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.w = rng.standard_normal(size).astype(dtype)
        self.b = rng.standard_normal(size).astype(dtype)

    def forward(self, x):
        self.x = x
        return x * self.w + self.b

    def backward_inputs(self, grad_out):
        return grad_out * self.w

    def backward_params(self, grad_out):
        axes = tuple(range(grad_out.ndim - 1))
        return [(self.w, (grad_out * self.x).sum(axis=axes)), (self.b, grad_out.sum(axis=axes))]

    def params(self):
        return [("w", self.w), ("b", self.b)]
'''


def run_script(*args, tmp_path=None):
    env = dict(os.environ)
    if tmp_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, str(ROOT / "check_grads.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def user_module(tmp_path):
    (tmp_path / "my_layers.py").write_text(textwrap.dedent(USER_LAYERS))
    return tmp_path


def test_builtin_cases_selected_pass_with_status_0():
    done = run_script("--select", "dilation (2,1)")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Conv 2x3 stride (1,2) dilation (2,1) pad (1,2)" in done.stdout
    assert "0 failed" in done.stdout and "FAIL" not in done.stdout


def test_a_select_that_matches_nothing_is_an_error():
    done = run_script("--select", "no such layer")
    assert done.returncode == 2
    assert "no built-in case matches" in done.stderr


@pytest.mark.parametrize("spec,args,shape,status", [
    ("my_layers:Tiny", "{}", "2,3,4", 0),
    ("my_layers:TinyWrong", "{}", "2,3,4", 1),
    ("my_layers:Affine", '{"size": 5}', "3,5", 0),
], ids=["right-tiny", "wrong-tiny", "right-with-params"])
def test_a_users_layer_exit_status(user_module, spec, args, shape, status):
    done = run_script("--layer", spec, "--args", args, "--input-shape", shape, "--verbose", tmp_path=user_module)
    assert done.returncode == status, done.stdout + done.stderr
    assert ("FAIL" in done.stdout) == (status == 1)
    if status == 1:
        assert "worst at" in done.stdout and "0 passed" in done.stdout


def test_a_layer_that_cannot_be_loaded_is_a_usage_error(user_module):
    done = run_script("--layer", "my_layers:Nothing", "--input-shape", "2,3", tmp_path=user_module)
    assert done.returncode == 2 and "has no attribute 'Nothing'" in done.stderr


def test_a_failing_builtin_case_makes_main_return_1(monkeypatch, capsys):
    """In-process (no need to break a real layer): one case with a wrong backward among right ones."""
    from minidl.layers import ReLU

    class WrongReLU(ReLU):
        def backward_inputs(self, grad_out):
            return grad_out.copy()

    cases = [layer_case("ReLU right", lambda rng: ReLU(), lambda rng: 1 + rng.random((2, 3))),
             layer_case("ReLU wrong", lambda rng: WrongReLU(), normal(4, 5))]
    monkeypatch.setattr(gradcheck_cases, "CASES", cases)
    assert all(isinstance(case, Case) for case in cases)
    assert check_grads.main(["--select", "right"]) == 0
    assert check_grads.main([]) == 1
    assert "1 failed" in capsys.readouterr().out
