/* im2col.h -- im2col / col2im of one float32 image (im2col.c). */
#ifndef MINIDL_IM2COL_H
#define MINIDL_IM2COL_H

/* floats the caller leaves writable after a column block: the last row's 8-lane store may spill */
#define MINIDL_IM2COL_SLACK 8

/* 1 if the vector code runs for this geometry here: stride 1 along the width, OW <= 512,
   x86-64 with AVX2 (gcc/clang, not Windows). Otherwise the caller runs the plain loops
   (minidl/ops/_im2col.pxd), the twins and oracles of the three functions below. */
int minidl_im2col_vector(int sw, int OW);

/* the vector code is compiled by gcc/clang on x86-64, not on Windows (as gemm.c's kernels) */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_WIN32)
#define MINIDL_IM2COL_X86 1
#else
#define MINIDL_IM2COL_X86 0
/* Elsewhere there is none, minidl_im2col_vector() is 0, and the calls below are never made:
   they compile to nothing, so that the caller builds everywhere unchanged. */
#define minidl_im2col_f32(...) ((void)0)
#define minidl_col2im_scratch(...) (0L)
#define minidl_col2im_f32(...) ((void)0)
#endif

#if MINIDL_IM2COL_X86

/* cols (C*KH*KW, OH*OW) from img (C, H, W), stride 1 along the width; every entry is written */
void minidl_im2col_f32(const float *img, float *cols, int C, int H, int W,
                       int kh, int kw, int sh, int ph, int pw, int dh, int dw, int OH, int OW);

/* floats of scratch minidl_col2im_f32 needs for this geometry */
long minidl_col2im_scratch(int C, int H, int W, int kh, int kw, int ph, int pw, int dw, int OW);

/* img (C, H, W) += the adjoint of im2col applied to cols (entries on the padding are dropped) */
void minidl_col2im_f32(const float *cols, float *img, float *scratch, int C, int H, int W,
                       int kh, int kw, int sh, int ph, int pw, int dh, int dw, int OH, int OW);

#endif  /* MINIDL_IM2COL_X86 */

#endif
