"""Normalisation layers: batch normalisation and local response normalisation.

Symbols: N batch, C channels (features), H W spatial size, D features of a 2-d
input (then C = D and there is no H, W), M = N*H*W (or N) the number of values
of one channel that a batch statistic averages over.
"""
import numbers

import numpy as np

from .base import Layer, as_float_dtype, as_positive_int


# ------------------------------------------------------- batch normalisation
class BatchNorm(Layer):
    """Batch normalisation (Ioffe & Szegedy 2015) of each channel.

    x (N, C, H, W) -> y (N, C, H, W), or x (N, D) -> y (N, D) with C = D:

        mu_c = mean of x[:, c] over the M values of channel c in the batch
        var_c = mean of (x[:, c] - mu_c)^2           (the biased variance)
        x_hat = (x - mu_c) / sqrt(var_c + eps)
        y     = gamma_c * x_hat + beta_c

    In training mode mu and var are the batch's; the running statistics follow them,

        running_mean = (1 - momentum) * running_mean + momentum * mu
        running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

    (the unbiased variance, as PyTorch). In evaluation mode x is normalised by
    the running statistics instead, and the layer is a fixed affine map.

    Backward, with g = dL/dy and sums over the M values of each channel:

        dL/dbeta  = sum g            dL/dgamma = sum g * x_hat
        dL/dx     = gamma / (M * sqrt(var + eps)) * (M g - sum g - x_hat * sum g * x_hat)

    the compact form of the chain rule through mu and var (in evaluation mode
    the statistics are constants and dL/dx = gamma * g / sqrt(running_var + eps)).

    Parameters: ``gamma`` (C,), ones; ``beta`` (C,), zeros.
    Buffers: ``running_mean`` (C,), zeros; ``running_var`` (C,), ones.

    x and grad_out are made C-contiguous first (no copy if they already are): a sum's
    rounding depends on the order it reads its terms, and a strided or transposed
    array must give the same numbers as its copy.
    """

    cache_slots = ("x_hat", "inv_std")

    def __init__(self, num_features, eps=1e-5, momentum=0.1, name=None, dtype=np.float32):
        super().__init__(name)
        who = f"BatchNorm '{self.name}'"
        self.num_features = as_positive_int(num_features, "num_features", who)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"{who}: eps must be a positive number, got {eps!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise ValueError(f"{who}: momentum must be in [0, 1], got {momentum!r}")
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.dtype = as_float_dtype(dtype, who)
        c = self.num_features
        self.gamma = np.ones(c, dtype=self.dtype)
        self.beta = np.zeros(c, dtype=self.dtype)
        self.running_mean = np.zeros(c, dtype=self.dtype)
        self.running_var = np.ones(c, dtype=self.dtype)
        self.x_hat = None          # the normalised input, shape of x: read by both backward methods
        self.inv_std = None        # (C,) 1 / sqrt(var + eps) used by forward: read by backward_inputs
        self._batch_stats = None   # True if the last forward used batch statistics: backward_inputs

    # the per-channel vectors broadcast against x: (1, C, 1, 1) for 4-d, (1, C) for 2-d
    def _axes(self, x):
        return (0, 2, 3) if x.ndim == 4 else (0,)

    def _expand(self, vector, ndim):
        return vector.reshape((1, -1, 1, 1) if ndim == 4 else (1, -1))

    def forward(self, x):
        """x (N, C, H, W) or (N, C) -> y of the same shape."""
        self._check_float(x, dtype=self.dtype)
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"{self._describe()}: expected input of shape (N, {self.num_features}, H, W) "
                             f"or (N, {self.num_features}), got {x.shape}")
        x = np.ascontiguousarray(x)                      # one layout, one rounding (see above)
        axes = self._axes(x)
        if self.training:
            count = x.size // self.num_features          # M values per channel
            if count < 2:
                raise ValueError(f"{self._describe()}: training needs more than one value per channel "
                                 f"to estimate a variance, got input of shape {x.shape}")
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            # running statistics: in place, so the buffer arrays stay the same objects
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mean
            self.running_var *= 1 - self.momentum
            self.running_var += self.momentum * var * (count / (count - 1))
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = (1 / np.sqrt(var + self.eps)).astype(self.dtype, copy=False)
        self.x_hat = (x - self._expand(mean, x.ndim)) * self._expand(inv_std, x.ndim)
        self.inv_std = inv_std
        self._batch_stats = self.training
        return self._expand(self.gamma, x.ndim) * self.x_hat + self._expand(self.beta, x.ndim)

    def _check_backward(self, grad_out, method):
        """(x_hat, grad_out made C-contiguous)."""
        x_hat = self._cached("x_hat", method)
        self._check_grad(grad_out, x_hat.shape, self.dtype)
        return x_hat, np.ascontiguousarray(grad_out)

    def backward_inputs(self, grad_out):
        """grad_out (shape of x) -> dL/dx (shape of x)."""
        x_hat, grad_out = self._check_backward(grad_out, "backward_inputs")
        ndim = x_hat.ndim
        scale = self._expand(self.gamma * self.inv_std, ndim)   # gamma / sqrt(var + eps)
        if not self._batch_stats:                                # statistics were constants
            return grad_out * scale
        axes = self._axes(x_hat)
        count = x_hat.size // self.num_features
        grad_sum = self._expand(grad_out.sum(axis=axes), ndim)
        grad_dot_xhat = self._expand((grad_out * x_hat).sum(axis=axes), ndim)
        return scale * (grad_out - grad_sum / count - x_hat * (grad_dot_xhat / count))

    def backward_params(self, grad_out):
        """grad_out (shape of x) -> [(gamma, dL/dgamma (C,)), (beta, dL/dbeta (C,))]."""
        x_hat, grad_out = self._check_backward(grad_out, "backward_params")
        axes = self._axes(x_hat)
        return [(self.gamma, (grad_out * x_hat).sum(axis=axes)), (self.beta, grad_out.sum(axis=axes))]

    def params(self):
        return [("gamma", self.gamma), ("beta", self.beta)]

    def buffers(self):
        return [("running_mean", self.running_mean), ("running_var", self.running_var)]

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "name": self.name, "dtype": self.dtype.name}

    def __repr__(self):
        return f"BatchNorm({self.num_features}, eps={self.eps}, momentum={self.momentum}, name={self.name!r})"


# ---------------------------------------------- local response normalisation
def lrn_window(size):
    """(below, above): channel c is normalised by channels c - below .. c + above (inclusive).

    below = floor(size/2), above = floor((size-1)/2): exactly ``size`` channels before
    clipping to {0, ..., C-1}, centred on c (for an even size the extra one is below).
    """
    return size // 2, (size - 1) // 2


def local_response_norm_naive(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """The definition by loops over channels: x (N, C, H, W) -> y (N, C, H, W).

        y[:, c] = x[:, c] / (k + alpha/size * sum_{j in G(c)} x[:, j]^2) ** beta
    """
    below, above = lrn_window(size)
    channels = x.shape[1]
    y = np.empty_like(x)
    for c in range(channels):
        group = range(max(c - below, 0), min(c + above, channels - 1) + 1)
        square_sum = sum(x[:, j] ** 2 for j in group)
        y[:, c] = x[:, c] / (k + alpha / size * square_sum) ** beta
    return y


def local_response_norm_backward_naive(x, grad_out, size, alpha=1e-4, beta=0.75, k=1.0):
    """dL/dx of ``local_response_norm_naive`` by the same loops: x, grad_out (N, C, H, W) -> (N, C, H, W).

    Channel c's output y_c = x_c d_c^-beta depends on x_c directly and on every x_j, j in G(c),
    through d_c = k + alpha/size * sum_{j in G(c)} x_j^2; each c hands its share to those j:

        dL/dx_c += g_c d_c^-beta          dL/dx_j -= g_c x_c beta d_c^(-beta-1) * (2 alpha/size) x_j
    """
    below, above = lrn_window(size)
    channels = x.shape[1]
    grad = np.zeros_like(x)
    for c in range(channels):
        group = range(max(c - below, 0), min(c + above, channels - 1) + 1)
        denom = k + alpha / size * sum(x[:, j] ** 2 for j in group)
        grad[:, c] += grad_out[:, c] * denom ** -beta
        through_denom = grad_out[:, c] * x[:, c] * beta * denom ** (-beta - 1)
        for j in group:
            grad[:, j] -= through_denom * (2 * alpha / size) * x[:, j]
    return grad


class LocalResponseNorm(Layer):
    """Local response normalisation across channels (Krizhevsky et al. 2012), as PyTorch.

    x (N, C, H, W) -> y (N, C, H, W), at every pixel v, a window of ``size`` = rho channels:

        d_cv = k + (alpha / rho) * sum_{j in G(c)} x_jv^2        y_cv = x_cv / d_cv^beta
        G(c) = [c - floor(rho/2), c + floor((rho-1)/2)]  intersected with {0, ..., C-1}

    the same numbers as ``torch.nn.functional.local_response_norm(x, size, alpha, beta, k)``
    (alpha is divided by rho also where the window is clipped at the first or last channel).

    Backward: d_cv depends on x_jv for every j in G(c), so with g = dL/dy,

        dL/dx_jv = g_jv / d_jv^beta - (2 alpha beta / rho) x_jv sum_{c : j in G(c)} g_cv x_cv / d_cv^(beta+1)

    where {c : j in G(c)} = [j - floor((rho-1)/2), j + floor(rho/2)]: the window mirrored
    (for an even rho it reaches one channel further above j than below).

    ``local_response_norm_naive`` and ``local_response_norm_backward_naive`` are the same
    two formulas as loops over channels. Some texts print the window as [c - floor(rho/2),
    c + ceil(rho/2)], which holds rho + 1 channels; the code they run uses rho, as here.
    When floor(rho/2) >= C-1 (e.g. ``LocalResponseNorm(5, alpha=5, beta=0.5, k=0)`` on
    3 channels) every window holds every channel and y = x / ||x||, the L2 normalisation
    across channels.
    """

    cache_slots = ("x", "denom")

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0, name=None):
        super().__init__(name)
        who = f"LocalResponseNorm '{self.name}'"
        self.size = as_positive_int(size, "size", who)
        for what, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
                raise ValueError(f"{who}: {what} must be a finite number, got {value!r}")
        self.alpha, self.beta, self.k = float(alpha), float(beta), float(k)
        self.x = None      # (N, C, H, W) the input: read by backward_inputs
        self.denom = None  # (N, C, H, W) d = k + alpha/rho * windowed sum of x^2: read by backward_inputs

    def _window_sum(self, values, below, above):
        """s[:, c] = sum of values[:, j] for j in [c - below, c + above] within 0..C-1.

        One slice addition per offset of the window (below + above + 1 of them), each over the batch.
        """
        channels = values.shape[1]
        total = np.zeros_like(values)
        for offset in range(-below, above + 1):
            lo, hi = max(0, -offset), min(channels, channels - offset)  # c with 0 <= c + offset < C
            if lo < hi:
                total[:, lo:hi] += values[:, lo + offset:hi + offset]
        return total

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, H, W)."""
        self._check_float(x)
        self._check_ndim(x, 4, "(N, C, H, W)")
        below, above = lrn_window(self.size)
        denom = self.k + (self.alpha / self.size) * self._window_sum(x * x, below, above)
        self.x, self.denom = x, denom
        return x / denom ** self.beta

    def backward_inputs(self, grad_out):
        """grad_out (N, C, H, W) -> dL/dx (N, C, H, W)."""
        x = self._cached("x", "backward_inputs")
        self._check_grad(grad_out, x.shape, x.dtype)
        denom = self.denom
        below, above = lrn_window(self.size)
        direct = grad_out * denom ** -self.beta
        through_denom = grad_out * x * denom ** (-self.beta - 1)
        # sum over the channels c whose window holds j: the mirrored window (above, below)
        spread = self._window_sum(through_denom, above, below)
        return direct - (2 * self.alpha * self.beta / self.size) * x * spread

    def config(self):
        return {"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k, "name": self.name}

    def __repr__(self):
        return (f"LocalResponseNorm({self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
                f"name={self.name!r})")
