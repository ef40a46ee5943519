"""The fast float32 path: minidl's own matrix product, image-by-image convolution, 2x2 max pool, ReLU.

Nothing here is needed to understand minidl; it makes the float32 training step
faster on x86-64 CPUs with AVX2+FMA or AVX-512 and computes the same numbers as the plain path
(see ``README.md`` beside this file). The one dispatch:

    available(dtype)             True if the functions below run for this dtype
    matmul(a, b, out=None)       a (M, K) @ b (K, N), gemm.c
    conv_forward(x, w, b, ...)   Conv's forward, image by image (winograd.c: 5x5 kernels)
    conv_backward(x, w, g, ...)  Conv's gradients, image by image (sparse.c for a sparse dL/dy)
    maxpool2x2_forward(x)        MaxPool's 2x2 stride-2 window, pool.c
    maxpool2x2_backward(g, ...)  its input gradient
    relu_forward(x)              ReLU's output and mask, one pass
    relu_backward(g, mask)       its input gradient, one pass

They run only for float32, with the compiled backend, on a CPU with AVX2+FMA
or AVX-512, and unless the environment variable ``MINIDL_FAST=0`` (read at
import) or ``minidl.ops.fast.ENABLED = False`` (at run time) asks for the plain
path. gemm.c uses the best instruction set the CPU has (``ISA``, from
``isas()``); ``MINIDL_FAST_ISA=avx2`` (read at import) or ``use_isa("avx2")``
picks a lower one, e.g. to see how a laptop without AVX-512 fares.
Symbols as in ``minidl/ops/reference.py``; K = C*KH*KW, P = OH*OW.
"""
import os
import threading

import numpy as np

from ..reference import output_size

_setting = os.environ.get("MINIDL_FAST", "1").strip().lower()
if _setting not in ("0", "1", ""):
    raise ValueError(f"MINIDL_FAST={_setting!r}: expected 0 (the plain path) or 1 (the default)")

#: the user's switch: False forces the plain path everywhere (MINIDL_FAST=0 sets it at import)
ENABLED = _setting != "0"

try:
    from . import _fast
    IMPORT_ERROR = None
except ImportError as exc:       # minidl.ops warns once that the compiled kernels are missing
    _fast, IMPORT_ERROR = None, exc

# gemm.c's instruction sets, best first: name -> (gemm.h's MINIDL_ISA_* code, label)
_ISAS = {"avx512": (2, "AVX-512"), "avx2": (1, "AVX2+FMA")}


def isas():
    """The instruction sets gemm.c can use on this CPU, best first: ["avx512", "avx2"], ["avx2"] or []."""
    mask = _fast.cpu_isas() if _fast is not None else 0
    return [name for name, (code, _) in _ISAS.items() if mask >> code & 1]


#: does this CPU run gemm.c's kernels (AVX2+FMA or AVX-512; gemm.c's own check)
CPU_SUPPORTED = bool(isas())

#: the instruction set gemm.c uses ("avx512", "avx2"; None if none); change it with use_isa
ISA = None


def use_isa(name):
    """Make gemm.c use ``name``: "avx512", "avx2", or "auto" (or None): the best of ``isas()``.

    Returns the previous ``ISA``, so ``use_isa(use_isa("avx2"))`` restores it. Raises
    ValueError for other names and for an instruction set this CPU does not run.
    Call it between products, not while another thread runs one.
    """
    global ISA
    wanted = "auto" if name is None else str(name).strip().lower() or "auto"
    if wanted not in ("auto", *_ISAS):
        raise ValueError(f"instruction set {name!r}: expected 'auto', 'avx512' or 'avx2'")
    have = isas()
    if wanted == "auto":
        if not have:
            return ISA
        wanted = have[0]
    elif wanted not in have:
        why = "the compiled module is not built" if _fast is None else f"this CPU runs {have or 'neither'}"
        raise ValueError(f"instruction set {name!r}: {why}")
    previous, ISA = ISA, wanted
    _fast.use_isa(_ISAS[wanted][0])
    return previous


# MINIDL_FAST_ISA: a name use_isa takes, checked against the CPU when the module is built
_isa_setting = os.environ.get("MINIDL_FAST_ISA", "auto")
if _isa_setting.strip().lower() not in ("", "auto", *_ISAS):
    raise ValueError(f"MINIDL_FAST_ISA={_isa_setting!r}: expected 'avx512', 'avx2' or 'auto' (the default)")
if _fast is not None:
    try:
        use_isa(_isa_setting)
    except ValueError as exc:
        raise ValueError(f"MINIDL_FAST_ISA={_isa_setting!r}: {exc}") from None

# False while minidl.ops runs its NumPy backend (set by ops.use_backend): no compiled code then
_backend_allows = True


def available(dtype):
    """True if the functions of this module (``matmul``, the convolution, the pool, ReLU) run
    for arrays of ``dtype``."""
    return ENABLED and _backend_allows and CPU_SUPPORTED and np.dtype(dtype) == np.float32


def status():
    """A line saying whether the fast path runs, and if not, why."""
    if IMPORT_ERROR is not None:
        return f"off (not built: {IMPORT_ERROR})"
    if not CPU_SUPPORTED:
        return "off (this CPU has neither AVX2+FMA nor AVX-512)"
    if not _backend_allows:
        return "off (the NumPy backend is selected)"
    if not ENABLED:
        return "off (MINIDL_FAST=0 or fast.ENABLED = False)"
    return f"on for float32 (gemm.c, {_ISAS[ISA][1]})"


def _require(dtype, who):
    if not available(dtype):
        raise RuntimeError(f"minidl.ops.fast.{who}: the fast path does not run for {np.dtype(dtype).name} "
                           f"here ({status()}); check fast.available(dtype) first")


# ------------------------------------------------------------- matrix product
_INT_MAX = 2**31 - 1


def matmul(a, b, out=None):
    """a (M, K) @ b (K, N) -> (M, N), the numbers of ``np.matmul(a, b, out=out)`` to rounding.

    float32 2-d operands run gemm.c (Goto/BLIS blocking, AVX-512 or AVX2, OpenMP); transposed
    and strided views are read in place, never copied. Everything gemm.c does not
    take (other dtypes, K = 0, huge sizes, an ``out`` that overlaps an input or is not
    C-contiguous, the fast path switched off) goes to ``np.matmul``, which also
    raises numpy's errors for mismatched shapes. Oracle: ``np.matmul`` in float64.
    """
    if (not available(a.dtype) or b.dtype != np.float32 or a.ndim != 2 or b.ndim != 2
            or a.shape[1] != b.shape[0] or a.shape[1] == 0 or max(a.shape + b.shape) > _INT_MAX
            or a.strides[0] % 4 or a.strides[1] % 4 or b.strides[0] % 4 or b.strides[1] % 4):
        return np.matmul(a, b, out=out)
    m, n = a.shape[0], b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=np.float32)
    elif (out.shape != (m, n) or out.dtype != np.float32 or not out.flags.c_contiguous
          or not out.flags.writeable or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return np.matmul(a, b, out=out)
    if m and n:
        if m <= 64 and n >= 4 * m and b.strides[0] == 4:
            # a few rows times a transposed weight matrix (FC's x @ W^T): as (W @ x^T)^T the
            # weights are read in place, row by row, instead of being packed on every call
            out_t = np.empty((n, m), dtype=np.float32)
            _fast.sgemm_into(b.T, a.T, out_t)
            out[...] = out_t.T
        else:
            _fast.sgemm_into(a, b, out)
    return out


# ------------------------------------------------- convolution, image by image
def _geometry(x_shape, w_shape, stride, padding, dilation):
    """(kh, kw, sh, sw, ph, pw, dh, dw, oh, ow), F, K, P for the kernels' argument lists."""
    (f, c, kh, kw), (sh, sw), (ph, pw), (dh, dw) = w_shape, stride, padding, dilation
    oh, ow = output_size(x_shape[2], kh, sh, ph, dh), output_size(x_shape[3], kw, sw, pw, dw)
    return (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow), f, c * kh * kw, oh * ow


_scratch = threading.local()    # per Python thread: the arrays _kept keeps between calls


def _kept(kind, key, make):
    """The arrays ``make()`` built for this kind and key, kept between calls per Python thread
    (the last 8 keys of each kind, the least recently used dropped first), so that a training
    step allocates none of them."""
    cache = getattr(_scratch, kind, None)
    if cache is None:
        cache = {}
        setattr(_scratch, kind, cache)
    found = cache.pop(key, None)
    if found is None:
        found = make()
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))        # the least recently used
    cache[key] = found
    return found


def _column_blocks(k, p):
    """(threads, (1+K)*P + slack) float32: one block per kernel thread, each a row of P ones
    then room for the (K, P) columns. Kept between calls (``_kept``)."""
    def make():
        work = np.empty((_fast.max_threads(), (1 + k) * p + _fast.slack()), dtype=np.float32)
        work[:, :p] = 1.0
        return work
    return _kept("blocks", (_fast.max_threads(), k, p), make)


def conv_forward(x, weights, bias, stride, padding, dilation):
    """x (N, C, H, W), weights (F, C, KH, KW), bias (F,) or None -> y (N, F, OH, OW), float32.

    The numbers of Conv's plain path, ``weights.reshape(F, K) @ im2col(x) + bias``,
    computed one image at a time: each thread fills one image's (K, P) column
    block (it stays in cache), multiplies it and writes the (F, P) result straight
    into the NCHW output; the batch's column matrix is never built. The bias rides
    in the product, ``[b | Wm] @ [1; X]``. Where direct.c takes the layer
    (``_direct``: stride 1, rows of at most 64 pixels that fill their vectors, small
    kernels, AVX-512) it computes the same sums straight from the padded image instead, with no
    im2col: with one input channel (conv1 on grey images) the product has too few rows
    to pay, and with several, im2col's copies cost two fifths of the product's time.
    A 5x5 kernel with several input channels goes to winograd.c before both (``_winograd``):
    Winograd's F(4x4, 5x5), 64 multiplications per 4x4 tile and channel instead of 400, to
    a few millionths of the output's largest entry.
    The caller (``Conv.forward``) has checked the shapes.
    """
    _require(x.dtype, "conv_forward")
    geometry, f, k, p = _geometry(x.shape, weights.shape, stride, padding, dilation)
    x = np.ascontiguousarray(x)
    y = np.empty((x.shape[0], f, geometry[-2], geometry[-1]), dtype=np.float32)
    if _winograd(x.shape, geometry) and _winograd_forward(x, weights, bias, y, geometry):
        return y                                 # winograd.c: 5x5 kernels, several channels
    if _direct("forward", x.shape, geometry):   # direct.c: no im2col
        b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        _fast.direct_forward_f32(x, np.ascontiguousarray(weights), b, y, _direct_work(x.shape[1], geometry),
                                 geometry[4], geometry[5])
        return y
    wb = np.empty((f, 1 + k), dtype=np.float32)                     # [b | Wm]
    wb[:, 0] = 0.0 if bias is None else bias
    wb[:, 1:] = weights.reshape(f, k)
    _fast.conv_forward_f32(x, wb, y.reshape(x.shape[0], f, p), _column_blocks(k, p), *geometry)
    return y


def conv_backward(x, weights, grad_out, stride, padding, dilation, need_input_grad=True):
    """(dL/dx or None, dL/dweights, dL/dbias) of ``conv_forward``, float32.

    Per image n, with X = im2col(x[n]) (K, P) and G = dL/dy[n] as (F, P):

        dL/dW += G @ X^T      dL/db += G summed over P      dL/dx[n] = col2im(W^T @ G)

    One pass over the images computes all three (the first two as one product,
    [1; X] @ G^T); ``need_input_grad=False`` skips the last (the first layer of a
    network needs no input gradient). For an image whose G is mostly zero (after a
    max pool and a ReLU), sparse.c computes all three from G's non-zero entries
    alone (``SPARSE_BELOW``, ``SPARSE_MIN_CHANNELS``). One input channel: direct.c, as
    in ``conv_forward``.
    """
    _require(x.dtype, "conv_backward")
    geometry, f, k, p = _geometry(x.shape, weights.shape, stride, padding, dilation)
    x = np.ascontiguousarray(x)
    grad_out = np.ascontiguousarray(grad_out, dtype=np.float32)
    threads = _fast.max_threads()
    if _direct("backward", x.shape, geometry):  # one input channel: direct.c, no im2col
        grad_w16 = np.zeros((threads, weights.size, 16), dtype=np.float32)   # 16 partial sums
        grad_b16 = np.zeros((threads, f, 16), dtype=np.float32)
        grad_x = np.empty(x.shape, dtype=np.float32) if need_input_grad else None
        _fast.direct_backward_f32(x, np.ascontiguousarray(weights), grad_out, grad_w16, grad_b16, grad_x,
                                  _direct_work(x.shape[1], geometry), geometry[4], geometry[5])
        return grad_x, grad_w16.sum(axis=(0, 2)).reshape(weights.shape), grad_b16.sum(axis=(0, 2))
    if need_input_grad:      # per thread: W^T G (K, P), then col2im's scratch
        (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow), c = geometry, x.shape[1]
        extra = _fast.col2im_scratch(c, x.shape[2], x.shape[3], kh, kw, sw, ph, pw, dw, ow)
        work2 = np.empty((threads, k * p + extra), dtype=np.float32)
    else:
        work2 = np.empty((1, 1), dtype=np.float32)
    grad_x = np.empty(x.shape, dtype=np.float32) if need_input_grad else x[:1, :1, :1, :1].copy()
    grad_bwt = np.zeros((threads, 1 + k, f), dtype=np.float32)   # [db; dWm^T], one per thread
    sparse = _sparse_args(x.shape[1], weights, geometry, threads)
    _fast.conv_backward_f32(x, weights.reshape(f, k), grad_out.reshape(x.shape[0], f, p),
                            grad_x, grad_bwt, _column_blocks(k, p), work2, need_input_grad, *geometry,
                            *sparse)
    total = grad_bwt.sum(axis=0)
    # dL/dW in C order, as the optimiser's one-pass update (ops.axpy) wants it
    grad_w, grad_b = np.ascontiguousarray(total[1:].T).reshape(weights.shape), total[0]
    if sparse[0] >= 0:          # add what the sparse images gathered, back from channels last
        (_, _, grad_wq, grad_bq, _), (c, kh, kw) = sparse, weights.shape[1:]
        blocks = grad_wq.sum(axis=0).reshape(f, -1, kh, kw, 8)
        grad_w += blocks.transpose(0, 1, 4, 2, 3).reshape(f, -1, kh, kw)[:, :c]
        grad_b += grad_bq.sum(axis=0)
    return (grad_x if need_input_grad else None), grad_w, grad_b


#: conv_forward takes winograd.c for 5x5 kernels with at least this many input channels
#: (with 1-3, a first layer on grey or colour images, it was slower than direct.c and the
#: product, with 4 as fast as direct.c: benchmarks/README.md); 0 turns it off
WINOGRAD_MIN_CHANNELS = 4


def _winograd(x_shape, geometry):
    """True if winograd.c takes this convolution's forward (``winograd_ok``): a 5x5 kernel,
    stride 1, dilation 1, AVX2+FMA, and at least ``WINOGRAD_MIN_CHANNELS`` input channels."""
    kh, kw, sh, sw, _, _, dh, dw, _, _ = geometry
    return (0 < WINOGRAD_MIN_CHANNELS <= x_shape[1]
            and bool(_fast.winograd_ok(kh, kw, sh, sw, dh, dw)))


def _winograd_forward(x, weights, bias, y, geometry):
    """y = conv(x, weights) + bias by winograd.c; False (y untouched) if the transformed
    weights are not all finite, for the caller to take another path."""
    (f, c), ph, pw, ow = weights.shape[:2], geometry[4], geometry[5], geometry[-1]
    wt, v, work = _winograd_scratch(c, f, ow)
    wt[..., :f] = weights.transpose(1, 2, 3, 0)        # the filters last, zeros past F
    b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
    return _fast.winograd_forward_f32(x, np.ascontiguousarray(weights), wt, b, v, y, work, ph, pw)


def _winograd_scratch(c, f, ow):
    """winograd.c's arrays for C channels, F filters, OW columns: the weights with the filters
    last (C, 5, 5, Fp), the transformed filters (64, C, Fp), a scratch row per thread.
    Kept between calls (``_kept``)."""
    fp, threads = -(-f // 8) * 8, _fast.max_threads()
    return _kept("winograd", (threads, c, f, ow), lambda: (
        np.zeros((c, 5, 5, fp), dtype=np.float32), np.empty((64, c, fp), dtype=np.float32),
        np.empty((threads, _fast.winograd_scratch(c, ow)), dtype=np.float32)))


def _direct(which, x_shape, geometry):
    """True if direct.c takes this convolution's "forward" or "backward" (``direct_ok``):
    stride 1, dilation 1, rows of at most 64 pixels, AVX-512 in use; the forward for one
    input channel, or for output rows that fill 7/8 of their vectors and C*KH*KW <= 800;
    the backward for one input channel and kernels at most 7 rows high."""
    (kh, kw, sh, sw, _, _, dh, dw, _, ow), (c, w) = geometry, (x_shape[1], x_shape[3])
    return bool(_fast.direct_ok(which == "forward", c, kh, kw, sh, sw, dh, dw, w, ow))


def _direct_work(channels, geometry):
    """direct.c's scratch, one row per thread: the zero-padded image."""
    kh, kw, *_, oh, ow = geometry
    return np.empty((_fast.max_threads(), _fast.direct_scratch(channels, kh, kw, oh, ow)), dtype=np.float32)


#: conv_backward takes sparse.c for an image whose dL/dy has at most this fraction of
#: non-zero entries (after a max pool and a ReLU, 10-20%); 0 turns it off
SPARSE_BELOW = 0.3
#: ... if the convolution has at least this many input channels: sparse.c works on 8
#: channels at a time, and with fewer (a first layer on grey images) it is slower than
#: the dense product
SPARSE_MIN_CHANNELS = 8


def _sparse_args(c, weights, geometry, threads):
    """conv_backward_f32's sparse arguments, or (-1, None, None, None, None) when sparse.c
    does not run (it runs for stride 1 and dilation 1 on x86-64 with AVX2): the count of
    non-zero entries, the weights with channels last in blocks of 8, the gradients' blocks
    and the scratch per thread."""
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = geometry
    if SPARSE_BELOW <= 0 or c < SPARSE_MIN_CHANNELS or not _fast.sparse_ok(sh, sw, dh, dw):
        return (-1, None, None, None, None)
    f, blocks = weights.shape[0], -(-c // 8)
    wq = np.zeros((f, blocks * 8, kh, kw), dtype=np.float32)
    wq[:, :c] = weights
    wq = np.ascontiguousarray(wq.reshape(f, blocks, 8, kh, kw).transpose(0, 1, 3, 4, 2)).reshape(f, -1)
    return (int(SPARSE_BELOW * f * oh * ow), wq, np.zeros((threads,) + wq.shape, dtype=np.float32),
            np.zeros((threads, f), dtype=np.float32),
            np.empty((threads, _fast.sparse_scratch(c, f, kh, kw, oh, ow)), dtype=np.float32))


# ------------------------------------------------- max pool, 2x2 window, stride 2
def _pool_isa():
    """pool.c's code for the instruction set in use: 1 (AVX2) when ``ISA`` is held to AVX2,
    else -1 (pool.c picks, per row length, among what the CPU runs)."""
    return 1 if ISA == "avx2" else -1


def maxpool2x2_forward(x):
    """x (N, C, H, W) float32 -> (y, win), both (N, C, H//2, W//2); pool.c.

        y[n, c, i, j] = max of x[n, c, 2i:2i+2, 2j:2j+2]       (an odd last row or column is left out)

    win (uint8) says which pixel won, 0 1 / 2 3 in row-major order: the plain path's
    argmax is (2i + win // 2) * W + 2j + win % 2. The same numbers as the plain
    ``ops.maxpool_forward(x, 2, 2, 2, 2)`` bit for bit (oracles: it and
    ``ops.naive.maxpool_forward``): the first of equal maxima wins, and a window's
    first NaN. ``MaxPool`` checks the shapes (H, W >= 2).
    """
    _require(x.dtype, "maxpool2x2_forward")
    n, c, h, w = x.shape
    y = np.empty((n, c, h // 2, w // 2), dtype=np.float32)
    win = np.empty(y.shape, dtype=np.uint8)
    if y.size:
        _fast.maxpool2x2_forward_f32(np.ascontiguousarray(x).reshape(n * c, h, w),
                                     y.reshape(n * c, h // 2, w // 2), win.reshape(n * c, h // 2, w // 2),
                                     _pool_isa())
    return y, win


def maxpool2x2_backward(grad_out, win, x_shape):
    """grad_out, win (N, C, H//2, W//2) -> dL/dx of shape x_shape (N, C, H, W), float32.

        dL/dx[n, c, 2i + win // 2, 2j + win % 2] = dL/dy[n, c, i, j],   0 at every other pixel

    Each pixel is written once (no zeroed array first). The numbers of the plain
    ``ops.maxpool_backward`` (and ``ops.naive.maxpool_backward``) bit for bit. It needs
    the compiled code but not the switch: a MaxPool whose forward took the fast path
    finishes its backward there, even if ``ENABLED`` changed in between.
    """
    if _fast is None or grad_out.dtype != np.float32:
        raise RuntimeError(f"minidl.ops.fast.maxpool2x2_backward: needs float32 and the compiled "
                           f"fast path, got {grad_out.dtype} ({status()})")
    n, c, h, w = x_shape
    grad_x = np.empty(x_shape, dtype=np.float32)
    if grad_out.size:
        _fast.maxpool2x2_backward_f32(np.ascontiguousarray(grad_out).reshape(n * c, h // 2, w // 2),
                                      np.ascontiguousarray(win).reshape(n * c, h // 2, w // 2),
                                      grad_x.reshape(n * c, h, w), _pool_isa())
    else:
        grad_x.fill(0)
    return grad_x


# -------------------------------------------------------------------------- ReLU
def relu_forward(x):
    """x float32 (any shape) -> (y, mask): y = np.maximum(x, 0), mask = x > 0 (bool).

    Bit for bit the plain ``ReLU.forward`` (its oracle): NaN passes through and -0.0
    becomes +0.0, as with np.maximum.
    """
    _require(x.dtype, "relu_forward")
    x = np.ascontiguousarray(x)
    y = np.empty(x.shape, dtype=np.float32)
    mask = np.empty(x.shape, dtype=np.bool_)
    _fast.relu_forward_f32(x.reshape(-1), y.reshape(-1), mask.reshape(-1).view(np.uint8))
    return y, mask


def relu_backward(grad_out, mask):
    """grad_out float32, mask bool (same shape) -> grad_out * mask, in one pass (bit for bit)."""
    if _fast is None or grad_out.dtype != np.float32:
        raise RuntimeError(f"minidl.ops.fast.relu_backward: needs float32 and the compiled fast path, "
                           f"got {grad_out.dtype} ({status()})")
    grad_out = np.ascontiguousarray(grad_out)
    grad_x = np.empty(grad_out.shape, dtype=np.float32)
    _fast.relu_backward_f32(grad_out.reshape(-1), np.ascontiguousarray(mask).reshape(-1).view(np.uint8),
                            grad_x.reshape(-1))
    return grad_x
