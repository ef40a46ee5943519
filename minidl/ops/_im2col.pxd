# cython: language_level=3
# im2col and col2im of ONE image: the inner loops that two extensions share.
#
# ``minidl/ops/_kernels.pyx`` runs them over a whole batch (threads over images);
# ``minidl/ops/fast/_fast.pyx`` runs them image by image, next to the product.
# Inline functions only: each extension compiles its own copy, nothing is
# imported at run time. Symbols and the column layout: ``minidl/ops/reference.py``,
#
#     cols[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x_padded[n, c, oh*SH + i*DH, ow*SW + j*DW]
#
# In the code OH, OW are ``out_h``, ``out_w``; ``oh``, ``ow`` an output row and
# column; ``n_cols`` the row length of the column matrix (N*OH*OW for a batch,
# OH*OW for one image).

ctypedef fused real:
    float
    double


cdef inline int _ceil_div(int a, int b) noexcept nogil:
    """ceil(a / b) for b > 0 and any sign of a (C division truncates toward zero)."""
    if a >= 0:
        return (a + b - 1) // b
    return -((-a) // b)


cdef inline void _valid_range(int offset, int stride, int size, int out_size,
                              int* lo, int* hi) noexcept nogil:
    """Output positions o in [lo, hi) whose source o*stride + offset lies inside [0, size)."""
    lo[0] = min(max(_ceil_div(-offset, stride), 0), out_size)
    hi[0] = min(max(_ceil_div(size - offset, stride), lo[0]), out_size)


cdef inline void im2col_image(const real* img, real* cols, Py_ssize_t n, Py_ssize_t channels,
                              int height, int width, Py_ssize_t n_cols,
                              int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                              int out_h, int out_w) noexcept nogil:
    """Columns n*OH*OW ... (n+1)*OH*OW - 1 of every row of cols, from image n (C, H, W)."""
    cdef Py_ssize_t c, row
    cdef int i, j, oh, ow, src_h, w_off, ow_lo, ow_hi
    cdef real* dst
    cdef const real* src
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                w_off = j * dw - pw                 # source column of output column 0
                _valid_range(w_off, sw, width, out_w, &ow_lo, &ow_hi)
                for oh in range(out_h):
                    dst = cols + row * n_cols + (n * out_h + oh) * out_w
                    src_h = oh * sh - ph + i * dh
                    if src_h < 0 or src_h >= height:    # the whole output row reads padding
                        for ow in range(out_w):
                            dst[ow] = 0
                        continue
                    src = img + (c * height + src_h) * width + w_off
                    for ow in range(ow_lo):
                        dst[ow] = 0
                    for ow in range(ow_lo, ow_hi):
                        dst[ow] = src[ow * sw]
                    for ow in range(ow_hi, out_w):
                        dst[ow] = 0


cdef inline void col2im_image(const real* cols, real* img, Py_ssize_t n, Py_ssize_t channels,
                              int height, int width, Py_ssize_t n_cols,
                              int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                              int out_h, int out_w) noexcept nogil:
    """The adjoint of im2col_image: add each column entry back to its source pixel of image n.

    Entries that fall on the padding are dropped; img must start zeroed.
    """
    cdef Py_ssize_t c, row
    cdef int i, j, oh, ow, src_h, w_off, ow_lo, ow_hi
    cdef const real* src
    cdef real* dst
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                w_off = j * dw - pw
                _valid_range(w_off, sw, width, out_w, &ow_lo, &ow_hi)
                for oh in range(out_h):
                    src_h = oh * sh - ph + i * dh
                    if src_h < 0 or src_h >= height:
                        continue
                    src = cols + row * n_cols + (n * out_h + oh) * out_w
                    dst = img + (c * height + src_h) * width + w_off
                    for ow in range(ow_lo, ow_hi):
                        dst[ow * sw] += src[ow]
