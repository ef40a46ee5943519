/* winograd.h -- a 5x5 convolution's forward by Winograd's minimal filtering F(4x4, 5x5) (winograd.c). */
#ifndef MINIDL_WINOGRAD_H
#define MINIDL_WINOGRAD_H

/* 1 if winograd.c computes this convolution's forward here: a 5x5 kernel, stride 1, dilation 1,
   on x86-64 (gcc/clang, not Windows) with AVX2 and FMA. Otherwise the caller runs direct.c or
   the image-by-image product, which are also this code's oracles in tests/test_fast.py. */
int minidl_winograd_ok(int kh, int kw, int sh, int sw, int dh, int dw);

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_WIN32)
#define MINIDL_WINOGRAD_X86 1
#else
#define MINIDL_WINOGRAD_X86 0
/* Elsewhere minidl_winograd_ok() is 0 and the calls below are never made. */
#define minidl_winograd_scratch(...) (0L)
#define minidl_winograd_filters(...) (0)
#define minidl_winograd_tiles(...) ((void)0)
#endif

#if MINIDL_WINOGRAD_X86
/* floats of scratch one thread needs for minidl_winograd_tiles (C input channels, OW columns) */
long minidl_winograd_scratch(int C, int OW);

/* The filters of input channel c, transformed: with wt (C, 5, 5, Fp) the weights with the
   filters last (Fp = F rounded up to 8, zeros past F),

     v[a * 8 + b, c, f] = (G w[f, c] G^T)[a, b]       for a, b < 8 and every f < Fp.

   Returns 1 if an entry of the result is not finite (the caller then takes another path). */
int minidl_winograd_filters(const float *wt, float *v, int C, int Fp, int c);

/* Tiles first .. first + count - 1 (count <= 8) of image n of the output y (N, F, OH, OW):
   tile t is the 4x4 block (4 ty, 4 tx), t = ty * TW + tx with TW = ceil(OW / 4), cut at the
   output's edges (TH * TW tiles, TH = ceil(OH / 4)). For x (N, C, H, W) padded by (ph, pw),
   w (F, C, 5, 5), v from minidl_winograd_filters and b (F,) or NULL:

     y[n, f, 4 ty + i, 4 tx + j] = b[f] + the cross-correlation of w[f] with the padded x there

   computed as A^T [ sum_c (G w G^T) * (B^T d B) ] A over each tile's 8x8 input d. A tile whose
   input holds an infinity or a NaN is computed by the direct sums instead, so that they spread
   only to the outputs whose window holds them. */
void minidl_winograd_tiles(const float *x, const float *w, const float *v, const float *b, float *y,
                           float *scratch, long n, int first, int count, int C, int H, int W, int F,
                           int Fp, int ph, int pw, int OH, int OW);
#endif

#endif
