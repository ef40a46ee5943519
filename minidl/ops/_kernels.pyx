# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled inner loops of minidl.

Each kernel is a typed loop over memoryviews with bounds checks off; the
Python-visible wrappers in ``minidl.ops`` validate arguments and allocate the
outputs. ``minidl/ops/reference.py`` holds the plain NumPy twin of each kernel
(same arguments, same layouts) and documents the symbols and the column layout:

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

cdef extern from "gemm.h":
    int minidl_sgemm_supported() noexcept nogil
    void minidl_sgemm(int M, int N, int K, float alpha,
                      const float* A, long rsa, long csa,
                      const float* B, long rsb, long csb,
                      float beta, float* C, long rsc) noexcept nogil
    void minidl_sgemm_serial(int M, int N, int K, float alpha,
                             const float* A, long rsa, long csa,
                             const float* B, long rsb, long csb,
                             float beta, float* C, long rsc) noexcept nogil

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


def im2col_into(const real[:, :, :, ::1] x, real[:, ::1] cols,
                int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                int oh, int ow):
    """Fill cols (C*KH*KW, N*OH*OW) from x (N, C, H, W); padding reads as 0."""
    cdef Py_ssize_t n_img = x.shape[0], n
    for n in prange(n_img, nogil=True, schedule='static'):
        _im2col_image(&x[n, 0, 0, 0], &cols[0, 0], n, x.shape[1], x.shape[2], x.shape[3],
                      cols.shape[1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


cdef inline void _im2col_image(const real* img, real* cols, Py_ssize_t n, Py_ssize_t channels,
                               int height, int width, Py_ssize_t n_cols,
                               int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                               int oh, int ow) noexcept nogil:
    """Columns n*OH*OW ... (n+1)*OH*OW - 1 of every row, from image n (C, H, W)."""
    cdef Py_ssize_t c, row
    cdef int i, j, y, z, src_h, w_off, z_lo, z_hi
    cdef real* dst
    cdef const real* src
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                w_off = j * dw - pw
                _valid_range(w_off, sw, width, ow, &z_lo, &z_hi)
                for y in range(oh):
                    dst = cols + row * n_cols + (n * oh + y) * ow
                    src_h = y * sh - ph + i * dh
                    if src_h < 0 or src_h >= height:
                        for z in range(ow):
                            dst[z] = 0
                        continue
                    src = img + (c * height + src_h) * width + w_off
                    for z in range(z_lo):
                        dst[z] = 0
                    for z in range(z_lo, z_hi):
                        dst[z] = src[z * sw]
                    for z in range(z_hi, ow):
                        dst[z] = 0


def col2im_into(const real[:, ::1] cols, real[:, :, :, ::1] x,
                int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                int oh, int ow):
    """Accumulate cols (C*KH*KW, N*OH*OW) into a zeroed x (N, C, H, W).

    Entries that fall on the padding are dropped. Image n only receives
    columns n*OH*OW ... (n+1)*OH*OW - 1, so threads over n never collide.
    """
    cdef Py_ssize_t n_img = x.shape[0], n
    for n in prange(n_img, nogil=True, schedule='static'):
        _col2im_image(&cols[0, 0], &x[n, 0, 0, 0], n, x.shape[1], x.shape[2], x.shape[3],
                      cols.shape[1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


cdef inline void _col2im_image(const real* cols, real* img, Py_ssize_t n, Py_ssize_t channels,
                               int height, int width, Py_ssize_t n_cols,
                               int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                               int oh, int ow) noexcept nogil:
    """The adjoint of _im2col_image: add each column entry back to its source pixel."""
    cdef Py_ssize_t c, row
    cdef int i, j, y, z, src_h, w_off, z_lo, z_hi
    cdef const real* src
    cdef real* dst
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                w_off = j * dw - pw
                _valid_range(w_off, sw, width, ow, &z_lo, &z_hi)
                for y in range(oh):
                    src_h = y * sh - ph + i * dh
                    if src_h < 0 or src_h >= height:
                        continue
                    src = cols + row * n_cols + (n * oh + y) * ow
                    dst = img + (c * height + src_h) * width + w_off
                    for z in range(z_lo, z_hi):
                        dst[z * sw] += src[z]


def maxpool_forward_into(const real[:, :, ::1] x, real[:, :, ::1] out,
                         long long[:, :, ::1] argmax,
                         int kh, int kw, int sh, int sw, int ph, int pw):
    """Max over windows of the (N*C, H, W) planes of x; -inf padding never wins.

    argmax holds the flat index h*W + w of the winner in its plane; ties go to
    the first maximum in row-major order, and the first NaN wins (NaN propagates).
    """
    cdef Py_ssize_t planes = x.shape[0]
    cdef int height = x.shape[1], width = x.shape[2]
    cdef int oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t p
    cdef bint two_by_two = (kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0)
    for p in prange(planes, nogil=True, schedule='static'):
        if two_by_two:
            _maxpool_plane_2x2(&x[p, 0, 0], &out[p, 0, 0], &argmax[p, 0, 0], height, width, oh, ow)
        else:
            _maxpool_plane(&x[p, 0, 0], &out[p, 0, 0], &argmax[p, 0, 0],
                           height, width, oh, ow, kh, kw, sh, sw, ph, pw)


cdef inline void _maxpool_plane_2x2(const real* plane, real* out, long long* argmax,
                                    int height, int width, int oh, int ow,
                                    ) noexcept nogil:
    """The common 2x2 window with stride 2 and no padding: _maxpool_plane unrolled.

    The pixels a b / c d of a window are compared in row-major order with
    arithmetic selects (no branches, so the compiler can vectorise the loop);
    ties keep the first maximum. A NaN anywhere in the plane sends the whole
    plane through the general loop, which lets the first NaN of a window win:
    the results are those of _maxpool_plane, bit for bit.
    """
    cdef int y, z, i0, idx, take
    cdef real best, v
    cdef bint has_nan = False
    cdef const real* r0
    cdef const real* r1
    for y in range(oh):
        r0 = plane + 2 * y * width
        r1 = r0 + width
        for z in range(ow):
            i0 = 2 * y * width + 2 * z
            best = r0[2 * z]
            idx = i0
            has_nan = has_nan | (best != best)
            v = r0[2 * z + 1]
            take = v > best
            best = max(v, best)
            idx = idx + take * (i0 + 1 - idx)
            has_nan = has_nan | (v != v)
            v = r1[2 * z]
            take = v > best
            best = max(v, best)
            idx = idx + take * (i0 + width - idx)
            has_nan = has_nan | (v != v)
            v = r1[2 * z + 1]
            take = v > best
            best = max(v, best)
            idx = idx + take * (i0 + width + 1 - idx)
            has_nan = has_nan | (v != v)
            out[y * ow + z] = best
            argmax[y * ow + z] = idx
    if has_nan:
        _maxpool_plane(plane, out, argmax, height, width, oh, ow, 2, 2, 2, 2, 0, 0)


cdef inline void _maxpool_plane(const real* plane, real* out, long long* argmax,
                                int height, int width, int oh, int ow,
                                int kh, int kw, int sh, int sw, int ph, int pw) noexcept nogil:
    """One (H, W) plane; the window is clipped to the image, which is padding at -inf."""
    cdef int y, z, hh, ww, h_lo, h_hi, w_lo, w_hi, best_idx, idx
    cdef real best, v
    cdef bint take, has_nan
    for y in range(oh):
        h_lo = y * sh - ph
        h_hi = min(h_lo + kh, height)
        h_lo = max(h_lo, 0)
        for z in range(ow):
            w_lo = z * sw - pw
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
            out[y * ow + z] = best
            argmax[y * ow + z] = best_idx


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
    cdef Py_ssize_t planes = grad_out.shape[0], oh = grad_out.shape[1], ow = grad_out.shape[2]
    cdef Py_ssize_t p, y, z
    for p in prange(planes, nogil=True, schedule='static'):
        for y in range(oh):
            for z in range(ow):
                grad_x[p, argmax[p, y, z]] += grad_out[p, y, z]


def axpy_into(double alpha, const real[::1] x, real[::1] y):
    """y += alpha * x, in place, over flat arrays of one dtype (split over threads)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef real a = <real>alpha
    # waking a second thread costs more than it saves below ~64k entries
    cdef int threads = 0 if n >= 65536 else 1  # 0: the OpenMP default
    if threads == 1:
        for i in range(n):
            y[i] += a * x[i]
        return
    for i in prange(n, nogil=True, schedule='static'):
        y[i] += a * x[i]


# --------------------------------------------------------------- matrix product
def sgemm_supported():
    """True if this CPU runs gemm.c's AVX-512 kernels (else ops.matmul uses numpy)."""
    return minidl_sgemm_supported() == 1


def sgemm_into(const float[:, :] a, const float[:, :] b, float[:, ::1] c):
    """c = a @ b for float32 (M, K) @ (K, N) -> (M, N); a and b may be any strided view.

    The caller checks shapes, K > 0, sizes below 2**31 and that c overlaps neither input.
    """
    cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1]
    cdef long rsa = a.strides[0] // 4, csa = a.strides[1] // 4
    cdef long rsb = b.strides[0] // 4, csb = b.strides[1] // 4
    cdef long rsc = c.strides[0] // 4
    with nogil:
        minidl_sgemm(m, n, k, 1.0, &a[0, 0], rsa, csa, &b[0, 0], rsb, csb, 0.0, &c[0, 0], rsc)



# ------------------------------------------------ convolution, one image at a time
# The im2col + matmul of minidl.layers.conv, reordered: each thread takes whole
# images and, per image, fills a (K, OH*OW) column block that stays in its L2
# cache, multiplies it at once (gemm.c on that thread) and writes the result
# straight into the NCHW output. The (K, N*OH*OW) column matrix of the whole
# batch (16 MB for conv2 at batch 50) is never built, nor transposed copies.
def max_threads():
    """Threads an OpenMP loop uses (omp_get_max_threads); 1 in a build without OpenMP."""
    return omp_get_max_threads()


def openmp_enabled():
    """True if this extension was compiled with OpenMP (setup.py found it), else False."""
    return MINIDL_OPENMP == 1


def conv_forward_f32(const float[:, :, :, ::1] x, const float[:, ::1] w2d, const float[::1] bias,
                     float[:, :, ::1] y, float[:, :, ::1] work,
                     int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int oh, int ow):
    """y (N, F, OH*OW) = w2d (F, K) @ im2col(x[n]) + bias, image by image.

    work: (threads, K, OH*OW) scratch, one column block per thread.
    """
    cdef Py_ssize_t n_img = x.shape[0], n, f, q
    cdef int n_f = w2d.shape[0], k = w2d.shape[1], p = oh * ow, t
    cdef float* cols
    cdef float* out
    cdef float b
    for n in prange(n_img, nogil=True, schedule='static'):
        t = threadid()
        cols = &work[t, 0, 0]
        _im2col_image(&x[n, 0, 0, 0], cols, 0, x.shape[1], x.shape[2], x.shape[3], p,
                      kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
        out = &y[n, 0, 0]
        minidl_sgemm_serial(n_f, p, k, 1.0, &w2d[0, 0], k, 1, cols, p, 1, 0.0, out, p)
        for f in range(n_f):
            b = bias[f]
            for q in range(p):
                out[f * p + q] = out[f * p + q] + b


def conv_backward_f32(const float[:, :, :, ::1] x, const float[:, ::1] w2d,
                      const float[:, :, ::1] grad_y, float[:, :, :, ::1] grad_x,
                      float[:, :, ::1] grad_wt, float[:, ::1] grad_b,
                      float[:, :, ::1] work, float[:, :, ::1] work2, bint need_input_grad,
                      int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                      int oh, int ow):
    """Per image n, with X = im2col(x[n]) (K, P) and G = grad_y[n] (F, P):

        grad_wt[t] += X @ G^T   (K, F)   the weight gradient, transposed, summed per thread t
        grad_b[t]  += G summed over P
        grad_x[n]   = col2im(w2d^T @ G)  (if need_input_grad; grad_x zeroed by the caller)

    grad_wt (threads, K, F) and grad_b (threads, F) start at zero; the caller sums over threads.
    """
    cdef Py_ssize_t n_img = x.shape[0], n, f, q
    cdef int n_f = w2d.shape[0], k = w2d.shape[1], p = oh * ow, t
    cdef float* cols
    cdef float* dcols
    cdef const float* g
    cdef float acc
    for n in prange(n_img, nogil=True, schedule='static'):
        t = threadid()
        cols = &work[t, 0, 0]
        g = &grad_y[n, 0, 0]
        _im2col_image(&x[n, 0, 0, 0], cols, 0, x.shape[1], x.shape[2], x.shape[3], p,
                      kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
        # (K, P) @ (P, F): G^T read in place through its strides
        minidl_sgemm_serial(k, n_f, p, 1.0, cols, p, 1, g, 1, p, 1.0, &grad_wt[t, 0, 0], n_f)
        for f in range(n_f):
            acc = 0
            for q in range(p):
                acc = acc + g[f * p + q]
            grad_b[t, f] += acc
        if need_input_grad:
            dcols = &work2[t, 0, 0]
            # (K, F) @ (F, P): w2d^T read in place through its strides
            minidl_sgemm_serial(k, p, n_f, 1.0, &w2d[0, 0], 1, k, g, p, 1, 0.0, dcols, p)
            _col2im_image(dcols, &grad_x[n, 0, 0, 0], 0, x.shape[1], x.shape[2], x.shape[3], p,
                          kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
