"""Slow, obvious oracles for the test suite, written by nested loops.

They share no code with ``minidl`` (not even ``minidl.ops.reference``): each
follows the textbook definition one output element at a time, so a bug in the
fast paths cannot hide behind the same bug here. Every function accumulates in
float64 and returns float64; callers cast or compare with a tolerance.

Symbols: N batch, C input channels, F filters, H W input size, KH KW kernel,
SH SW stride, PH PW padding, DH DW dilation, OH OW output size, D M features.

    OH = (H + 2*PH - DH*(KH - 1) - 1) // SH + 1        (PyTorch's floor formula)
"""
import numpy as np


def out_size(size, kernel, stride=1, padding=0, dilation=1):
    """PyTorch's output-size formula for one axis (the documented floor formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _pad(x, ph, pw):
    n, c, h, w = x.shape
    x_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=np.float64)
    x_pad[:, :, ph:ph + h, pw:pw + w] = x
    return x_pad


# ----------------------------------------------------------------- im2col
def im2col(x, kh, kw, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), one element at a time.

    cols[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x_pad[n, c, oh*SH + i*DH, ow*SW + j*DW]
    """
    n_img, channels, h, w = x.shape
    oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    cols = np.zeros((channels * kh * kw, n_img * oh * ow), dtype=np.float64)
    for n in range(n_img):
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    for y in range(oh):
                        for z in range(ow):
                            src_h = y * sh - ph + i * dh
                            src_w = z * sw - pw + j * dw
                            if 0 <= src_h < h and 0 <= src_w < w:
                                cols[(c * kh + i) * kw + j, (n * oh + y) * ow + z] = x[n, c, src_h, src_w]
    return cols


def col2im(cols, x_shape, kh, kw, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1):
    """The adjoint of im2col: add every column entry back onto the pixel it was read from."""
    n_img, channels, h, w = x_shape
    oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    x = np.zeros(x_shape, dtype=np.float64)
    for n in range(n_img):
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    for y in range(oh):
                        for z in range(ow):
                            src_h = y * sh - ph + i * dh
                            src_w = z * sw - pw + j * dw
                            if 0 <= src_h < h and 0 <= src_w < w:
                                x[n, c, src_h, src_w] += cols[(c * kh + i) * kw + j, (n * oh + y) * ow + z]
    return x


# ------------------------------------------------------------ convolution
def _window(x_pad, n, y, z, kh, kw, sh, sw, dh, dw):
    """The (C, KH, KW) receptive field of output (y, z) of image n (dilated taps)."""
    top, left = y * sh, z * sw
    return x_pad[n, :, top:top + dh * (kh - 1) + 1:dh, left:left + dw * (kw - 1) + 1:dw]


def conv_forward(x, weights, bias, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Direct cross-correlation: y[n, f, y, z] = b[f] + sum_{c,i,j} w[f,c,i,j] x_pad[n, c, y*SH + i*DH, z*SW + j*DW]."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n_img, _, h, w = x.shape
    n_filters, _, kh, kw = weights.shape
    oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    x_pad = _pad(x, ph, pw)
    weights = weights.astype(np.float64)
    out = np.zeros((n_img, n_filters, oh, ow), dtype=np.float64)
    for n in range(n_img):
        for f in range(n_filters):
            for y in range(oh):
                for z in range(ow):
                    field = _window(x_pad, n, y, z, kh, kw, sh, sw, dh, dw)
                    out[n, f, y, z] = np.sum(field * weights[f]) + (0.0 if bias is None else float(bias[f]))
    return out


def conv_backward(x, weights, grad_out, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """(dL/dx, dL/dweights, dL/dbias) of conv_forward, by scattering each output's gradient."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n_img, _, h, w = x.shape
    n_filters, _, kh, kw = weights.shape
    _, _, oh, ow = grad_out.shape
    x_pad = _pad(x, ph, pw)
    weights = weights.astype(np.float64)
    grad_x_pad = np.zeros_like(x_pad)
    grad_w = np.zeros(weights.shape, dtype=np.float64)
    grad_b = np.zeros(n_filters, dtype=np.float64)
    for n in range(n_img):
        for f in range(n_filters):
            for y in range(oh):
                for z in range(ow):
                    g = float(grad_out[n, f, y, z])
                    top, left = y * sh, z * sw
                    rows = slice(top, top + dh * (kh - 1) + 1, dh)
                    cols = slice(left, left + dw * (kw - 1) + 1, dw)
                    grad_x_pad[n, :, rows, cols] += g * weights[f]
                    grad_w[f] += g * x_pad[n, :, rows, cols]
                    grad_b[f] += g
    grad_x = grad_x_pad[:, :, ph:ph + h, pw:pw + w]
    return grad_x, grad_w, grad_b


# ---------------------------------------------------------------- pooling
def maxpool_forward(x, kh, kw, sh, sw, ph=0, pw=0):
    """(out, argmax) with argmax the flat index h*W + w of the winner in its plane.

    Padding is -inf and never wins; of several equal maxima the first in
    row-major window order wins (strict '>' while scanning).
    """
    n_img, channels, h, w = x.shape
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    out = np.zeros((n_img, channels, oh, ow), dtype=np.float64)
    argmax = np.zeros((n_img, channels, oh, ow), dtype=np.int64)
    for n in range(n_img):
        for c in range(channels):
            for y in range(oh):
                for z in range(ow):
                    best, best_idx = -np.inf, -1
                    for i in range(kh):
                        for j in range(kw):
                            src_h, src_w = y * sh - ph + i, z * sw - pw + j
                            if 0 <= src_h < h and 0 <= src_w < w and (best_idx < 0 or x[n, c, src_h, src_w] > best):
                                best, best_idx = float(x[n, c, src_h, src_w]), src_h * w + src_w
                    out[n, c, y, z], argmax[n, c, y, z] = best, best_idx
    return out, argmax


def maxpool_backward(x, grad_out, kh, kw, sh, sw, ph=0, pw=0):
    """dL/dx: each output gradient goes to its window's winner (overlaps add up)."""
    _, argmax = maxpool_forward(x, kh, kw, sh, sw, ph, pw)
    n_img, channels, h, w = x.shape
    grad_x = np.zeros((n_img, channels, h * w), dtype=np.float64)
    for n in range(n_img):
        for c in range(channels):
            for y in range(grad_out.shape[2]):
                for z in range(grad_out.shape[3]):
                    grad_x[n, c, argmax[n, c, y, z]] += float(grad_out[n, c, y, z])
    return grad_x.reshape(x.shape)


# ---------------------------------------------------------- fully connected
def fc_forward(x, weights, bias):
    """y[n, m] = b[m] + sum_d x[n, d] w[m, d]."""
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
    """(dL/dx, dL/dW, dL/db) of fc_forward, by loops."""
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


# ------------------------------------------------------------ activations
def relu_forward(x):
    return np.array([max(float(v), 0.0) for v in x.ravel()]).reshape(x.shape)


def relu_backward(x, grad_out):
    return np.array([float(g) if float(v) > 0 else 0.0
                     for v, g in zip(x.ravel(), grad_out.ravel())]).reshape(x.shape)


# ------------------------------------------------------------------ loss
def softmax_cross_entropy(logits, targets):
    """(mean loss, dL/dlogits) for labels (N,) or target rows (N, C), row by row with math.exp."""
    import math
    logits = np.asarray(logits, dtype=np.float64)
    n_rows, n_classes = logits.shape
    targets = np.asarray(targets)
    if targets.ndim == 1:
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
        log_z = top + math.log(total)
        mass = sum(dist[n])
        for k in range(n_classes):
            loss -= dist[n, k] * (logits[n, k] - log_z)
            grad[n, k] = (exps[k] / total * mass - dist[n, k]) / n_rows
    return loss / n_rows, grad
