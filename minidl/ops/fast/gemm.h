/* minidl's float32 matrix product (gemm.c):
 *
 *   C[M x N] = alpha * A[M x K] @ B[K x N] + beta * C
 *
 * Operands are a pointer and strides in elements: A(i,k) = A[i*rsa + k*csa],
 * B(k,j) = B[k*rsb + j*csb], C(i,j) = C[i*rsc + j]. If beta == 0, C is only
 * written. Threads: OpenMP, omp_get_max_threads() of them.
 */
#ifndef MINIDL_GEMM_H
#define MINIDL_GEMM_H

/* The instruction sets of the micro-kernels (x86-64 with gcc or clang, not Windows). */
enum { MINIDL_ISA_NONE = 0, MINIDL_ISA_AVX2 = 1, MINIDL_ISA_AVX512 = 2 };

int minidl_sgemm_cpu_isas(void);    /* bit (1 << isa) set for each one this CPU runs */
int minidl_sgemm_isa(void);         /* the one in use: by default the best the CPU runs */
int minidl_sgemm_use_isa(int isa);  /* use isa from now on; returns the previous one, or -1
                                       (and changes nothing) if this CPU cannot run it */
int minidl_sgemm_supported(void);   /* 1 if an instruction set is in use (not NONE) */

void minidl_sgemm(int M, int N, int K, float alpha,
                  const float *A, long rsa, long csa,
                  const float *B, long rsb, long csb,
                  float beta, float *C, long rsc);

/* The same product on the calling thread only (the caller checked the CPU). */
void minidl_sgemm_serial(int M, int N, int K, float alpha,
                         const float *A, long rsa, long csa,
                         const float *B, long rsb, long csb,
                         float beta, float *C, long rsc);

/* A packed once for many products with the same A (and the same M, N, K):
   minidl_sgemm_packed_a_size gives the floats it takes, 0 if this product reads A in
   place (or there are no kernels): then use minidl_sgemm_serial, and do not call the
   other two. minidl_sgemm_pack_a packs it and returns the kernel height it packed for;
   minidl_sgemm_serial_packed multiplies it by B on the calling thread, given A too: if
   the instruction set has changed since, it multiplies A itself instead. */
long minidl_sgemm_packed_a_size(int M, int N, int K, long csa);
int minidl_sgemm_pack_a(int M, int N, int K, const float *A, long rsa, long csa, float *Apre);
void minidl_sgemm_serial_packed(int M, int N, int K, float alpha,
                                const float *A, long rsa, long csa, const float *Apre, int packed_mr,
                                const float *B, long rsb, long csb,
                                float beta, float *C, long rsc);

#endif
