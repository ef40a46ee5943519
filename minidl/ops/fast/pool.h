/* minidl's float32 max pool with a 2x2 window, stride 2 and no padding (pool.c):
 *
 *   y[p, i, j]   = max of the window x[p, 2i:2i+2, 2j:2j+2]
 *   win[p, i, j] = which pixel won: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
 *
 * x (planes, H, W), y and win (planes, H/2, W/2) (floor), all C-contiguous.
 * Ties go to the first maximum in that order; if the window holds a NaN, the
 * first NaN wins. The backward writes every pixel of grad_x (planes, H, W):
 * grad_y[p, i, j] at the window's winner, 0 elsewhere (also the odd last row
 * or column that no window covers).
 *
 * isa: 0 the portable loops, 1 AVX2, 2 AVX-512 (AVX2 for rows of 8 outputs or fewer), -1 the
 * best this CPU runs (a larger value than the CPU runs is lowered to that). Threads: OpenMP over
 * planes.
 */
#ifndef MINIDL_POOL_H
#define MINIDL_POOL_H

int minidl_maxpool2x2_isa(void);   /* the best isa this CPU (and this build) runs: 0, 1 or 2 */

void minidl_maxpool2x2_forward(const float *x, float *y, unsigned char *win,
                               int planes, int height, int width, int isa);

void minidl_maxpool2x2_backward(const float *grad_y, const unsigned char *win, float *grad_x,
                                int planes, int height, int width, int isa);

#endif
