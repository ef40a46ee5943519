/* sparse.h -- a convolution's backward for one image when most of dL/dy is zero (sparse.c). */
#ifndef MINIDL_SPARSE_H
#define MINIDL_SPARSE_H

/* 1 if the sparse backward runs for this geometry here: stride 1 and dilation 1, x86-64
   with AVX2 and FMA (gcc/clang, not Windows). Otherwise the caller runs the dense backward
   (im2col and products), which is also this code's oracle in tests/test_fast.py. */
int minidl_conv_sparse_ok(int sh, int sw, int dh, int dw);

/* the number of entries of g[0:n] that are not zero (NaN counts as not zero) */
long minidl_count_nonzero(const float *g, long n);

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_WIN32)
#define MINIDL_SPARSE_X86 1
#else
#define MINIDL_SPARSE_X86 0
/* Elsewhere minidl_conv_sparse_ok() is 0 and the calls below are never made. */
#define minidl_conv_sparse_scratch(...) (0L)
#define minidl_conv_backward_sparse(...) ((void)0)
#endif

#if MINIDL_SPARSE_X86
/* floats of scratch minidl_conv_backward_sparse needs (x and dL/dx channels-last, lists) */
long minidl_conv_sparse_scratch(int C, int F, int kh, int kw, int OH, int OW);

/* One image, stride 1, dilation 1, with x (C, H, W), g = dL/dy (F, OH*OW), P = OH*OW, the
   channels in blocks of 8 (Cb = ceil(C / 8), channels past C are zero), and the kernel in
   that layout, wq (F, Cb, KH, KW, 8) = w[f, 8cb + l, i, j]:

     dwq (F, Cb, KH, KW, 8) += dL/dW in that layout      db (F) += dL/db
     gx (C, H, W)             = dL/dx                     (only if gx is not NULL)

   visiting only the non-zero g[f, p]. */
void minidl_conv_backward_sparse(const float *x, const float *g, const float *wq, float *dwq,
                                 float *db, float *gx, float *scratch, int C, int H, int W, int F,
                                 int kh, int kw, int ph, int pw, int OH, int OW);
#endif

#endif
