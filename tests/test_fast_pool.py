"""The fast 2x2 max pool (minidl.ops.fast.maxpool2x2_*, pool.c) against its plain twins.

Bit for bit: outputs, winners and gradients equal those of the plain kernels
(``ops.maxpool_forward`` / ``maxpool_backward``) and of the loops of
``ops.naive``, on awkward shapes (odd H and W, 1x1 outputs, rows shorter and
longer than a vector step), with ties, signed zeros, -inf, NaN and non-contiguous
input; every code pool.c has for this CPU (portable loops, AVX2, AVX-512) is run.
Then through the layer: MaxPool's fast branch against its plain path with the
fast path switched off.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from minidl import ops
from minidl.layers import MaxPool
from minidl.ops import fast, naive

requires_fast = pytest.mark.skipif(
    not fast.available(np.float32), reason=f"the fast path does not run here: {fast.status()}")

# (N, C, H, W): odd H and W (the last row / column belongs to no window), 1x1 outputs,
# rows of 1..40 outputs (shorter than, equal to and longer than 8 and 16), the lab's shapes
SHAPES = [
    (2, 3, 7, 9), (1, 1, 2, 2), (3, 2, 3, 3), (2, 5, 2, 3), (4, 1, 5, 2),
    (2, 3, 14, 14), (3, 2, 13, 15), (2, 2, 6, 16), (1, 3, 4, 17), (2, 1, 9, 32),
    (1, 2, 3, 33), (2, 2, 5, 81), (1, 1, 40, 2), (2, 3, 6, 19), (1, 2, 4, 35),
    (5, 16, 28, 28), (3, 32, 14, 14),
]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def _isas():
    """Every pool.c code this CPU runs: 0 portable loops, 1 AVX2, 2 AVX-512."""
    return list(range(fast._fast.maxpool2x2_isa() + 1)) if fast._fast is not None else []


def _winner_index(win, width):
    """The plain path's argmax h*W + w from the fast path's place 0..3 in each window."""
    oh, ow = win.shape[-2:]
    i, j = np.arange(oh)[:, None], np.arange(ow)[None, :]
    return (2 * i + win // 2) * width + 2 * j + win % 2


def _data(rng, shape, kind):
    """float32 test input: "normal", "ties" (few distinct values, signed zeros), "inf", "nan"."""
    x = rng.standard_normal(shape).astype(np.float32)
    if kind == "ties":              # many equal maxima in a window, and -0.0 beside +0.0
        x = np.round(x).astype(np.float32)
    elif kind == "inf":             # windows of -inf only, and +inf beside finite values
        x[rng.random(shape) < 0.5] = -np.inf
        x[rng.random(shape) < 0.05] = np.inf
    elif kind == "nan":             # a few NaN, with different payloads, some of them 2 in a window
        spots = rng.random(shape) < 0.08
        x[spots] = np.float32(np.nan)
        x.view(np.uint32)[spots & (rng.random(shape) < 0.5)] |= 0x00ABC
        x.view(np.uint32)[spots & (rng.random(shape) < 0.3)] |= 0x80000000
    return x


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def _run_isa(x, grad_out, isa):
    """(y, win, dL/dx) of pool.c's code `isa`; the outputs start as garbage."""
    n, c, h, w = x.shape
    y = np.full((n * c, h // 2, w // 2), 7.5, dtype=np.float32)
    win = np.full(y.shape, 9, dtype=np.uint8)
    grad_x = np.full((n * c, h, w), np.nan, dtype=np.float32)     # every pixel must be written
    fast._fast.maxpool2x2_forward_f32(np.ascontiguousarray(x).reshape(n * c, h, w), y, win, isa)
    fast._fast.maxpool2x2_backward_f32(grad_out.reshape(y.shape), win, grad_x, isa)
    return y.reshape(grad_out.shape), win.reshape(grad_out.shape), grad_x.reshape(x.shape)


@requires_fast
@pytest.mark.parametrize("kind", ["normal", "ties", "inf", "nan"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_every_isa_matches_the_plain_kernels_bit_for_bit(rng, shape, kind):
    x = _data(rng, shape, kind)
    y_plain, argmax = ops.maxpool_forward(x, 2, 2, 2, 2)
    grad_out = _data(rng, y_plain.shape, "ties" if kind == "ties" else "normal")   # -0.0 too
    grad_plain = ops.maxpool_backward(grad_out, argmax, shape)
    for isa in _isas():
        y, win, grad_x = _run_isa(x, grad_out, isa)
        assert win.max() <= 3, f"isa {isa}"
        np.testing.assert_array_equal(_winner_index(win, shape[3]), argmax, err_msg=f"isa {isa}")
        np.testing.assert_array_equal(_bits(y), _bits(y_plain), err_msg=f"isa {isa}")
        np.testing.assert_array_equal(_bits(grad_x), _bits(grad_plain), err_msg=f"isa {isa}")


@requires_fast
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 2, 4, 17), (2, 1, 5, 5), (1, 1, 2, 2)],
                         ids=lambda s: "x".join(map(str, s)))
def test_the_public_functions_match_the_naive_loops(rng, shape):
    x = _data(rng, shape, "ties")
    y_naive, argmax = naive.maxpool_forward(x, 2, 2, 2, 2)
    y, win = fast.maxpool2x2_forward(x)
    assert y.dtype == np.float32 and win.dtype == np.uint8 and y.shape == win.shape == y_naive.shape
    np.testing.assert_array_equal(y, y_naive)
    np.testing.assert_array_equal(_winner_index(win, shape[3]), argmax)
    grad_out = rng.standard_normal(y.shape).astype(np.float32)
    grad_x = fast.maxpool2x2_backward(grad_out, win, shape)
    np.testing.assert_array_equal(grad_x, naive.maxpool_backward(x, grad_out, 2, 2, 2, 2))


@requires_fast
def test_nan_the_first_nan_of_a_window_wins(rng):
    nan_a = np.frombuffer(np.uint32(0x7FC00001).tobytes(), np.float32)[0]
    nan_b = np.frombuffer(np.uint32(0xFFC00002).tobytes(), np.float32)[0]
    # one plane with NaN windows among ordinary ones (the vector code hands it to the loops)
    x = np.zeros((1, 1, 2, 20), np.float32)
    x[0, 0, :, :4] = [[1, nan_a, 5, 2], [nan_b, 9, nan_b, nan_a]]
    for isa in _isas():
        y, win, _ = _run_isa(x, np.ones((1, 1, 1, 10), np.float32), isa)
        assert win[0, 0, 0, :2].tolist() == [1, 2], f"isa {isa}"
        assert _bits(y)[0, 0, 0, :2].tolist() == [0x7FC00001, 0xFFC00002], f"isa {isa}"


@requires_fast
def test_non_contiguous_and_empty_inputs(rng):
    big = rng.standard_normal((3, 8, 11, 13)).astype(np.float32)
    x = big[:, 1::2, 1:, ::-1]                    # every axis strided or reversed
    y_plain, argmax = ops.maxpool_forward(x, 2, 2, 2, 2)
    y, win = fast.maxpool2x2_forward(x)
    np.testing.assert_array_equal(_bits(y), _bits(y_plain))
    np.testing.assert_array_equal(_winner_index(win, x.shape[3]), argmax)
    grad_out = rng.standard_normal(y.shape).astype(np.float32)[:, ::-1]    # non-contiguous too
    np.testing.assert_array_equal(fast.maxpool2x2_backward(grad_out, win, x.shape),
                                  ops.maxpool_backward(grad_out, argmax, x.shape))
    y, win = fast.maxpool2x2_forward(np.zeros((0, 3, 4, 4), np.float32))
    assert y.shape == win.shape == (0, 3, 2, 2)
    assert fast.maxpool2x2_backward(y, win, (0, 3, 4, 4)).shape == (0, 3, 4, 4)


def test_the_plain_2x2_kernel_returns_the_winners_value(rng):
    """y == x[argmax] bit for bit on the plain path, also where +0.0 and -0.0 tie."""
    x = np.round(rng.standard_normal((4, 3, 6, 8))).astype(np.float32)
    y, argmax = ops.maxpool_forward(x, 2, 2, 2, 2)
    winners = np.take_along_axis(x.reshape(4, 3, -1), argmax.reshape(4, 3, -1), axis=2)
    np.testing.assert_array_equal(_bits(y).reshape(4, 3, -1), _bits(winners))


# ------------------------------------------------------------- through the layer
def _layer_run(x, grad_out, enabled, monkeypatch):
    monkeypatch.setattr(fast, "ENABLED", enabled)
    pool = MaxPool(2)
    y = pool.forward(x)
    path = pool.path
    monkeypatch.setattr(fast, "ENABLED", not enabled)     # backward follows the forward's path
    return path, y, pool.backward_inputs(grad_out)


@requires_fast
@pytest.mark.parametrize("shape", [(50, 16, 28, 28), (50, 32, 14, 14), (3, 5, 9, 7)],
                         ids=lambda s: "x".join(map(str, s)))
def test_the_layer_fast_path_equals_its_plain_path(rng, shape, monkeypatch):
    x = _data(rng, shape, "ties")
    grad_out = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(np.float32)
    path_f, y_f, gx_f = _layer_run(x, grad_out, True, monkeypatch)
    path_p, y_p, gx_p = _layer_run(x, grad_out, False, monkeypatch)
    assert (path_f, path_p) == ("fast", "plain")
    np.testing.assert_array_equal(_bits(y_f), _bits(y_p))
    np.testing.assert_array_equal(_bits(gx_f), _bits(gx_p))


@requires_fast
def test_the_layer_takes_the_fast_path_only_for_float32_2x2_windows(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    for pool, dtype, path in [(MaxPool(2), np.float32, "fast"), (MaxPool(2, stride=2), np.float32, "fast"),
                              (MaxPool(2), np.float64, "plain"), (MaxPool(3, stride=2), np.float32, "plain"),
                              (MaxPool(2, stride=1), np.float32, "plain"),
                              (MaxPool(2, padding=1), np.float32, "plain"),
                              (MaxPool((2, 3), stride=2), np.float32, "plain")]:
        pool.forward(x.astype(dtype))
        assert pool.path == path, repr(pool)


@requires_fast
def test_the_layer_checks_grad_out_on_the_fast_path(rng):
    pool = MaxPool(2, name="pool1")
    pool.forward(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    with pytest.raises(ValueError, match=r"pool1.*\(2, 3, 4, 4\)"):
        pool.backward_inputs(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="float32"):
        pool.backward_inputs(np.zeros((2, 3, 4, 4), np.float64))


# -------------------------------------------- no read or write past the arrays
GUARD_SCRIPT = r"""
import ctypes, mmap, sys
import numpy as np
from minidl.ops import fast

libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PAGE = mmap.PAGESIZE
keep = []

def at_page_end(count, dtype):
    # an array whose last byte is followed by a page that may not be read or written
    nbytes = count * np.dtype(dtype).itemsize
    size = (nbytes + PAGE - 1) // PAGE * PAGE
    m = mmap.mmap(-1, size + PAGE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(m))
    assert libc.mprotect(address + size, PAGE, 0) == 0, ctypes.get_errno()   # PROT_NONE
    keep.append(m)
    return np.frombuffer(m, dtype, count, offset=size - nbytes)

rng = np.random.default_rng(0)
for p, h, w in [(3, 14, 14), (2, 5, 7), (4, 14, 15), (1, 28, 28), (2, 2, 2), (3, 6, 33), (1, 3, 18)]:
    oh, ow = h // 2, w // 2
    x = at_page_end(p * h * w, np.float32).reshape(p, h, w)
    x[...] = rng.standard_normal(x.shape)
    g = at_page_end(p * oh * ow, np.float32).reshape(p, oh, ow)
    g[...] = rng.standard_normal(g.shape)
    for isa in range(fast._fast.maxpool2x2_isa() + 1):
        y = at_page_end(p * oh * ow, np.float32).reshape(p, oh, ow)
        win = at_page_end(p * oh * ow, np.uint8).reshape(p, oh, ow)
        grad_x = at_page_end(p * h * w, np.float32).reshape(p, h, w)
        fast._fast.maxpool2x2_forward_f32(x, y, win, isa)
        fast._fast.maxpool2x2_backward_f32(g, win, grad_x, isa)
print("ok")
"""


@requires_fast
@pytest.mark.skipif(sys.platform == "win32", reason="uses mprotect from the C library")
def test_no_code_reads_or_writes_past_the_arrays():
    """Each array ends where a page that may not be touched begins: a stray access crashes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", GUARD_SCRIPT], capture_output=True, text=True,
                          cwd=root, env=dict(os.environ, PYTHONPATH=root))
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-2000:])


@requires_fast
def test_the_pool_follows_the_instruction_set_in_use(rng, monkeypatch):
    """Held to AVX2 (MINIDL_FAST_ISA=avx2 or use_isa), the pool runs pool.c's AVX2 code too."""
    seen = []
    forward = fast._fast.maxpool2x2_forward_f32
    monkeypatch.setattr(fast._fast, "maxpool2x2_forward_f32", lambda *a: seen.append(a[-1]) or forward(*a))
    x = rng.standard_normal((2, 3, 6, 40)).astype(np.float32)
    previous = fast.use_isa("avx2")
    try:
        y_avx2 = fast.maxpool2x2_forward(x)
    finally:
        fast.use_isa(previous)
    y_best = fast.maxpool2x2_forward(x)
    assert seen == [1, -1]
    for a, b in zip(y_avx2, y_best):
        np.testing.assert_array_equal(a, b)
