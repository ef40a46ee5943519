/*
 * direct.c -- float32 convolutions computed directly from the padded image instead of through
 * im2col and a product: forward and backward for one input channel (a first layer on grey
 * images), the forward for several channels where that pays (a second layer on small maps).
 *
 * Why: with one input channel the im2col product has K = KH*KW + 1 = 26 rows to sum over
 * (5x5 kernels). gemm.c's kernels then spend as much time starting and storing their tiles
 * as multiplying, and im2col writes 25 shifted copies of the image first. With several
 * channels (the lab's conv2: 16 channels, 14x14) the product runs near the machine's peak,
 * but im2col's 400 shifted copies took two fifths as long again. Here the image stays put and
 * each shifted row is read straight from it.
 *
 * The math, for stride 1 and dilation 1, with xp the image padded with zeros,
 * xp[c, r, s] = x[c, r - PH, s - PW], and g = dL/dy taken as zero outside its OH x OW pixels:
 *
 *     y[f, oh, ow]      = b[f] + sum_cij w[f, c, i, j] xp[c, oh + i, ow + j]
 *     dL/dw[f, i, j]    = sum_(oh,ow) g[f, oh, ow] xp[0, oh + i, ow + j]           (C = 1)
 *     dL/db[f]          = sum_(oh,ow) g[f, oh, ow]                                 (C = 1)
 *     dL/dx[r, s]       = sum_f sum_ij w[f, 0, i, j] g[f, r + PH - i, s + PW - j]  (C = 1)
 *
 * Each sum runs along the width in 16-float vectors (AVX-512): a row of up to 64 pixels is
 * one to four vectors (NV), and every vector product above is one multiply-add of a vector
 * of pixels by one weight (broadcast). The blocks of accumulators are sized to the 32
 * registers: FB filters x R rows x NV vectors for y (8 x 2 x 1, then 16/NV x 1 x NV), 4
 * filters x 5 kernel columns for dL/dw, RB rows x NV vectors for dL/dx (RB = 16/NV). Lanes
 * past the row's end compute on zeros and are not stored. dL/dx is compiled for each kernel
 * height up to 7 (see input_block).
 *
 * dL/dw and dL/db are returned as 16 partial sums per entry (one per lane), which the
 * caller adds up with the other images' and threads'. So the sums run in another order than
 * the product's: the results agree with it to float32 rounding, not bit for bit.
 * tests/test_fast.py checks all of them against the naive loops and the im2col path on
 * awkward shapes (row widths of 1 to 4 vectors with ragged ends, kernels of 1x1 to 7x3,
 * padding wider than the kernel, filter and row counts off the block sizes).
 *
 * The code uses the compilers' 16-float vector type with an AVX-512 target attribute and
 * runs only while gemm.c's instruction set in use is AVX-512; it is compiled by gcc/clang on
 * x86-64 outside Windows, as gemm.c's kernels are. Elsewhere minidl_direct_*_ok() say no.
 */
#include "direct.h"
#include "gemm.h"                          /* minidl_sgemm_isa: the instruction set in use */

#define MAX_VECTORS 4                      /* a row of up to 4 x 16 = 64 pixels */
#define MAX_KH 7                           /* kernels up to 7 rows high */

/* With several input channels the forward beats im2col and the product where a row's vectors
   are mostly pixels, at least 7/8 of their lanes (rows of 14-16, 28-32, 42-48 or 56-64 pixels),
   and the sum runs over at most MAX_K = C KH KW terms (more, and the product's blocking for the
   cache wins): benchmarks/bench_direct.py measures both ways on 26 shapes. */
#define MAX_K 800
static int lanes_well_used(int OW) { return 8 * OW >= 7 * 16 * ((OW + 15) / 16); }

static int direct_geometry(int kh, int sh, int sw, int dh, int dw, int W, int OW)
{
#if MINIDL_DIRECT_X86
    return kh >= 1 && sh == 1 && sw == 1 && dh == 1 && dw == 1
           && W >= 1 && OW >= 1 && W <= 16 * MAX_VECTORS && OW <= 16 * MAX_VECTORS
           && minidl_sgemm_isa() == MINIDL_ISA_AVX512;
#else
    (void)kh; (void)sh; (void)sw; (void)dh; (void)dw; (void)W; (void)OW;
    return 0;
#endif
}

int minidl_direct_forward_ok(int C, int kh, int kw, int sh, int sw, int dh, int dw, int W, int OW)
{
    return C >= 1 && kw >= 1 && direct_geometry(kh, sh, sw, dh, dw, W, OW)
           && (C == 1 || (lanes_well_used(OW) && (long)C * kh * kw <= MAX_K));
}

int minidl_direct_backward_ok(int C, int kh, int sh, int sw, int dh, int dw, int W, int OW)
{
    return C == 1 && kh <= MAX_KH && direct_geometry(kh, sh, sw, dh, dw, W, OW);
}

#if MINIDL_DIRECT_X86
#include <immintrin.h>
#include <string.h>
#include "unroll.h"                         /* UNROLL_ALL: the blocks' loops unrolled by gcc and clang */
#define AVX512 __attribute__((target("avx512f,fma")))
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define LANES 16

typedef float v16f __attribute__((vector_size(64)));

AVX512 static ALWAYS_INLINE v16f load16(const float *p) { v16f v; memcpy(&v, p, sizeof v); return v; }
AVX512 static ALWAYS_INLINE void store16(float *p, v16f v) { memcpy(p, &v, sizeof v); }

/* The first n lanes of a vector (n = 16 for all of it): masked loads and stores. */
AVX512 static ALWAYS_INLINE __mmask16 first(int n) { return (__mmask16)((1u << n) - 1u); }

AVX512 static ALWAYS_INLINE v16f load_first(const float *p, int n)
{
    return (v16f)_mm512_maskz_loadu_ps(first(n), p);
}

AVX512 static ALWAYS_INLINE void store_first(float *p, v16f v, int n)
{
    _mm512_mask_storeu_ps(p, first(n), (__m512)v);
}

static int vectors(int n) { return (n + LANES - 1) / LANES; }

/* The padded image xp, one plane per channel: OH + KH - 1 rows of XW = 16 NV + KW - 1 floats,
   and MAX_ROWS - 1 rows more, so that every load is in range (see forward_block). */
#define MAX_ROWS 2                          /* output rows per block of y */
typedef struct { int rows, width; } Plane;

static Plane image_plane(int kh, int kw, int OH, int OW)
{
    Plane p = {OH + kh - 1 + MAX_ROWS - 1, LANES * vectors(OW) + kw - 1};
    return p;
}

long minidl_direct_scratch(int C, int kh, int kw, int OH, int OW)
{
    Plane xp = image_plane(kh, kw, OH, OW);
    return (long)C * xp.rows * xp.width;
}

/* xp from x (C, H, W): zeros around, x[c] at (PH, PW) of plane c. With stride 1,
   OH + KH - 1 = H + 2 PH rows and OW + KW - 1 = W + 2 PW columns: x fits whatever the padding. */
static void pad_image(const float *x, float *xp, Plane q, int C, int H, int W, int ph, int pw)
{
    const long plane = (long)q.rows * q.width;
    memset(xp, 0, (size_t)C * plane * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int r = 0; r < H; r++)
            memcpy(xp + c * plane + (long)(r + ph) * q.width + pw, x + ((long)c * H + r) * W,
                   (size_t)W * sizeof(float));
}

/* ---- forward ------------------------------------------------------------------------ */

/* y for filters f0 .. f0+nf-1 (nf <= FB) and output rows oh0 .. oh0+R-1 (those past OH are
   computed on xp's spare rows and not stored): acc[f][r][v] holds y[f, oh0 + r, 16v..]. Each
   vector of pixels loaded serves FB filters, each weight broadcast serves R rows. */
AVX512 static ALWAYS_INLINE void
forward_block(const int FB, const int R, const int NV, const float *xp, Plane q, int C,
              const float *w, const float *b, float *y, int f0, int nf, int oh0, int kh, int kw,
              int OH, int OW)
{
    const int kk = kh * kw;
    const long fstride = (long)C * kk, plane = (long)q.rows * q.width;
    const int last = OW - LANES * (NV - 1);                 /* lanes of the last vector */
    v16f acc[16][MAX_ROWS][MAX_VECTORS];
    UNROLL_ALL(16)
    for (int f = 0; f < FB; f++)
        UNROLL_ALL(2)
        for (int r = 0; r < R; r++)
            UNROLL_ALL(4)
            for (int v = 0; v < NV; v++)
                acc[f][r][v] = (v16f){0} + (f < nf && b ? b[f0 + f] : 0.0f);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < kh; i++) {
            const float *row = xp + c * plane + (long)(oh0 + i) * q.width;
            for (int j = 0; j < kw; j++) {
                v16f xv[MAX_ROWS][MAX_VECTORS];
                UNROLL_ALL(2)
                for (int r = 0; r < R; r++)
                    UNROLL_ALL(4)
                    for (int v = 0; v < NV; v++) xv[r][v] = load16(row + (long)r * q.width + j + LANES * v);
                const float *wij = w + f0 * fstride + (long)c * kk + i * kw + j;
                UNROLL_ALL(16)
                for (int f = 0; f < FB; f++) {
                    if (f >= nf) break;
                    float wf = wij[f * fstride];
                    UNROLL_ALL(2)
                    for (int r = 0; r < R; r++)
                        UNROLL_ALL(4)
                        for (int v = 0; v < NV; v++) acc[f][r][v] += wf * xv[r][v];
                }
            }
        }
    UNROLL_ALL(16)
    for (int f = 0; f < FB; f++) {
        if (f >= nf) break;
        UNROLL_ALL(2)
        for (int r = 0; r < R; r++) {
            if (oh0 + r >= OH) break;
            float *out = y + ((long)(f0 + f) * OH + oh0 + r) * OW;
            UNROLL_ALL(4)
            for (int v = 0; v < NV; v++) store_first(out + LANES * v, acc[f][r][v], v < NV - 1 ? LANES : last);
        }
    }
}

/* FB filters x R rows at a time, leaving room in the registers: FB * R * NV <= 16 accumulators
   (8 x 2 for one vector: each weight serves two rows; measured faster than 16 x 1 and 4 x 2). */
#define FORWARD(FB, R, NV)                                                                  \
    AVX512 static void forward_##NV(const float *xp, Plane q, int C, const float *w,         \
                                    const float *b, float *y, int F, int kh, int kw, int OH, \
                                    int OW)                                                 \
    {                                                                                       \
        int f0 = 0;                             /* a block's weights stay in L1 over the rows */ \
        for (; f0 + FB <= F; f0 += FB)          /* whole blocks: the count is a constant */ \
            for (int oh0 = 0; oh0 < OH; oh0 += R)                                           \
                forward_block(FB, R, NV, xp, q, C, w, b, y, f0, FB, oh0, kh, kw, OH, OW);   \
        if (f0 < F)                                                                         \
            for (int oh0 = 0; oh0 < OH; oh0 += R)                                           \
                forward_block(FB, R, NV, xp, q, C, w, b, y, f0, F - f0, oh0, kh, kw, OH, OW); \
    }
FORWARD(8, 2, 1)
FORWARD(8, 1, 2)
FORWARD(5, 1, 3)
FORWARD(4, 1, 4)
typedef void (*forward_fn)(const float *xp, Plane q, int C, const float *w, const float *b,
                           float *y, int F, int kh, int kw, int OH, int OW);
static const forward_fn FORWARD_TABLE[MAX_VECTORS] = {forward_1, forward_2, forward_3, forward_4};

void minidl_direct_forward(const float *x, const float *w, const float *b, float *y,
                           float *scratch, int C, int H, int W, int F, int kh, int kw,
                           int ph, int pw, int OH, int OW)
{
    Plane q = image_plane(kh, kw, OH, OW);
    pad_image(x, scratch, q, C, H, W, ph, pw);
    FORWARD_TABLE[vectors(OW) - 1](scratch, q, C, w, b, y, F, kh, kw, OH, OW);
}

/* ---- backward ----------------------------------------------------------------------- */

/* dw16[f, i, j0 .. j0+nj-1] += the lanes of sum_(oh, v) g[f, oh, 16v..] * xp[oh + i, j + 16v..]
   for 4 filters and up to 5 kernel columns at a time (20 accumulators); with i == 0 and
   j0 == 0 also db16[f] += the lanes of g's sum. */
#define FW 4                                /* filters per block of dL/dw */
#define JW 5                                /* kernel columns per block */

AVX512 static ALWAYS_INLINE void
weight_block(const int NV, const float *xp, Plane q, const float *g, float *dw16,
             float *db16, int f0, int nf, int i, int j0, int nj, int kh, int kw, int OH, int OW)
{
    v16f acc[FW][JW], bias[FW];
    UNROLL_ALL(4)
    for (int f = 0; f < FW; f++) {
        bias[f] = (v16f){0};
        UNROLL_ALL(5)
        for (int j = 0; j < JW; j++)
            acc[f][j] = f < nf && j < nj ? load16(dw16 + (((long)(f0 + f) * kh + i) * kw + j0 + j) * LANES)
                                         : (v16f){0};
    }
    const int with_bias = i == 0 && j0 == 0;
    const int last = OW - LANES * (NV - 1);                 /* lanes of g's last vector */
    const long plane = (long)OH * OW;
    for (int oh = 0; oh < OH; oh++) {
        const float *row = xp + (long)(oh + i) * q.width + j0;
        const float *grow = g + (long)f0 * plane + (long)oh * OW;
        UNROLL_ALL(4)
        for (int v = 0; v < NV; v++) {
            v16f gv[FW];                    /* g[f0 + f, oh, 16v ..], zero past the row's end */
            UNROLL_ALL(4)
            for (int f = 0; f < FW; f++)
                gv[f] = f < nf ? load_first(grow + f * plane + LANES * v, v < NV - 1 ? LANES : last)
                               : (v16f){0};
            if (with_bias) {
                UNROLL_ALL(4)
                for (int f = 0; f < FW; f++) bias[f] += gv[f];
            }
            UNROLL_ALL(5)
            for (int j = 0; j < JW; j++)
                if (j < nj) {       /* a guard, not a break: with a break clang cannot unroll it */
                    v16f xv = load16(row + j + LANES * v);
                    UNROLL_ALL(4)
                    for (int f = 0; f < FW; f++) acc[f][j] += gv[f] * xv;
                }
        }
    }
    UNROLL_ALL(4)
    for (int f = 0; f < FW; f++) {
        if (f >= nf) break;
        UNROLL_ALL(5)
        for (int j = 0; j < JW; j++)
            if (j < nj) store16(dw16 + (((long)(f0 + f) * kh + i) * kw + j0 + j) * LANES, acc[f][j]);
        if (with_bias) store16(db16 + (long)(f0 + f) * LANES, load16(db16 + (long)(f0 + f) * LANES) + bias[f]);
    }
}

/* The lanes l of a vector with lo <= l < hi (clipped to 0 .. 16). */
AVX512 static ALWAYS_INLINE __mmask16 lanes_between(int lo, int hi)
{
    lo = lo < 0 ? 0 : lo;
    hi = hi > LANES ? LANES : hi;
    return hi <= lo ? 0 : (__mmask16)(first(hi) & ~first(lo));
}

/* gx rows r0 .. r0+nr-1 (nr <= RB): acc[r][v] holds dL/dx[r0 + r, 16v..]. Output row r reads
   g's row r0 + r + PH - i for kernel row i, shifted by kernel column j; with t = r + KH-1 - i,
   each row t of g loaded (NV vectors) serves every output row it touches, and with the kernel
   height KH a constant the pairs (r, i) are known at compile time: the accumulators stay in
   registers. g's pixels outside the image are zeros: masked off along the width; rows outside
   skipped with gcc, loaded with an all-zero mask with clang (EDGE: only blocks near the top or
   bottom check). Rows past nr are computed but not stored. */
AVX512 static ALWAYS_INLINE void
input_block(const int NV, const int KH, const int RB, const int EDGE, const float *g, const float *w,
            float *gx, int r0, int nr, int F, int kw, int ph, int pw, int W, int OH, int OW)
{
    v16f acc[16][MAX_VECTORS];
    UNROLL_ALL(16)
    for (int r = 0; r < RB; r++)
        UNROLL_ALL(4)
        for (int v = 0; v < NV; v++) acc[r][v] = (v16f){0};
    const long plane = (long)OH * OW;
    const int last = W - LANES * (NV - 1);
    const int top = r0 + ph - (KH - 1);                     /* g's row for t = 0 */
    for (int j = 0; j < kw; j++) {
        __mmask16 m[MAX_VECTORS];           /* lanes whose column 16v + l + PW - j is in g */
        UNROLL_ALL(4)
        for (int v = 0; v < NV; v++) m[v] = lanes_between(j - pw - LANES * v, OW + j - pw - LANES * v);
        for (int f = 0; f < F; f++) {
            v16f wv[8];                             /* w[f, i, j] for each kernel row i */
            UNROLL_ALL(8)
            for (int i = 0; i < KH; i++) wv[i] = (v16f){0} + w[((long)f * KH + i) * kw + j];
            const float *grow = g + f * plane + (long)top * OW + pw - j;   /* g's row top + t */
            UNROLL_ALL(32)
            for (int t = 0; t < RB + KH - 1; t++, grow += OW) {
                const int outside = EDGE && (top + t < 0 || top + t >= OH);   /* a row of zeros */
#if defined(__clang__)  /* no branch: with one, clang kept acc[][] on the stack (not caught
                           by tests/test_build.py; benchmarks/README.md, finding 10). The row
                           is loaded with an all-zero mask: the same sums for finite weights */
                const __mmask16 rows = outside ? 0 : 0xFFFF;
#else                   /* gcc keeps acc[][] in registers either way: skip the row */
                if (outside) continue;
                const __mmask16 rows = 0xFFFF;
#endif
                v16f row[MAX_VECTORS];
                UNROLL_ALL(4)
                for (int v = 0; v < NV; v++)
                    row[v] = (v16f)_mm512_maskz_loadu_ps(m[v] & rows, grow + LANES * v);
                UNROLL_ALL(8)
                for (int i = 0; i < KH; i++) {
                    const int r = t - (KH - 1) + i;
                    if (r < 0 || r >= RB) continue;
                    UNROLL_ALL(4)
                    for (int v = 0; v < NV; v++) acc[r][v] += wv[i] * row[v];
                }
            }
        }
    }
    UNROLL_ALL(16)
    for (int r = 0; r < RB; r++) {
        if (r >= nr) break;
        UNROLL_ALL(4)
        for (int v = 0; v < NV; v++)
            store_first(gx + (long)(r0 + r) * W + LANES * v, acc[r][v], v < NV - 1 ? LANES : last);
    }
}

/* dL/dx for kernel height KH and NV vectors per row, RB = 16/NV rows at a time. */
typedef void (*inputs_fn)(const float *g, const float *w, float *gx, int F, int kw, int ph,
                          int pw, int H, int W, int OH, int OW);
#define INPUTS(KH, NV, RB)                                                                  \
    AVX512 static void inputs_##KH##_##NV(const float *g, const float *w, float *gx, int F,  \
                                          int kw, int ph, int pw, int H, int W, int OH, int OW) \
    {                                                                                       \
        for (int r0 = 0; r0 < H; r0 += RB) {                                                \
            int nr = H - r0 < RB ? H - r0 : RB, top = r0 + ph - (KH - 1);                   \
            if (top >= 0 && top + RB + KH - 2 < OH)     /* every row of g it reads exists */ \
                input_block(NV, KH, RB, 0, g, w, gx, r0, nr, F, kw, ph, pw, W, OH, OW);     \
            else                                                                            \
                input_block(NV, KH, RB, 1, g, w, gx, r0, nr, F, kw, ph, pw, W, OH, OW);     \
        }                                                                                   \
    }
#define INPUTS_KH(KH) INPUTS(KH, 1, 16) INPUTS(KH, 2, 8) INPUTS(KH, 3, 5) INPUTS(KH, 4, 4)
INPUTS_KH(1) INPUTS_KH(2) INPUTS_KH(3) INPUTS_KH(4) INPUTS_KH(5) INPUTS_KH(6) INPUTS_KH(7)
#define ROW(KH) {inputs_##KH##_1, inputs_##KH##_2, inputs_##KH##_3, inputs_##KH##_4}
static const inputs_fn INPUTS_TABLE[MAX_KH][MAX_VECTORS] = {ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6), ROW(7)};

#define WEIGHTS(NV)                                                                         \
    AVX512 static void weights_##NV(const float *xp, Plane q, const float *g, float *dw16,  \
                                    float *db16, int F, int kh, int kw, int OH, int OW)     \
    {                                                                                       \
        for (int f0 = 0; f0 < F; f0 += FW)                                                  \
            for (int i = 0; i < kh; i++)                                                    \
                for (int j0 = 0; j0 < kw; j0 += JW) {                                       \
                    int nf = F - f0 < FW ? F - f0 : FW, nj = kw - j0 < JW ? kw - j0 : JW;   \
                    if (nf == FW && nj == JW)   /* whole blocks: the counts are constants */ \
                        weight_block(NV, xp, q, g, dw16, db16, f0, FW, i, j0, JW, kh, kw, OH, OW); \
                    else                                                                    \
                        weight_block(NV, xp, q, g, dw16, db16, f0, nf, i, j0, nj, kh, kw, OH, OW); \
                }                                                                           \
    }
WEIGHTS(1)
WEIGHTS(2)
WEIGHTS(3)
WEIGHTS(4)
typedef void (*weights_fn)(const float *xp, Plane q, const float *g, float *dw16, float *db16,
                           int F, int kh, int kw, int OH, int OW);
static const weights_fn WEIGHTS_TABLE[MAX_VECTORS] = {weights_1, weights_2, weights_3, weights_4};

void minidl_direct_backward(const float *x, const float *g, const float *w, float *dw16,
                            float *db16, float *gx, float *scratch, int H, int W, int F,
                            int kh, int kw, int ph, int pw, int OH, int OW)
{
    Plane q = image_plane(kh, kw, OH, OW);
    float *xp = scratch;
    pad_image(x, xp, q, 1, H, W, ph, pw);
    WEIGHTS_TABLE[vectors(OW) - 1](xp, q, g, dw16, db16, F, kh, kw, OH, OW);
    if (gx)
        INPUTS_TABLE[kh - 1][vectors(W) - 1](g, w, gx, F, kw, ph, pw, H, W, OH, OW);
}
#endif  /* MINIDL_DIRECT_X86 */
