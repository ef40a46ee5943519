/* sparse.h -- a convolution's weight gradient for one image when most of dL/dy is zero (sparse.c). */
#ifndef MINIDL_SPARSE_H
#define MINIDL_SPARSE_H

/* floats per kernel row in the gradient sparse.c gathers: KW <= 8 taps, then junk */
#define MINIDL_SPARSE_LANES 8

/* 1 if the sparse weight gradient runs for this geometry here: stride 1 and dilation 1,
   1 <= KW <= 8, x86-64 with AVX2 and FMA (gcc/clang, not Windows). Otherwise the caller
   runs the dense product, which is also this code's oracle in tests/test_fast.py. */
int minidl_conv_sparse_ok(int sh, int sw, int dh, int dw, int kw);

/* the number of entries of g[0:n] that are not zero (NaN counts as not zero) */
long minidl_count_nonzero(const float *g, long n);

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_WIN32)
#define MINIDL_SPARSE_X86 1
#else
#define MINIDL_SPARSE_X86 0
/* Elsewhere minidl_conv_sparse_ok() is 0 and the calls below are never made. */
#define minidl_conv_sparse_scratch(...) (0L)
#define minidl_conv_weight_grad_sparse(...) ((void)0)
#endif

#if MINIDL_SPARSE_X86
/* floats of scratch minidl_conv_weight_grad_sparse needs (a padded copy of x, lists) */
long minidl_conv_sparse_scratch(int C, int kh, int OH, int OW);

/* One image, stride 1, dilation 1, with x (C, H, W), g = dL/dy (F, OH*OW), P = OH*OW:

     dw8[f, c*KH + i, j] += sum_p g[f, p] x_padded[c, oh + i, ow + j]    (lanes j >= KW: junk)
     db[f]               += sum_p g[f, p]

   visiting only the non-zero g[f, p]. */
void minidl_conv_weight_grad_sparse(const float *x, const float *g, float *dw8, float *db,
                                    float *scratch, int C, int H, int W, int F, int kh, int ph,
                                    int pw, int OH, int OW);
#endif

#endif
