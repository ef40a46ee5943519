/*
 * im2col.c -- im2col and col2im of one float32 image, vectorised, for the fast convolution.
 *
 * The same numbers as im2col_image / col2im_image in minidl/ops/_im2col.pxd (their plain
 * twins and oracles; tests/test_fast.py compares them on awkward geometries):
 *
 *   cols[(c*KH + i)*KW + j, oh*OW + ow] = x_padded[c, oh*SH + i*DH, ow*SW + j*DW]
 *
 * With stride 1 along the width (every network in the labs), the part of an output row that
 * reads inside the image is a contiguous run of the input row, [lo, hi) in output columns;
 * the rest reads padding (zeros). The vector code copies that run 8 floats at a time with
 * masked loads (lanes outside [lo, hi) load 0 and never touch memory), so one loop handles
 * the padding, the run and the ragged end. Other strides take the plain loops.
 *
 * The stores are full 8-lane stores: the last one of a row may run up to 7 floats past it,
 * into the next output row or past the end of the block; rows are written in increasing
 * order, so the next row overwrites that spill, and the caller allocates MINIDL_IM2COL_SLACK
 * floats after each column block for the spill of the last row.
 *
 * The AVX2 code carries a target attribute and runs only if the CPU has AVX2 and FMA (gemm.c's
 * minidl_sgemm_cpu_isas says); it is compiled only by gcc/clang on x86-64 outside Windows, as
 * gemm.c's kernels are.
 */
#include "im2col.h"
#include "gemm.h"                          /* minidl_sgemm_cpu_isas: the CPU check */

#if MINIDL_IM2COL_X86
#include <immintrin.h>
#include <string.h>
#define HAVE_X86_SIMD 1
#define AVX2 __attribute__((target("avx2,fma")))

/* Output columns ow in [lo, hi) whose source column ow + off (stride 1) lies in [0, W). */
static void valid_run(int off, int W, int OW, int *lo, int *hi)
{
    int a = -off, b = W - off;
    *lo = a < 0 ? 0 : a > OW ? OW : a;
    *hi = b < *lo ? *lo : b > OW ? OW : b;
}

/* lane l of chunk q0 is inside the run: lo <= q0 + l < hi */
AVX2 static inline __m256i run_mask(int q0, int lo, int hi)
{
    __m256i q = _mm256_add_epi32(_mm256_set1_epi32(q0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i ge = _mm256_cmpgt_epi32(q, _mm256_set1_epi32(lo - 1));
    __m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), q);
    return _mm256_and_si256(ge, lt);
}

AVX2 static void im2col_avx2(const float *img, float *cols, int C, int H, int W,
                             int kh, int kw, int sh, int ph, int pw, int dh, int dw,
                             int OH, int OW)
{
    long P = (long)OH * OW;
    int chunks = (OW + 7) / 8;
    __m256i masks[64];                     /* per chunk of an output row; OW <= 512 here */
    for (int c = 0; c < C; c++)
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++) {
                float *row = cols + ((long)(c * kh + i) * kw + j) * P;
                int off = j * dw - pw, lo, hi;  /* source column of output column 0 */
                valid_run(off, W, OW, &lo, &hi);
                for (int q = 0; q < chunks; q++) masks[q] = run_mask(8 * q, lo, hi);
                for (int oh = 0; oh < OH; oh++) {
                    float *dst = row + (long)oh * OW;
                    int h = oh * sh - ph + i * dh;
                    if (h < 0 || h >= H || lo >= hi) {
                        for (int q = 0; q < chunks; q++) _mm256_storeu_ps(dst + 8 * q, _mm256_setzero_ps());
                        continue;
                    }
                    const float *src = img + ((long)c * H + h) * W + off;
                    for (int q = 0; q < chunks; q++)
                        _mm256_storeu_ps(dst + 8 * q, _mm256_maskload_ps(src + 8 * q, masks[q]));
                }
            }
}

/* col2im into a zeroed, padded copy of the image (rows of `row_len` floats, wide enough that
   no output row's 8-lane chunks reach the next row), then the image is cut out of it. Every
   vector access is then a plain load / add / store that never overlaps the one before it
   (in place, masked stores into the image's own rows made each row wait on the last). */
static int padded_row_len(int W, int kw, int pw, int dw, int OW)
{
    int need = (kw - 1) * dw + (OW + 7) / 8 * 8, full = W + 2 * pw;
    return ((need > full ? need : full) + 7) / 8 * 8;
}

AVX2 static void col2im_avx2(const float *cols, float *img, float *buf, int C, int H, int W,
                             int kh, int kw, int sh, int ph, int pw, int dh, int dw,
                             int OH, int OW)
{
    long P = (long)OH * OW;
    int chunks = (OW + 7) / 8, Hp = H + 2 * ph, Wr = padded_row_len(W, kw, pw, dw, OW);
    __m256i tail = run_mask(8 * (chunks - 1), 0, OW);     /* the last chunk's lanes inside the row */
    memset(buf, 0, sizeof(float) * (size_t)C * Hp * Wr);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++) {
                const float *row = cols + ((long)(c * kh + i) * kw + j) * P;
                for (int oh = 0; oh < OH; oh++) {
                    const float *src = row + (long)oh * OW;
                    float *dst = buf + ((long)c * Hp + oh * sh + i * dh) * Wr + j * dw;
                    int q = 0;
                    for (; q < chunks - 1; q++)
                        _mm256_storeu_ps(dst + 8 * q, _mm256_add_ps(_mm256_loadu_ps(dst + 8 * q),
                                                                     _mm256_loadu_ps(src + 8 * q)));
                    _mm256_storeu_ps(dst + 8 * q, _mm256_add_ps(_mm256_loadu_ps(dst + 8 * q),
                                                                _mm256_maskload_ps(src + 8 * q, tail)));
                }
            }
    for (int c = 0; c < C; c++)                           /* cut the image out of the padding */
        for (int h = 0; h < H; h++) {
            const float *src = buf + ((long)c * Hp + h + ph) * Wr + pw;
            float *dst = img + ((long)c * H + h) * W;
            for (int w = 0; w < W; w++) dst[w] += src[w];
        }
}

#else
#define HAVE_X86_SIMD 0
#endif

int minidl_im2col_vector(int sw, int OW)
{
#if HAVE_X86_SIMD
    return sw == 1 && OW <= 512 && (minidl_sgemm_cpu_isas() >> MINIDL_ISA_AVX2 & 1);
#else
    (void)sw; (void)OW;
    return 0;
#endif
}

#if HAVE_X86_SIMD
void minidl_im2col_f32(const float *img, float *cols, int C, int H, int W,
                       int kh, int kw, int sh, int ph, int pw, int dh, int dw, int OH, int OW)
{
    im2col_avx2(img, cols, C, H, W, kh, kw, sh, ph, pw, dh, dw, OH, OW);
}

long minidl_col2im_scratch(int C, int H, int W, int kh, int kw, int ph, int pw, int dw, int OW)
{
    (void)kh;
    return (long)C * (H + 2 * ph) * padded_row_len(W, kw, pw, dw, OW);
}

void minidl_col2im_f32(const float *cols, float *img, float *scratch, int C, int H, int W,
                       int kh, int kw, int sh, int ph, int pw, int dh, int dw, int OH, int OW)
{
    col2im_avx2(cols, img, scratch, C, H, W, kh, kw, sh, ph, pw, dh, dw, OH, OW);
}
#endif
