/*
 * winograd.c -- a 5x5 convolution's forward with fewer multiplications: Winograd's minimal
 * filtering F(4x4, 5x5), for float32, stride 1 and dilation 1.
 *
 * Why: the lab's conv2 (16 -> 32 channels, 14x14, 5x5) spends its forward in 25 multiply-adds
 * per output and input channel, and direct.c already runs them near the machine's peak. Fewer
 * of them is the only way left to make it faster.
 *
 * The math, in one dimension first. Four outputs of a 5-tap filter g over 8 inputs d,
 * y[i] = sum_k g[k] d[i + k] for i < 4, take 20 multiplications when summed directly. Toom and
 * Cook's construction needs 8: the product of a polynomial of degree 3 with one of degree 4
 * has 8 coefficients, which its values at 8 points fix, so both factors are evaluated at the
 * points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity, multiplied value by value, and the product
 * is interpolated back. A filter sliding over an input is that computation transposed, with
 * the same 8 multiplications. As matrices,
 *
 *     y = A^T [ (G g) * (B^T d) ]        A^T (4 x 8), G (8 x 5), B^T (8 x 8); * entrywise
 *
 * and in two dimensions, for a 4x4 output tile, its 8x8 input d and the 5x5 kernel g,
 *
 *     Y = A^T [ (G g G^T) * (B^T d B) ] A
 *
 * 64 multiplications instead of 16 * 25 = 400. Summed over the input channels, the products
 * become 64 small matrix products, one per entry (a, b) of the 8x8 transformed tile:
 *
 *     M[ab][f, tile] = sum_c V[ab][c, f] U[ab][c, tile]      V = G w G^T, U = B^T d B
 *
 * followed by Y = A^T M A for each filter and tile. The matrices below are the exact
 * rationals of that construction for those points; a wrong entry fails the tests, which
 * check the kernel against the direct sums (tests/test_fast.py, the `winograd` tests).
 *
 * The layout: 8 tiles of one image at a time, one per lane of an 8-float vector. The 8x8
 * input of each tile is read row by row (masked loads give the zeros of the padding and past
 * the edges) and transposed, so that the transforms are plain multiply-adds of whole vectors;
 * V is shared by all tiles and computed once per call; a block of 12 filters x 8 tiles sums
 * over the channels in registers, and the block's 64 products stay in the core's cache for the
 * output transform, which writes each tile's 4x4 block (cut at the output's edges) into a
 * stage in y's layout, copied into y a row at a time.
 *
 * The price is rounding: A^T and B^T have entries up to 8 and 5.25, and the terms of the sum
 * cancel more than the direct sums' do. On the lab's conv2 the result differs from float64 by
 * about 3e-6 of the output's largest entry, where the direct sums in float32 differ by about
 * 2e-7. Training does not notice (see benchmarks/README.md); the float64 gradient checks do not
 * run this code. A tile whose input holds an infinity or a NaN would spread it to all 16
 * outputs; such a tile is computed by the direct sums instead.
 *
 * The code uses AVX2 and FMA intrinsics with a target attribute and runs only if the CPU has
 * both, compiled by gcc/clang on x86-64 outside Windows (as sparse.c). Elsewhere
 * minidl_winograd_ok() says no.
 */
#include "winograd.h"
#include "gemm.h"                          /* minidl_sgemm_cpu_isas: the CPU check */

int minidl_winograd_ok(int kh, int kw, int sh, int sw, int dh, int dw)
{
#if MINIDL_WINOGRAD_X86
    return kh == 5 && kw == 5 && sh == 1 && sw == 1 && dh == 1 && dw == 1
           && (minidl_sgemm_cpu_isas() >> MINIDL_ISA_AVX2 & 1);
#else
    (void)kh; (void)kw; (void)sh; (void)sw; (void)dh; (void)dw;
    return 0;
#endif
}

#if MINIDL_WINOGRAD_X86
#include <immintrin.h>
#include <string.h>
#include "unroll.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define LANES 8          /* tiles per vector */
#define TILE 8           /* the input tile's side: 4 outputs + 5 taps - 1 */
#define OUT 4            /* the output tile's side */
#define TAPS 5
#define FB 12            /* filters per block of the products: 12 accumulators + 1 input */

typedef float v8f __attribute__((vector_size(32)));

/* For the points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity:

     A^T = [ 1  1  1  1  1  1    1    0 ]
           [ 0  1 -1  2 -2  1/2 -1/2  0 ]
           [ 0  1  1  4  4  1/4  1/4  0 ]
           [ 0  1 -1  8 -8  1/8 -1/8  1 ]

     B^T = [ -1  0    5.25  0     -5.25  0     1  0 ]
           [  0  1    1    -4.25  -4.25  1     1  0 ]
           [  0 -1    1     4.25  -4.25 -1     1  0 ]
           [  0  1/2  1/4  -5/2   -5/4   2     1  0 ]
           [  0 -1/2  1/4   5/2   -5/4  -2     1  0 ]
           [  0  2    4    -5/2   -5     1/2   1  0 ]
           [  0 -2    4     5/2   -5    -1/2   1  0 ]
           [  0 -1    0     5.25   0    -5.25  0  1 ]

   and G (below), whose row for a finite point p is p^k / prod_{q != p} (p - q), k = 0..4,
   and (0 0 0 0 1) for infinity. The rows of A^T and B^T for the points +p and -p are an even
   part plus or minus an odd part; at_apply and bt_apply compute them so, with 16 and 24
   operations instead of their 26 and 44 non-zero entries. G's zero entries are skipped at
   compile time (its loops are unrolled and read the table as constants). */
#define R9 ((float)(2.0 / 9))
#define R90 ((float)(1.0 / 90))
#define R45 ((float)(1.0 / 45))
static const float G[TILE][TAPS] = {
    {-1, 0, 0, 0, 0},
    {-R9, -R9, -R9, -R9, -R9},
    {-R9, R9, -R9, R9, -R9},
    {R90, 2 * R90, 4 * R90, 8 * R90, 16 * R90},
    {R90, -2 * R90, 4 * R90, -8 * R90, 16 * R90},
    {32 * R45, 16 * R45, 8 * R45, 4 * R45, 2 * R45},
    {32 * R45, -16 * R45, 8 * R45, -4 * R45, 2 * R45},
    {0, 0, 0, 0, 1},
};

AVX2 static inline v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
AVX2 static inline void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }

AVX2 static inline void copy_floats(float *dst, const float *src, long n)
{
    long j = 0;
    for (; j + LANES <= n; j += LANES) store8(dst + j, load8(src + j));
    for (; j < n; j++) dst[j] = src[j];
}

/* out = G in, for 5 vectors in (G's zero entries skipped: the loops are unrolled) */
AVX2 static inline void g_apply(const v8f in[TAPS], v8f out[TILE])
{
    UNROLL_ALL(8)
    for (int a = 0; a < TILE; a++) {
        v8f s = {0};
        UNROLL_ALL(5)
        for (int k = 0; k < TAPS; k++)
            if (G[a][k] != 0.0f) s += G[a][k] * in[k];
        out[a] = s;
    }
}

/* out = B^T d, for 8 vectors d */
AVX2 static inline void bt_apply(const v8f d[TILE], v8f out[TILE])
{
    v8f e1 = d[2] - 4.25f * d[4] + d[6], o1 = d[1] - 4.25f * d[3] + d[5];
    v8f e2 = 0.25f * d[2] - 1.25f * d[4] + d[6], o2 = 0.5f * d[1] - 2.5f * d[3] + 2.0f * d[5];
    v8f e3 = 4.0f * d[2] - 5.0f * d[4] + d[6], o3 = 2.0f * d[1] - 2.5f * d[3] + 0.5f * d[5];
    out[0] = 5.25f * (d[2] - d[4]) + d[6] - d[0];
    out[1] = e1 + o1;
    out[2] = e1 - o1;
    out[3] = e2 + o2;
    out[4] = e2 - o2;
    out[5] = e3 + o3;
    out[6] = e3 - o3;
    out[7] = 5.25f * (d[3] - d[5]) + d[7] - d[1];
}

/* out = A^T m, for 8 vectors m */
AVX2 static inline void at_apply(const v8f m[TILE], v8f out[OUT])
{
    v8f s1 = m[1] + m[2], d1 = m[1] - m[2], s2 = m[3] + m[4], d2 = m[3] - m[4];
    v8f s3 = m[5] + m[6], d3 = m[5] - m[6];
    out[0] = m[0] + s1 + s2 + s3;
    out[1] = d1 + 2.0f * d2 + 0.5f * d3;
    out[2] = s1 + 4.0f * s2 + 0.25f * s3;
    out[3] = d1 + 8.0f * d2 + 0.125f * d3 + m[7];
}

/* r[j] lane t <- r[t] lane j: the 8x8 transpose */
AVX2 static inline void transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* 1 if a lane of v is NaN */
AVX2 static inline int any_nan(v8f v) { return _mm256_movemask_ps(_mm256_cmp_ps((__m256)v, (__m256)v, _CMP_UNORD_Q)) != 0; }

long minidl_winograd_scratch(int C, int OW)
{
    /* 8 floats of room to align; U (64, C, 8); the input's rows (8, 8, 8); the products of a
       block (64, FB, 8); the output's rows (8, 4, 8); the stage: the output rows 8 tiles
       span, at most 4 (ceil(8 / TW) + 1) rows of OW */
    int tw = (OW + OUT - 1) / OUT;
    return 8 + (long)TILE * TILE * C * LANES + TILE * TILE * LANES + (long)TILE * TILE * FB * LANES
           + TILE * OUT * LANES + (long)OUT * ((LANES + tw - 1) / tw + 1) * OW;
}

AVX2 int minidl_winograd_filters(const float *wt, float *v, int C, int Fp, int c)
{
    v8f check = {0};                                  /* x - x: NaN where x is not finite */
    for (int f = 0; f < Fp; f += LANES) {
        v8f g[TAPS][TAPS], gt[TILE][TAPS];            /* g[k][l], then (G g)[a][l] */
        for (int k = 0; k < TAPS; k++)
            for (int l = 0; l < TAPS; l++)
                g[k][l] = load8(wt + ((long)(c * TAPS + k) * TAPS + l) * Fp + f);
        for (int l = 0; l < TAPS; l++) {
            v8f col[TAPS], out[TILE];
            for (int k = 0; k < TAPS; k++) col[k] = g[k][l];
            g_apply(col, out);
            for (int a = 0; a < TILE; a++) gt[a][l] = out[a];
        }
        for (int a = 0; a < TILE; a++) {
            v8f out[TILE];
            g_apply(gt[a], out);                       /* (G g G^T)[a][b] = sum_l gt[a][l] G[b][l] */
            for (int b = 0; b < TILE; b++) {
                store8(v + ((long)(a * TILE + b) * C + c) * Fp + f, out[b]);
                check += out[b] - out[b];
            }
        }
    }
    return any_nan(check);
}

/* Where the tiles of a call are (up to 8 consecutive tiles of image img): lane t's top-left
   corner of its 8x8 input in x (may lie in the padding) and of its 4x4 output in y, which of
   their columns are inside, and the rows r0 .. r1 - 1 of y's planes that the tiles cover. */
typedef struct {
    int count, r0, r1;
    long img;
    int iy[LANES], ix[LANES];        /* input corner: 4 ty - ph, 4 tx - pw */
    int oy[LANES], ox[LANES];        /* output corner: 4 ty, 4 tx */
    __m256i in_cols[LANES];          /* ix + j inside 0..W-1, j < 8 */
    int inside[LANES];               /* all 8 are */
    int out_cols[LANES];             /* how many of ox .. ox + 3 are inside 0..OW-1 */
} Lanes;

AVX2 static void locate(Lanes *q, long n, int first, int count, int W, int ph, int pw, int OH, int OW)
{
    int tw = (OW + OUT - 1) / OUT;
    q->count = count;
    q->img = n;
    for (int t = 0; t < count; t++) {
        q->oy[t] = (first + t) / tw * OUT;
        q->ox[t] = (first + t) % tw * OUT;
        q->iy[t] = q->oy[t] - ph;
        q->ix[t] = q->ox[t] - pw;
        int in[LANES];
        for (int j = 0; j < LANES; j++) in[j] = (q->ix[t] + j >= 0 && q->ix[t] + j < W) ? -1 : 0;
        q->in_cols[t] = _mm256_loadu_si256((const __m256i *)in);
        q->inside[t] = q->ix[t] >= 0 && q->ix[t] + LANES <= W;
        q->out_cols[t] = OW - q->ox[t] < OUT ? OW - q->ox[t] : OUT;
    }
    q->r0 = first / tw * OUT;
    q->r1 = (first + count - 1) / tw * OUT + OUT < OH ? (first + count - 1) / tw * OUT + OUT : OH;
}

/* U[ab][c][t] = (B^T d B)[a][b] of lane t's 8x8 input d in channel c, for every c.
   Returns 1 if an input holds an infinity or a NaN. */
AVX2 static int input_transform(const float *x, const Lanes *q, float *U, float *rows, int C, int H, int W)
{
    v8f check = {0};
    for (int c = 0; c < C; c++) {
        /* rows[i][b][t] = (d B)[i][b]: each row i of the 8 inputs, transposed to lanes, times B */
        for (int i = 0; i < TILE; i++) {
            __m256 r[LANES];
            for (int t = 0; t < LANES; t++) {
                int y = t < q->count ? q->iy[t] + i : -1;
                if (y < 0 || y >= H) {
                    r[t] = _mm256_setzero_ps();
                } else {
                    /* columns ix..ix+7 of row y; the mask keeps the loads inside the row */
                    const float *row = x + ((q->img * C + c) * H + y) * (long)W;
                    r[t] = q->inside[t] ? _mm256_loadu_ps(row + q->ix[t])
                                        : _mm256_maskload_ps(row + q->ix[t], q->in_cols[t]);
                }
            }
            transpose8(r);                             /* r[j] lane t = d_t[i][j] */
            v8f d[TILE], e[TILE];
            for (int j = 0; j < TILE; j++) {
                d[j] = (v8f)r[j];
                check += d[j];
            }
            bt_apply(d, e);                            /* e[b] = sum_j BT[b][j] d[i][j] */
            for (int b = 0; b < TILE; b++) store8(rows + (i * TILE + b) * LANES, e[b]);
        }
        /* U[a][b] = sum_i BT[a][i] rows[i][b] */
        for (int b = 0; b < TILE; b++) {
            v8f col[TILE], u[TILE];
            for (int i = 0; i < TILE; i++) col[i] = load8(rows + (i * TILE + b) * LANES);
            bt_apply(col, u);
            for (int a = 0; a < TILE; a++) store8(U + ((long)(a * TILE + b) * C + c) * LANES, u[a]);
        }
    }
    return any_nan(check - check);                   /* a sum of all inputs: not finite if one is */
}

/* m[k][t] = sum_c v[c][k] u[c][t] for the nb (<= FB) filters of a block, one entry ab of the
   tile: u is U[ab] (C, 8), v is V[ab] at the block's first filter (rows Fp apart). The nb
   accumulators stay in registers (nb is a constant once inlined; see unroll.h). */
AVX2 static inline void block_product(const float *u, const float *v, long Fp, float *m, int C, const int nb)
{
    v8f acc[FB];
    UNROLL_ALL(12)
    for (int k = 0; k < nb; k++) acc[k] = (v8f){0};
    for (int c = 0; c < C; c++) {
        v8f x = load8(u + (long)c * LANES);
        const float *w = v + c * Fp;
        UNROLL_ALL(12)
        for (int k = 0; k < nb; k++) acc[k] += x * (v8f)_mm256_broadcast_ss(w + k);
    }
    UNROLL_ALL(12)
    for (int k = 0; k < nb; k++) store8(m + k * LANES, acc[k]);
}

AVX2 static void block_products(const float *U, const float *v, float *m, int C, int Fp, int f0, int nb)
{
    for (int ab = 0; ab < TILE * TILE; ab++) {
        const float *u = U + (long)ab * C * LANES, *vab = v + (long)ab * C * Fp + f0;
        float *mab = m + ab * nb * LANES;
        switch (nb) {
        case 12: block_product(u, vab, Fp, mab, C, 12); break;
        case 8: block_product(u, vab, Fp, mab, C, 8); break;
        case 4: block_product(u, vab, Fp, mab, C, 4); break;
        case 2: block_product(u, vab, Fp, mab, C, 2); break;
        default: block_product(u, vab, Fp, mab, C, 1); break;
        }
    }
}

/* y's 4x4 blocks of filter f for the 8 lanes: A^T m A + b from the block's products
   m[ab][k] (k the filter's place in its block of nb); rows: scratch (8, 4, 8). The blocks go
   to a stage in y's layout first (rows r0 .. r1 - 1 of the plane), which is then copied into y
   row by row: storing the tiles' rows straight into y, 16 bytes here and there, took a third
   of the kernel's time on a Zen 4 (benchmarks/README.md, finding 15). */
AVX2 static void output_transform(const float *m, int nb, int k, float bias, const Lanes *q, float *y,
                                  float *rows, float *stage, int f, int F, int OH, int OW)
{
    /* rows[a][j] = (m A)[a][j] = sum_b m[a][b] AT[j][b] */
    for (int a = 0; a < TILE; a++) {
        v8f row[TILE], out[OUT];
        for (int b = 0; b < TILE; b++) row[b] = load8(m + ((a * TILE + b) * nb + k) * LANES);
        at_apply(row, out);
        for (int j = 0; j < OUT; j++) store8(rows + (a * OUT + j) * LANES, out[j]);
    }
    /* Y[i][j] = sum_a AT[i][a] rows[a][j] + b */
    v8f Y[OUT][OUT];
    for (int j = 0; j < OUT; j++) {
        v8f col[TILE], out[OUT];
        for (int a = 0; a < TILE; a++) col[a] = load8(rows + (a * OUT + j) * LANES);
        at_apply(col, out);
        for (int i = 0; i < OUT; i++) Y[i][j] = out[i] + bias;
    }
    /* two output rows at a time, back from lanes to tiles: r[t] = lane t's rows i, i+1 */
    for (int i = 0; i < OUT; i += 2) {
        __m256 r[LANES];
        for (int j = 0; j < OUT; j++) {
            r[j] = (__m256)Y[i][j];
            r[OUT + j] = (__m256)Y[i + 1][j];
        }
        transpose8(r);
        for (int t = 0; t < q->count; t++) {
            float *out = stage + (q->oy[t] - q->r0 + i) * (long)OW + q->ox[t];
            int rows_in = OH - q->oy[t] - i;            /* rows i and i + 1 of the tile inside y */
            if (rows_in <= 0)
                continue;
            if (q->out_cols[t] == OUT) {
                _mm_storeu_ps(out, _mm256_castps256_ps128(r[t]));
                if (rows_in > 1) _mm_storeu_ps(out + OW, _mm256_extractf128_ps(r[t], 1));
            } else {                                    /* (masked stores are slow on AMD) */
                float both[LANES];
                _mm256_storeu_ps(both, r[t]);
                for (int j = 0; j < q->out_cols[t]; j++) out[j] = both[j];
                for (int j = 0; rows_in > 1 && j < q->out_cols[t]; j++) out[OW + j] = both[OUT + j];
            }
        }
    }
    /* the stage's rows, into y's plane: row by row, or in one piece if the tiles cover whole rows */
    float *plane = y + (q->img * F + f) * (long)OH * OW;
    int th_first = q->oy[0] / OUT, th_last = q->oy[q->count - 1] / OUT;
    if (q->ox[0] == 0 && q->ox[q->count - 1] + OUT >= OW) {
        copy_floats(plane + (long)q->r0 * OW, stage, (long)(q->r1 - q->r0) * OW);
    } else {
        for (int r = q->r0; r < q->r1; r++) {
            int c0 = r / OUT == th_first ? q->ox[0] : 0;
            int c1 = r / OUT == th_last ? q->ox[q->count - 1] + q->out_cols[q->count - 1] : OW;
            copy_floats(plane + (long)r * OW + c0, stage + (long)(r - q->r0) * OW + c0, c1 - c0);
        }
    }
}

/* The plain sums, for tiles whose input is not finite */
static void direct_tiles(const float *x, const float *w, const float *b, float *y, const Lanes *q,
                         int C, int H, int W, int F, int OH, int OW)
{
    for (int t = 0; t < q->count; t++)
        for (int f = 0; f < F; f++)
            for (int i = 0; i < OUT && q->oy[t] + i < OH; i++)
                for (int j = 0; j < OUT && q->ox[t] + j < OW; j++) {
                    float s = 0.0f;
                    for (int c = 0; c < C; c++)
                        for (int ki = 0; ki < TAPS; ki++)
                            for (int kj = 0; kj < TAPS; kj++) {
                                int r = q->iy[t] + i + ki, col = q->ix[t] + j + kj;
                                if (r >= 0 && r < H && col >= 0 && col < W)
                                    s += w[((f * C + c) * TAPS + ki) * TAPS + kj]
                                         * x[((q->img * C + c) * H + r) * (long)W + col];
                            }
                    y[((q->img * F + f) * OH + q->oy[t] + i) * (long)OW + q->ox[t] + j] = s + (b ? b[f] : 0.0f);
                }
}

AVX2 void minidl_winograd_tiles(const float *x, const float *w, const float *v, const float *b, float *y,
                                float *scratch, long n, int first, int count, int C, int H, int W, int F,
                                int Fp, int ph, int pw, int OH, int OW)
{
    float *U = scratch + ((-(long)(size_t)scratch / 4) & 7);       /* 32-byte aligned */
    float *in_rows = U + (long)TILE * TILE * C * LANES;
    float *m = in_rows + TILE * TILE * LANES;
    float *out_rows = m + TILE * TILE * FB * LANES;
    float *stage = out_rows + TILE * OUT * LANES;
    Lanes q;
    locate(&q, n, first, count, W, ph, pw, OH, OW);
    if (input_transform(x, &q, U, in_rows, C, H, W)) {
        direct_tiles(x, w, b, y, &q, C, H, W, F, OH, OW);
        return;
    }
    for (int f0 = 0; f0 < F; ) {
        int left = F - f0, nb = left >= 12 ? 12 : left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        block_products(U, v, m, C, Fp, f0, nb);
        for (int k = 0; k < nb; k++)
            output_transform(m, nb, k, b ? b[f0 + k] : 0.0f, &q, y, out_rows, stage, f0 + k, F, OH, OW);
        f0 += nb;
    }
}
#endif
