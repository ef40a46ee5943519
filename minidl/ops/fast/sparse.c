/*
 * sparse.c -- a convolution's backward for one float32 image, visiting only the non-zero
 * entries of dL/dy.
 *
 * Why: in the labs' networks a convolution is followed by a max pool and a ReLU. The pool's
 * backward puts each window's gradient on its one winner and zeros elsewhere (3 zeros in 4
 * for a 2x2 pool), and the ReLU zeros it wherever the pooled value was negative: 80-90% of
 * the dL/dy a convolution receives is exactly zero. The dense backward (im2col, dW += G X^T,
 * dX = col2im(W^T G)) multiplies all of it.
 *
 * The math, for stride 1 and dilation 1, with xp the input padded with zeros
 * (xp[c, oh + i, ow + j] = x[c, oh + i - PH, ow + j - PW]) and p = (oh, ow):
 *
 *     dL/dW[f, c, i, j]              = sum_p g[f, p] xp[c, oh + i, ow + j]
 *     dL/db[f]                       = sum_p g[f, p]
 *     dL/dxp[c, oh + i, ow + j]     += sum_f g[f, p] W[f, c, i, j]        for every p
 *
 * A term with g[f, p] = 0 adds nothing, so only the non-zero ones are visited. The image and
 * its gradient are held channels-last, 8 channels to a 32-byte cell: xq[cb, r, s, l] =
 * xp[8 cb + l, r, s], and the kernel likewise, wq[f, cb, i, j, l] = W[f, 8 cb + l, i, j]. A
 * "unit" u = (cb, i, j) is one such cell of the kernel. Then each term above is one 8-lane
 * multiply-add on whole cells:
 *
 *   - dW: for each filter f, the list of its non-zero (p, g); for each unit u, the sum over
 *     the list of g times xq's cell under u at p, in a register (12 units at a time).
 *   - dX: for each position p, the list of its non-zero (f, g); for each unit u, the sum
 *     over the list of g times wq[f, u] in a register, then added to dxq's cell under u.
 *
 * Both lists come from one scan of g (list_nonzero), 8 entries at a time: a compare flags
 * the non-zero ones and a permute packs them together, with no branch; the by-position list
 * is then sorted out of the by-filter one by counting. (A scan that went entry by entry
 * took as long as the multiply-adds.)
 *
 * The work is proportional to the number of non-zero entries times the units (C/8 * KH*KW).
 * Channels past C are zero in wq and xq; with fewer than 8 channels lanes are wasted, and
 * the caller keeps such layers (a first layer on grey images) on the dense path.
 *
 * The sums run in another order than the dense products': the results agree with them to
 * float32 rounding, not bit for bit. tests/test_fast.py checks them against the naive loops
 * on awkward shapes (every block size, several channel blocks, padding wider than the
 * kernel), densities, and batches mixing sparse and dense images.
 *
 * The code uses the compilers' 8-float vector type with an AVX2+FMA target attribute and
 * runs only if the CPU has both; it is compiled by gcc/clang on x86-64 outside Windows,
 * as gemm.c's kernels are. Elsewhere minidl_conv_sparse_ok() says no and the dense
 * backward runs.
 */
#include "sparse.h"
#include "gemm.h"                          /* minidl_sgemm_cpu_isas: the CPU check */

long minidl_count_nonzero(const float *g, long n)
{
    long count = 0;
    for (long i = 0; i < n; i++) count += g[i] != 0.0f;
    return count;
}

#if MINIDL_SPARSE_X86
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#define AVX2 __attribute__((target("avx2,fma")))
#define LANES 8                         /* channels per vector: one 8-float AVX2 register */

typedef float v8f __attribute__((vector_size(32)));

AVX2 static inline v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
AVX2 static inline void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }

/* The geometry of the channels-last planes: the rows and columns the convolution reads. */
typedef struct {
    int F, kh, kw, OH, OW;
    int Cb, Hp, Wp, U, P;                   /* channel blocks, padded size, units, positions */
} Geometry;

static Geometry geometry(int C, int F, int kh, int kw, int OH, int OW)
{
    Geometry q = {F, kh, kw, OH, OW, 0, 0, 0, 0, 0};
    q.Cb = (C + LANES - 1) / LANES;
    q.Hp = OH + kh - 1;
    q.Wp = OW + kw - 1;
    q.U = q.Cb * kh * kw;
    q.P = OH * OW;
    return q;
}

static long plane_floats(const Geometry *q) { return (long)q->Cb * q->Hp * q->Wp * LANES; }

long minidl_conv_sparse_scratch(int C, int F, int kh, int kw, int OH, int OW)
{
    Geometry q = geometry(C, F, kh, kw, OH, OW);
    /* 32 bytes of room to align, xq and dxq; then, in float-sized cells: the list by filter
       (position, offset, value: 3 per entry, and 8 cells of room past the positions and
       the values) and its F + 1 starts; the list by position
       (value per entry) and its P + 1 starts and P cursors; the P position offsets and
       the U unit offsets; the row pointers of the list by position (two cells each, after
       two cells to align them) */
    long entries = (long)q.P * F;            /* at most every entry of g is non-zero */
    return 8 + 2 * plane_floats(&q) + 3 * entries + 2 * LANES + (F + 1) + entries + (q.P + 1)
           + q.P + q.P + q.U + 2 + 2 * entries;
}

/* Unit u = (cb, i, j) of a kernel: channels 8cb..8cb+7 of tap (i, j); its offset in a plane. */
static void unit_offsets(const Geometry *q, int *uoff)
{
    for (int cb = 0, u = 0; cb < q->Cb; cb++)
        for (int i = 0; i < q->kh; i++)
            for (int j = 0; j < q->kw; j++, u++)
                uoff[u] = (int)((((long)cb * q->Hp + i) * q->Wp + j) * LANES);
}

/* The sums of a block of B units, B in {12, 4, 2, 1}: as many 8-lane accumulators
   held in registers (spelled out: an array of them went through the stack). */
#define ZERO12 v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, \
                   a7 = {0}, a8 = {0}, a9 = {0}, a10 = {0}, a11 = {0}
#define ZERO4 v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}
#define ZERO2 v8f a0 = {0}, a1 = {0}
#define ZERO1 v8f a0 = {0}
/* FMA12(v, P): a_k += v * (8 floats at P(k)) for each k of the block */
#define FMA1(v, P) a0 += v * load8(P(0))
#define FMA2(v, P) FMA1(v, P); a1 += v * load8(P(1))
#define FMA4(v, P) FMA2(v, P); a2 += v * load8(P(2)); a3 += v * load8(P(3))
#define FMA12(v, P) FMA4(v, P); a4 += v * load8(P(4)); a5 += v * load8(P(5)); a6 += v * load8(P(6)); \
                    a7 += v * load8(P(7)); a8 += v * load8(P(8)); a9 += v * load8(P(9));          \
                    a10 += v * load8(P(10)); a11 += v * load8(P(11))
/* ADD12(D): the 8 floats at D(k) += a_k */
#define ADD1(D) store8(D(0), load8(D(0)) + a0)
#define ADD2(D) ADD1(D); store8(D(1), load8(D(1)) + a1)
#define ADD4(D) ADD2(D); store8(D(2), load8(D(2)) + a2); store8(D(3), load8(D(3)) + a3)
#define ADD12(D) ADD4(D); store8(D(4), load8(D(4)) + a4); store8(D(5), load8(D(5)) + a5);    \
                 store8(D(6), load8(D(6)) + a6); store8(D(7), load8(D(7)) + a7);             \
                 store8(D(8), load8(D(8)) + a8); store8(D(9), load8(D(9)) + a9);             \
                 store8(D(10), load8(D(10)) + a10); store8(D(11), load8(D(11)) + a11)

/* dwq[f, u] += sum over the listed positions (off, val) of g times the 8 floats of unit u */
#define WEIGHT_BLOCK(B)                                                                      \
AVX2 static inline void weight_block_##B(const float *xq, const int *uoff, const int *off,   \
                                          const float *val, int n, float *out)              \
{                                                                                            \
    ZERO##B;                                                                                 \
    for (int t = 0; t < n; t++) {                                                            \
        const float *base = xq + off[t];                                                     \
        float v = val[t];                                                                    \
        FMA##B(v, X_AT);                                                                     \
    }                                                                                        \
    ADD##B(OUT_AT);                                                                          \
}
#define X_AT(k) (base + uoff[k])
#define OUT_AT(k) (out + (k) * LANES)
WEIGHT_BLOCK(12)
WEIGHT_BLOCK(4)
WEIGHT_BLOCK(2)
WEIGHT_BLOCK(1)
#undef X_AT
#undef OUT_AT

/* at the listed position (base), dxq's unit u += sum over the listed filters of g * wq[f, u] */
#define INPUT_BLOCK(B)                                                                       \
AVX2 static inline void input_block_##B(const float *const *rows, const float *val, int n,   \
                                         const int *uoff, int u0, float *base)               \
{                                                                                            \
    ZERO##B;                                                                                 \
    for (int t = 0; t < n; t++) {                                                            \
        const float *w = rows[t] + (long)u0 * LANES;                                         \
        float v = val[t];                                                                    \
        FMA##B(v, W_AT);                                                                     \
    }                                                                                        \
    ADD##B(DX_AT);                                                                           \
}
#define W_AT(k) (w + (k) * LANES)
#define DX_AT(k) (base + uoff[u0 + (k)])
INPUT_BLOCK(12)
INPUT_BLOCK(4)
INPUT_BLOCK(2)
INPUT_BLOCK(1)
#undef W_AT
#undef DX_AT

/* compress_index[m]: the lanes whose bit is set in m, in order, then zeros. Permuted by it,
   a vector's lanes flagged in m move to its front. Filled once, when the module loads. */
static uint8_t compress_index[256][LANES];

__attribute__((constructor)) static void fill_compress_index(void)
{
    for (int m = 0; m < 256; m++)
        for (int lane = 0, k = 0; lane < LANES; lane++)
            if (m >> lane & 1) compress_index[m][k++] = (uint8_t)lane;
}

/* The non-zero entries of g, listed by one scan, in the order the sums take them:
     by filter: for filter f, entries fstart[f] .. fstart[f+1] - 1 of fpos (the position p),
       foff (p's offset in a plane) and fval (g[f, p]), p ascending;
     by position: for p, entries start[p] .. start[p+1] - 1 of rows (the filter's row of wq)
       and pval (g[f, p]), f ascending.
   The scan takes 8 entries at a time without a branch: a compare flags the non-zero ones
   (NaN included), a permute packs them and their positions to the front, and all 8 lanes
   are stored at the end of the list, which grows by the number flagged (fpos and fval have
   8 cells of room past the last entry). */
__attribute__((target("avx2,fma,popcnt")))
static void list_nonzero(const Geometry *q, const float *g, const float *wq, const int *poff,
                         int *fpos, int *foff, float *fval, int *fstart,
                         const float **rows, float *pval, int *start, int *cursor)
{
    const __m256 zero = _mm256_setzero_ps();
    int n = 0;
    for (int f = 0; f < q->F; f++) {
        const float *gf = g + (long)f * q->P;
        fstart[f] = n;
        int p = 0;
        for (; p + LANES <= q->P; p += LANES) {
            __m256 v = _mm256_loadu_ps(gf + p);
            int m = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ));
            __m256i lanes = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)compress_index[m]));
            _mm256_storeu_ps(fval + n, _mm256_permutevar8x32_ps(v, lanes));
            _mm256_storeu_si256((__m256i *)(fpos + n), _mm256_add_epi32(lanes, _mm256_set1_epi32(p)));
            n += __builtin_popcount((unsigned)m);
        }
        for (; p < q->P; p++)
            if (gf[p] != 0.0f) {
                fpos[n] = p;
                fval[n++] = gf[p];
            }
    }
    fstart[q->F] = n;
    for (int t = 0; t < n; t++) foff[t] = poff[fpos[t]];
    /* by position: count each position's entries, start = the running count, then deal the
       entries out filter by filter */
    memset(start, 0, sizeof(int) * (size_t)(q->P + 1));
    for (int t = 0; t < n; t++) start[fpos[t] + 1]++;
    for (int p = 0; p < q->P; p++) start[p + 1] += start[p];
    memcpy(cursor, start, sizeof(int) * (size_t)q->P);
    for (int f = 0; f < q->F; f++) {
        const float *row = wq + (long)f * q->U * LANES;
        for (int t = fstart[f]; t < fstart[f + 1]; t++) {
            int k = cursor[fpos[t]]++;
            rows[k] = row;
            pval[k] = fval[t];
        }
    }
}

AVX2 static void weight_grad(const Geometry *q, const float *xq, const int *fstart, const int *foff,
                             const float *fval, float *dwq, float *db, const int *uoff)
{
    for (int f = 0; f < q->F; f++) {
        const int *off = foff + fstart[f];
        const float *val = fval + fstart[f];
        int n = fstart[f + 1] - fstart[f];
        float b4[4] = {0.0f, 0.0f, 0.0f, 0.0f};     /* the bias gradient: four running sums */
        for (int t = 0; t < n; t++) b4[t & 3] += val[t];
        db[f] += (b4[0] + b4[1]) + (b4[2] + b4[3]);
        if (n == 0) continue;
        float *out = dwq + (long)f * q->U * LANES;
        int u = 0;
        for (; u + 12 <= q->U; u += 12) weight_block_12(xq, uoff + u, off, val, n, out + u * LANES);
        for (; u + 4 <= q->U; u += 4) weight_block_4(xq, uoff + u, off, val, n, out + u * LANES);
        for (; u + 2 <= q->U; u += 2) weight_block_2(xq, uoff + u, off, val, n, out + u * LANES);
        for (; u < q->U; u++) weight_block_1(xq, uoff + u, off, val, n, out + u * LANES);
    }
}

/* dxq, one block of units at a time over every position: the block's part of wq (F rows of
   up to 12 cells) stays in the L1 cache; position by position it spilled to L2. */
AVX2 static void input_grad(const Geometry *q, const float *const *rows, const float *val,
                            const int *start, float *dxq, const int *uoff)
{
    int u = 0;
#define OVER_POSITIONS(B)                                                                   \
    for (int oh = 0, p = 0; oh < q->OH; oh++)                                              \
        for (int ow = 0; ow < q->OW; ow++, p++) {                                          \
            int n = start[p + 1] - start[p];                                               \
            if (n) input_block_##B(rows + start[p], val + start[p], n, uoff, u,             \
                                   dxq + ((long)oh * q->Wp + ow) * LANES);                 \
        }
    for (; u + 12 <= q->U; u += 12) OVER_POSITIONS(12)
    for (; u + 4 <= q->U; u += 4) OVER_POSITIONS(4)
    for (; u + 2 <= q->U; u += 2) OVER_POSITIONS(2)
    for (; u < q->U; u++) OVER_POSITIONS(1)
#undef OVER_POSITIONS
}

void minidl_conv_backward_sparse(const float *x, const float *g, const float *wq, float *dwq,
                                 float *db, float *gx, float *scratch, int C, int H, int W, int F,
                                 int kh, int kw, int ph, int pw, int OH, int OW)
{
    Geometry q = geometry(C, F, kh, kw, OH, OW);
    long plane = plane_floats(&q), entries = (long)q.P * F;
    float *xq = (float *)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);   /* 32-byte aligned */
    float *dxq = xq + plane, *fval = dxq + plane, *pval = fval + entries + LANES;
    int *fpos = (int *)(pval + entries), *foff = fpos + entries + LANES, *fstart = foff + entries;
    int *start = fstart + F + 1, *cursor = start + q.P + 1, *poff = cursor + q.P, *uoff = poff + q.P;
    const float **rows = (const float **)(((uintptr_t)(uoff + q.U) + 7) & ~(uintptr_t)7);
    unit_offsets(&q, uoff);
    for (int oh = 0, p = 0; oh < q.OH; oh++)         /* position p = (oh, ow): its offset in a plane */
        for (int ow = 0; ow < q.OW; ow++, p++) poff[p] = (oh * q.Wp + ow) * LANES;

    /* xq (Cb, Hp, Wp, 8): x channels-last, padded with zeros, 8 channels to a cell. With
       stride 1, Hp = H + 2 PH and Wp = W + 2 PW: every pixel lies inside. */
    memset(xq, 0, sizeof(float) * (size_t)plane);
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++) {
            const float *src = x + ((long)c * H + h) * W;
            float *dst = xq + (((long)(c / LANES) * q.Hp + h + ph) * q.Wp + pw) * LANES + c % LANES;
            for (int w = 0; w < W; w++) dst[(long)w * LANES] = src[w];
        }
    list_nonzero(&q, g, wq, poff, fpos, foff, fval, fstart, rows, pval, start, cursor);
    weight_grad(&q, xq, fstart, foff, fval, dwq, db, uoff);
    if (gx == NULL) return;

    memset(dxq, 0, sizeof(float) * (size_t)plane);
    input_grad(&q, rows, pval, start, dxq, uoff);
    /* dL/dx is dxq without its padding, channels first */
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++) {
            const float *src = dxq + (((long)(c / LANES) * q.Hp + h + ph) * q.Wp + pw) * LANES + c % LANES;
            float *dst = gx + ((long)c * H + h) * W;
            for (int w = 0; w < W; w++) dst[w] = src[(long)w * LANES];
        }
}
#endif

int minidl_conv_sparse_ok(int sh, int sw, int dh, int dw)
{
#if MINIDL_SPARSE_X86
    return sh == 1 && sw == 1 && dh == 1 && dw == 1 && (minidl_sgemm_cpu_isas() >> MINIDL_ISA_AVX2 & 1);
#else
    (void)sh; (void)sw; (void)dh; (void)dw;
    return 0;
#endif
}
