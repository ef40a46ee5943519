"""Slow, obvious NumPy versions of every compiled kernel.

They are what a reader learns from first, the oracle the Cython kernels are
tested against, and the fallback that runs when the extension is not built.

Symbols used in this module:

    N   batch size             C   input channels
    H   input height           W   input width
    KH  kernel height          KW  kernel width
    SH  stride along H         SW  stride along W
    PH  zero padding along H   PW  zero padding along W
    DH  dilation along H       DW  dilation along W
    OH  output height          OW  output width

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
    oh = output_size(h, kh, sh, ph, dh)
    ow = output_size(w, kw, sw, pw, dw)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # every output position (oh, ow) reads row oh*SH + i*DH, column ow*SW + j*DW
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            colz = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            cols[:, i, j] = x_pad[:, :, rows, colz].transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """Fold columns back into an image, summing where receptive fields overlap.

    The adjoint of im2col:  cols (C*KH*KW, N*OH*OW)  ->  x: x_shape = (N, C, H, W).
    """
    n, c, h, w = x_shape
    oh = output_size(h, kh, sh, ph, dh)
    ow = output_size(w, kw, sw, pw, dw)
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    x_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            colz = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            x_pad[:, :, rows, colz] += cols[:, i, j].transpose(1, 0, 2, 3)
    return x_pad[:, :, ph:ph + h, pw:pw + w]


def maxpool_forward(x, kh, kw, sh, sw, ph, pw):
    """Max over each window, padding with -inf.

    x: (N, C, H, W) -> out: (N, C, OH, OW) and argmax: (N, C, OH, OW) int64,
    the flat index h*W + w of the winning input pixel inside its (H, W) plane.
    Ties go to the first maximum in row-major window order.
    """
    n, c, h, w = x.shape
    oh = output_size(h, kh, sh, ph)
    ow = output_size(w, kw, sw, pw)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n, c, oh, ow), dtype=np.int64)
    for y in range(oh):
        for z in range(ow):
            h0, w0 = y * sh - ph, z * sw - pw
            h_lo, h_hi = max(h0, 0), min(h0 + kh, h)
            w_lo, w_hi = max(w0, 0), min(w0 + kw, w)
            window = x[:, :, h_lo:h_hi, w_lo:w_hi].reshape(n, c, -1)
            # np.argmax returns the first maximum in row-major order; it also
            # picks a NaN if there is one, so NaN propagates as in PyTorch
            best = np.argmax(window, axis=2)
            out[:, :, y, z] = np.take_along_axis(window, best[..., None], axis=2)[..., 0]
            win_w = w_hi - w_lo
            argmax[:, :, y, z] = (h_lo + best // win_w) * w + (w_lo + best % win_w)
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


def conv_forward(x, weights, bias, stride, padding, dilation):
    """Convolution as one matrix product: y = W (F, K) @ im2col(x) (K, N*OH*OW) + b.

    x (N, C, H, W), weights (F, C, KH, KW), bias (F,) or None -> y (N, F, OH, OW).
    """
    (f, _, kh, kw), (sh, sw), (ph, pw), (dh, dw) = weights.shape, stride, padding, dilation
    n, _, h, w = x.shape
    oh, ow = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    y2d = weights.reshape(f, -1) @ im2col(x, kh, kw, sh, sw, ph, pw, dh, dw)
    if bias is not None:
        y2d += bias[:, None]
    return np.ascontiguousarray(y2d.reshape(f, n, oh, ow).transpose(1, 0, 2, 3))


def conv_backward(x, weights, grad_out, stride, padding, dilation, need_input_grad=True):
    """(dL/dx or None, dL/dW, dL/db) of conv_forward, for dL/dy = grad_out (N, F, OH, OW).

    With X = im2col(x) and G = dL/dy as (F, N*OH*OW):
    dL/dW = G @ X^T,  dL/db = G summed over columns,  dL/dx = col2im(W^T @ G).
    """
    (f, _, kh, kw), (sh, sw), (ph, pw), (dh, dw) = weights.shape, stride, padding, dilation
    g = grad_out.transpose(1, 0, 2, 3).reshape(f, -1)
    cols = im2col(x, kh, kw, sh, sw, ph, pw, dh, dw)
    grad_w = (g @ cols.T).reshape(weights.shape)
    grad_x = None
    if need_input_grad:
        grad_x = col2im(weights.reshape(f, -1).T @ g, x.shape, kh, kw, sh, sw, ph, pw, dh, dw)
    return grad_x, grad_w, g.sum(axis=1)


def matmul(a, b, out=None):
    """a (M, K) @ b (K, N): numpy's own product (OpenBLAS) is the oracle of gemm.c."""
    return np.matmul(a, b, out=out)


def axpy(alpha, x, y):
    """y += alpha * x, in place (the BLAS name: "a x plus y"). x, y: same shape."""
    y += alpha * x
    return y
