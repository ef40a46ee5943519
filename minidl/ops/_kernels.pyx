# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled inner loops of minidl.

Each kernel is a typed loop over memoryviews with bounds checks off; the
Python-visible wrappers in ``minidl.ops`` validate arguments and allocate the
outputs. ``minidl/ops/reference.py`` holds the plain NumPy twin of each kernel
(same arguments, same layouts) and documents the symbols and the column layout
(the per-image loops of im2col and col2im are in ``_im2col.pxd``):

    cols[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x_padded[n, c, oh*SH + i*DH, ow*SW + j*DW]

Work is split over images (im2col, col2im) or (image, channel) planes
(pooling) with OpenMP: every thread writes a disjoint part of the output, so
no locks or atomics are needed. A build without OpenMP (setup.py found none)
runs the same loops on one thread: prange is then a plain loop and threadid() 0.
"""
from cython.parallel cimport prange, threadid

# Not `cimport openmp`: that includes <omp.h> even when the compiler has no
# OpenMP. threads.h includes it only under _OPENMP, else gives one-thread answers.
cdef extern from "threads.h":
    int MINIDL_OPENMP
    int omp_get_max_threads() noexcept nogil

from minidl.ops._im2col cimport col2im_image, im2col_image, real


def im2col_into(const real[:, :, :, ::1] x, real[:, ::1] cols,
                int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                int out_h, int out_w):
    """Fill cols (C*KH*KW, N*OH*OW) from x (N, C, H, W); padding reads as 0.

    Image n fills only columns n*OH*OW ... (n+1)*OH*OW - 1, so threads over n never collide.
    """
    cdef Py_ssize_t n_img = x.shape[0], n
    for n in prange(n_img, nogil=True, schedule='static'):
        im2col_image(&x[n, 0, 0, 0], &cols[0, 0], n, x.shape[1], x.shape[2], x.shape[3],
                     cols.shape[1], kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)


def col2im_into(const real[:, ::1] cols, real[:, :, :, ::1] x,
                int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                int out_h, int out_w):
    """Accumulate cols (C*KH*KW, N*OH*OW) into a zeroed x (N, C, H, W).

    Entries that fall on the padding are dropped. Image n only receives
    columns n*OH*OW ... (n+1)*OH*OW - 1, so threads over n never collide.
    """
    cdef Py_ssize_t n_img = x.shape[0], n
    for n in prange(n_img, nogil=True, schedule='static'):
        col2im_image(&cols[0, 0], &x[n, 0, 0, 0], n, x.shape[1], x.shape[2], x.shape[3],
                     cols.shape[1], kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)


def maxpool_forward_into(const real[:, :, ::1] x, real[:, :, ::1] out,
                         long long[:, :, ::1] argmax,
                         int kh, int kw, int sh, int sw, int ph, int pw):
    """Max over windows of the (N*C, H, W) planes of x; -inf padding never wins.

    argmax holds the flat index h*W + w of the winner in its plane; ties go to
    the first maximum in row-major order, and the first NaN wins (NaN propagates).
    """
    cdef Py_ssize_t planes = x.shape[0]
    cdef int height = x.shape[1], width = x.shape[2]
    cdef int out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t p
    cdef bint two_by_two = (kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0)
    for p in prange(planes, nogil=True, schedule='static'):
        if two_by_two:
            _maxpool_plane_2x2(&x[p, 0, 0], &out[p, 0, 0], &argmax[p, 0, 0], height, width, out_h, out_w)
        else:
            _maxpool_plane(&x[p, 0, 0], &out[p, 0, 0], &argmax[p, 0, 0],
                           height, width, out_h, out_w, kh, kw, sh, sw, ph, pw)


cdef inline void _maxpool_plane_2x2(const real* plane, real* out, long long* argmax,
                                    int height, int width, int out_h, int out_w,
                                    ) noexcept nogil:
    """The common 2x2 window with stride 2 and no padding: _maxpool_plane unrolled.

    The pixels a b / c d of a window are compared in row-major order with
    arithmetic selects (no branches, so the compiler can vectorise the loop);
    ties keep the first maximum. A NaN anywhere in the plane sends the whole
    plane through the general loop, which lets the first NaN of a window win:
    the results are those of _maxpool_plane, bit for bit.
    """
    cdef int oh, ow, i0, idx, take
    cdef real best, v
    cdef bint has_nan = False
    cdef const real* r0
    cdef const real* r1
    for oh in range(out_h):
        r0 = plane + 2 * oh * width            # the window's top row ...
        r1 = r0 + width                        # ... and its bottom row
        for ow in range(out_w):
            i0 = 2 * oh * width + 2 * ow       # flat index of the window's top-left pixel
            best = r0[2 * ow]
            idx = i0
            has_nan = has_nan | (best != best)
            v = r0[2 * ow + 1]
            take = v > best
            best = v if take else best
            idx = idx + take * (i0 + 1 - idx)
            has_nan = has_nan | (v != v)
            v = r1[2 * ow]
            take = v > best
            best = v if take else best
            idx = idx + take * (i0 + width - idx)
            has_nan = has_nan | (v != v)
            v = r1[2 * ow + 1]
            take = v > best
            best = v if take else best
            idx = idx + take * (i0 + width + 1 - idx)
            has_nan = has_nan | (v != v)
            out[oh * out_w + ow] = best
            argmax[oh * out_w + ow] = idx
    if has_nan:
        _maxpool_plane(plane, out, argmax, height, width, out_h, out_w, 2, 2, 2, 2, 0, 0)


cdef inline void _maxpool_plane(const real* plane, real* out, long long* argmax,
                                int height, int width, int out_h, int out_w,
                                int kh, int kw, int sh, int sw, int ph, int pw) noexcept nogil:
    """One (H, W) plane; the window is clipped to the image, which is padding at -inf."""
    cdef int oh, ow, hh, ww, h_lo, h_hi, w_lo, w_hi, best_idx, idx
    cdef real best, v
    cdef bint take, has_nan
    for oh in range(out_h):
        h_lo = oh * sh - ph
        h_hi = min(h_lo + kh, height)
        h_lo = max(h_lo, 0)
        for ow in range(out_w):
            w_lo = ow * sw - pw
            w_hi = min(w_lo + kw, width)
            w_lo = max(w_lo, 0)
            best_idx = h_lo * width + w_lo
            best = plane[best_idx]
            has_nan = False
            for hh in range(h_lo, h_hi):
                for ww in range(w_lo, w_hi):
                    idx = hh * width + ww
                    v = plane[idx]
                    # strictly greater keeps the first of equal maxima. Selects,
                    # not branches: on real data the comparison is a coin toss
                    # that a branch predictor keeps losing (4x slower).
                    take = v > best
                    best = v if take else best
                    best_idx = idx if take else best_idx
                    has_nan = has_nan | (v != v)
            if has_nan:  # rare: the first NaN of the window wins, so NaN propagates
                best_idx = _first_nan(plane, width, h_lo, h_hi, w_lo, w_hi)
                best = plane[best_idx]
            out[oh * out_w + ow] = best
            argmax[oh * out_w + ow] = best_idx


cdef inline int _first_nan(const real* plane, int width, int h_lo, int h_hi,
                           int w_lo, int w_hi) noexcept nogil:
    cdef int hh, ww
    for hh in range(h_lo, h_hi):
        for ww in range(w_lo, w_hi):
            if plane[hh * width + ww] != plane[hh * width + ww]:
                return hh * width + ww
    return h_lo * width + w_lo


def maxpool_backward_into(const real[:, :, ::1] grad_out, const long long[:, :, ::1] argmax,
                          real[:, ::1] grad_x):
    """grad_x (N*C, H*W), zeroed, receives each grad_out entry at its argmax."""
    cdef Py_ssize_t planes = grad_out.shape[0], out_h = grad_out.shape[1], out_w = grad_out.shape[2]
    cdef Py_ssize_t p, oh, ow
    for p in prange(planes, nogil=True, schedule='static'):
        for oh in range(out_h):
            for ow in range(out_w):
                grad_x[p, argmax[p, oh, ow]] += grad_out[p, oh, ow]


cdef inline int _update_threads(Py_ssize_t n) noexcept nogil:
    """Threads for an elementwise update of n entries: waking a second thread costs more
    than it saves below ~64k entries."""
    return omp_get_max_threads() if n >= 65536 else 1


def axpy_into(double alpha, const real[::1] x, real[::1] y):
    """y += alpha * x, in place, over flat arrays of one dtype (split over threads)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef real a = <real>alpha
    for i in prange(n, nogil=True, schedule='static', num_threads=_update_threads(n)):
        y[i] += a * x[i]


def momentum_step_into(double momentum, double scale, double alpha, real[::1] velocity,
                       const real[::1] grad, real[::1] param):
    """velocity = momentum * velocity + scale * grad, then param += alpha * velocity, in
    one pass over flat arrays of one dtype (split over threads). Each product and sum is
    rounded to ``real`` on its own, as the three NumPy statements of the reference."""
    cdef Py_ssize_t i, n = velocity.shape[0]
    cdef real m = <real>momentum, s = <real>scale, a = <real>alpha, v, t
    for i in prange(n, nogil=True, schedule='static', num_threads=_update_threads(n)):
        v = m * velocity[i]
        t = s * grad[i]
        v = v + t
        velocity[i] = v
        param[i] += a * v


# ---------------------------------------------------------------------- threads
def max_threads():
    """Threads an OpenMP loop uses (omp_get_max_threads); 1 in a build without OpenMP."""
    return omp_get_max_threads()


def openmp_enabled():
    """True if this extension was compiled with OpenMP (setup.py found it), else False."""
    return MINIDL_OPENMP == 1
