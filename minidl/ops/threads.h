/* threads.h -- OpenMP when the compiler has it, one thread when it does not.
 *
 * setup.py compiles a small test program to find out whether the compiler
 * builds and links OpenMP code (-fopenmp, Homebrew's libomp on macOS, /openmp
 * with MSVC) and passes those flags only if it does. The compiler then defines
 * _OPENMP. Without it (Apple's clang with no libomp, for example) nothing may
 * include <omp.h>, which is not there: the few runtime calls minidl makes are
 * replaced by their one-thread answers below, the `#pragma omp` lines are
 * ignored, and Cython's prange loops run as plain loops.
 *
 * gemm.c and _kernels.pyx include this header instead of <omp.h>.
 */
#ifndef MINIDL_THREADS_H
#define MINIDL_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#define MINIDL_OPENMP 1
#else
#define MINIDL_OPENMP 0
#define omp_get_max_threads() 1
#define omp_get_num_threads() 1
#define omp_get_thread_num() 0
#endif

#endif
