"""Convolution as a matrix product over im2col columns.

Symbols: N batch, C input channels, F filters (output channels), H W input size,
KH KW kernel, SH SW stride, PH PW padding, DH DW dilation, OH OW output size,
K = C*KH*KW the length of one receptive field, M = N*OH*OW the number of them.

    OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1        (as PyTorch)
"""
import numpy as np

from .. import ops
from .base import Layer, as_float_dtype, as_pair, as_positive_int, he_normal


class Conv(Layer):
    """2-d convolution (cross-correlation, as every framework) with a bias.

    x (N, C, H, W) -> y (N, F, OH, OW),

        y[n, f, oh, ow] = b[f] + sum_{c,i,j} w[f, c, i, j] * x_pad[n, c, oh*SH + i*DH, ow*SW + j*DW]

    (the loops of ``minidl.ops.naive.conv_forward`` / ``conv_backward`` say exactly
    this). With X = im2col(x) (K, M), one receptive field per column, and
    Wm = w.reshape(F, K), the whole layer is one matrix product, Y = Wm X + b,
    so its backward is that of a fully connected layer:

        dL/dWm = dL/dY X^T       dL/db = dL/dY summed over its M columns
        dL/dX  = Wm^T dL/dY,     dL/dx = col2im(dL/dX)   (overlapping fields summed)

    That is the plain path below. The fast path (``minidl.ops.fast``: float32,
    compiled, AVX-512 or AVX2) computes the same numbers one image at a time; it caches
    x instead of X.

    Parameters: ``weights`` (F, C, KH, KW), He-initialised; ``bias`` (F,), zeros.
    ``padding="same"`` keeps H and W for odd kernels at stride 1.
    """

    cache_slots = ("path", "x_shape", "x_cols", "x")

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
        # the cache, written by forward:
        self.path = None     # "plain" or "fast": which forward ran; both backward methods follow it
        self.x_shape = None  # (N, C, H, W): read by backward_inputs (col2im) and the grad_out checks
        self.x_cols = None   # plain path: X = im2col(x) (K, M), read by backward_params
        self.x = None        # fast path: the input (N, C, H, W), read by ops.fast.conv_backward

    def output_hw(self, height, width):
        """(OH, OW) for an input of height x width."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return ops.output_size(height, kh, sh, ph, dh), ops.output_size(width, kw, sw, pw, dw)

    def _im2col_args(self):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return kh, kw, sh, sw, ph, pw, dh, dw

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
        self._kept_half = None
        if ops.fast.available(self.dtype):      # fast path: the same numbers, image by image
            self.path, self.x, self.x_cols = "fast", x, None
            return ops.fast.conv_forward(x, self.weights, self.bias, self.stride, self.padding,
                                         self.dilation)
        self.path, self.x = "plain", None
        f = self.out_channels
        self.x_cols = ops.im2col(x, *self._im2col_args())           # X (K, M)
        y = self.weights.reshape(f, -1) @ self.x_cols               # Y = Wm X (F, M)
        if self.bias is not None:
            y += self.bias[:, None]                                 #   + b
        # the columns are ordered (n, oh, ow): bring the batch axis to the front
        return np.ascontiguousarray(y.reshape(f, n, oh, ow).transpose(1, 0, 2, 3))

    def _grad_matrix(self, grad_out, method):
        """dL/dY: grad_out (N, F, OH, OW) checked, as (F, M) in the column order of X."""
        n, _, h, w = self._cached("x_shape", method)
        self._check_grad(grad_out, (n, self.out_channels, *self.output_hw(h, w)), self.dtype)
        return grad_out.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)

    def backward_inputs(self, grad_out):
        """grad_out (N, F, OH, OW) -> dL/dx (N, C, H, W) = col2im(Wm^T dL/dY)."""
        if self.path == "fast":      # one pass gives both halves: the other is kept for the next call
            return self._one_backprop(grad_out, "inputs")
        grad_y = self._grad_matrix(grad_out, "backward_inputs")     # dL/dY (F, M)
        grad_cols = self.weights.reshape(self.out_channels, -1).T @ grad_y   # dL/dX (K, M)
        return ops.col2im(grad_cols, self.x_shape, *self._im2col_args())

    def backward_params(self, grad_out):
        """grad_out (N, F, OH, OW) -> [(weights, dL/dY X^T), (bias, dL/dY summed over M)]."""
        if self.path == "fast":
            return self._one_backprop(grad_out, "params")
        grad_y = self._grad_matrix(grad_out, "backward_params")     # dL/dY (F, M)
        x_cols = self._cached("x_cols", "backward_params")          # X (K, M)
        pairs = [(self.weights, (grad_y @ x_cols.T).reshape(self.weights.shape))]
        if self.bias is not None:
            pairs.append((self.bias, grad_y.sum(axis=1)))
        return pairs

    def backprop(self, grad_out, need_input_grad=True):
        """(dL/dx or None, pairs); on the fast path one pass over the images gives both."""
        if self.path == "fast":
            return self._backprop_fast(grad_out, need_input_grad)
        # Conv's own two methods (a subclass may override them in terms of backprop)
        pairs = Conv.backward_params(self, grad_out)
        return (Conv.backward_inputs(self, grad_out) if need_input_grad else None), pairs

    # ------------------------------------------------------------ fast path
    def _backprop_fast(self, grad_out, need_input_grad):
        """(dL/dx or None, pairs) from ops.fast.conv_backward and the cached input."""
        x = self._cached("x", "backward")
        self._check_grad(grad_out, (x.shape[0], self.out_channels, *self.output_hw(*x.shape[2:])),
                         self.dtype)
        grad_x, grad_w, grad_b = ops.fast.conv_backward(x, self.weights, grad_out, self.stride,
                                                        self.padding, self.dilation, need_input_grad)
        pairs = [(self.weights, grad_w)] + ([(self.bias, grad_b)] if self.bias is not None else [])
        return grad_x, pairs

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
