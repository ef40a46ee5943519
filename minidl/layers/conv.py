"""Convolution as a matrix product over im2col columns.

Symbols: N batch, C input channels, F filters (output channels), H W input size,
KH KW kernel, SH SW stride, PH PW padding, DH DW dilation, OH OW output size,
K = C*KH*KW the length of one receptive field.

    OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1        (as PyTorch)
"""
import numpy as np

from .. import ops
from .base import Layer, as_float_dtype, as_pair, as_positive_int, he_normal


class Conv(Layer):
    """2-d convolution (cross-correlation, as every framework) with a bias.

    x (N, C, H, W) -> y (N, F, OH, OW),

        y[n, f, oh, ow] = b[f] + sum_{c,i,j} w[f, c, i, j] * x_pad[n, c, oh*SH + i*DH, ow*SW + j*DW]

    With X = im2col(x) of shape (K, N*OH*OW) and Wm = w.reshape(F, K) this is
    Y = Wm @ X + b, so backprop is that of a fully connected layer:

        dL/dWm = dL/dY @ X^T          dL/db = sum over columns of dL/dY
        dL/dX  = Wm^T @ dL/dY,  then  dL/dx = col2im(dL/dX)  (overlaps summed)

    That is the code below. For float32 on a CPU with AVX-512 the same products run
    one image at a time instead (``ops.conv_forward`` / ``ops.conv_backward``: the
    image's columns stay in cache: training steps 1.4x faster here); the layer then caches x.

    Parameters: ``weights`` (F, C, KH, KW), He-initialised; ``bias`` (F,), zeros.
    ``padding="same"`` keeps H and W for odd kernels at stride 1.
    """

    cache_slots = ("x", "x_cols", "x_shape")

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 bias=True, name=None, dtype=np.float32, rng=None, dilation=1):
        super().__init__(name)
        who = f"Conv '{self.name}'"
        self.in_channels = as_positive_int(in_channels, "in_channels", who)
        self.out_channels = as_positive_int(out_channels, "out_channels", who)
        self.kernel_size = as_pair(kernel_size, "kernel_size", who)
        self.stride = as_pair(stride, "stride", who)
        self.dilation = as_pair(dilation, "dilation", who)
        if isinstance(padding, str):
            if padding != "same":
                raise ValueError(f"{who}: padding must be an int, a pair or 'same', got {padding!r}")
            if self.stride != (1, 1) or any(k % 2 == 0 for k in self.kernel_size):
                raise ValueError(f"{who}: padding='same' needs an odd kernel and stride 1, got "
                                 f"kernel {self.kernel_size} and stride {self.stride}")
            self.padding = tuple(d * (k - 1) // 2 for k, d in zip(self.kernel_size, self.dilation))
            self._padding_arg = "same"
        else:
            self.padding = as_pair(padding, "padding", who, minimum=0)
            self._padding_arg = self.padding
        self.dtype = as_float_dtype(dtype, who)
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        self.weights = he_normal((self.out_channels, self.in_channels, kh, kw), fan_in, rng, self.dtype)
        self.bias = np.zeros(self.out_channels, dtype=self.dtype) if bias else None
        self.x = None        # (N, C, H, W) the input, on the image-by-image path: read by both backwards
        self.x_cols = None   # (K, N*OH*OW) im2col of the input: read by backward_params
        self.x_shape = None  # (N, C, H, W): read by backward_inputs (col2im) and both checks

    def output_hw(self, height, width):
        """(OH, OW) for an input of height x width."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return ops.output_size(height, kh, sh, ph, dh), ops.output_size(width, kw, sw, pw, dw)

    def forward(self, x):
        """x (N, C, H, W) -> y (N, F, OH, OW)."""
        self._check_float(x, dtype=self.dtype)
        self._check_ndim(x, 4, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self._describe()}: expected {self.in_channels} input channels, "
                             f"got {x.shape[1]} (input shape {x.shape})")
        n, _, h, w = x.shape
        oh, ow = self.output_hw(h, w)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{self._describe()}: a {self.kernel_size[0]}x{self.kernel_size[1]} kernel "
                f"(dilation {self.dilation}) does not fit an input of {h}x{w} padded by "
                f"{self.padding}: the output would be {oh}x{ow}")
        self.x_shape = x.shape
        if ops.fused_conv(self.dtype):  # the fast path: same numbers, image by image
            self.x, self.x_cols = x, None
            return ops.conv_forward(x, self.weights, self.bias, self.stride, self.padding, self.dilation)
        self.x = None
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        f, k, m = self.out_channels, self.in_channels * kh * kw, n * oh * ow
        # the column matrix and the product live in buffers reused across steps
        self.x_cols = ops.im2col(x, kh, kw, sh, sw, ph, pw, dh, dw,
                                 out=self._workspace("x_cols", (k, m), self.dtype))
        y2d = ops.matmul(self.weights.reshape(f, k), self.x_cols,
                        out=self._workspace("y2d", (f, m), self.dtype))      # (F, N*OH*OW)
        if self.bias is not None:
            y2d += self.bias[:, None]
        # columns are ordered (n, oh, ow): bring the batch axis to the front
        y = np.empty((n, f, oh, ow), dtype=self.dtype)
        y[...] = y2d.reshape(f, n, oh, ow).transpose(1, 0, 2, 3)
        return y

    def _grad_matrix(self, grad_out):
        """dL/dY as (F, N*OH*OW), the layout of the forward product."""
        x_shape = self._cached("x_shape", "backward")
        oh, ow = self.output_hw(*x_shape[2:])
        n, f = x_shape[0], self.out_channels
        self._check_grad(grad_out, (n, f, oh, ow), self.dtype)
        grad_y = self._workspace("grad_y", (f, n * oh * ow), self.dtype)
        grad_y.reshape(f, n, oh, ow)[...] = grad_out.transpose(1, 0, 2, 3)
        return grad_y

    def _input_grad(self, grad_y):
        w2d = self.weights.reshape(self.out_channels, -1)
        grad_cols = ops.matmul(w2d.T, grad_y, out=self._workspace(
            "grad_cols", (w2d.shape[1], grad_y.shape[1]), self.dtype))     # (K, N*OH*OW)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return ops.col2im(grad_cols, self.x_shape, kh, kw, sh, sw, ph, pw, dh, dw)

    def _param_grads(self, grad_y):
        x_cols = self._cached("x_cols", "backward_params")
        # dL/dWm = dL/dY @ X^T, computed as (X @ dL/dY^T)^T: the same numbers, but the
        # product runs this shape (long rows of K x M against M x F) a third faster
        grad_w = ops.matmul(x_cols, grad_y.T).T.reshape(self.weights.shape)
        pairs = [(self.weights, grad_w)]
        if self.bias is not None:
            pairs.append((self.bias, grad_y.sum(axis=1)))
        return pairs

    def _fused_backprop(self, grad_out, need_input_grad):
        """The image-by-image path: (dL/dx or None, pairs), from the cached input."""
        x = self.x
        self._check_grad(grad_out, (x.shape[0], self.out_channels, *self.output_hw(*x.shape[2:])),
                         self.dtype)
        grad_x, grad_w, grad_b = ops.conv_backward(x, self.weights, grad_out, self.stride,
                                                   self.padding, self.dilation, need_input_grad)
        pairs = [(self.weights, grad_w)] + ([(self.bias, grad_b)] if self.bias is not None else [])
        return grad_x, pairs

    def backward_inputs(self, grad_out):
        """grad_out (N, F, OH, OW) -> dL/dx (N, C, H, W)."""
        if self.x is not None:
            return self._fused_backprop(grad_out, True)[0]
        return self._input_grad(self._grad_matrix(grad_out))

    def backward_params(self, grad_out):
        """grad_out (N, F, OH, OW) -> [(weights, dL/dweights), (bias, dL/dbias)]."""
        if self.x is not None:
            return self._fused_backprop(grad_out, False)[1]
        return self._param_grads(self._grad_matrix(grad_out))

    def backprop(self, grad_out, need_input_grad=True):
        if self.x is not None:
            return self._fused_backprop(grad_out, need_input_grad)
        grad_y = self._grad_matrix(grad_out)           # one transpose serves both products
        pairs = self._param_grads(grad_y)
        return (self._input_grad(grad_y) if need_input_grad else None), pairs

    def params(self):
        return [("weights", self.weights)] + ([("bias", self.bias)] if self.bias is not None else [])

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": self._padding_arg if self._padding_arg == "same" else list(self.padding),
                "dilation": list(self.dilation), "bias": self.bias is not None,
                "name": self.name, "dtype": self.dtype.name}

    def __repr__(self):
        return (f"Conv({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, name={self.name!r})")
