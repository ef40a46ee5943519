# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled inner loops of minidl.

Each kernel is a typed loop over memoryviews with bounds checks off; the
Python-visible wrappers in ``minidl.ops`` validate arguments and allocate the
outputs. ``minidl/ops/reference.py`` holds the plain NumPy twin of each kernel
(same arguments, same layouts) and documents the symbols and the column layout:

    cols[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x_padded[n, c, oh*SH + i*DH, ow*SW + j*DW]

Work is split over images (im2col, col2im) or (image, channel) planes
(pooling) with OpenMP: every thread writes a disjoint part of the output, so
no locks or atomics are needed.
"""
from cython.parallel cimport prange

ctypedef fused real:
    float
    double


def im2col_into(const real[:, :, :, ::1] x, real[:, ::1] cols,
                int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                int oh, int ow):
    """Fill cols (C*KH*KW, N*OH*OW) from x (N, C, H, W); padding reads as 0."""
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t n, c, i, j, y, z, row, col0, src_h, src_w
    for n in prange(n_img, nogil=True, schedule='static'):
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for y in range(oh):
                        src_h = y * sh - ph + i * dh
                        col0 = (n * oh + y) * ow
                        if src_h < 0 or src_h >= height:
                            for z in range(ow):
                                cols[row, col0 + z] = 0
                            continue
                        for z in range(ow):
                            src_w = z * sw - pw + j * dw
                            if 0 <= src_w < width:
                                cols[row, col0 + z] = x[n, c, src_h, src_w]
                            else:
                                cols[row, col0 + z] = 0


def col2im_into(const real[:, ::1] cols, real[:, :, :, ::1] x,
                int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                int oh, int ow):
    """Accumulate cols (C*KH*KW, N*OH*OW) into a zeroed x (N, C, H, W).

    Entries that fall on the padding are dropped. Image n only receives
    columns n*OH*OW ... (n+1)*OH*OW - 1, so threads over n never collide.
    """
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t n, c, i, j, y, z, row, col0, src_h, src_w
    for n in prange(n_img, nogil=True, schedule='static'):
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for y in range(oh):
                        src_h = y * sh - ph + i * dh
                        if src_h < 0 or src_h >= height:
                            continue
                        col0 = (n * oh + y) * ow
                        for z in range(ow):
                            src_w = z * sw - pw + j * dw
                            if 0 <= src_w < width:
                                x[n, c, src_h, src_w] += cols[row, col0 + z]


def maxpool_forward_into(const real[:, :, ::1] x, real[:, :, ::1] out,
                         long long[:, :, ::1] argmax,
                         int kh, int kw, int sh, int sw, int ph, int pw):
    """Max over windows of the (N*C, H, W) planes of x; -inf padding never wins.

    argmax holds the flat index h*W + w of the winner in its plane; ties go to
    the first maximum in row-major order, and a NaN wins (it propagates).
    """
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t p, y, z, hh, ww, h_lo, h_hi, w_lo, w_hi, best_idx
    cdef real best, v
    cdef bint found_nan
    for p in prange(planes, nogil=True, schedule='static'):
        for y in range(oh):
            h_lo = y * sh - ph
            h_hi = h_lo + kh
            if h_lo < 0:
                h_lo = 0
            if h_hi > height:
                h_hi = height
            for z in range(ow):
                w_lo = z * sw - pw
                w_hi = w_lo + kw
                if w_lo < 0:
                    w_lo = 0
                if w_hi > width:
                    w_hi = width
                best_idx = h_lo * width + w_lo
                best = x[p, h_lo, w_lo]
                found_nan = best != best
                hh = h_lo
                while hh < h_hi and not found_nan:
                    ww = w_lo
                    while ww < w_hi:
                        v = x[p, hh, ww]
                        if v != v:
                            best = v
                            best_idx = hh * width + ww
                            found_nan = True
                            break
                        if v > best:
                            best = v
                            best_idx = hh * width + ww
                        ww = ww + 1
                    hh = hh + 1
                out[p, y, z] = best
                argmax[p, y, z] = best_idx


def maxpool_backward_into(const real[:, :, ::1] grad_out, const long long[:, :, ::1] argmax,
                          real[:, ::1] grad_x):
    """grad_x (N*C, H*W), zeroed, receives each grad_out entry at its argmax."""
    cdef Py_ssize_t planes = grad_out.shape[0], oh = grad_out.shape[1], ow = grad_out.shape[2]
    cdef Py_ssize_t p, y, z
    for p in prange(planes, nogil=True, schedule='static'):
        for y in range(oh):
            for z in range(ow):
                grad_x[p, argmax[p, y, z]] += grad_out[p, y, z]
