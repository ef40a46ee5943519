"""Vectorised NumPy versions of every compiled kernel.

The same arguments and layouts as the Cython kernels in ``_kernels.pyx``, with
NumPy doing the inner loops: each loops over the few kernel offsets (i, j) or
output positions and moves whole strided slices of the batch at once. They run
when the extension is not built (or ``MINIDL_BACKEND=numpy``), and the tests
check the compiled kernels against them and both against the loop versions in
``naive.py``.

Symbols used in this module:

    N   batch size             C   input channels
    H   input height           W   input width
    KH  kernel height          KW  kernel width
    SH  stride along H         SW  stride along W
    PH  zero padding along H   PW  zero padding along W
    DH  dilation along H       DW  dilation along W
    OH  output height          OW  output width        (``out_h``, ``out_w`` in the code)

Indices: ``n`` image, ``c`` channel, ``i, j`` kernel row and column, ``oh, ow``
output row and column.

Output size (as PyTorch):  OH = (H + 2*PH - DH*(KH - 1) - 1) // SH + 1.

Column matrix layout (shared with the Cython kernels)::

    cols[(c*KH + i)*KW + j,  (n*OH + oh)*OW + ow]
        = x_padded[n, c, oh*SH + i*DH, ow*SW + j*DW]

so one column holds one receptive field, and a convolution is the matrix
product  weights.reshape(F, C*KH*KW) @ cols.
"""
import numpy as np


def output_size(size, kernel, stride, padding, dilation=1):
    """Number of window positions along one axis (PyTorch's floor formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def im2col(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """Unfold receptive fields into columns.

    x: (N, C, H, W)  ->  cols: (C*KH*KW, N*OH*OW), same dtype as x.
    """
    n, c, h, w = x.shape
    out_h = output_size(h, kh, sh, ph, dh)
    out_w = output_size(w, kw, sw, pw, dw)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((c, kh, kw, n, out_h, out_w), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # every output position (oh, ow) reads row oh*SH + i*DH, column ow*SW + j*DW
            in_rows = slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh)
            in_cols = slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw)
            cols[:, i, j] = x_pad[:, :, in_rows, in_cols].transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * out_h * out_w)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """Fold columns back into an image, summing where receptive fields overlap.

    The adjoint of im2col:  cols (C*KH*KW, N*OH*OW)  ->  x: x_shape = (N, C, H, W).
    """
    n, c, h, w = x_shape
    out_h = output_size(h, kh, sh, ph, dh)
    out_w = output_size(w, kw, sw, pw, dw)
    cols = cols.reshape(c, kh, kw, n, out_h, out_w)
    x_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            in_rows = slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh)
            in_cols = slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw)
            x_pad[:, :, in_rows, in_cols] += cols[:, i, j].transpose(1, 0, 2, 3)
    return x_pad[:, :, ph:ph + h, pw:pw + w]


def maxpool_forward(x, kh, kw, sh, sw, ph, pw):
    """Max over each window, padding with -inf.

    x: (N, C, H, W) -> out: (N, C, OH, OW) and argmax: (N, C, OH, OW) int64,
    the flat index h*W + w of the winning input pixel inside its (H, W) plane.
    Ties go to the first maximum in row-major window order.
    """
    n, c, h, w = x.shape
    out_h = output_size(h, kh, sh, ph)
    out_w = output_size(w, kw, sw, pw)
    out = np.empty((n, c, out_h, out_w), dtype=x.dtype)
    argmax = np.empty((n, c, out_h, out_w), dtype=np.int64)
    for oh in range(out_h):
        for ow in range(out_w):
            h0, w0 = oh * sh - ph, ow * sw - pw   # top-left corner of the window (may be padding)
            h_lo, h_hi = max(h0, 0), min(h0 + kh, h)
            w_lo, w_hi = max(w0, 0), min(w0 + kw, w)
            window = x[:, :, h_lo:h_hi, w_lo:w_hi].reshape(n, c, -1)
            # np.argmax returns the first maximum in row-major order; it also
            # picks a NaN if there is one, so NaN propagates as in PyTorch
            best = np.argmax(window, axis=2)
            out[:, :, oh, ow] = np.take_along_axis(window, best[..., None], axis=2)[..., 0]
            win_w = w_hi - w_lo
            argmax[:, :, oh, ow] = (h_lo + best // win_w) * w + (w_lo + best % win_w)
    return out, argmax


def maxpool_backward(grad_out, argmax, x_shape):
    """Route each output gradient to the input pixel that won its window.

    grad_out, argmax: (N, C, OH, OW) -> grad_x: x_shape = (N, C, H, W).
    Overlapping windows that share a winner add up their gradients.
    """
    n, c, h, w = x_shape
    grad_x = np.zeros((n * c, h * w), dtype=grad_out.dtype)
    planes = np.repeat(np.arange(n * c), grad_out.shape[2] * grad_out.shape[3])
    np.add.at(grad_x, (planes, argmax.reshape(-1)), grad_out.reshape(-1))
    return grad_x.reshape(x_shape)


def axpy(alpha, x, y):
    """y += alpha * x, in place (the BLAS name: "a x plus y"). x, y: same shape."""
    y += alpha * x
    return y


def momentum_step(momentum, scale, alpha, velocity, grad, param):
    """SGD's momentum update, in place: v = momentum * v + scale * g, then w += alpha * v.

    velocity, grad, param: same shape and dtype. (SGD calls it with scale = 1 - dampening
    and alpha = -lr.) Returns param.
    """
    velocity *= momentum
    velocity += scale * grad
    param += alpha * velocity
    return param
