/*
 * unroll.h -- loop-unrolling requests that gcc and clang both carry out.
 *
 * The micro-kernels keep their accumulators in small arrays (acc[MR][NV], acc[RB][NV], ...)
 * indexed by loops over block sizes that are compile-time constants once the kernel is
 * inlined into its caller. Only when those loops are unrolled completely can the compiler
 * give every array element its own vector register; a loop left rolled keeps the array on
 * the stack, and each multiply-add then goes through memory.
 *
 * gcc unrolls completely whenever `#pragma GCC unroll N` asks for at least the trip count.
 * clang reads the same pragma as "unroll N times", and when N is not a divisor of the
 * trip count it may leave the loop rolled, without a word: gemm.c built with clang ran at
 * a quarter of its gcc speed. So:
 *
 *   UNROLL_ALL(n)  a loop whose trip count (at most n) is a constant after inlining:
 *                  unrolled completely (clang: `unroll(full)`, which warns under
 *                  -Wpass-failed where it cannot be done, for instance in a loop with a
 *                  break; tests/test_build.py compiles with that warning as an error)
 *   UNROLL(n)      a loop with a count known only at run time (the k loop of a product):
 *                  unrolled n times, the rest in a remainder loop
 *
 * Other compilers ignore both.
 */
#ifndef MINIDL_UNROLL_H
#define MINIDL_UNROLL_H

#define MINIDL_PRAGMA(text) _Pragma(#text)
#if defined(__clang__)
#define UNROLL_ALL(n) MINIDL_PRAGMA(clang loop unroll(full))
#define UNROLL(n) MINIDL_PRAGMA(clang loop unroll_count(n))
#elif defined(__GNUC__)
#define UNROLL_ALL(n) MINIDL_PRAGMA(GCC unroll n)
#define UNROLL(n) MINIDL_PRAGMA(GCC unroll n)
#else
#define UNROLL_ALL(n)
#define UNROLL(n)
#endif

#endif
