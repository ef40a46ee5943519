# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled half of minidl.ops.fast: float32 only, called through ``fast/__init__.py``.

``sgemm_into`` is gemm.c's matrix product; ``conv_forward_f32`` and
``conv_backward_f32`` are Conv's im2col + product reordered to run one image at
a time. Symbols and the column layout: ``minidl/ops/reference.py``;
K = C*KH*KW, P = OH*OW (OH, OW are ``out_h``, ``out_w`` here).
"""
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memset

# threads.h, not `cimport openmp`: it includes <omp.h> only when the compiler has OpenMP
cdef extern from "threads.h":
    int omp_get_max_threads() noexcept nogil

# im2col.c: the vector copies of one image's im2col / col2im where they run
# (minidl_im2col_vector), else the plain loops that the compiled kernels share
cdef extern from "im2col.h":
    int MINIDL_IM2COL_SLACK
    int minidl_im2col_vector(int sw, int OW) noexcept nogil
    void minidl_im2col_f32(const float* img, float* cols, int C, int H, int W,
                           int kh, int kw, int sh, int ph, int pw, int dh, int dw,
                           int OH, int OW) noexcept nogil
    long minidl_col2im_scratch(int C, int H, int W, int kh, int kw, int ph, int pw, int dw,
                               int OW) noexcept nogil
    void minidl_col2im_f32(const float* cols, float* img, float* scratch, int C, int H, int W,
                           int kh, int kw, int sh, int ph, int pw, int dh, int dw,
                           int OH, int OW) noexcept nogil

from minidl.ops._im2col cimport col2im_image, im2col_image


cdef inline void _im2col(bint vector, const float* img, float* cols, int c, int h, int w, int kh,
                         int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                         int out_h, int out_w) noexcept nogil:
    if vector:
        minidl_im2col_f32(img, cols, c, h, w, kh, kw, sh, ph, pw, dh, dw, out_h, out_w)
    else:
        im2col_image(img, cols, 0, c, h, w, out_h * out_w, kh, kw, sh, sw, ph, pw, dh, dw,
                     out_h, out_w)


cdef inline void _col2im(bint vector, const float* cols, float* img, float* scratch, int c,
                         int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                         int dw, int out_h, int out_w) noexcept nogil:
    """img += col2im(cols); img zeroed by the caller."""
    if vector:
        minidl_col2im_f32(cols, img, scratch, c, h, w, kh, kw, sh, ph, pw, dh, dw, out_h, out_w)
    else:
        col2im_image(cols, img, 0, c, h, w, out_h * out_w, kh, kw, sh, sw, ph, pw, dh, dw,
                     out_h, out_w)


# sparse.c: a convolution's backward visiting only the non-zero entries of dL/dy
cdef extern from "sparse.h":
    int minidl_conv_sparse_ok(int sh, int sw, int dh, int dw) noexcept nogil
    long minidl_count_nonzero(const float* g, long n) noexcept nogil
    long minidl_conv_sparse_scratch(int C, int F, int kh, int kw, int OH, int OW) noexcept nogil
    void minidl_conv_backward_sparse(const float* x, const float* g, const float* wq, float* dwq,
                                     float* db, float* gx, float* scratch, int C, int H, int W,
                                     int F, int kh, int kw, int ph, int pw, int OH, int OW) noexcept nogil


# direct.c: convolutions without im2col
cdef extern from "direct.h":
    int minidl_direct_forward_ok(int C, int kh, int kw, int sh, int sw, int dh, int dw, int W, int OW) noexcept nogil
    int minidl_direct_backward_ok(int C, int kh, int sh, int sw, int dh, int dw, int W, int OW) noexcept nogil
    long minidl_direct_scratch(int C, int kh, int kw, int OH, int OW) noexcept nogil
    void minidl_direct_forward(const float* x, const float* w, const float* b, float* y,
                               float* scratch, int C, int H, int W, int F, int kh, int kw,
                               int ph, int pw, int OH, int OW) noexcept nogil
    void minidl_direct_backward(const float* x, const float* g, const float* w, float* dw16,
                                float* db16, float* gx, float* scratch, int H, int W, int F,
                                int kh, int kw, int ph, int pw, int OH, int OW) noexcept nogil


cdef extern from "winograd.h":
    int minidl_winograd_ok(int kh, int kw, int sh, int sw, int dh, int dw) noexcept nogil
    long minidl_winograd_scratch(int C, int OW) noexcept nogil
    int minidl_winograd_filters(const float* wt, float* v, int C, int Fp, int c) noexcept nogil
    void minidl_winograd_tiles(const float* x, const float* w, const float* v, const float* b, float* y,
                               float* scratch, long n, int first, int count, int C, int H, int W, int F,
                               int Fp, int ph, int pw, int OH, int OW) noexcept nogil


cdef extern from "gemm.h":
    int minidl_sgemm_cpu_isas() noexcept nogil
    int minidl_sgemm_isa() noexcept nogil
    int minidl_sgemm_use_isa(int isa) noexcept nogil
    void minidl_sgemm(int M, int N, int K, float alpha,
                      const float* A, long rsa, long csa,
                      const float* B, long rsb, long csb,
                      float beta, float* C, long rsc) noexcept nogil
    void minidl_sgemm_serial(int M, int N, int K, float alpha,
                             const float* A, long rsa, long csa,
                             const float* B, long rsb, long csb,
                             float beta, float* C, long rsc) noexcept nogil
    long minidl_sgemm_packed_a_size(int M, int N, int K, long csa) noexcept nogil
    int minidl_sgemm_pack_a(int M, int N, int K, const float* A, long rsa, long csa,
                            float* Apre) noexcept nogil
    void minidl_sgemm_serial_packed(int M, int N, int K, float alpha,
                                    const float* A, long rsa, long csa, const float* Apre,
                                    int packed_mr, const float* B, long rsb, long csb,
                                    float beta, float* C, long rsc) noexcept nogil


# --------------------------------------------------------------- matrix product
def cpu_isas():
    """Bit (1 << i) set for each of gemm.h's MINIDL_ISA_* (1 AVX2+FMA, 2 AVX-512) this CPU runs."""
    return minidl_sgemm_cpu_isas()


def use_isa(int isa):
    """Make gemm.c use MINIDL_ISA_* ``isa``; returns the previous one, -1 if this CPU lacks it."""
    return minidl_sgemm_use_isa(isa)


def isa():
    """The MINIDL_ISA_* gemm.c uses (0: none, the caller uses numpy's product)."""
    return minidl_sgemm_isa()


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
def slack():
    """Floats to leave after each column block in ``work`` (im2col.c's last store may spill)."""
    return MINIDL_IM2COL_SLACK


def col2im_scratch(int c, int h, int w, int kh, int kw, int sw, int ph, int pw, int dw, int out_w):
    """Floats of scratch the vectorised col2im of one image needs (0 where the plain loops run)."""
    if not minidl_im2col_vector(sw, out_w):
        return 0
    return minidl_col2im_scratch(c, h, w, kh, kw, ph, pw, dw, out_w)


def sparse_ok(int sh, int sw, int dh, int dw):
    """1 if sparse.c's backward runs for this geometry on this machine."""
    return minidl_conv_sparse_ok(sh, sw, dh, dw)


def sparse_scratch(int c, int f, int kh, int kw, int out_h, int out_w):
    """Floats of scratch one thread needs for sparse.c's backward."""
    return minidl_conv_sparse_scratch(c, f, kh, kw, out_h, out_w)


def count_nonzero(const float[::1] g):
    """The number of non-zero entries of g (sparse.c's count; NaN counts)."""
    return minidl_count_nonzero(&g[0], g.shape[0]) if g.shape[0] else 0


def max_threads():
    """Threads an OpenMP loop uses (omp_get_max_threads): the number of work blocks to allocate."""
    return omp_get_max_threads()


cdef float* _packed(int m, int n, int k, const float* a, long rsa, long csa, int* mr) except? NULL:
    """The (m, k) matrix a packed once for gemm.c's products with (k, n) operands (mr: the
    kernel height it was packed for), or NULL if those products read it in place. The
    caller frees it."""
    cdef long size = minidl_sgemm_packed_a_size(m, n, k, csa)
    if size == 0:
        return NULL
    cdef float* packed = <float*> malloc(size * sizeof(float))
    if packed == NULL:
        raise MemoryError(f"minidl.ops.fast: {size * 4} bytes for packed weights")
    mr[0] = minidl_sgemm_pack_a(m, n, k, a, rsa, csa, packed)
    return packed


def conv_forward_f32(const float[:, :, :, ::1] x, const float[:, ::1] wb,
                     float[:, :, ::1] y, float[:, ::1] work,
                     int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                     int out_h, int out_w):
    """y (N, F, P) = [b | W] (F, 1+K) @ [1; im2col(x[n])] (1+K, P), image by image.

    The bias rides in the product: wb's first column is b, and each thread's block
    in work (threads, (1+K)*P + slack()) starts with a row of P ones, written by
    the caller; im2col fills the K rows after it.
    """
    cdef Py_ssize_t n_img = x.shape[0], n
    cdef int n_f = wb.shape[0], k1 = wb.shape[1], p = out_h * out_w, t
    cdef float* block
    cdef bint vector = minidl_im2col_vector(sw, out_w)
    cdef int mr = 0
    cdef float* wb_packed = _packed(n_f, p, k1, &wb[0, 0], k1, 1, &mr) if n_img else NULL
    try:
        for n in prange(n_img, nogil=True, schedule='static'):
            t = threadid()
            block = &work[t, 0]
            _im2col(vector, &x[n, 0, 0, 0], block + p, x.shape[1], x.shape[2], x.shape[3],
                    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)
            if wb_packed != NULL:
                minidl_sgemm_serial_packed(n_f, p, k1, 1.0, &wb[0, 0], k1, 1, wb_packed, mr,
                                           block, p, 1, 0.0, &y[n, 0, 0], p)
            else:
                minidl_sgemm_serial(n_f, p, k1, 1.0, &wb[0, 0], k1, 1, block, p, 1, 0.0, &y[n, 0, 0], p)
    finally:
        free(wb_packed)


def conv_backward_f32(const float[:, :, :, ::1] x, const float[:, ::1] w2d,
                      const float[:, :, ::1] grad_y, float[:, :, :, ::1] grad_x,
                      float[:, :, ::1] grad_bwt, float[:, ::1] work, float[:, ::1] work2,
                      bint need_input_grad,
                      int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                      int out_h, int out_w,
                      long sparse_below=-1, const float[:, ::1] wq=None, float[:, :, ::1] grad_wq=None,
                      float[:, ::1] grad_b=None, float[:, ::1] work3=None):
    """Per image n, with X = [1; im2col(x[n])] (1+K, P) and G = grad_y[n] (F, P):

        grad_bwt[t] += X @ G^T   (1+K, F): row 0 the bias gradient (G summed over P),
                                 rows 1.. the weight gradient, transposed; summed per thread t
        grad_x[n]    = col2im(w2d^T @ G)  (if need_input_grad; every image of grad_x is written)

    work as in conv_forward_f32 (its ones row written by the caller); work2 (threads,
    K*P + col2im_scratch(...)) holds each thread's W^T G and col2im's scratch; grad_bwt
    (threads, 1+K, F) starts at zero, and the caller sums it over threads.

    An image whose G has at most ``sparse_below`` non-zero entries (-1: none does) takes
    sparse.c instead: its weight and bias gradients go to grad_wq[t] (F, Cb*KH*KW*8, the
    layout of wq, the weights with channels last in blocks of 8) and grad_b[t] (F,), its
    input gradient overwrites grad_x[n]; work3 (threads, sparse_scratch(...)) is scratch.
    """
    cdef Py_ssize_t n_img = x.shape[0], n
    cdef int n_f = w2d.shape[0], k = w2d.shape[1], p = out_h * out_w, t
    cdef float* block
    cdef float* dcols
    cdef const float* g
    # w2d^T (K, F), read in place through its strides, packed once for all the images
    cdef bint vector = minidl_im2col_vector(sw, out_w)
    cdef int mr = 0
    cdef float* wt_packed = _packed(k, p, n_f, &w2d[0, 0], 1, k, &mr) if n_img and need_input_grad else NULL
    try:
        for n in prange(n_img, nogil=True, schedule='static'):
            t = threadid()
            block = &work[t, 0]
            g = &grad_y[n, 0, 0]
            if sparse_below >= 0 and minidl_count_nonzero(g, n_f * p) <= sparse_below:
                minidl_conv_backward_sparse(&x[n, 0, 0, 0], g, &wq[0, 0], &grad_wq[t, 0, 0], &grad_b[t, 0],
                                            &grad_x[n, 0, 0, 0] if need_input_grad else NULL,
                                            &work3[t, 0], x.shape[1], x.shape[2], x.shape[3], n_f,
                                            kh, kw, ph, pw, out_h, out_w)
                continue
            _im2col(vector, &x[n, 0, 0, 0], block + p, x.shape[1], x.shape[2], x.shape[3],
                    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)
            # (1+K, P) @ (P, F): G^T read in place through its strides
            minidl_sgemm_serial(k + 1, n_f, p, 1.0, block, p, 1, g, 1, p, 1.0, &grad_bwt[t, 0, 0], n_f)
            if need_input_grad:
                dcols = &work2[t, 0]
                # (K, F) @ (F, P)
                if wt_packed != NULL:
                    minidl_sgemm_serial_packed(k, p, n_f, 1.0, &w2d[0, 0], 1, k, wt_packed, mr,
                                               g, p, 1, 0.0, dcols, p)
                else:
                    minidl_sgemm_serial(k, p, n_f, 1.0, &w2d[0, 0], 1, k, g, p, 1, 0.0, dcols, p)
                memset(&grad_x[n, 0, 0, 0], 0, x.shape[1] * x.shape[2] * x.shape[3] * sizeof(float))
                _col2im(vector, dcols, &grad_x[n, 0, 0, 0], dcols + k * p, x.shape[1], x.shape[2],
                        x.shape[3], kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)
    finally:
        free(wt_packed)


# -------------------------------------------- convolutions, direct (direct.c)
def direct_ok(bint forward, int c, int kh, int kw, int sh, int sw, int dh, int dw, int w, int out_w):
    """1 if direct.c runs this convolution's forward (or backward) on this machine (direct.h)."""
    if forward:
        return minidl_direct_forward_ok(c, kh, kw, sh, sw, dh, dw, w, out_w)
    return minidl_direct_backward_ok(c, kh, sh, sw, dh, dw, w, out_w)


def direct_scratch(int c, int kh, int kw, int out_h, int out_w):
    """Floats of scratch one thread needs for direct.c (the zero-padded image)."""
    return minidl_direct_scratch(c, kh, kw, out_h, out_w)


def direct_forward_f32(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] b,
                       float[:, :, :, ::1] y, float[:, ::1] work, int ph, int pw):
    """y (N, F, OH, OW) = conv(x (N, C, H, W), w (F, C, KH, KW)) + b (F,) or None, stride 1.

    work: (threads, direct_scratch(...)). The caller checks direct_ok and the shapes.
    """
    cdef Py_ssize_t n_img = x.shape[0], n
    cdef int f = w.shape[0], kh = w.shape[2], kw = w.shape[3], t
    cdef const float* bias = &b[0] if b is not None else NULL
    for n in prange(n_img, nogil=True, schedule='static'):
        t = threadid()
        minidl_direct_forward(&x[n, 0, 0, 0], &w[0, 0, 0, 0], bias, &y[n, 0, 0, 0], &work[t, 0],
                              x.shape[1], x.shape[2], x.shape[3], f, kh, kw, ph, pw, y.shape[2], y.shape[3])


def direct_backward_f32(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w,
                        const float[:, :, :, ::1] grad_y, float[:, :, ::1] grad_w16,
                        float[:, :, ::1] grad_b16, float[:, :, :, ::1] grad_x, float[:, ::1] work,
                        int ph, int pw):
    """Per image n: grad_w16[t] (F*KH*KW, 16) and grad_b16[t] (F, 16) += dL/dW and dL/db,
    each entry as 16 partial sums, per thread t (both start at zero; the caller adds them
    up); grad_x[n] (1, H, W) = dL/dx[n], unless grad_x is None. work as in direct_forward_f32.
    """
    cdef Py_ssize_t n_img = x.shape[0], n
    cdef int f = w.shape[0], kh = w.shape[2], kw = w.shape[3], t
    cdef bint need_input_grad = grad_x is not None
    for n in prange(n_img, nogil=True, schedule='static'):
        t = threadid()
        minidl_direct_backward(&x[n, 0, 0, 0], &grad_y[n, 0, 0, 0], &w[0, 0, 0, 0],
                               &grad_w16[t, 0, 0], &grad_b16[t, 0, 0],
                               &grad_x[n, 0, 0, 0] if need_input_grad else NULL, &work[t, 0],
                               x.shape[2], x.shape[3], f, kh, kw, ph, pw,
                               grad_y.shape[2], grad_y.shape[3])


# ------------------------------------ 5x5 forward by Winograd's F(4x4, 5x5) (winograd.c)
def winograd_ok(int kh, int kw, int sh, int sw, int dh, int dw):
    """1 if winograd.c runs this convolution's forward on this machine (winograd.h)."""
    return minidl_winograd_ok(kh, kw, sh, sw, dh, dw)


def winograd_scratch(int c, int out_w):
    """Floats of scratch one thread needs for winograd.c with c input channels and out_w columns."""
    return minidl_winograd_scratch(c, out_w)


def winograd_forward_f32(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w,
                         const float[:, :, :, ::1] wt, const float[::1] b, float[:, :, ::1] v,
                         float[:, :, :, ::1] y, float[:, ::1] work, int ph, int pw):
    """y (N, F, OH, OW) = conv(x (N, C, H, W), w (F, C, 5, 5)) + b (F,) or None, stride 1.

    wt (C, 5, 5, Fp): w with the filters last, zeros past F (Fp = F rounded up to 8);
    v (64, C, Fp): room for the transformed filters; work: (threads, winograd_scratch(C, OW)).
    Returns False, with y untouched, if the transformed filters are not all finite. The
    caller checks winograd_ok and the shapes.
    """
    cdef int c_in = x.shape[1], f = w.shape[0], fp = wt.shape[3], c, bad = 0, t
    cdef int tiles = ((y.shape[2] + 3) // 4) * ((y.shape[3] + 3) // 4)     # per image
    cdef int per_image = (tiles + 7) // 8                                 # calls of 8 tiles
    cdef long chunk, chunks = x.shape[0] * per_image
    cdef const float* bias = &b[0] if b is not None else NULL
    with nogil:
        for c in range(c_in):
            bad = bad | minidl_winograd_filters(&wt[0, 0, 0, 0], &v[0, 0, 0], c_in, fp, c)
    if bad:
        return False
    for chunk in prange(chunks, nogil=True, schedule='static'):
        t = threadid()
        minidl_winograd_tiles(&x[0, 0, 0, 0], &w[0, 0, 0, 0], &v[0, 0, 0], bias, &y[0, 0, 0, 0],
                              &work[t, 0], chunk // per_image, chunk % per_image * 8,
                              min(8, tiles - chunk % per_image * 8), c_in, x.shape[2], x.shape[3], f, fp,
                              ph, pw, y.shape[2], y.shape[3])
    return True


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


# ------------------------------------------------------------------------- ReLU
# The plain ReLU makes two passes forward (the mask x > 0, then np.maximum(x, 0)) and
# multiplies a float array by a boolean one backward (a mixed-type loop). These loops
# give the same numbers bit for bit: np.maximum(x, 0) is x where x > 0 or x is NaN, else
# +0.0 (-0.0 included), x > 0 exactly where that result is > 0, and g * mask is g * 1.0 or
# g * 0.0 (so -0.0 for a negative g, NaN for an infinite one). In C with `restrict`, so
# that the compiler vectorises them (Cython's own loops would let the byte array alias
# the float ones).
cdef extern from *:
    """
    static void minidl_relu_forward(const float *restrict x, float *restrict y,
                                    unsigned char *restrict mask, long n)
    {
        for (long i = 0; i < n; i++) y[i] = (x[i] > 0.0f || x[i] != x[i]) ? x[i] : 0.0f;
        for (long i = 0; i < n; i++) mask[i] = y[i] > 0.0f;
    }
    static void minidl_relu_backward(const float *restrict g, const unsigned char *restrict mask,
                                     float *restrict out, long n)
    {
        for (long i = 0; i < n; i++) out[i] = g[i] * (float)mask[i];
    }
    """
    void minidl_relu_forward(const float* x, float* y, unsigned char* mask, long n) noexcept nogil
    void minidl_relu_backward(const float* g, const unsigned char* mask, float* out, long n) noexcept nogil


# ReLU on large arrays (RELU_THREADS_FROM blocks or more) is split over the threads in blocks of
# RELU_BLOCK floats: the lab network's relu1 is 157K floats, and one thread alone spent 4% of
# the training step on its ReLUs. Smaller ones stay on the calling thread: waking the other
# threads would cost more (relu3, 26K floats, took 0.02 ms alone and 0.08 ms split).
cdef enum:
    RELU_BLOCK = 16384
    RELU_THREADS_FROM = 4


def relu_forward_f32(const float[::1] x, float[::1] y, unsigned char[::1] mask):
    """y = max(x, 0) and mask = x > 0, element by element."""
    cdef Py_ssize_t n = x.shape[0], blocks = (n + RELU_BLOCK - 1) // RELU_BLOCK, b, lo
    if 0 < blocks < RELU_THREADS_FROM:
        with nogil:
            minidl_relu_forward(&x[0], &y[0], &mask[0], n)
    elif blocks:
        for b in prange(blocks, nogil=True, schedule='static'):
            lo = b * RELU_BLOCK
            minidl_relu_forward(&x[lo], &y[lo], &mask[lo], min(RELU_BLOCK, n - lo))


def relu_backward_f32(const float[::1] grad_y, const unsigned char[::1] mask, float[::1] grad_x):
    """grad_x = grad_y * mask (mask 0 or 1)."""
    cdef Py_ssize_t n = grad_y.shape[0], blocks = (n + RELU_BLOCK - 1) // RELU_BLOCK, b, lo
    if 0 < blocks < RELU_THREADS_FROM:
        with nogil:
            minidl_relu_backward(&grad_y[0], &mask[0], &grad_x[0], n)
    elif blocks:
        for b in prange(blocks, nogil=True, schedule='static'):
            lo = b * RELU_BLOCK
            minidl_relu_backward(&grad_y[lo], &mask[lo], &grad_x[lo], min(RELU_BLOCK, n - lo))
