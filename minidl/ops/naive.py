"""The loop versions: each operation written from its definition, one output element at a time.

Read these first. They are the slowest code in minidl and the easiest to check
by hand; the test suite uses them as the oracle for everything faster (the
NumPy versions in ``reference.py``, the Cython kernels, ``ops.fast``, and the
layers themselves). They share no code with the rest of minidl, so a bug there
cannot hide behind the same bug here. Every function accumulates in float64 and
returns float64 arrays; compare with the faster versions to a tolerance.

Symbols used in this module:

    N   batch size                    C   input channels
    H   input height                  W   input width
    F   filters (output channels)     D   input features    M   output features
    KH  kernel height                 KW  kernel width
    SH  stride along H                SW  stride along W
    PH  zero padding along H          PW  zero padding along W
    DH  dilation along H              DW  dilation along W
    OH  output height (``out_h``)     OW  output width (``out_w``)

Loop indices: ``n`` image, ``c`` channel, ``f`` filter, ``i, j`` kernel row
and column, ``oh, ow`` output row and column.

Output size along one axis (PyTorch's floor formula):

    OH = (H + 2*PH - DH*(KH - 1) - 1) // SH + 1

Output (oh, ow) of a convolution reads the input pixel

    (oh*SH - PH + i*DH,  ow*SW - PW + j*DW)      for each tap (i, j) of the kernel,

and a tap that falls outside the image reads the zero padding.
"""
import math

import numpy as np


def output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Number of window positions along one axis (the floor formula above)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _pad(x, ph, pw):
    """x (N, C, H, W) -> float64 (N, C, H + 2*PH, W + 2*PW) with zeros around."""
    n_img, channels, h, w = x.shape
    x_pad = np.zeros((n_img, channels, h + 2 * ph, w + 2 * pw), dtype=np.float64)
    x_pad[:, :, ph:ph + h, pw:pw + w] = x
    return x_pad


# ===================================================================== im2col
def im2col(x, kh, kw, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW): one receptive field per column.

        cols[(c*KH + i)*KW + j,  (n*OH + oh)*OW + ow] = x_padded[n, c, oh*SH + i*DH, ow*SW + j*DW]

    so a convolution is the product  weights.reshape(F, C*KH*KW) @ cols.
    """
    n_img, channels, h, w = x.shape
    out_h, out_w = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    cols = np.zeros((channels * kh * kw, n_img * out_h * out_w), dtype=np.float64)
    for n in range(n_img):
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(out_h):
                        for ow in range(out_w):
                            src_h = oh * sh - ph + i * dh
                            src_w = ow * sw - pw + j * dw
                            if 0 <= src_h < h and 0 <= src_w < w:   # else padding: stays 0
                                cols[(c * kh + i) * kw + j, (n * out_h + oh) * out_w + ow] = x[n, c, src_h, src_w]
    return cols


def col2im(cols, x_shape, kh, kw, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1):
    """cols (C*KH*KW, N*OH*OW) -> x (N, C, H, W): the adjoint of im2col.

    Every column entry is added back onto the pixel it was read from, so
    pixels shared by overlapping receptive fields receive the sum.
    """
    n_img, channels, h, w = x_shape
    out_h, out_w = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    x = np.zeros(x_shape, dtype=np.float64)
    for n in range(n_img):
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(out_h):
                        for ow in range(out_w):
                            src_h = oh * sh - ph + i * dh
                            src_w = ow * sw - pw + j * dw
                            if 0 <= src_h < h and 0 <= src_w < w:
                                x[n, c, src_h, src_w] += cols[(c * kh + i) * kw + j, (n * out_h + oh) * out_w + ow]
    return x


# ================================================================ convolution
def _receptive_field(x_pad, n, oh, ow, kh, kw, sh, sw, dh, dw):
    """The (C, KH, KW) input values that output (oh, ow) of image n reads (dilated taps)."""
    top, left = oh * sh, ow * sw
    return x_pad[n, :, top:top + dh * (kh - 1) + 1:dh, left:left + dw * (kw - 1) + 1:dw]


def conv_forward(x, weights, bias, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Direct convolution (cross-correlation, as every framework).

    x (N, C, H, W), weights (F, C, KH, KW), bias (F,) or None -> y (N, F, OH, OW):

        y[n, f, oh, ow] = b[f] + sum_{c,i,j} w[f, c, i, j] * x_padded[n, c, oh*SH + i*DH, ow*SW + j*DW]
    """
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n_img, _, h, w = x.shape
    n_filters, _, kh, kw = weights.shape
    out_h, out_w = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    x_pad = _pad(x, ph, pw)
    weights = weights.astype(np.float64)
    y = np.zeros((n_img, n_filters, out_h, out_w), dtype=np.float64)
    for n in range(n_img):
        for f in range(n_filters):
            b = 0.0 if bias is None else float(bias[f])
            for oh in range(out_h):
                for ow in range(out_w):
                    field = _receptive_field(x_pad, n, oh, ow, kh, kw, sh, sw, dh, dw)
                    y[n, f, oh, ow] = b + np.sum(field * weights[f])
    return y


def conv_backward(x, weights, grad_out, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """(dL/dx, dL/dweights, dL/dbias) of conv_forward for dL/dy = grad_out (N, F, OH, OW).

    Each output y[n, f, oh, ow] is a weighted sum of its receptive field, so its
    gradient g flows back along each term:

        dL/dx_padded[n, :, field] += g * w[f]       dL/dw[f] += g * x_padded[n, :, field]
        dL/db[f] += g
    """
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n_img, _, h, w = x.shape
    n_filters, _, kh, kw = weights.shape
    _, _, out_h, out_w = grad_out.shape
    x_pad = _pad(x, ph, pw)
    weights = weights.astype(np.float64)
    grad_x_pad = np.zeros_like(x_pad)
    grad_w = np.zeros(weights.shape, dtype=np.float64)
    grad_b = np.zeros(n_filters, dtype=np.float64)
    for n in range(n_img):
        for f in range(n_filters):
            for oh in range(out_h):
                for ow in range(out_w):
                    g = float(grad_out[n, f, oh, ow])
                    rows = slice(oh * sh, oh * sh + dh * (kh - 1) + 1, dh)   # the field's rows ...
                    cols = slice(ow * sw, ow * sw + dw * (kw - 1) + 1, dw)   # ... and columns
                    grad_x_pad[n, :, rows, cols] += g * weights[f]
                    grad_w[f] += g * x_pad[n, :, rows, cols]
                    grad_b[f] += g
    grad_x = grad_x_pad[:, :, ph:ph + h, pw:pw + w]   # the padding's gradient is dropped
    return grad_x, grad_w, grad_b


# ==================================================================== pooling
def maxpool_forward(x, kh, kw, sh, sw, ph=0, pw=0):
    """x (N, C, H, W) -> (y, argmax), both (N, C, OH, OW).

        y[n, c, oh, ow] = max over the window at (oh*SH - PH, ow*SW - PW) of x[n, c]

    argmax is the flat index h*W + w of the winner inside its (H, W) plane.
    Padding is -inf and never wins; of several equal maxima the first in
    row-major window order wins (strict '>' while scanning).
    """
    n_img, channels, h, w = x.shape
    out_h, out_w = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    y = np.zeros((n_img, channels, out_h, out_w), dtype=np.float64)
    argmax = np.zeros((n_img, channels, out_h, out_w), dtype=np.int64)
    for n in range(n_img):
        for c in range(channels):
            for oh in range(out_h):
                for ow in range(out_w):
                    best, best_idx = -np.inf, -1
                    for i in range(kh):
                        for j in range(kw):
                            src_h, src_w = oh * sh - ph + i, ow * sw - pw + j
                            inside = 0 <= src_h < h and 0 <= src_w < w
                            if inside and (best_idx < 0 or x[n, c, src_h, src_w] > best):
                                best, best_idx = float(x[n, c, src_h, src_w]), src_h * w + src_w
                    y[n, c, oh, ow], argmax[n, c, oh, ow] = best, best_idx
    return y, argmax


def maxpool_backward(x, grad_out, kh, kw, sh, sw, ph=0, pw=0):
    """dL/dx (N, C, H, W): each output's gradient goes to its window's winner.

    The derivative of a maximum is 1 for the winning input and 0 for the others;
    a pixel that wins several overlapping windows receives the sum.
    """
    _, argmax = maxpool_forward(x, kh, kw, sh, sw, ph, pw)
    n_img, channels, h, w = x.shape
    grad_x = np.zeros((n_img, channels, h * w), dtype=np.float64)
    for n in range(n_img):
        for c in range(channels):
            for oh in range(grad_out.shape[2]):
                for ow in range(grad_out.shape[3]):
                    grad_x[n, c, argmax[n, c, oh, ow]] += float(grad_out[n, c, oh, ow])
    return grad_x.reshape(x.shape)


# ============================================================ fully connected
def fc_forward(x, weights, bias):
    """x (N, D), weights (M, D), bias (M,) or None -> y (N, M),  y[n, m] = b[m] + sum_d x[n, d] w[m, d]."""
    n_rows, d_in = x.shape
    m_out = weights.shape[0]
    y = np.zeros((n_rows, m_out), dtype=np.float64)
    for n in range(n_rows):
        for m in range(m_out):
            total = 0.0 if bias is None else float(bias[m])
            for d in range(d_in):
                total += float(x[n, d]) * float(weights[m, d])
            y[n, m] = total
    return y


def fc_backward(x, weights, grad_out):
    """(dL/dx (N, D), dL/dW (M, D), dL/db (M,)) of fc_forward for dL/dy = grad_out (N, M):

        dL/dx[n, d] = sum_m g[n, m] w[m, d]    dL/dw[m, d] = sum_n g[n, m] x[n, d]    dL/db[m] = sum_n g[n, m]
    """
    n_rows, d_in = x.shape
    m_out = weights.shape[0]
    grad_x = np.zeros((n_rows, d_in))
    grad_w = np.zeros((m_out, d_in))
    grad_b = np.zeros(m_out)
    for n in range(n_rows):
        for m in range(m_out):
            g = float(grad_out[n, m])
            grad_b[m] += g
            for d in range(d_in):
                grad_x[n, d] += g * float(weights[m, d])
                grad_w[m, d] += g * float(x[n, d])
    return grad_x, grad_w, grad_b


# ================================================================ activations
def relu_forward(x):
    """y = max(x, 0), element by element (any shape)."""
    return np.array([max(float(v), 0.0) for v in x.ravel()]).reshape(x.shape)


def relu_backward(x, grad_out):
    """dL/dx = dL/dy where x > 0, else 0 (the derivative at 0 taken as 0, as PyTorch)."""
    return np.array([float(g) if float(v) > 0 else 0.0
                     for v, g in zip(x.ravel(), grad_out.ravel())]).reshape(x.shape)


# ====================================================================== loss
def softmax_cross_entropy(logits, targets):
    """(mean loss, dL/dlogits (N, C)) for logits (N, C) and labels (N,) or target rows (N, C).

        L = -(1/N) sum_n sum_k t[n, k] log softmax(x_n)_k
        dL/dx[n, k] = (softmax(x_n)_k * sum_k' t[n, k'] - t[n, k]) / N

    row by row with math.exp, the row maximum subtracted first so nothing overflows.
    """
    logits = np.asarray(logits, dtype=np.float64)
    n_rows, n_classes = logits.shape
    targets = np.asarray(targets)
    if targets.ndim == 1:   # labels -> one-hot rows
        dist = np.zeros((n_rows, n_classes))
        for n in range(n_rows):
            dist[n, int(targets[n])] = 1.0
    else:
        dist = targets.astype(np.float64)
    loss, grad = 0.0, np.zeros((n_rows, n_classes))
    for n in range(n_rows):
        top = max(logits[n])
        exps = [math.exp(v - top) for v in logits[n]]
        total = sum(exps)
        log_z = top + math.log(total)          # log sum_k exp(x_nk)
        mass = sum(dist[n])
        for k in range(n_classes):
            loss -= dist[n, k] * (logits[n, k] - log_z)
            grad[n, k] = (exps[k] / total * mass - dist[n, k]) / n_rows
    return loss / n_rows, grad
