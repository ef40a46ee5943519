# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled half of minidl.ops.fast: float32 only, called through ``fast/__init__.py``.

``sgemm_into`` is gemm.c's matrix product; ``conv_forward_f32`` and
``conv_backward_f32`` are Conv's im2col + product reordered to run one image at
a time. Symbols and the column layout: ``minidl/ops/reference.py``;
K = C*KH*KW, P = OH*OW (OH, OW are ``out_h``, ``out_w`` here).
"""
from cython.parallel cimport prange, threadid

# threads.h, not `cimport openmp`: it includes <omp.h> only when the compiler has OpenMP
cdef extern from "threads.h":
    int omp_get_max_threads() noexcept nogil

from minidl.ops._im2col cimport col2im_image, im2col_image

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


# --------------------------------------------------------------- matrix product
def sgemm_supported():
    """True if this CPU runs gemm.c's AVX-512 kernels."""
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
# Conv's im2col + product, reordered: each thread takes whole images and, per
# image, fills a (K, P) column block that stays in its L2 cache, multiplies it at
# once (gemm.c on that thread) and writes the result straight into the NCHW
# output. The (K, N*P) column matrix of the whole batch is never built, nor
# transposed copies of it.
def max_threads():
    """Threads an OpenMP loop uses (omp_get_max_threads): the number of work blocks to allocate."""
    return omp_get_max_threads()


def conv_forward_f32(const float[:, :, :, ::1] x, const float[:, ::1] w2d, const float[::1] bias,
                     float[:, :, ::1] y, float[:, :, ::1] work,
                     int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                     int out_h, int out_w):
    """y (N, F, P) = w2d (F, K) @ im2col(x[n]) + bias, image by image.

    work: (threads, K, P) scratch, one column block per thread.
    """
    cdef Py_ssize_t n_img = x.shape[0], n, f, q
    cdef int n_f = w2d.shape[0], k = w2d.shape[1], p = out_h * out_w, t
    cdef float* cols
    cdef float* out
    cdef float b
    for n in prange(n_img, nogil=True, schedule='static'):
        t = threadid()
        cols = &work[t, 0, 0]
        im2col_image(&x[n, 0, 0, 0], cols, 0, x.shape[1], x.shape[2], x.shape[3], p,
                     kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)
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
                      int out_h, int out_w):
    """Per image n, with X = im2col(x[n]) (K, P) and G = grad_y[n] (F, P):

        grad_wt[t] += X @ G^T   (K, F)   the weight gradient, transposed, summed per thread t
        grad_b[t]  += G summed over P
        grad_x[n]   = col2im(w2d^T @ G)  (if need_input_grad; grad_x zeroed by the caller)

    grad_wt (threads, K, F) and grad_b (threads, F) start at zero; the caller sums over threads.
    """
    cdef Py_ssize_t n_img = x.shape[0], n, f, q
    cdef int n_f = w2d.shape[0], k = w2d.shape[1], p = out_h * out_w, t
    cdef float* cols
    cdef float* dcols
    cdef const float* g
    cdef float acc
    for n in prange(n_img, nogil=True, schedule='static'):
        t = threadid()
        cols = &work[t, 0, 0]
        g = &grad_y[n, 0, 0]
        im2col_image(&x[n, 0, 0, 0], cols, 0, x.shape[1], x.shape[2], x.shape[3], p,
                     kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)
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
            col2im_image(dcols, &grad_x[n, 0, 0, 0], 0, x.shape[1], x.shape[2], x.shape[3], p,
                         kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)


# ------------------------------------------- max pool, 2x2 window, stride 2 (pool.c)
cdef extern from "pool.h":
    int minidl_maxpool2x2_isa() noexcept nogil
    void minidl_maxpool2x2_forward(const float* x, float* y, unsigned char* win,
                                   int planes, int height, int width, int isa) noexcept nogil
    void minidl_maxpool2x2_backward(const float* grad_y, const unsigned char* win, float* grad_x,
                                    int planes, int height, int width, int isa) noexcept nogil


def maxpool2x2_isa():
    """The best pool.c code this CPU runs: 0 the portable loops, 1 AVX2, 2 AVX-512."""
    return minidl_maxpool2x2_isa()


def maxpool2x2_forward_f32(const float[:, :, ::1] x, float[:, :, ::1] y, unsigned char[:, :, ::1] win,
                           int isa=-1):
    """x (P, H, W) -> y, win (P, H//2, W//2): the window maxima and the winners' places 0..3.

    isa: -1 the best this CPU runs, else 0 / 1 / 2 (the tests run each). P > 0; the
    caller checks the shapes.
    """
    with nogil:
        minidl_maxpool2x2_forward(&x[0, 0, 0], &y[0, 0, 0], &win[0, 0, 0],
                                  x.shape[0], x.shape[1], x.shape[2], isa)


def maxpool2x2_backward_f32(const float[:, :, ::1] grad_y, const unsigned char[:, :, ::1] win,
                            float[:, :, ::1] grad_x, int isa=-1):
    """grad_y, win (P, H//2, W//2) -> grad_x (P, H, W), every pixel written (grad_y at the winner, else 0)."""
    with nogil:
        minidl_maxpool2x2_backward(&grad_y[0, 0, 0], &win[0, 0, 0], &grad_x[0, 0, 0],
                                   grad_x.shape[0], grad_x.shape[1], grad_x.shape[2], isa)
