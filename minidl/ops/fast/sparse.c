/*
 * sparse.c -- a convolution's weight and bias gradients for one float32 image, visiting
 * only the non-zero entries of dL/dy.
 *
 * Why: in the labs' networks a convolution is followed by a max pool and a ReLU. The pool's
 * backward puts each window's gradient on its one winner and zeros elsewhere (3 zeros in 4
 * for a 2x2 pool), and the ReLU zeros it wherever the pooled value was negative: 80-90% of
 * the dL/dy a convolution receives is exactly zero. The dense backward (im2col, then
 * dW += G X^T) multiplies all of it.
 *
 * The math, for stride 1 and dilation 1, with xp the input padded with zeros
 * (xp[c, oh + i, ow + j] = x[c, oh + i - PH, ow + j - PW]) and p = (oh, ow):
 *
 *     dL/dW[f, c, i, j] = sum_p g[f, p] xp[c, oh + i, ow + j]        dL/db[f] = sum_p g[f, p]
 *
 * A term with g[f, p] = 0 adds nothing, so for each filter f the code lists its non-zero
 * (p, g) and, for each kernel row (c, i), sums g times the 8 floats xp[c, oh + i, ow : ow + 8]
 * into an 8-lane accumulator: lanes j < KW are dL/dW[f, c, i, j]; lanes j >= KW read the
 * next pixels and are dropped by the caller (dw8 keeps 8 lanes per kernel row). The work is
 * proportional to the number of non-zero entries times C*KH.
 *
 * The sums run over p in the same order as the dense product's, skipping zeros; the results
 * agree with it to float32 rounding. tests/test_fast.py checks them against the dense fast
 * path and the plain NumPy convolution on awkward shapes and densities.
 *
 * The input gradient stays dense (W^T G, then col2im): a sparse version (the kernel rows of
 * each non-zero g added into a padded dL/dx) was measured no faster on the lab network.
 *
 * The code uses the compilers' 8-float vector type with an AVX2+FMA target attribute and
 * runs only if the CPU has both; it is compiled by gcc/clang on x86-64 outside Windows,
 * as gemm.c's kernels are. Elsewhere minidl_conv_sparse_ok() says no and the dense
 * product runs.
 */
#include "sparse.h"

long minidl_count_nonzero(const float *g, long n)
{
    long count = 0;
    for (long i = 0; i < n; i++) count += g[i] != 0.0f;
    return count;
}

#if MINIDL_SPARSE_X86
#include <string.h>
#define AVX2 __attribute__((target("avx2,fma")))

typedef float v8f __attribute__((vector_size(32)));

AVX2 static inline v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
AVX2 static inline void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }

static int use_avx2(void)
{
    static int answer = -1;                 /* a benign race: every thread computes the same */
    if (answer < 0) {
        __builtin_cpu_init();
        answer = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return answer;
}

/* The padded planes: the rows the convolution reads (OH + KH - 1), and OW + 7 columns, so
   that an 8-lane access at any output column ow < OW stays inside its row. */
static inline int padded_rows(int kh, int OH) { return OH + kh - 1; }
static inline int padded_cols(int OW) { return OW + 7; }

long minidl_conv_sparse_scratch(int C, int kh, int OH, int OW)
{
    long plane = (long)padded_rows(kh, OH) * padded_cols(OW), P = (long)OH * OW;
    /* xp, then the list of one filter's non-zero entries (P values, P offsets), then the
       offset of each kernel row in xp; the ints are stored in float-sized cells */
    return C * plane + 2 * P + (long)C * kh;
}

/* dw8[f] += sum over the non-zero g[f, p] of g times the 8 floats of each kernel row at p */
AVX2 static void weight_grad(const float *xp, const float *g, float *dw8, float *db,
                             int *off, float *val, const int *roff, int F, int R, int P,
                             int OH, int OW, int Wp)
{
    for (int f = 0; f < F; f++) {
        const float *gf = g + (long)f * P;
        int n = 0;
        for (int oh = 0, p = 0; oh < OH; oh++)  /* the non-zero entries, listed without a branch */
            for (int ow = 0; ow < OW; ow++, p++) {
                float v = gf[p];
                off[n] = oh * Wp + ow;
                val[n] = v;
                n += v != 0.0f;
            }
        float b4[4] = {0.0f, 0.0f, 0.0f, 0.0f};  /* the bias gradient: four running sums */
        for (int t = 0; t < n; t++) b4[t & 3] += val[t];
        db[f] += (b4[0] + b4[1]) + (b4[2] + b4[3]);
        if (n == 0) continue;
        float *out = dw8 + (long)f * R * 8;
        int r = 0;
        for (; r + 8 <= R; r += 8) {          /* eight kernel rows at a time, in registers */
            long o0 = roff[r], o1 = roff[r + 1], o2 = roff[r + 2], o3 = roff[r + 3],
                 o4 = roff[r + 4], o5 = roff[r + 5], o6 = roff[r + 6], o7 = roff[r + 7];
            v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
            for (int t = 0; t < n; t++) {
                const float *b = xp + off[t];     /* the pixel under the kernel's corner */
                float v = val[t];
                a0 += v * load8(b + o0); a1 += v * load8(b + o1);
                a2 += v * load8(b + o2); a3 += v * load8(b + o3);
                a4 += v * load8(b + o4); a5 += v * load8(b + o5);
                a6 += v * load8(b + o6); a7 += v * load8(b + o7);
            }
            float *d = out + (long)r * 8;
            store8(d, load8(d) + a0); store8(d + 8, load8(d + 8) + a1);
            store8(d + 16, load8(d + 16) + a2); store8(d + 24, load8(d + 24) + a3);
            store8(d + 32, load8(d + 32) + a4); store8(d + 40, load8(d + 40) + a5);
            store8(d + 48, load8(d + 48) + a6); store8(d + 56, load8(d + 56) + a7);
        }
        for (; r + 4 <= R; r += 4) {          /* then four */
            const float *b0 = xp + roff[r], *b1 = xp + roff[r + 1], *b2 = xp + roff[r + 2],
                        *b3 = xp + roff[r + 3];
            v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int t = 0; t < n; t++) {
                int o = off[t];
                float v = val[t];
                a0 += v * load8(b0 + o); a1 += v * load8(b1 + o);
                a2 += v * load8(b2 + o); a3 += v * load8(b3 + o);
            }
            float *d = out + (long)r * 8;
            store8(d, load8(d) + a0); store8(d + 8, load8(d + 8) + a1);
            store8(d + 16, load8(d + 16) + a2); store8(d + 24, load8(d + 24) + a3);
        }
        for (; r < R; r++) {                  /* then one: four sums over every fourth entry */
            const float *b = xp + roff[r];
            v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            int t = 0;
            for (; t + 4 <= n; t += 4) {
                a0 += val[t] * load8(b + off[t]);
                a1 += val[t + 1] * load8(b + off[t + 1]);
                a2 += val[t + 2] * load8(b + off[t + 2]);
                a3 += val[t + 3] * load8(b + off[t + 3]);
            }
            for (; t < n; t++) a0 += val[t] * load8(b + off[t]);
            store8(out + (long)r * 8, load8(out + (long)r * 8) + ((a0 + a1) + (a2 + a3)));
        }
    }
}

void minidl_conv_weight_grad_sparse(const float *x, const float *g, float *dw8, float *db,
                                    float *scratch, int C, int H, int W, int F, int kh, int ph,
                                    int pw, int OH, int OW)
{
    int Hp = padded_rows(kh, OH), Wp = padded_cols(OW), R = C * kh, P = OH * OW;
    long plane = (long)Hp * Wp;
    float *xp = scratch, *val = scratch + C * plane;
    int *off = (int *)(val + P), *roff = off + P;
    for (int r = 0; r < R; r++) roff[r] = (int)((r / kh) * plane + (r % kh) * Wp);

    /* xp: the rows and columns the convolution reads, zero outside the image */
    memset(xp, 0, sizeof(float) * (size_t)(C * plane));
    int s0 = pw < Wp ? pw : Wp, s1 = pw + W < Wp ? pw + W : Wp;   /* columns [s0, s1) of xp */
    for (int c = 0; c < C; c++)
        for (int r = 0; r < Hp; r++) {
            int h = r - ph;
            if (h >= 0 && h < H && s1 > s0)
                memcpy(xp + c * plane + (long)r * Wp + s0, x + ((long)c * H + h) * W + (s0 - pw),
                       sizeof(float) * (size_t)(s1 - s0));
        }
    weight_grad(xp, g, dw8, db, off, val, roff, F, R, P, OH, OW, Wp);
}
#endif

int minidl_conv_sparse_ok(int sh, int sw, int dh, int dw, int kw)
{
#if MINIDL_SPARSE_X86
    return sh == 1 && sw == 1 && dh == 1 && dw == 1 && kw >= 1 && kw <= MINIDL_SPARSE_LANES
           && use_avx2();
#else
    (void)sh; (void)sw; (void)dh; (void)dw; (void)kw;
    return 0;
#endif
}
