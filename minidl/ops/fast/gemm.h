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

int minidl_sgemm_supported(void);   /* 1 if this CPU runs the AVX-512 kernels */

void minidl_sgemm(int M, int N, int K, float alpha,
                  const float *A, long rsa, long csa,
                  const float *B, long rsb, long csb,
                  float beta, float *C, long rsc);

/* The same product on the calling thread only (the caller checked the CPU). */
void minidl_sgemm_serial(int M, int N, int K, float alpha,
                         const float *A, long rsa, long csa,
                         const float *B, long rsb, long csb,
                         float beta, float *C, long rsc);

#endif
