/*
 * pool.c -- the float32 2x2 max pool (stride 2, no padding) of minidl.ops.fast.
 *
 * The plain twin and oracle: minidl.ops.maxpool_forward / maxpool_backward
 * (_kernels.pyx, int64 argmax h*W + w) and the loops of minidl.ops.naive.
 * This file computes the same numbers bit for bit, and instead of the argmax
 * keeps one byte per output, the winner's place in its window:
 *
 *       0 1        argmax = (2i + win / 2) * W + 2j + win % 2
 *       2 3
 *
 * Forward: per output, best = a; then b, c, d in turn replace it if strictly
 * greater (the first of equal maxima wins). A NaN compares false, so a plane
 * that holds one is done again by the portable loop, which lets the window's
 * first NaN win (as the plain kernel does). Backward: each input pixel is
 * written once, 0 + grad_y at the winner and 0 elsewhere (0 + g, as the plain
 * kernel's zeroed array plus g: -0.0 becomes +0.0), so no zeroing pass.
 *
 * Vector versions (gcc and clang on x86-64, not Windows: the #if of gemm.c):
 *   AVX2    8 outputs per step: two 8-float loads per input row, even and odd
 *           pixels split by shuffles. The ragged end of a row (a lab row has 14
 *           or 7 outputs) is done as a full step that runs on into the next
 *           rows, which are written again when their turn comes; only at the
 *           plane's end, masked loads and stores (3x slower, measured).
 *   AVX-512 16 outputs per step, masked loads and stores (a lab row of 14
 *           outputs is one step); rows of 8 or fewer run the AVX2 code.
 * They carry target attributes (no -march); minidl_maxpool2x2_isa() checks
 * the CPU at run time. Elsewhere only the portable loops are compiled.
 * Threads: OpenMP over planes (threads.h: one thread without OpenMP).
 */
#include "pool.h"
#include "threads.h"   /* <omp.h> if OpenMP is on, else one-thread stand-ins */

/* below this many input pixels one thread does it all (a round guess, as axpy_into's in
   _kernels.pyx, not tuned) */
#define POOL_THREAD_MIN 32768L

/* ---- the portable loops -------------------------------------------------- */

/* the last row of an odd height belongs to no window: its gradient is 0 (a loop, not
   memset: outside the x86 code this file includes no system header, for the cross builds) */
static void zero_row(float *row, int width)
{
    for (int k = 0; k < width; k++) row[k] = 0.0f;
}

/* the place of the window's first NaN (it holds one) */
static int first_nan(const float v[4])
{
    return v[0] != v[0] ? 0 : v[1] != v[1] ? 1 : v[2] != v[2] ? 2 : 3;
}

static void forward_plane_scalar(const float *x, float *y, unsigned char *win, int height, int width)
{
    int out_h = height / 2, out_w = width / 2;
    for (int i = 0; i < out_h; i++) {
        const float *r0 = x + (long)2 * i * width, *r1 = r0 + width;
        float *yr = y + (long)i * out_w;
        unsigned char *wr = win + (long)i * out_w;
        for (int j = 0; j < out_w; j++) {
            float v[4] = {r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};
            int k = 0;
            k = v[1] > v[k] ? 1 : k;        /* strictly greater: the first maximum stays */
            k = v[2] > v[k] ? 2 : k;
            k = v[3] > v[k] ? 3 : k;
            if ((v[0] != v[0]) | (v[1] != v[1]) | (v[2] != v[2]) | (v[3] != v[3]))
                k = first_nan(v);
            yr[j] = v[k];
            wr[j] = (unsigned char)k;
        }
    }
}

static void backward_plane_scalar(const float *gy, const unsigned char *win, float *gx,
                                  int height, int width)
{
    int out_h = height / 2, out_w = width / 2;
    for (int i = 0; i < out_h; i++) {
        float *t0 = gx + (long)2 * i * width, *t1 = t0 + width;
        const float *gr = gy + (long)i * out_w;
        const unsigned char *wr = win + (long)i * out_w;
        for (int j = 0; j < out_w; j++) {
            int k = wr[j];
            t0[2 * j] = t0[2 * j + 1] = t1[2 * j] = t1[2 * j + 1] = 0.0f;
            (k < 2 ? t0 : t1)[2 * j + (k & 1)] = 0.0f + gr[j];   /* no branch on k */
        }
        if (width & 1) t0[width - 1] = t1[width - 1] = 0.0f;
    }
    if (height & 1) zero_row(gx + (long)(height - 1) * width, width);
}


#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_WIN32)
#define POOL_SIMD 1
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2")))
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512bw")))

/* the first cnt of 8 lanes all ones: loadu(ONES_THEN_ZEROS + 8 - cnt), 0 <= cnt <= 8 */
static const int32_t ONES_THEN_ZEROS[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* ---- AVX2 ------------------------------------------------------------------ */

static inline AVX2 __m256i lanes8(int cnt)
{
    cnt = cnt < 0 ? 0 : cnt > 8 ? 8 : cnt;
    return _mm256_loadu_si256((const __m256i *)(ONES_THEN_ZEROS + 8 - cnt));
}

/* n <= 8 windows of rows r0, r1 (2n floats each) -> y[0:n], win[0:n]; NaNs flagged in *nan */
static inline AVX2 void forward8_avx2(const float *r0, const float *r1, float *y, unsigned char *win,
                                      int n, __m256 *nan)
{
    __m256 t0, t1, b0, b1;
    if (n == 8) {
        t0 = _mm256_loadu_ps(r0);
        t1 = _mm256_loadu_ps(r0 + 8);
        b0 = _mm256_loadu_ps(r1);
        b1 = _mm256_loadu_ps(r1 + 8);
    } else {                               /* the masked lanes read as 0 and touch no memory */
        __m256i m0 = lanes8(2 * n), m1 = lanes8(2 * n - 8);
        t0 = _mm256_maskload_ps(r0, m0);
        t1 = _mm256_maskload_ps(r0 + 8, m1);
        b0 = _mm256_maskload_ps(r1, m0);
        b1 = _mm256_maskload_ps(r1 + 8, m1);
    }
    /* even / odd pixels; in the windows' order 0 1 4 5 2 3 6 7 (per 128-bit lane) */
    __m256 a = _mm256_shuffle_ps(t0, t1, 0x88), b = _mm256_shuffle_ps(t0, t1, 0xDD);
    __m256 c = _mm256_shuffle_ps(b0, b1, 0x88), d = _mm256_shuffle_ps(b0, b1, 0xDD);
    *nan = _mm256_or_ps(*nan, _mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q),
                                           _mm256_cmp_ps(c, d, _CMP_UNORD_Q)));
    /* max_ps(v, best) is `v > best ? v : best`: the first of equal maxima stays */
    __m256 best = a, take_b, take_c, take_d;
    take_b = _mm256_cmp_ps(b, best, _CMP_GT_OQ);
    best = _mm256_max_ps(b, best);
    take_c = _mm256_cmp_ps(c, best, _CMP_GT_OQ);
    best = _mm256_max_ps(c, best);
    take_d = _mm256_cmp_ps(d, best, _CMP_GT_OQ);
    best = _mm256_max_ps(d, best);
    /* the winner's place: the last of 1, 2, 3 that took over, so the largest of them */
    __m256i k = _mm256_max_epi32(
        _mm256_max_epi32(_mm256_and_si256(_mm256_castps_si256(take_b), _mm256_set1_epi32(1)),
                         _mm256_and_si256(_mm256_castps_si256(take_c), _mm256_set1_epi32(2))),
        _mm256_and_si256(_mm256_castps_si256(take_d), _mm256_set1_epi32(3)));
    /* back to the order 0..7: swap the middle 64-bit quarters of the maxima; the places as
       bytes, windows 0 1 . . 4 5 . . from the low half and . . 2 3 . . 6 7 from the high one */
    best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), 0xD8));
    const __m256i to_bytes = _mm256_setr_epi8(0, 4, -1, -1, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                              -1, -1, 0, 4, -1, -1, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1);
    k = _mm256_shuffle_epi8(k, to_bytes);
    __m128i places = _mm_or_si128(_mm256_castsi256_si128(k), _mm256_extracti128_si256(k, 1));
    uint64_t bytes = (uint64_t)_mm_cvtsi128_si64(places);
    if (n == 8) {
        _mm256_storeu_ps(y, best);
        memcpy(win, &bytes, 8);
    } else {
        _mm256_maskstore_ps(y, lanes8(n), best);
        memcpy(win, &bytes, (size_t)n);
    }
}

static AVX2 int forward_plane_avx2(const float *x, float *y, unsigned char *win, int height, int width)
{
    int out_h = height / 2, out_w = width / 2;
    long out_size = (long)out_h * out_w;
    __m256 nan = _mm256_setzero_ps();
    for (int i = 0; i < out_h; i++) {
        const float *r0 = x + (long)2 * i * width, *r1 = r0 + width;
        float *yr = y + (long)i * out_w;
        unsigned char *wr = win + (long)i * out_w;
        for (int j = 0; j < out_w; j += 8) {
            int n = out_w - j < 8 ? out_w - j : 8;
            /* a short last block is done as a full one if its 8 outputs stay inside the
               plane: it runs on into the rows below, which are written when their turn
               comes (and the 16 pixels per input row it reads stay inside too, as W >= 2*OW) */
            if (n < 8 && (long)i * out_w + j + 8 <= out_size)
                n = 8;
            forward8_avx2(r0 + 2 * j, r1 + 2 * j, yr + j, wr + j, n, &nan);
        }
    }
    return _mm256_movemask_ps(nan) != 0;
}

/* n <= 8 outputs: grad_y[0:n], win[0:n] -> 2n pixels of rows t0 and t1 */
static inline AVX2 void backward8_avx2(const float *gy, const unsigned char *win, float *t0, float *t1,
                                       int n)
{
    __m256 g;
    uint64_t bytes = 0;
    if (n == 8) {
        g = _mm256_loadu_ps(gy);
        memcpy(&bytes, win, 8);
    } else {
        g = _mm256_maskload_ps(gy, lanes8(n));
        memcpy(&bytes, win, (size_t)n);
    }
    __m256i k = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)bytes));
    /* each output twice, in pixel order: g0 g0 g1 g1 ... g7 g7 as two vectors */
    __m256 glo = _mm256_unpacklo_ps(g, g), ghi = _mm256_unpackhi_ps(g, g);
    __m256 g_a = _mm256_permute2f128_ps(glo, ghi, 0x20), g_b = _mm256_permute2f128_ps(glo, ghi, 0x31);
    __m256i klo = _mm256_unpacklo_epi32(k, k), khi = _mm256_unpackhi_epi32(k, k);
    __m256i k_a = _mm256_permute2x128_si256(klo, khi, 0x20), k_b = _mm256_permute2x128_si256(klo, khi, 0x31);
    /* pixel 2j of the top row wins if k == 0, 2j+1 if k == 1; of the bottom row 2 and 3 */
    const __m256i top = _mm256_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1);
    const __m256i bottom = _mm256_setr_epi32(2, 3, 2, 3, 2, 3, 2, 3);
    const __m256 zero = _mm256_setzero_ps();
    __m256 ta = _mm256_add_ps(zero, _mm256_and_ps(g_a, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k_a, top))));
    __m256 tb = _mm256_add_ps(zero, _mm256_and_ps(g_b, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k_b, top))));
    __m256 ba = _mm256_add_ps(zero, _mm256_and_ps(g_a, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k_a, bottom))));
    __m256 bb = _mm256_add_ps(zero, _mm256_and_ps(g_b, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k_b, bottom))));
    if (n == 8) {
        _mm256_storeu_ps(t0, ta);
        _mm256_storeu_ps(t0 + 8, tb);
        _mm256_storeu_ps(t1, ba);
        _mm256_storeu_ps(t1 + 8, bb);
    } else {
        __m256i m0 = lanes8(2 * n), m1 = lanes8(2 * n - 8);
        _mm256_maskstore_ps(t0, m0, ta);
        _mm256_maskstore_ps(t0 + 8, m1, tb);
        _mm256_maskstore_ps(t1, m0, ba);
        _mm256_maskstore_ps(t1 + 8, m1, bb);
    }
}

static AVX2 void backward_plane_avx2(const float *gy, const unsigned char *win, float *gx,
                                     int height, int width)
{
    int out_h = height / 2, out_w = width / 2;
    long out_size = (long)out_h * out_w;
    for (int i = 0; i < out_h; i++) {
        float *t0 = gx + (long)2 * i * width, *t1 = t0 + width;
        const float *gr = gy + (long)i * out_w;
        const unsigned char *wr = win + (long)i * out_w;
        /* the short last block first, done as a full one if its 8 outputs stay inside the
           plane (then its 16 pixels per row stay inside the rows under windows, as in the
           forward): its top row runs on into the bottom row and its bottom row into the next
           pair of rows, which the full blocks below and the next pair then write */
        int j = out_w - out_w % 8, n = out_w % 8;
        if (n > 0) {
            if ((long)i * out_w + j + 8 <= out_size)
                n = 8;
            backward8_avx2(gr + j, wr + j, t0 + 2 * j, t1 + 2 * j, n);
        }
        for (j = 0; j + 8 <= out_w; j += 8)
            backward8_avx2(gr + j, wr + j, t0 + 2 * j, t1 + 2 * j, 8);
        if (width & 1) t0[width - 1] = t1[width - 1] = 0.0f;
    }
    if (height & 1) zero_row(gx + (long)(height - 1) * width, width);
}

/* ---- AVX-512 --------------------------------------------------------------- */

/* the first cnt of 16 lanes, 0 <= cnt <= 16 */
static inline __mmask16 lanes16(int cnt)
{
    cnt = cnt < 0 ? 0 : cnt > 16 ? 16 : cnt;
    return (__mmask16)((1u << cnt) - 1u);
}

/* n <= 16 windows of rows r0, r1 -> y[0:n], win[0:n]; NaNs flagged in *nan */
static inline AVX512 void forward16_avx512(const float *r0, const float *r1, float *y, unsigned char *win,
                                           int n, __mmask16 *nan)
{
    __mmask16 m0 = lanes16(2 * n), m1 = lanes16(2 * n - 16);
    __m512 t0 = _mm512_maskz_loadu_ps(m0, r0), t1 = _mm512_maskz_loadu_ps(m1, r0 + 16);
    __m512 b0 = _mm512_maskz_loadu_ps(m0, r1), b1 = _mm512_maskz_loadu_ps(m1, r1 + 16);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 a = _mm512_permutex2var_ps(t0, even, t1), b = _mm512_permutex2var_ps(t0, odd, t1);
    __m512 c = _mm512_permutex2var_ps(b0, even, b1), d = _mm512_permutex2var_ps(b0, odd, b1);
    *nan |= _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(c, d, _CMP_UNORD_Q);
    __m512 best = a;
    __m512i k = _mm512_setzero_si512();
    __mmask16 m;
    m = _mm512_cmp_ps_mask(b, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, m, b);
    k = _mm512_mask_mov_epi32(k, m, _mm512_set1_epi32(1));
    m = _mm512_cmp_ps_mask(c, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, m, c);
    k = _mm512_mask_mov_epi32(k, m, _mm512_set1_epi32(2));
    m = _mm512_cmp_ps_mask(d, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, m, d);
    k = _mm512_mask_mov_epi32(k, m, _mm512_set1_epi32(3));
    __mmask16 out = lanes16(n);
    _mm512_mask_storeu_ps(y, out, best);
    _mm512_mask_cvtepi32_storeu_epi8(win, out, k);
}

static AVX512 int forward_plane_avx512(const float *x, float *y, unsigned char *win, int height, int width)
{
    int out_h = height / 2, out_w = width / 2;
    __mmask16 nan = 0;
    for (int i = 0; i < out_h; i++) {
        const float *r0 = x + (long)2 * i * width, *r1 = r0 + width;
        float *yr = y + (long)i * out_w;
        unsigned char *wr = win + (long)i * out_w;
        for (int j = 0; j < out_w; j += 16)
            forward16_avx512(r0 + 2 * j, r1 + 2 * j, yr + j, wr + j, out_w - j, &nan);
    }
    return nan != 0;
}

/* n <= 16 outputs: grad_y[0:n], win[0:n] -> 2n pixels of rows t0 and t1 */
static inline AVX512 void backward16_avx512(const float *gy, const unsigned char *win, float *t0, float *t1,
                                            int n)
{
    __mmask16 in = lanes16(n);
    __m512 g = _mm512_maskz_loadu_ps(in, gy);
    __m512i k = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(in, win));
    __m512 e0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(0)), g);
    __m512 o0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(1)), g);
    __m512 e1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(2)), g);
    __m512 o1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(3)), g);
    /* interleave even and odd pixels: e0 o0 e1 o1 ... */
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512 zero = _mm512_setzero_ps();
    __mmask16 m0 = lanes16(2 * n), m1 = lanes16(2 * n - 16);
    _mm512_mask_storeu_ps(t0, m0, _mm512_add_ps(zero, _mm512_permutex2var_ps(e0, lo, o0)));
    _mm512_mask_storeu_ps(t0 + 16, m1, _mm512_add_ps(zero, _mm512_permutex2var_ps(e0, hi, o0)));
    _mm512_mask_storeu_ps(t1, m0, _mm512_add_ps(zero, _mm512_permutex2var_ps(e1, lo, o1)));
    _mm512_mask_storeu_ps(t1 + 16, m1, _mm512_add_ps(zero, _mm512_permutex2var_ps(e1, hi, o1)));
}

static AVX512 void backward_plane_avx512(const float *gy, const unsigned char *win, float *gx,
                                         int height, int width)
{
    int out_h = height / 2, out_w = width / 2;
    for (int i = 0; i < out_h; i++) {
        float *t0 = gx + (long)2 * i * width, *t1 = t0 + width;
        const float *gr = gy + (long)i * out_w;
        const unsigned char *wr = win + (long)i * out_w;
        for (int j = 0; j < out_w; j += 16)
            backward16_avx512(gr + j, wr + j, t0 + 2 * j, t1 + 2 * j, out_w - j);
        if (width & 1) t0[width - 1] = t1[width - 1] = 0.0f;
    }
    if (height & 1) zero_row(gx + (long)(height - 1) * width, width);
}

int minidl_maxpool2x2_isa(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512bw"))
        return 2;
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

#else  /* not gcc/clang on x86-64, or Windows: the portable loops only */
#define POOL_SIMD 0

int minidl_maxpool2x2_isa(void) { return 0; }

#endif

/* ---- one plane, by isa; all planes over threads ----------------------------- */

static int choose_isa(int isa, int width)
{
    int best = minidl_maxpool2x2_isa();
    isa = isa < 0 || isa > best ? best : isa;
    /* rows of 8 outputs or fewer (the lab's second pool has 7): AVX2's 8-wide step was
       10-20% faster there than a 16-wide one that leaves half its lanes idle (measured) */
    return isa == 2 && width / 2 <= 8 ? 1 : isa;
}

static void forward_plane(const float *x, float *y, unsigned char *win, int height, int width, int isa)
{
#if POOL_SIMD
    if (isa == 2) {
        if (forward_plane_avx512(x, y, win, height, width))   /* a NaN: the loops decide */
            forward_plane_scalar(x, y, win, height, width);
        return;
    }
    if (isa == 1) {
        if (forward_plane_avx2(x, y, win, height, width))
            forward_plane_scalar(x, y, win, height, width);
        return;
    }
#endif
    (void)isa;
    forward_plane_scalar(x, y, win, height, width);
}

static void backward_plane(const float *gy, const unsigned char *win, float *gx, int height, int width,
                           int isa)
{
#if POOL_SIMD
    if (isa == 2) {
        backward_plane_avx512(gy, win, gx, height, width);
        return;
    }
    if (isa == 1) {
        backward_plane_avx2(gy, win, gx, height, width);
        return;
    }
#endif
    (void)isa;
    backward_plane_scalar(gy, win, gx, height, width);
}

#if MINIDL_OPENMP
/* all planes, split over threads when there are enough pixels to be worth waking them */
static int pool_threads(int planes, int height, int width)
{
    return (long)planes * height * width < POOL_THREAD_MIN ? 1 : omp_get_max_threads();
}
#endif

void minidl_maxpool2x2_forward(const float *x, float *y, unsigned char *win,
                               int planes, int height, int width, int isa)
{
    long in_size = (long)height * width, out_size = (long)(height / 2) * (width / 2);
    int p;
    isa = choose_isa(isa, width);
#if MINIDL_OPENMP
#pragma omp parallel for num_threads(pool_threads(planes, height, width)) schedule(static)
#endif
    for (p = 0; p < planes; p++)
        forward_plane(x + p * in_size, y + p * out_size, win + p * out_size, height, width, isa);
}

void minidl_maxpool2x2_backward(const float *grad_y, const unsigned char *win, float *grad_x,
                                int planes, int height, int width, int isa)
{
    long in_size = (long)height * width, out_size = (long)(height / 2) * (width / 2);
    int p;
    isa = choose_isa(isa, width);
#if MINIDL_OPENMP
#pragma omp parallel for num_threads(pool_threads(planes, height, width)) schedule(static)
#endif
    for (p = 0; p < planes; p++)
        backward_plane(grad_y + p * out_size, win + p * out_size, grad_x + p * in_size, height, width, isa);
}
