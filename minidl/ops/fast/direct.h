/* direct.h -- convolutions computed directly, without im2col (direct.c). */
#ifndef MINIDL_DIRECT_H
#define MINIDL_DIRECT_H

/* 1 if direct.c computes this layer's forward here: stride 1, dilation 1, input and output at
   most 64 pixels wide, AVX-512 the instruction set in use (gemm.c's choice, so that
   MINIDL_FAST_ISA=avx2 turns it off too) on x86-64 (gcc/clang, not Windows), and either one
   input channel or output rows that fill at least 7/8 of their vectors' lanes with
   C KH KW <= 800 (where direct.c was measured to beat im2col and the product). */
int minidl_direct_forward_ok(int C, int kh, int kw, int sh, int sw, int dh, int dw, int W, int OW);

/* 1 if direct.c computes this layer's backward here: the same, with one input channel and a
   kernel at most 7 rows high.
   Where they say 0 the caller runs the image-by-image im2col and product, which are also
   direct.c's oracle, with the naive loops, in tests/test_fast.py. */
int minidl_direct_backward_ok(int C, int kh, int sh, int sw, int dh, int dw, int W, int OW);

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_WIN32)
#define MINIDL_DIRECT_X86 1
#else
#define MINIDL_DIRECT_X86 0
/* Elsewhere the two minidl_direct_*_ok() are 0 and the calls below are never made. */
#define minidl_direct_scratch(...) (0L)
#define minidl_direct_forward(...) ((void)0)
#define minidl_direct_backward(...) ((void)0)
#endif

#if MINIDL_DIRECT_X86
/* floats of scratch one call needs for this geometry (the padded image) */
long minidl_direct_scratch(int C, int kh, int kw, int OH, int OW);

/* One image x (C, H, W), weights w (F, C, KH, KW), bias b (F,) or NULL, padding (ph, pw):

     y (F, OH, OW) = b + the cross-correlation of w with x padded by zeros          */
void minidl_direct_forward(const float *x, const float *w, const float *b, float *y,
                           float *scratch, int C, int H, int W, int F, int kh, int kw,
                           int ph, int pw, int OH, int OW);

/* One image x (1, H, W), its weights (F, 1, KH, KW) and g = dL/dy (F, OH, OW):

     dw16 (F, KH, KW, 16) += dL/dW, each entry as 16 partial sums (the caller adds them up)
     db16 (F, 16)         += dL/db, likewise
     gx (H, W)             = dL/dx                      (only if gx is not NULL)          */
void minidl_direct_backward(const float *x, const float *g, const float *w, float *dw16,
                            float *db16, float *gx, float *scratch, int H, int W, int F,
                            int kh, int kw, int ph, int pw, int OH, int OW);
#endif

#endif
