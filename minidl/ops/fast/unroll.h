/*
 * unroll.h -- loop-unrolling requests that gcc and clang both carry out.
 *
 * The micro-kernels keep their accumulators in small arrays (acc[MR][NV] in gemm.c,
 * acc[RB][NV] in direct.c) indexed by loops over block sizes. Those sizes are parameters of
 * an inline function and become constants only once it is inlined into a concrete kernel.
 * Only a loop unrolled completely lets the compiler give each array element its own vector
 * register; a loop left rolled keeps the array on the stack, and every multiply-add then
 * goes through memory.
 *
 * gcc reads `#pragma GCC unroll N` as an upper bound and unrolls completely any loop whose
 * count turns out to be at most N. clang reads it as "unroll N times" and applies it before
 * inlining, while the count is still a variable: it makes N copies plus a remainder loop,
 * and after inlining a count of 6 or 2 runs only the remainder loop, which stays rolled.
 * There is no warning. So the kernels ask each compiler in its own words:
 *
 *   UNROLL_ALL(n)  a loop whose count (at most n) is a constant after inlining: unrolled
 *                  completely. clang's `unroll(full)` waits until the count is known, and
 *                  under -Wpass-failed it warns where it still cannot do it (some loops with
 *                  a break in them); tests/test_build.py compiles with that as an error.
 *   UNROLL(n)      a loop whose count is known only at run time (a product's k loop):
 *                  n copies and a remainder loop.
 *
 * Other compilers (MSVC; no kernel is compiled there) ignore both.
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
