/*
 * gemm.c -- minidl's single-precision matrix product (Goto / BLIS structure),
 * with AVX-512 and AVX2+FMA micro-kernels.
 *
 * The fast path of minidl.ops.matmul for float32; np.matmul is its oracle and
 * the fallback (float64, CPUs with neither AVX-512 nor AVX2+FMA, other compilers).
 *
 *   C[M x N] = alpha * A[M x K] * B[K x N] + beta * C
 *
 * Each operand is a base pointer plus a row stride and a column stride (in
 * elements), so transposed views (X.T in numpy) need no copy:
 *   A(i,k) = A[i*rsa + k*csa]
 *   B(k,j) = B[k*rsb + j*csb]
 *   C(i,j) = C[i*rsc + j]            (C must have unit column stride)
 * If beta == 0, C is only written, never read (it may hold NaN / garbage).
 *
 * Algorithm (Goto & van de Geijn 2008; Van Zee & van de Geijn, BLIS 2015):
 *
 *   for jc in N step NC:
 *     for pc in K step KC:
 *       pack B[pc:+KC, jc:+NC] into NR-wide micro-panels    (KC x NC block, L2/L3)
 *       for ic in M step MC:
 *         pack A[ic:+MC, pc:+KC] into MR-tall micro-panels  (MC x KC block, L2)
 *         for jr in NC step NR:                             (B micro-panel, L1)
 *           for ir in MC step MR:
 *             micro-kernel: C[MR x NR] (+)= A panel * B panel (in registers)
 *
 * Packing makes both operands contiguous in exactly the order the kernel reads
 * them and pads ragged edges with zeros, so the kernel has a single code path.
 * Packing costs a full read + write of the operand, and for the skinny shapes
 * of a small CNN (one operand used only once or twice) that copy is a large
 * fraction of the run time, so two shortcuts read an operand in place:
 *   - "direct B": B row-major and M <= MC  -> the kernel loads B rows directly;
 *   - "direct A": A row-major and N <= 4*NR -> the kernel broadcasts from A rows
 *     (each A block is then read once per NR panel of B, at most 4 times, the
 *     later times from the cache: cheaper than packing it when N is that small).
 *
 * Micro-kernels, one table per instruction set (ISA); each product picks the
 * kernel of the ISA in use that wastes least on padding (choose_kernel):
 *   AVX-512 (32 zmm registers):
 *     6 x 32 : 12 accumulators; per k: 2 B loads + 6 broadcasts for 12 FMAs.
 *    16 x 16 : 16 accumulators; per k: 1 B load + 16 broadcasts for 16 FMAs.
 *              Slower on big problems, but pads far less when N <= 16.
 *   (An early, pack-everything version also tried 14x32, 12x32, 8x32, 8x48,
 *    6x64 and 4x64: none was better than 6x32 across these shapes; 8x32 tied on
 *    the square ones.  Two 512-bit FMA pipes x ~4 cycles latency need only ~8
 *    independent accumulators, and a small MR pads less for M = 16, 25, 32, 50.)
 *   AVX2 + FMA (16 ymm registers; CPUs without AVX-512):
 *     6 x 16 : 12 accumulators; per k: 2 B loads + 6 broadcasts for 12 FMAs.
 *     4 x 24 : 12 accumulators; per k: 3 B loads + 4 broadcasts; no padding
 *              for M = 16 or 32.
 *   (8x8, 8 accumulators, was slower than both on every lab shape, M = 16 too;
 *    3x32 needs 17 registers and spills: 30-50% slower.)
 * The packing routines exist once per ISA too (masks: __mmask16 / vectors);
 * the blocking, threading and shortcuts below are shared.  The ISA in use is
 * the best the CPU runs unless minidl_sgemm_use_isa() chose a lower one.
 *
 * Threading (OpenMP): C is cut into one rectangle per thread -- along N if the
 * NR panels split evenly, else along M -- and each thread runs the sequential
 * algorithm with its own pack buffers.  When neither splits well but K is long
 * (e.g. 25 x 16 x 39200), K is split and the partial products are summed.
 *
 * Built into minidl.ops.fast._fast by setup.py (plain -O3, plus the OpenMP flag
 * when the compiler has OpenMP; without it threads.h makes T = 1 below and the
 * sequential path runs). No -march flag is needed: the AVX-512 and AVX2
 * functions carry target attributes, and minidl_sgemm_cpu_isas() checks the
 * CPU at run time; Python calls minidl_sgemm() only when an ISA is in use. Only
 * gcc and clang on x86-64 compile that code (the #if below; not on Windows):
 * with MSVC, or on ARM (aarch64, Apple silicon), only the portable loop and the
 * ISA functions are compiled, and they report no ISA.
 */
#include "gemm.h"

/* Plain reference loop: CPUs without AVX2 / AVX-512, other compilers, or if a buffer
   allocation fails. (Python never calls minidl_sgemm then: it uses np.matmul.) */
static void sgemm_ref(int M, int N, int K, float alpha, const float *A, long rsa, long csa,
                      const float *B, long rsb, long csb, float beta, float *C, long rsc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++) s += A[i * rsa + k * csa] * B[k * rsb + j * csb];
            C[i * rsc + j] = alpha * s + (beta == 0.0f ? 0.0f : beta * C[i * rsc + j]);
        }
}


/* Not on Windows, whatever the compiler: memory from aligned_alloc() below must be
   released with free(), which the Windows C runtime does not allow. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_WIN32)

#include <immintrin.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include "threads.h"   /* <omp.h> if OpenMP is on, else one-thread stand-ins */
#include "unroll.h"    /* UNROLL_ALL, UNROLL: the kernels' loops unrolled by gcc and clang alike */
#ifdef __linux__
#include <sys/mman.h>
#endif

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* ---- cache blocking --------------------------------------------------------
 * Tuned on Zen 5 (48 KiB L1d, 1 MiB L2 per core, 32 MiB L3 shared). On the lab
 * network's shapes results were flat (within the +-5..10% noise) for KC in
 * 128..512 and MC in 48..528; NC = 512..1024 beat 3072 by ~10% on 2048^3
 * single-threaded (with 2 threads each thread only sees N/2 anyway). */
enum {
    BLK_KC = 256,    /* B micro-panel KC*NR*4 = 32 KiB  -> L1 */
    BLK_MC = 264,    /* A block MC*KC*4      = 264 KiB -> L2 */
    BLK_NC = 1024,   /* B block KC*NC*4      = 1 MiB   -> L2/L3 */
};
enum { B_AHEAD = 8 };  /* rows of an unpacked B fetched ahead (4, 8, 16: no difference seen) */

/* ---- helpers ------------------------------------------------------------- */

/* Per-thread pack buffer, grown on demand and kept between calls (OpenMP
   reuses its threads, so steady-state calls do not allocate or page-fault).
   Large buffers are mmap'ed fresh, 2 MiB aligned, with MADV_HUGEPAGE: with
   THP in "madvise" mode and 4 KiB pages, the 2048^3 single-thread run time
   varied by ~25% depending on what glibc had handed out before (TLB misses). */
static __thread float *tls_buf = NULL;
static __thread size_t tls_cap = 0;            /* floats */
#ifdef __linux__
static __thread void *tls_map = NULL;
static __thread size_t tls_map_len = 0;
#endif

static float *get_buffer(size_t nfloats)
{
    if (nfloats <= tls_cap) return tls_buf;
    size_t bytes = (nfloats * sizeof(float) + 63) / 64 * 64;
#ifdef __linux__
    if (tls_map) munmap(tls_map, tls_map_len); else free(tls_buf);
    tls_map = NULL;
    const size_t HUGE = (size_t)1 << 21;
    if (bytes >= HUGE) {
        size_t len = (bytes + HUGE - 1) / HUGE * HUGE + HUGE;   /* room to align */
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            tls_map = p;
            tls_map_len = len;
            tls_buf = (float *)(((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
#ifdef MADV_HUGEPAGE
            madvise(tls_buf, len - HUGE, MADV_HUGEPAGE);
#endif
            tls_cap = nfloats;
            return tls_buf;
        }
    }
#else
    free(tls_buf);
#endif
    tls_buf = aligned_alloc(64, bytes);
    tls_cap = tls_buf ? nfloats : 0;
    return tls_buf;
}

/* Mask selecting the first n of 16 lanes (n may be <= 0 or >= 16). */
static inline __mmask16 mask_n(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* In-register 16x16 transpose: afterwards r[j] lane i = old r[i] lane j. */
AVX512 static ALWAYS_INLINE void transpose16(__m512 r[16])
{
    __m512 t[16];
    /* 1. interleave pairs of rows (32-bit elements) */
    for (int i = 0; i < 16; i += 2) {
        t[i]     = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* 2. interleave 64-bit pairs: r[4g+c], 128-bit lane L = rows 4g..4g+3 of column 4L+c */
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]),     b = _mm512_castps_pd(t[i + 2]);
        __m512d c = _mm512_castps_pd(t[i + 1]), d = _mm512_castps_pd(t[i + 3]);
        r[i]     = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    /* 3+4. gather the four 128-bit lanes of each column from the four row groups */
    for (int i = 0; i < 4; i++) {
        t[i]      = _mm512_shuffle_f32x4(r[i],     r[i + 4],  0x88);  /* lanes 0,2 | 0,2 */
        t[i + 4]  = _mm512_shuffle_f32x4(r[i],     r[i + 4],  0xDD);  /* lanes 1,3 | 1,3 */
        t[i + 8]  = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i]      = _mm512_shuffle_f32x4(t[i],     t[i + 8],  0x88);
        r[i + 8]  = _mm512_shuffle_f32x4(t[i],     t[i + 8],  0xDD);
        r[i + 4]  = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

/* ---- packing --------------------------------------------------------------
 * A micro-panel of width W (= MR for A, NR for B) is stored "k-major": for each
 * k, the W values the kernel needs at that step, contiguous:
 *     dst[k*W + p] = src(p, k)   for p < np,      0 for np <= p < W.
 * Source element (p, k) is src[p*sp + k*sk]  (p = row of A / column of B).
 */
/* General strides (neither p nor k contiguous in the source): one float at a time. */
static void pack_panel_strided(int W, int np, int kc, const float *src, long sp, long sk, float *dst)
{
    for (int k = 0; k < kc; k++)
        for (int p = 0; p < W; p++)
            dst[(long)k * W + p] = p < np ? src[p * sp + k * sk] : 0.0f;
}

AVX512 static void pack_panel_512(int W, int np, int kc, const float *src, long sp, long sk,
                              float *dst)
{
    if (sp == 1) {
        /* the W values for one k are contiguous in the source: masked copies */
        for (int k = 0; k < kc; k++) {
            const float *s = src + k * sk;
            float *d = dst + (long)k * W;
            for (int p = 0; p < W; p += 16)
                _mm512_mask_storeu_ps(d + p, mask_n(W - p),
                                      _mm512_maskz_loadu_ps(mask_n(np - p), s + p));
        }
    } else if (sk == 1) {
        /* each source row is contiguous along k: transpose 16x16 tiles */
        for (int p0 = 0; p0 < W; p0 += 16) {
            int rows = np - p0;                         /* valid rows in this group */
            int width = W - p0 < 16 ? W - p0 : 16;      /* panel lanes to write */
            int k = 0;
            for (; k + 16 <= kc; k += 16) {
                __m512 r[16];
                for (int i = 0; i < 16; i++)
                    r[i] = i < rows ? _mm512_loadu_ps(src + (p0 + i) * sp + k)
                                    : _mm512_setzero_ps();
                transpose16(r);
                for (int i = 0; i < 16; i++)
                    _mm512_mask_storeu_ps(dst + (long)(k + i) * W + p0, mask_n(width), r[i]);
            }
            for (; k < kc; k++)                         /* k tail */
                for (int i = 0; i < width; i++)
                    dst[(long)k * W + p0 + i] = i < rows ? src[(p0 + i) * sp + k] : 0.0f;
        }
    } else {
        pack_panel_strided(W, np, kc, src, sp, sk, dst);
    }
}

/* Pack a kc x nc block of B as ceil(nc/NR) micro-panels of kc x NR. */
AVX512 static void pack_B_512(int NR, int kc, int nc, const float *B, long rsb, long csb, float *Bp)
{
    if (csb == 1) {
        /* Row-major B.  Panel by panel would read 128-byte pieces of kc different
           rows (bad for the prefetchers); a whole row at a time would write to
           addresses kc*NR*4 bytes apart (cache-set conflicts).  Middle ground:
           groups of PG panels, so rows are read in 1 KiB runs.  (~20% on 2048^3.) */
        enum { PG = 8 };
        long panel = (long)kc * NR;                     /* floats per micro-panel */
        for (int g = 0; g < nc; g += PG * NR) {
            int gend = nc - g < PG * NR ? nc : g + PG * NR;
            for (int k = 0; k < kc; k++) {
                const float *s = B + k * rsb;
                float *d = Bp + (g / NR) * panel + (long)k * NR;
                for (int j0 = g; j0 < gend; j0 += NR, d += panel)
                    for (int j = 0; j < NR; j += 16)    /* lanes past nc: zero */
                        _mm512_store_ps(d + j, _mm512_maskz_loadu_ps(mask_n(nc - j0 - j),
                                                                     s + j0 + j));
            }
        }
        return;
    }
    for (int j = 0; j < nc; j += NR) {
        int nr = nc - j < NR ? nc - j : NR;
        pack_panel_512(NR, nr, kc, B + j * csb, csb, rsb, Bp + (long)j * kc);
    }
}

/* ---- micro-kernel -----------------------------------------------------------
 * acc[MR x NR] = sum_k A(:,k) B(k,:), then C[0:mr, 0:nr] = alpha*acc + beta*C.
 *   A(i,k) = Ap[i*lda + k*astep]   packed: lda = 1, astep = MR
 *                                  in place (row-major A): lda = rsa, astep = 1
 *   B(k,:) = Bp[k*ldb + 0..NR-1]   packed: ldb = NR; in place: ldb = rsb
 * MR and NV = NR/16 are compile-time constants in every caller; with the loops
 * fully unrolled (UNROLL_ALL, unroll.h: by gcc and clang alike), acc[][] lives in MR*NV zmm
 * registers (checked in the asm).
 * Rows i >= mr and columns >= nr are computed on padding and not stored.
 */
AVX512 static ALWAYS_INLINE void
kernel_body_512(const int MR, const int NV, int kc,
            const float *restrict Ap, long lda, long astep, const float *restrict Bp, long ldb,
            float *C, long rsc, int mr, int nr, float alpha, float beta)
{
    __m512 acc[16][4];                  /* only [MR][NV] is used */
    UNROLL_ALL(16)
    for (int i = 0; i < MR; i++)
        UNROLL_ALL(4)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();

    /* C is written at the end: start fetching its lines now */
    UNROLL_ALL(16)
    for (int i = 0; i < MR; i++)
        if (i < mr) {
            _mm_prefetch((const char *)(C + i * rsc), _MM_HINT_T0);
            _mm_prefetch((const char *)(C + i * rsc + 16 * NV - 1), _MM_HINT_T0);
        }

    UNROLL(4)
    for (int k = 0; k < kc; k++) {
        __m512 b[4];
        if (ldb > 16 * NV) {
            /* "direct B": B's rows are read in place, ldb floats apart (FC's dL/dx = g W reads
               rows of W 6 KB apart), too far for the hardware's prefetcher; ask for the row
               B_AHEAD rows on, every 64-byte line of its 16 NV floats. fc3's dL/dx in a lab
               step: 0.47-0.55 -> 0.41-0.47 ms. (The AVX2 kernel, half as fast, is not waiting
               on memory: no gain there.) The address is computed as an integer: near B's end
               it points past the array, which a prefetch may do but C pointer arithmetic not. */
            const uintptr_t ahead = (uintptr_t)Bp + (uintptr_t)(B_AHEAD * ldb) * sizeof(float);
            UNROLL_ALL(5)
            for (int line = 0; line <= NV; line++)      /* NV + 1 lines: the row need not be aligned */
                _mm_prefetch((const char *)(ahead + (uintptr_t)(line < NV ? 64 * line : 64 * NV - 4)),
                             _MM_HINT_T0);
        }
        UNROLL_ALL(4)
        for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(Bp + 16 * v);
        UNROLL_ALL(16)
        for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(Ap[i * lda]);   /* becomes an embedded {1to16} */
            UNROLL_ALL(4)
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
        }
        Ap += astep;
        Bp += ldb;
    }

    __mmask16 m[4];
    UNROLL_ALL(4)
    for (int v = 0; v < NV; v++) m[v] = mask_n(nr - 16 * v);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    UNROLL_ALL(16)
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        float *c = C + i * rsc;
        UNROLL_ALL(4)
        for (int v = 0; v < NV; v++) {
            __m512 r = _mm512_mul_ps(va, acc[i][v]);
            if (beta != 0.0f)
                r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m[v], c + 16 * v), r);
            _mm512_mask_storeu_ps(c + 16 * v, m[v], r);
        }
    }
}

/* Concrete kernels: (MR, NR) x (A packed | A read in place).  Specialising
   the packed case on lda = 1, astep = MR gives constant broadcast offsets. */
typedef void (*kernel_fn)(int kc, const float *Ap, long lda, const float *Bp, long ldb,
                          float *C, long rsc, int mr, int nr, float alpha, float beta);

#define DEFINE_KERNELS(ATTR, NAME, BODY, MR, NR, LANES)                                      \
    ATTR static void NAME(int kc, const float *Ap, long lda, const float *Bp, long ldb,       \
                          float *C, long rsc, int mr, int nr, float alpha, float beta)        \
    {                                                                                         \
        (void)lda;                                                                            \
        BODY(MR, NR / LANES, kc, Ap, 1, MR, Bp, ldb, C, rsc, mr, nr, alpha, beta);            \
    }                                                                                         \
    ATTR static void NAME##_direct_a(int kc, const float *Ap, long lda, const float *Bp,      \
                                     long ldb, float *C, long rsc, int mr, int nr,            \
                                     float alpha, float beta)                                 \
    {                                                                                         \
        BODY(MR, NR / LANES, kc, Ap, lda, 1, Bp, ldb, C, rsc, mr, nr, alpha, beta);           \
    }
DEFINE_KERNELS(AVX512, kernel_6x32, kernel_body_512, 6, 32, 16)
DEFINE_KERNELS(AVX512, kernel_16x16, kernel_body_512, 16, 16, 16)

/* ==== AVX2 + FMA (16 ymm registers of 8 floats) ================================
 * The same packing layout and kernel contract as the AVX-512 code above, with
 * 8-lane vectors: ragged edges are read with maskload (a vector mask instead of
 * a __mmask16) and written piecewise, and tiles are transposed 8x8.  With 16
 * registers a kernel holds at most ~13 accumulators (plus the B vectors and one
 * broadcast).
 */
#define AVX2 __attribute__((target("avx2,fma")))

static const int32_t MASK8_TABLE[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* Mask selecting the first n of 8 lanes (n may be <= 0 or >= 8). */
AVX2 static ALWAYS_INLINE __m256i mask8_n(int n)
{
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_loadu_si256((const __m256i *)(MASK8_TABLE + 8 - n));
}

/* The first n (<= 8) floats at s, zeros after; reads nothing past s[n-1]. */
AVX2 static ALWAYS_INLINE __m256 load8_n(const float *s, int n)
{
    return n >= 8 ? _mm256_loadu_ps(s) : _mm256_maskload_ps(s, mask8_n(n));
}

/* Store the first n (0..8) lanes of v at d: full or 128/64/32-bit stores, no
   vmaskmovps (its stores are microcoded and slow on AMD's AVX2 cores, Zen 1-3, by
   Agner Fog's tables; on this Intel machine the two measured the same). */
AVX2 static ALWAYS_INLINE void store8_n(float *d, __m256 v, int n)
{
    if (n >= 8) { _mm256_storeu_ps(d, v); return; }
    __m128 x = _mm256_castps256_ps128(v);
    if (n >= 4) { _mm_storeu_ps(d, x); x = _mm256_extractf128_ps(v, 1); d += 4; n -= 4; }
    if (n >= 2) { _mm_storel_pi((__m64 *)d, x); x = _mm_movehl_ps(x, x); d += 2; n -= 2; }
    if (n >= 1) _mm_store_ss(d, x);
}

/* In-register 8x8 transpose: afterwards r[j] lane i = old r[i] lane j. */
AVX2 static ALWAYS_INLINE void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {            /* t[i]: rows i, i+1 interleaved */
        t[i]     = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {            /* u[i+c]: rows i..i+3 of columns c | c+4 */
        u[i]     = _mm256_shuffle_ps(t[i],     t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 1] = _mm256_shuffle_ps(t[i],     t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; c++) {               /* join the row halves of each column */
        r[c]     = _mm256_permute2f128_ps(u[c], u[c + 4], 0x20);
        r[c + 4] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x31);
    }
}

/* pack_panel_512 with 8-lane vectors (same layout: dst[k*W + p] = src(p, k), 0 for p >= np).
   An A panel is narrower than a vector (W = 4 or 6), and its rows k are W floats apart: a
   full 8-lane store of row k writes 8 - W <= W floats of row k+1 too, which the store of
   row k+1 then overwrites.  So every row but the last is one plain store, and nothing is
   written past the panel.  (W < 4 would spill past row k+1: piecewise stores then.) */
AVX2 static void pack_panel_256(int W, int np, int kc, const float *src, long sp, long sk,
                                float *dst)
{
    if (sp == 1) {
        for (int k = 0; k < kc; k++) {
            const float *s = src + k * sk;
            float *d = dst + (long)k * W;
            for (int p = 0; p < W; p += 8) {
                __m256 v = load8_n(s + p, np - p);
                if (W - p >= 8 || (W < 8 && 2 * W >= 8 && k + 1 < kc))
                    _mm256_storeu_ps(d + p, v);     /* W < 8: the spill is row k+1's, stored next */
                else
                    store8_n(d + p, v, W - p);
            }
        }
    } else if (sk == 1) {
        for (int p0 = 0; p0 < W; p0 += 8) {
            int rows = np - p0;
            int width = W - p0 < 8 ? W - p0 : 8;
            int k = 0;
            for (; k + 8 <= kc; k += 8) {
                __m256 r[8];
                for (int i = 0; i < 8; i++)
                    r[i] = i < rows ? _mm256_loadu_ps(src + (p0 + i) * sp + k)
                                    : _mm256_setzero_ps();
                transpose8(r);
                for (int i = 0; i < 8; i++) {
                    float *d = dst + (long)(k + i) * W + p0;
                    if (width == 8 || (W < 8 && 2 * W >= 8 && i < 7))
                        _mm256_storeu_ps(d, r[i]);  /* W < 8: the spill is row k+i+1's, stored next */
                    else
                        store8_n(d, r[i], width);
                }
            }
            for (; k < kc; k++)
                for (int i = 0; i < width; i++)
                    dst[(long)k * W + p0 + i] = i < rows ? src[(p0 + i) * sp + k] : 0.0f;
        }
    } else {
        pack_panel_strided(W, np, kc, src, sp, sk, dst);
    }
}

/* pack_B_512 with 8-lane vectors (NR is a multiple of 8). */
AVX2 static void pack_B_256(int NR, int kc, int nc, const float *B, long rsb, long csb, float *Bp)
{
    if (csb == 1) {
        enum { PG = 8 };
        long panel = (long)kc * NR;
        for (int g = 0; g < nc; g += PG * NR) {
            int gend = nc - g < PG * NR ? nc : g + PG * NR;
            for (int k = 0; k < kc; k++) {
                const float *s = B + k * rsb;
                float *d = Bp + (g / NR) * panel + (long)k * NR;
                for (int j0 = g; j0 < gend; j0 += NR, d += panel)
                    for (int j = 0; j < NR; j += 8)
                        _mm256_storeu_ps(d + j, load8_n(s + j0 + j, nc - j0 - j));
            }
        }
        return;
    }
    for (int j = 0; j < nc; j += NR) {
        int nr = nc - j < NR ? nc - j : NR;
        pack_panel_256(NR, nr, kc, B + j * csb, csb, rsb, Bp + (long)j * kc);
    }
}

/* kernel_body_512 with 8-lane vectors: NV = NR/8, acc[MR][NV] in MR*NV ymm registers. */
AVX2 static ALWAYS_INLINE void
kernel_body_256(const int MR, const int NV, int kc,
                const float *restrict Ap, long lda, long astep, const float *restrict Bp,
                long ldb, float *C, long rsc, int mr, int nr, float alpha, float beta)
{
    __m256 acc[12][3];                  /* only [MR][NV] is used */
    UNROLL_ALL(12)
    for (int i = 0; i < MR; i++)
        UNROLL_ALL(3)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_ps();

    UNROLL_ALL(12)
    for (int i = 0; i < MR; i++)
        if (i < mr) {
            _mm_prefetch((const char *)(C + i * rsc), _MM_HINT_T0);
            _mm_prefetch((const char *)(C + i * rsc + 8 * NV - 1), _MM_HINT_T0);
        }

    UNROLL(4)
    for (int k = 0; k < kc; k++) {
        __m256 b[3];
        UNROLL_ALL(3)
        for (int v = 0; v < NV; v++) b[v] = _mm256_loadu_ps(Bp + 8 * v);
        UNROLL_ALL(12)
        for (int i = 0; i < MR; i++) {
            __m256 a = _mm256_broadcast_ss(Ap + i * lda);
            UNROLL_ALL(3)
            for (int v = 0; v < NV; v++) acc[i][v] = _mm256_fmadd_ps(a, b[v], acc[i][v]);
        }
        Ap += astep;
        Bp += ldb;
    }

    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    UNROLL_ALL(12)
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        float *c = C + i * rsc;
        UNROLL_ALL(3)
        for (int v = 0; v < NV; v++) {
            __m256 r = _mm256_mul_ps(va, acc[i][v]);
            int n = nr - 8 * v;
            if (n >= 8) {                       /* a whole vector: plain load / store */
                if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8 * v), r);
                _mm256_storeu_ps(c + 8 * v, r);
            } else if (n > 0) {                /* the ragged last columns */
                if (beta != 0.0f) r = _mm256_fmadd_ps(vb, load8_n(c + 8 * v, n), r);
                store8_n(c + 8 * v, r, n);
            }
        }
    }
}

DEFINE_KERNELS(AVX2, kernel_avx2_6x16, kernel_body_256, 6, 16, 8)
DEFINE_KERNELS(AVX2, kernel_avx2_4x24, kernel_body_256, 4, 24, 8)

/* ==== the kernel tables, one per instruction set ================================ */
typedef void (*pack_fn)(int W, int n, int kc, const float *src, long rs, long cs, float *dst);

typedef struct {
    int mr, nr;
    kernel_fn packed_a, direct_a;
    pack_fn pack_panel, pack_b;         /* pack_panel / pack_B of the kernel's instruction set */
    double speed;                       /* relative, measured on large problems */
} kernel_t;

/* Pack an mc x kc block of A as ceil(mc/MR) micro-panels of MR x kc. */
static void pack_A(const kernel_t *kr, int mc, int kc, const float *A, long rsa, long csa, float *Ap)
{
    for (int i = 0; i < mc; i += kr->mr) {
        int mr = mc - i < kr->mr ? mc - i : kr->mr;
        kr->pack_panel(kr->mr, mr, kc, A + i * rsa, rsa, csa, Ap + (long)i * kc);
    }
}

static const kernel_t KERNELS_AVX512[] = {
    { 6, 32, kernel_6x32,  kernel_6x32_direct_a,  pack_panel_512, pack_B_512, 1.0  },
    {16, 16, kernel_16x16, kernel_16x16_direct_a, pack_panel_512, pack_B_512, 0.85 },
};

static const kernel_t KERNELS_AVX2[] = {
    { 6, 16, kernel_avx2_6x16, kernel_avx2_6x16_direct_a, pack_panel_256, pack_B_256, 1.0  },
    { 4, 24, kernel_avx2_4x24, kernel_avx2_4x24_direct_a, pack_panel_256, pack_B_256, 0.95 },
};

/* Indexed by MINIDL_ISA_*: the kernels of each instruction set. */
static const struct { const kernel_t *kernels; int count; } ISA_TABLE[] = {
    [MINIDL_ISA_NONE]   = { NULL, 0 },
    [MINIDL_ISA_AVX2]   = { KERNELS_AVX2, (int)(sizeof KERNELS_AVX2 / sizeof KERNELS_AVX2[0]) },
    [MINIDL_ISA_AVX512] = { KERNELS_AVX512, (int)(sizeof KERNELS_AVX512 / sizeof KERNELS_AVX512[0]) },
};

/* The instruction set in use: -1 until first asked, then the best one the CPU has
   (minidl_sgemm_use_isa changes it; Python sets it once at import). */
static int current_isa = -1;

int minidl_sgemm_cpu_isas(void)
{
    __builtin_cpu_init();
    int isas = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        isas |= 1 << MINIDL_ISA_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("fma"))
        isas |= 1 << MINIDL_ISA_AVX512;
    return isas;
}

int minidl_sgemm_isa(void)
{
    int isa = __atomic_load_n(&current_isa, __ATOMIC_RELAXED);
    if (isa < 0) {
        int have = minidl_sgemm_cpu_isas();
        isa = have >> MINIDL_ISA_AVX512 & 1 ? MINIDL_ISA_AVX512
            : have >> MINIDL_ISA_AVX2 & 1 ? MINIDL_ISA_AVX2 : MINIDL_ISA_NONE;
        __atomic_store_n(&current_isa, isa, __ATOMIC_RELAXED);
    }
    return isa;
}

int minidl_sgemm_use_isa(int isa)
{
    if (isa < 0 || isa > MINIDL_ISA_AVX512
        || (isa != MINIDL_ISA_NONE && !(minidl_sgemm_cpu_isas() >> isa & 1)))
        return -1;
    int previous = minidl_sgemm_isa();
    __atomic_store_n(&current_isa, isa, __ATOMIC_RELAXED);
    return previous;
}

int minidl_sgemm_supported(void)
{
    return minidl_sgemm_isa() != MINIDL_ISA_NONE;
}

/* Pick, among the kernels of the instruction set in use, the one maximising
   speed * (useful work / padded work); NULL if no instruction set is in use. */
static const kernel_t *choose_kernel(int M, int N)
{
    int isa = minidl_sgemm_isa();
    const kernel_t *best = NULL;
    double best_score = 0.0;
    for (int i = 0; i < ISA_TABLE[isa].count; i++) {
        const kernel_t *k = &ISA_TABLE[isa].kernels[i];
        double pm = (double)((M + k->mr - 1) / k->mr * k->mr);
        double pn = (double)((N + k->nr - 1) / k->nr * k->nr);
        double score = k->speed * M / pm * N / pn;
        if (score > best_score) { best_score = score; best = k; }
    }
    return best;
}

/* ---- drivers ------------------------------------------------------------------ */

/* C = beta*C  (used when K == 0 or alpha == 0; beta == 0 writes zeros, NaN-safe). */
static void scale_C(int M, int N, float beta, float *C, long rsc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[i * rsc + j] = beta == 0.0f ? 0.0f : beta * C[i * rsc + j];
}

/* Sequential blocked GEMM on one rectangle of C (runs on one thread). */
static void sgemm_seq(const kernel_t *kr, int M, int N, int K, float alpha,
                             const float *A, long rsa, long csa, const float *Apre,
                             const float *B, long rsb, long csb,
                             float beta, float *C, long rsc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) { scale_C(M, N, beta, C, rsc); return; }

    const int MR = kr->mr, NR = kr->nr, KC = BLK_KC;
    const int MC = BLK_MC >= MR ? BLK_MC / MR * MR : MR;
    const int NC = BLK_NC >= NR ? BLK_NC / NR * NR : NR;
    int kcmax = K < KC ? K : KC;
    int ncmax = N < NC ? (N + NR - 1) / NR * NR : NC;
    int mcmax = M < MC ? (M + MR - 1) / MR * MR : MC;
    float *Bp = get_buffer((size_t)kcmax * (ncmax + mcmax));
    if (!Bp) { sgemm_ref(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc); return; }
    float *Ap = Bp + (size_t)kcmax * ncmax;

    /* Direct B: each B element is used by the ceil(M/MR) kernel calls of one jr
       step and never again, so stream it from its original location (the loads
       overlap with the FMAs instead of a separate memory-bound copy).
       Direct A: with at most four NR panels each A panel is used by at most four
       calls, and the A block (MC x KC) stays in L2 between them. */
    const int direct_b = csb == 1 && M <= MC;
    const int direct_a = csa == 1 && N <= 4 * NR && !Apre;
    const long Mpad = (M + MR - 1) / MR * MR;    /* rows of a prepacked A (minidl_sgemm_pack_a) */

    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC;
        for (int pc = 0; pc < K; pc += KC) {
            int kc = K - pc < KC ? K - pc : KC;
            float beta_k = pc == 0 ? beta : 1.0f;      /* later K blocks accumulate */
            const float *Bblk = B + pc * rsb + jc * csb;
            if (!direct_b)
                kr->pack_b(NR, kc, nc, Bblk, rsb, csb, Bp);
            for (int ic = 0; ic < M; ic += MC) {
                int mc = M - ic < MC ? M - ic : MC;
                const float *Ablk = A + ic * rsa + pc * csa;
                float *Ap_blk = Ap;
                if (Apre)                               /* packed once by the caller */
                    Ap_blk = (float *)Apre + Mpad * pc + (long)ic * kc;
                else if (!direct_a)
                    pack_A(kr, mc, kc, Ablk, rsa, csa, Ap);
                for (int jr = 0; jr < nc; jr += NR) {
                    int nr = nc - jr < NR ? nc - jr : NR;
                    const float *b = Bp + (long)jr * kc;
                    long ldb = NR;
                    if (direct_b && nr == NR) {
                        b = Bblk + jr;
                        ldb = rsb;
                    } else if (direct_b) {              /* ragged last panel: pack it */
                        kr->pack_b(NR, kc, nr, Bblk + jr, rsb, csb, Bp);
                        b = Bp;
                    }
                    for (int ir = 0; ir < mc; ir += MR) {
                        int mr = mc - ir < MR ? mc - ir : MR;
                        const float *a = Ap_blk + (long)ir * kc;
                        kernel_fn fn = kr->packed_a;
                        if (direct_a && mr == MR) {
                            a = Ablk + ir * rsa;
                            fn = kr->direct_a;
                        } else if (direct_a) {          /* ragged last panel: pack it */
                            pack_A(kr, mr, kc, Ablk + ir * rsa, rsa, csa, Ap);
                            a = Ap;
                        }
                        fn(kc, a, rsa, b, ldb, C + (ic + ir) * rsc + jc + jr, rsc,
                           mr, nr, alpha, beta_k);
                    }
                }
            }
        }
    }
}

/* Cut [0, n) into `parts` chunks made of whole `unit`s; chunk t is [*lo, *hi). */
static void split_range(int n, int unit, int parts, int t, int *lo, int *hi)
{
    long blocks = (n + unit - 1) / unit;
    long b0 = blocks * t / parts, b1 = blocks * (t + 1) / parts;
    *lo = b0 * unit < n ? (int)(b0 * unit) : n;
    *hi = b1 * unit < n ? (int)(b1 * unit) : n;
}

/* Parallel efficiency of dealing ceil(n/unit) blocks to T threads. */
static double split_eff(int n, int unit, int T)
{
    int blocks = (n + unit - 1) / unit;
    int per = (blocks + T - 1) / T;
    return (double)n / ((double)T * per * unit);
}

/* One thread: for callers that already split work over threads (the fused
   convolution, one image per call). */
void minidl_sgemm_serial(int M, int N, int K, float alpha,
                         const float *A, long rsa, long csa,
                         const float *B, long rsb, long csb,
                         float beta, float *C, long rsc)
{
    const kernel_t *kr = choose_kernel(M, N);
    if (kr)
        sgemm_seq(kr, M, N, K, alpha, A, rsa, csa, NULL, B, rsb, csb, beta, C, rsc);
    else if (M > 0 && N > 0)
        sgemm_ref(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc);
}

/* ---- A packed once, for many products with the same A -----------------------
 * The image-by-image convolution multiplies the same weights by every image's
 * columns. Packing them once per batch instead of once per image: the blocks
 * sgemm_seq would pack, in the order it uses them (for pc: for ic), so that
 * block (pc, ic) starts at Mpad * pc + ic * kc, Mpad = M rounded up to MR. */
long minidl_sgemm_packed_a_size(int M, int N, int K, long csa)
{
    const kernel_t *kr = choose_kernel(M, N);
    if (!kr || M <= 0 || N <= 0 || K <= 0 || (csa == 1 && N <= 4 * kr->nr))
        return 0;                      /* nothing to pack: no kernels, or A read in place */
    return (long)(M + kr->mr - 1) / kr->mr * kr->mr * K;
}

int minidl_sgemm_pack_a(int M, int N, int K, const float *A, long rsa, long csa, float *Apre)
{
    const kernel_t *kr = choose_kernel(M, N);
    const int MR = kr->mr, MC = BLK_MC >= MR ? BLK_MC / MR * MR : MR;
    const long Mpad = (M + MR - 1) / MR * MR;
    for (int pc = 0; pc < K; pc += BLK_KC) {
        int kc = K - pc < BLK_KC ? K - pc : BLK_KC;
        for (int ic = 0; ic < M; ic += MC) {
            int mc = M - ic < MC ? M - ic : MC;
            pack_A(kr, mc, kc, A + ic * rsa + pc * csa, rsa, csa, Apre + Mpad * pc + (long)ic * kc);
        }
    }
    return MR;
}

void minidl_sgemm_serial_packed(int M, int N, int K, float alpha,
                                const float *A, long rsa, long csa, const float *Apre, int packed_mr,
                                const float *B, long rsb, long csb,
                                float beta, float *C, long rsc)
{
    const kernel_t *kr = choose_kernel(M, N);
    if (kr && kr->mr == packed_mr)
        sgemm_seq(kr, M, N, K, alpha, A, rsa, csa, Apre, B, rsb, csb, beta, C, rsc);
    else    /* the instruction set changed since A was packed: A itself, as it stands */
        minidl_sgemm_serial(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc);
}

void minidl_sgemm(int M, int N, int K, float alpha,
                  const float *A, long rsa, long csa,
                  const float *B, long rsb, long csb,
                  float beta, float *C, long rsc)
{
    if (M <= 0 || N <= 0) return;
    const kernel_t *kr = choose_kernel(M, N);   /* one read of the instruction set in use */
    if (!kr) {
        sgemm_ref(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc);
        return;
    }
    int T = omp_get_max_threads();
    if (2.0 * M * N * (double)K < 2e6) T = 1;    /* too small to be worth waking threads */
    if (T <= 1 || K <= 0 || alpha == 0.0f) {
        sgemm_seq(kr, M, N, K, alpha, A, rsa, csa, NULL, B, rsb, csb, beta, C, rsc);
        return;
    }

    /* Which dimension to split between threads? */
    double effN = split_eff(N, kr->nr, T), effM = split_eff(M, kr->mr, T);
    enum { SPLIT_N, SPLIT_M, SPLIT_K } mode = effN >= effM ? SPLIT_N : SPLIT_M;
    float *part = NULL;
    if ((effN > effM ? effN : effM) < 0.85 && K >= 4 * BLK_KC) {
        part = aligned_alloc(64, ((size_t)(T - 1) * M * N * sizeof(float) + 63) / 64 * 64);
        if (part) mode = SPLIT_K;
    }

    if (mode != SPLIT_K) {
#pragma omp parallel num_threads(T)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads(), lo, hi;
            if (mode == SPLIT_N) {
                split_range(N, kr->nr, nt, t, &lo, &hi);
                sgemm_seq(kr, M, hi - lo, K, alpha, A, rsa, csa, NULL, B + lo * csb, rsb, csb,
                          beta, C + lo, rsc);
            } else {
                split_range(M, kr->mr, nt, t, &lo, &hi);
                sgemm_seq(kr, hi - lo, N, K, alpha, A + lo * rsa, rsa, csa, NULL, B, rsb, csb,
                          beta, C + lo * rsc, rsc);
            }
        }
        return;
    }

    /* SPLIT_K: thread 0 accumulates its K range straight into C (with beta);
       thread t > 0 writes alpha * (its partial product) to part[t-1]; after a
       barrier all threads add the partials into C, split by rows. */
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads(), lo, hi;
        float *mine = t == 0 ? C : part + (size_t)(t - 1) * M * N;
        split_range(K, BLK_KC, nt, t, &lo, &hi);
        if (t > 0 && hi <= lo)
            memset(mine, 0, (size_t)M * N * sizeof(float));
        else
            sgemm_seq(kr, M, N, hi - lo, alpha, A + lo * csa, rsa, csa, NULL, B + lo * rsb, rsb, csb,
                      t == 0 ? beta : 0.0f, mine, t == 0 ? rsc : N);
#pragma omp barrier
        int r0, r1;
        split_range(M, 1, nt, t, &r0, &r1);
        for (int p = 0; p < nt - 1; p++)
            for (int i = r0; i < r1; i++)
                for (int j = 0; j < N; j++)
                    C[i * rsc + j] += part[(size_t)p * M * N + (size_t)i * N + j];
    }
    free(part);
}

#else  /* not gcc/clang on x86-64, or Windows: no fast path; Python uses np.matmul */

int minidl_sgemm_cpu_isas(void) { return 0; }
int minidl_sgemm_isa(void) { return MINIDL_ISA_NONE; }
int minidl_sgemm_use_isa(int isa) { return isa == MINIDL_ISA_NONE ? MINIDL_ISA_NONE : -1; }
int minidl_sgemm_supported(void) { return 0; }

void minidl_sgemm_serial(int M, int N, int K, float alpha, const float *A, long rsa, long csa,
                         const float *B, long rsb, long csb, float beta, float *C, long rsc)
{
    minidl_sgemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc);
}

void minidl_sgemm(int M, int N, int K, float alpha, const float *A, long rsa, long csa,
                  const float *B, long rsb, long csb, float beta, float *C, long rsc)
{
    sgemm_ref(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc);
}

/* Without kernels "packed" is simply A copied row-major (M x K). */
long minidl_sgemm_packed_a_size(int M, int N, int K, long csa)
{
    (void)csa;
    return M > 0 && N > 0 && K > 0 ? (long)M * K : 0;
}

int minidl_sgemm_pack_a(int M, int N, int K, const float *A, long rsa, long csa, float *Apre)
{
    (void)N;
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) Apre[(long)i * K + k] = A[i * rsa + k * csa];
    return 1;
}

void minidl_sgemm_serial_packed(int M, int N, int K, float alpha,
                                const float *A, long rsa, long csa, const float *Apre, int packed_mr,
                                const float *B, long rsb, long csb,
                                float beta, float *C, long rsc)
{
    (void)A; (void)rsa; (void)csa; (void)packed_mr;
    sgemm_ref(M, N, K, alpha, Apre, K, 1, B, rsb, csb, beta, C, rsc);
}

#endif
