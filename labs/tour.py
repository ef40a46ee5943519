# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tour of minidl: from one convolution to a training step
#
# This lab reads minidl itself. It starts from a convolution written as loops over a
# 2 × 4 × 5 input, turns it into one matrix product (im2col), runs the backward pass of
# every layer of the lab network (Conv, MaxPool, ReLU, FC, SoftmaxCrossEntropy) from its
# math to the code minidl runs, checks each against numerical derivatives, takes one
# training step apart by hand, and ends where the time goes.
#
# Wherever the lab shows minidl's code, it prints the real source with `inspect`, with the
# file and the function to open, so what you read here is what runs. Questions are in
# **bold**; our answer follows each one in a cell tagged `solution`. Numbers the text relies
# on are checked with `assert`: if minidl changes so that the text becomes wrong, the lab
# stops. `MINIDL_LAB_QUICK=1` runs a shorter version (fewer timing repetitions);
# `labs/README.md` says how long each takes.
#
# Arrays are NumPy arrays in the layout (N, C, H, W): N images, C channels, H rows, W columns.

# %%
import inspect
import os
import pathlib
import time

import minidl  # first: it sets thread defaults before numpy's BLAS starts
import matplotlib.pyplot as plt
import numpy as np

from minidl import gradcheck, labkit, models, ops
from minidl.gradcheck_cases import away_from_zero, distinct_values
from minidl.layers import FC, Conv, MaxPool, ReLU, SoftmaxCrossEntropy
from minidl.ops import naive
from minidl.optim import SGD
from minidl.trainer import Trainer

QUICK = labkit.quick()
lab_started = time.perf_counter()
figures = {}   # the lab's measured results, printed together at the end
REPO = pathlib.Path(minidl.__file__).resolve().parent.parent
np.set_printoptions(linewidth=130)
print("quick mode: fewer timing repetitions" if QUICK else "full mode")
print(f"minidl kernels: {ops.BACKEND}; float32 fast path: {ops.fast.status()}")


def show_source(obj):
    """Print where ``obj`` (a function, method or class) lives in the repository, and its source."""
    path = pathlib.Path(inspect.getsourcefile(obj)).resolve()
    lines, first = inspect.getsourcelines(obj)
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    print(f"# {where}, lines {first}-{first + len(lines) - 1}: {obj.__qualname__}")
    print("".join(lines))


# %% [markdown]
# ## 1. A convolution, by loops
#
# A convolutional layer with F filters of size C × KH × KW slides each filter over the
# image and takes a dot product at every position (strictly a cross-correlation, as in
# every framework):
#
# $$ y_{n,f,o_h,o_w} = b_f + \sum_{c}\sum_{i<K_H}\sum_{j<K_W} w_{f,c,i,j}\, x_{n,c,\,o_h+i,\,o_w+j}. $$
#
# Without padding and at stride 1 the output has OH = H − KH + 1 rows and OW = W − KW + 1
# columns. Our tiny input has N = 1 image of C = 2 channels, H = 4 rows and W = 5 columns,
# and its pixels are numbered 1 … 40 so that later we can see where each one goes. Two
# filters of 2 × 3 (not square, on purpose: a kernel whose height and width are mixed up
# shows at once).

# %%
x = np.arange(1.0, 41.0).reshape(1, 2, 4, 5)          # (N, C, H, W) = (1, 2, 4, 5)
w = np.random.default_rng(0).integers(-2, 3, size=(2, 2, 2, 3)).astype(np.float64)   # (F, C, KH, KW)
b = np.array([0.5, -1.0])
print("x, channel 0:\n", x[0, 0], "\nx, channel 1:\n", x[0, 1])


def conv_by_loops(x, w, b):
    """The definition, one multiply-add at a time (stride 1, no padding)."""
    n_img, channels, h, w_in = x.shape
    n_filters, _, kh, kw = w.shape
    out_h, out_w = h - kh + 1, w_in - kw + 1
    y = np.zeros((n_img, n_filters, out_h, out_w))
    for n in range(n_img):
        for f in range(n_filters):
            for oh in range(out_h):
                for ow in range(out_w):
                    total = b[f]
                    for c in range(channels):
                        for i in range(kh):
                            for j in range(kw):
                                total += w[f, c, i, j] * x[n, c, oh + i, ow + j]
                    y[n, f, oh, ow] = total
    return y


y_loops = conv_by_loops(x, w, b)
print("y:", y_loops.shape)
print(y_loops[0])

# %% [markdown]
# minidl keeps the same loops, with stride, padding and dilation added, as the reader's
# version of a convolution and the oracle its tests compare everything faster against.
# Open `minidl/ops/naive.py`:

# %%
show_source(naive.conv_forward)
assert np.array_equal(naive.conv_forward(x, w, b), y_loops)

# %% [markdown]
# ## 2. im2col: the convolution as one matrix product
#
# Seven nested loops in Python are slow. The trick every CPU framework uses is to copy each
# receptive field (the C × KH × KW input values one output reads) into a column of a
# matrix, once; then all filters at all positions are one matrix product. minidl's column
# layout (the docstring of `minidl/ops/reference.py` gives it as a formula):
#
# $$ \mathrm{cols}\big[(c K_H + i) K_W + j,\; (n\,O_H + o_h)\,O_W + o_w\big] = x_{n,\,c,\,o_h S_H + i D_H,\; o_w S_W + j D_W} $$
#
# one row per tap (c, i, j) of the filter, one column per output position (n, oh, ow).
# Because our pixels are numbered, the printed matrix shows where each value came from:

# %%
KH, KW = 2, 3
cols = ops.im2col(x, KH, KW)                       # (C*KH*KW, N*OH*OW) = (12, 9)
OH, OW = 4 - KH + 1, 5 - KW + 1
row_labels = [f"c{c} i{i} j{j}" for c in range(2) for i in range(KH) for j in range(KW)]
col_labels = [f"({oh},{ow})" for oh in range(OH) for ow in range(OW)]
print("row = tap (c, i, j); column = output position (oh, ow)")
print(" " * 9 + "".join(f"{label:>6}" for label in col_labels))
for label, row in zip(row_labels, cols):
    print(f"{label:>9}" + "".join(f"{v:6.0f}" for v in row))
assert cols.shape == (2 * KH * KW, OH * OW) == (12, 9)
assert np.array_equal(cols, naive.im2col(x, KH, KW))          # compiled (or NumPy) = the loops

# %% [markdown]
# Column 5 is output position (1, 2): its receptive field is the 2 × 3 block of rows 1–2,
# columns 2–4 in both channels. The picture marks it in the input and in the matrix.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [5, 5, 9]})
pick = 5
oh_pick, ow_pick = divmod(pick, OW)
for c in range(2):
    ax = axes[c]
    ax.imshow(x[0, c], cmap="Greys", alpha=0.25)
    for (r, q), v in np.ndenumerate(x[0, c]):
        ax.text(q, r, f"{v:.0f}", ha="center", va="center", fontsize=9)
    ax.add_patch(plt.Rectangle((ow_pick - 0.5, oh_pick - 0.5), KW, KH, fill=False, color="tab:red", lw=2))
    ax.set_title(f"x, channel {c}")
    ax.set_xticks(range(5))
    ax.set_yticks(range(4))
ax = axes[2]
ax.imshow(cols, cmap="Greys", alpha=0.25, aspect="auto")
for (r, q), v in np.ndenumerate(cols):
    ax.text(q, r, f"{v:.0f}", ha="center", va="center", fontsize=8,
            color="tab:red" if q == pick else "black")
ax.add_patch(plt.Rectangle((pick - 0.5, -0.5), 1, cols.shape[0], fill=False, color="tab:red", lw=2))
ax.set_xticks(range(len(col_labels)), col_labels, fontsize=7)
ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
ax.set_title("cols = im2col(x): one receptive field per column")
plt.tight_layout()
plt.show()
assert sorted(cols[:, pick]) == sorted(np.concatenate(
    [x[0, c, oh_pick:oh_pick + KH, ow_pick:ow_pick + KW].ravel() for c in range(2)]))

# %% [markdown]
# Now the filters: reshape the bank (F, C, KH, KW) to a matrix Wm (F, C·KH·KW), whose rows
# are ordered like the rows of cols. Then Y = Wm · cols + b is (F, N·OH·OW), and a reshape
# and a transpose bring it to (N, F, OH, OW). This is the forward pass of minidl's `Conv`
# on its plain path.

# %%
F = w.shape[0]
y_product = (w.reshape(F, -1) @ cols + b[:, None]).reshape(F, 1, OH, OW).transpose(1, 0, 2, 3)
print("largest difference from the loops:", np.abs(y_product - y_loops).max())
assert np.allclose(y_product, y_loops, rtol=1e-14, atol=1e-12)

conv = Conv(2, 2, (KH, KW), dtype=np.float64)
conv.weights[...], conv.bias[...] = w, b
assert np.allclose(conv.forward(x), y_loops, rtol=1e-14, atol=1e-12) and conv.path == "plain"
show_source(Conv.forward)

# %% [markdown]
# **Question.** The second convolution of the lab network takes 16 channels of 14 × 14 to
# 32 channels with 5 × 5 filters and padding 2, on batches of 50. What is the shape of its
# column matrix, how many bytes is it in float32, and how does that compare with the input
# it was made from?

# %% [markdown] tags=["solution"]
# *Solution.* Rows: C·KH·KW = 16·5·5 = 400. Columns: N·OH·OW = 50·14·14 = 9800 (padding 2
# keeps 14 × 14). 400 × 9800 × 4 bytes = 15.7 MB, against 50·16·14·14·4 = 0.63 MB for the
# input: 25 times more, one copy of each pixel per filter tap that reads it. The speed of
# the product is paid for in memory; section 6 shows the layer keeps this matrix for its
# backward pass on the plain path. The cell below builds it.

# %%
x_conv2 = np.zeros((50, 16, 14, 14), dtype=np.float32)
cols_conv2 = ops.im2col(x_conv2, 5, 5, 1, 1, 2, 2)
print("conv2's columns:", cols_conv2.shape, f"{cols_conv2.nbytes / 1e6:.1f} MB;",
      f"its input: {x_conv2.nbytes / 1e6:.2f} MB")
assert cols_conv2.shape == (400, 9800) and cols_conv2.nbytes == 25 * x_conv2.nbytes
del x_conv2, cols_conv2

# %% [markdown]
# ## 3. col2im, the adjoint of im2col
#
# im2col is linear: cols = A x for a matrix A of 0s and 1s with one row per entry of cols
# and one column per pixel. Each row of A has a single 1 (the pixel that entry copies), or
# none when the entry reads zero padding. The backward pass of a convolution needs the
# transpose: if L depends on x only through cols, then
#
# $$ \frac{\partial L}{\partial x} = A^{\top} \frac{\partial L}{\partial\, \mathrm{cols}}. $$
#
# A^T reads the same 1s the other way round: every pixel collects *every* entry that was
# copied from it. A pixel that sits in several receptive fields was copied several times,
# so it receives the **sum** of their gradients. That is col2im: not an inverse of im2col,
# its adjoint. Build A column by column (the image of each unit pixel) and look at it:

# %%
A = np.stack([ops.im2col(e.reshape(x.shape), KH, KW).ravel() for e in np.eye(x.size)], axis=1)
print("A:", A.shape, "  ones per row:", sorted(set(A.sum(axis=1).astype(int).tolist())))
counts = ops.col2im(np.ones_like(cols), x.shape, KH, KW)
print("col2im(ones) = how many receptive fields hold each pixel (channel 0):\n", counts[0, 0])
fig, ax = plt.subplots(figsize=(9, 4))
ax.imshow(A.T, cmap="Greys", aspect="auto", interpolation="nearest")
ax.set_xlabel("entry of cols (row-major over the 12 x 9 matrix)")
ax.set_ylabel("pixel of x")
ax.set_title("A transposed: each pixel's row marks the entries of cols copied from it")
plt.show()
assert np.array_equal(A.sum(axis=1), np.ones(A.shape[0]))            # each entry copies one pixel
assert np.array_equal(A.sum(axis=0), counts.ravel())                 # col2im sums the copies
assert np.array_equal(ops.col2im(cols, x.shape, KH, KW), counts * x)  # so it is not an inverse

# %% [markdown]
# The defining property of an adjoint is the dot-product identity
# ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for every x and every c (it says ⟨Ax, c⟩ = ⟨x, Aᵀc⟩).
# It is a cheap and complete test of a col2im: check it on random arrays, here with a
# non-square kernel, different strides, padding and dilation along the two axes, on the
# kernels minidl runs and on the loop versions.

# %%
rng = np.random.default_rng(1)
geometry = dict(kh=3, kw=2, sh=2, sw=1, ph=1, pw=0, dh=1, dw=2)
x_rand = rng.standard_normal((2, 3, 7, 8))
c_rand = rng.standard_normal(ops.im2col(x_rand, **geometry).shape)
for name, im2col, col2im in (("minidl.ops (" + ops.BACKEND + ")", ops.im2col, ops.col2im),
                             ("minidl.ops.naive", naive.im2col, naive.col2im)):
    lhs = np.vdot(im2col(x_rand, **geometry), c_rand)
    rhs = np.vdot(x_rand, col2im(c_rand, x_rand.shape, **geometry))
    print(f"{name:>28}: <im2col(x), c> = {lhs:.15f}   <x, col2im(c)> = {rhs:.15f}")
    assert abs(lhs - rhs) <= 1e-12 * np.abs(x_rand).sum() * np.abs(c_rand).max()
figures["dot-product identity, |difference|"] = abs(lhs - rhs)

# %% [markdown]
# **Question.** Replace col2im by a function that *writes* each entry back to its pixel
# instead of adding it (the last write wins). Does the dot-product identity still hold?
# What would the convolution's input gradient be missing?

# %% [markdown] tags=["solution"]
# *Solution.* No. Writing keeps one of the copies of each pixel and drops the others, so a
# pixel held by k receptive fields gets the gradient of only one of them: for the interior
# pixels of our tiny example, 1 of up to 6 contributions. The input gradient is then wrong
# everywhere fields overlap (everywhere, for a stride-1 convolution), and the identity
# fails. Only where fields do not overlap (stride ≥ kernel, no dilation crossing) would the
# two agree. The cell below builds the writing version from the loop col2im and measures it.

# %%
def col2im_overwriting(cols, x_shape, kh, kw, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1):
    """The wrong fold: each entry overwrites its pixel (naive.col2im with '=' for '+=')."""
    n_img, channels, h, w_in = x_shape
    out_h, out_w = naive.output_size(h, kh, sh, ph, dh), naive.output_size(w_in, kw, sw, pw, dw)
    out = np.zeros(x_shape)
    for n in range(n_img):
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(out_h):
                        for ow in range(out_w):
                            src_h, src_w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                            if 0 <= src_h < h and 0 <= src_w < w_in:
                                out[n, c, src_h, src_w] = cols[(c * kh + i) * kw + j, (n * out_h + oh) * out_w + ow]
    return out


lhs = np.vdot(ops.im2col(x_rand, **geometry), c_rand)
wrong_rhs = np.vdot(x_rand, col2im_overwriting(c_rand, x_rand.shape, **geometry))
print(f"<im2col(x), c> = {lhs:.6f}, with the overwriting fold: {wrong_rhs:.6f}")
assert abs(lhs - wrong_rhs) > 1e-3 * abs(lhs)

# %% [markdown]
# ## 4. Each layer's backward pass: the math, the code, the check
#
# Every minidl layer keeps one contract (`minidl/layers/base.py`, the docstring of `Layer`):
# `forward(x)` computes y and caches what the backward methods need (the slots are listed in
# `cache_slots`); `backward_inputs(grad_out)` turns dL/dy into dL/dx; `backward_params(grad_out)`
# returns one (parameter, dL/dparameter) pair per parameter. Neither modifies its argument.
#
# To check a backward pass, minidl's `gradcheck.check_layer` picks a random G of the shape of y
# and compares the layer's gradients of the scalar s = sum(G · f(x)) with central differences
# (s(v + ε) − s(v − ε)) / 2ε, entry by entry, in float64. Its pass rule: the largest
# difference is below 10⁻⁶ of the tensor's own scale, or below the rounding noise of the
# difference itself (`minidl/gradcheck.py` explains the noise floor).
#
# ### 4.1 Conv
#
# With X = im2col(x) (K, M), Wm = w reshaped to (F, K) and Y = Wm X + b (F, M), the layer is
# a fully connected layer applied to every column. Let G = dL/dY (grad_out, transposed to
# (F, M) in the column order of X). Since Y_fm = Σ_k Wm_fk X_km + b_f:
#
# $$ \frac{\partial L}{\partial Wm_{fk}} = \sum_m G_{fm} X_{km} \;\Rightarrow\; \frac{\partial L}{\partial Wm} = G X^{\top},\qquad
#    \frac{\partial L}{\partial b_f} = \sum_m G_{fm},\qquad
#    \frac{\partial L}{\partial X} = Wm^{\top} G,\quad \frac{\partial L}{\partial x} = \mathrm{col2im}(Wm^{\top} G). $$
#
# The code, in `minidl/layers/conv.py` (the `path == "fast"` branch is the float32 fast path of
# section 6; float64 always takes the plain one):

# %%
show_source(Conv.backward_inputs)
show_source(Conv.backward_params)

# %%
check_rng = np.random.default_rng(2)
conv = Conv(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), dtype=np.float64, rng=0)
x_check = check_rng.standard_normal((2, 3, 7, 8))
result = gradcheck.check_layer(conv, x_check, rng=3)
print(result.report())
assert result.passed and result.max_rel_error < 1e-8
checks = {"Conv": result}

# the loop version of the same gradients agrees too
g = check_rng.standard_normal(conv.forward(x_check).shape)
grad_x, grad_w, grad_b = naive.conv_backward(x_check, conv.weights, g, conv.stride, conv.padding, conv.dilation)
(_, layer_grad_w), (_, layer_grad_b) = conv.backward_params(g)
assert np.allclose(conv.backward_inputs(g), grad_x, rtol=1e-12, atol=1e-12)
assert np.allclose(layer_grad_w, grad_w, rtol=1e-12, atol=1e-12)
assert np.allclose(layer_grad_b, grad_b, rtol=1e-12, atol=1e-12)

# %% [markdown]
# ### 4.2 MaxPool: the gradient is routed
#
# y = max over a window. Its derivative is 1 with respect to the input that won and 0 with
# respect to the others, so the whole upstream gradient of each window goes to one pixel:
#
# $$ \frac{\partial L}{\partial x_{n,c,p}} = \sum_{\text{windows } (o_h,o_w) \text{ won by } p} \frac{\partial L}{\partial y_{n,c,o_h,o_w}}. $$
#
# The forward pass records the winner of every window (`argmax`, a flat index into the H × W
# plane); the backward pass sends each gradient there and adds (a pixel can win several
# overlapping windows). The layer is in `minidl/layers/pool.py`; the loop version of the kernel
# under it in `minidl/ops/naive.py`:

# %%
show_source(MaxPool.backward_inputs)
show_source(naive.maxpool_backward)

# %%
pool = MaxPool(2)
x_pool = np.array([[3., 1., 0., 2.],
                   [0., 2., 7., 1.],
                   [4., 4., 1., 1.],
                   [4., 4., 5., 9.]]).reshape(1, 1, 4, 4)
y_pool = pool.forward(x_pool)
g_pool = np.array([[10., 20.], [30., 40.]]).reshape(1, 1, 2, 2)
routed = pool.backward_inputs(g_pool)
print("x:\n", x_pool[0, 0], "\ny = maxpool 2x2:\n", y_pool[0, 0], "\ndL/dy:\n", g_pool[0, 0])
print("dL/dx (each window's gradient at its winner):\n", routed[0, 0])
assert routed.sum() == g_pool.sum() and np.count_nonzero(routed) == 4
assert routed[0, 0, 2, 0] == 30      # a tie of four 4s: the first in row-major order wins

# %% [markdown]
# The bottom-left window holds four equal maxima. There the maximum has no derivative: raising
# any one of the four raises y, lowering one leaves y where it is. minidl (like PyTorch) gives
# the whole gradient to the first of them in row-major order, which is one valid choice (a
# subgradient). A numerical derivative sees something else. Raise the winner by ε: y grows by
# ε. Lower it by ε: another 4 takes over and y stays. The central difference is
# (ε − 0) / 2ε = ½, for each tied pixel. So the check *fails at a tie* although nothing is
# wrong:

# %%
tie_check = gradcheck.check_layer(MaxPool(2), x_pool, upstream=g_pool)
print(tie_check.report())
numeric = tie_check.tensors[0].numeric[0, 0]
print("numeric dL/dx:\n", numeric)
assert not tie_check.passed and np.allclose(numeric[2:, :2], 30 / 2)

# %% [markdown]
# This is why minidl's built-in cases (`minidl/gradcheck_cases.py`) check pooling on inputs
# whose values are all different and further apart than ε (`distinct_values`), and ReLU on
# inputs away from its kink at 0 (`away_from_zero`). With overlapping windows (3 × 3, stride
# 2) a pixel can win two windows and receives both gradients:

# %%
pool = MaxPool(3, stride=2, padding=1)
x_check = distinct_values((2, 3, 7, 6), check_rng)
result = gradcheck.check_layer(pool, x_check, rng=4)
print(result.report())
assert result.passed
checks["MaxPool"] = result
x_overlap = -distinct_values((1, 1, 5, 5), check_rng) - 1   # all different and negative ...
x_overlap[0, 0, 1, 1] = 1.0          # ... but one, which lies in the four windows at (0..1, 0..1)
pool.forward(x_overlap)
routed = pool.backward_inputs(np.ones((1, 1, 3, 3)))
print("dL/dx for dL/dy = 1 everywhere:\n", routed[0, 0])
assert routed[0, 0, 1, 1] == 4 and routed.sum() == 9     # four windows won, four gradients added

# %% [markdown]
# ### 4.3 ReLU
#
# y = max(0, x) element by element, so dy/dx = 1 where x > 0 and 0 where x < 0; at x = 0
# minidl takes 0 (as PyTorch). The layer caches only the mask [x > 0], one byte per
# element: dL/dx = dL/dy · [x > 0]. In `minidl/layers/activations.py`:

# %%
show_source(ReLU.forward)
show_source(ReLU.backward_inputs)
result = gradcheck.check_layer(ReLU(), away_from_zero((2, 3, 4, 5), check_rng), rng=5)
print(result.report())
assert result.passed
checks["ReLU"] = result

# %% [markdown]
# ### 4.4 FC
#
# y = x Wᵀ + b with x (N, D), W (M, D), b (M,): y_nm = Σ_d x_nd W_md + b_m. With G = dL/dy (N, M):
#
# $$ \frac{\partial L}{\partial x_{nd}} = \sum_m G_{nm} W_{md} \Rightarrow \frac{\partial L}{\partial x} = G W, \qquad
#    \frac{\partial L}{\partial W_{md}} = \sum_n G_{nm} x_{nd} \Rightarrow \frac{\partial L}{\partial W} = G^{\top} x, \qquad
#    \frac{\partial L}{\partial b} = \sum_n G_{n\cdot}. $$
#
# A shape check catches most mistakes here: G W is (N, M)(M, D) = (N, D) like x, and Gᵀ x is
# (M, N)(N, D) = (M, D) like W. In `minidl/layers/linear.py` (`ops.matmul` is `a @ b`, handed
# to the fast path for float32 where it runs):

# %%
show_source(FC.backward_inputs)
show_source(FC.backward_params)
result = gradcheck.check_layer(FC(7, 5, dtype=np.float64, rng=0), check_rng.standard_normal((4, 7)), rng=6)
print(result.report())
assert result.passed
checks["FC"] = result

# %% [markdown]
# ### 4.5 SoftmaxCrossEntropy
#
# For logits x (one row of C classes) and a target distribution y (one-hot for a label),
# with p = softmax(x), p_k = e^{x_k} / Σ_j e^{x_j}:
#
# $$ L = -\sum_k y_k \log p_k = -\sum_k y_k x_k + \Big(\sum_k y_k\Big) \log \sum_j e^{x_j} = \log \sum_j e^{x_j} - \sum_k y_k x_k $$
#
# (the rows of y sum to 1), and since ∂/∂x_k log Σ_j e^{x_j} = e^{x_k} / Σ_j e^{x_j} = p_k,
#
# $$ \frac{\partial L}{\partial x} = p - y. $$
#
# minidl averages over the batch, so it returns (p − y) / N. The loss is a function of the
# logits and the targets, not a layer: `forward(logits, targets)` returns the number,
# `backward_inputs(logits, targets)` the gradient. In `minidl/layers/losses.py`:

# %%
show_source(SoftmaxCrossEntropy.backward_inputs)
logits_check = check_rng.standard_normal((5, 4)) * 3
labels_check = np.array([0, 3, 1, 1, 2])
result = gradcheck.check_loss(SoftmaxCrossEntropy(), logits_check, labels_check)
print(result.report())
assert result.passed
checks["SoftmaxCrossEntropy"] = result

# %% [markdown]
# #### Why not compute it as written
#
# The formula −log(e^{x_y} / Σ_j e^{x_j}) overflows as soon as a logit exceeds the largest
# exponent the type holds: e^{89} is already inf in float32, e^{710} in float64. Then the
# quotient is inf / inf = NaN. Logits that large are rare at initialisation but appear in a
# training run whose learning rate is too high, and one NaN spreads to every parameter in one
# step. The fix costs nothing: softmax does not change when a constant is subtracted from every
# logit, so subtract the row maximum m. The largest exponent is then e⁰ = 1, and
#
# $$ \log \sum_j e^{x_j} = m + \log \sum_j e^{x_j - m}. $$

# %%
def cross_entropy_naive(logits, labels):
    """-log(e^{x_y} / sum_j e^{x_j}), averaged: the formula as written."""
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return float(-np.log(p[np.arange(len(labels)), labels]).mean())


big = np.array([[90.0, 0.0, -5.0], [1.0, 2.0, 3.0]], dtype=np.float32)
labels_big = np.array([0, 2])
with np.errstate(over="ignore", invalid="ignore"):
    naive_loss = cross_entropy_naive(big, labels_big)
stable_loss = SoftmaxCrossEntropy().forward(big, labels_big)
exact = float(np.mean([np.logaddexp.reduce([90.0, 0.0, -5.0]) - 90.0,
                       np.logaddexp.reduce([1.0, 2.0, 3.0]) - 3.0]))
print(f"float32 logits {big[0]}: naive loss {naive_loss}, minidl {stable_loss:.6f}, exact {exact:.6f}")
assert np.isnan(naive_loss) and abs(stable_loss - exact) < 1e-6
show_source(minidl.layers.log_softmax)

# %% [markdown]
# ### 4.6 The same checks in float32
#
# minidl trains in float32 and checks in float64. `check_layer` turns x into float64 and
# insists the layer's parameters are float64: a float32 Conv refuses the input with a clear
# message. Why not simply check in float32? Run the same comparison by hand with minidl's
# `numerical_gradient` and `relative_error` on float32 copies of the same layers, for several
# steps ε:

# %%
try:
    gradcheck.check_layer(Conv(2, 2, 3, rng=0), np.ones((1, 2, 5, 5), np.float32))
except ValueError as error:
    print("check_layer on a float32 Conv:", error)


def float32_check(layer, x, eps, seed=0):
    """The input check of check_layer, with everything in float32 (upstream G included)."""
    x = np.array(x, dtype=np.float32)
    grad_up = np.random.default_rng(seed).standard_normal(layer.forward(x).shape).astype(np.float32)
    analytic = layer.backward_inputs(grad_up)
    numeric = gradcheck.numerical_gradient(lambda: float(np.sum(grad_up * layer.forward(x))), x, eps)
    return gradcheck.relative_error(analytic, numeric)[0]


def float32_loss_check(logits, labels, eps):
    logits = np.array(logits, dtype=np.float32)
    loss = SoftmaxCrossEntropy()
    numeric = gradcheck.numerical_gradient(lambda: loss.forward(logits, labels), logits, eps)
    return gradcheck.relative_error(loss.backward_inputs(logits, labels), numeric)[0]


rng32 = np.random.default_rng(7)
x_conv32, x_pool32 = rng32.standard_normal((2, 3, 6, 5)), distinct_values((2, 3, 4, 6), rng32)
x_relu32, x_fc32 = away_from_zero((3, 4, 5), rng32), rng32.standard_normal((4, 7))
cases32 = {
    "Conv": lambda eps: float32_check(Conv(3, 4, (3, 2), padding=1, rng=0), x_conv32, eps),
    "MaxPool": lambda eps: float32_check(MaxPool(2), x_pool32, eps),
    "ReLU": lambda eps: float32_check(ReLU(), x_relu32, eps),
    "FC": lambda eps: float32_check(FC(7, 5, rng=0), x_fc32, eps),
    "SoftmaxCrossEntropy": lambda eps: float32_loss_check(logits_check, labels_check, eps),
}
steps = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
errors32 = {name: [run(eps) for eps in steps] for name, run in cases32.items()}
print(f"{'layer':<21}{'float64, eps 1e-6':>18}  " + "".join(f"{'f32 ' + format(e, '.0e'):>10}" for e in steps))
for name in cases32:
    print(f"{name:<21}{checks[name].max_rel_error:>18.1e}  " + "".join(f"{v:>10.1e}" for v in errors32[name]))
fig, ax = plt.subplots(figsize=(7, 4))
for name, errs in errors32.items():
    ax.loglog(steps, errs, "o-", label=f"{name} (float32)")
ax.axhline(1e-6, color="k", ls="--", lw=1, label="the tolerance, 1e-6")
ax.axhline(max(r.max_rel_error for r in checks.values()), color="tab:gray", ls=":",
           label="worst float64 error at eps = 1e-6")
ax.set_xlabel("step eps")
ax.set_ylabel("largest relative error, input gradient")
ax.legend(fontsize=8)
plt.show()
best32 = {name: min(errs) for name, errs in errors32.items()}
figures["float32 check, best relative error over eps (worst layer)"] = max(best32.values())
figures["float64 check, largest relative error (five layers)"] = max(r.max_rel_error for r in checks.values())
assert all(errs[0] > 1e-3 for errs in errors32.values())            # at eps = 1e-6 all float32 checks fail
assert all(best32[name] > 10 * checks[name].max_rel_error for name in checks)

# %% [markdown]
# **Question.** Explain the shape of these curves. Why is every float32 check hopeless at
# ε = 10⁻⁶, why does a larger ε help Conv and FC all the way to 10⁻¹, and why do MaxPool and
# ReLU get worse again at ε = 10⁻¹?

# %% [markdown] tags=["solution"]
# *Solution.* Two errors compete. *Rounding*: s = sum(G · f(x)) is computed in float32 with a
# relative error of about u = 6·10⁻⁸ times the size S of what is summed, and the central
# difference divides that error by 2ε: an absolute error near u·S/ε, which at ε = 10⁻⁶ is
# as large as S/20, far larger than any gradient entry. (The step itself is rounded too: near
# x = 1, float32 numbers are 1.2·10⁻⁷ apart, so x ± 10⁻⁶ lands up to 6 % away from where it was
# aimed; `numerical_gradient` divides by the step actually taken.) *Truncation*: the central difference is exact for a function that is linear (or
# quadratic) along the step, and errs by about ε² times the third derivative otherwise. Conv
# and FC are linear in x, so there is no truncation error at all and the biggest ε wins. The
# softmax cross-entropy is smooth but curved: its best ε balances u/ε against ε², near
# u^{1/3} ≈ 4·10⁻³. MaxPool and ReLU are piecewise linear: a step of 10⁻¹ crosses the
# 10⁻² gaps between the pooled values (another pixel wins) or the kink of ReLU at 0, and the
# error jumps. In float64 u = 1.1·10⁻¹⁶, so ε = 10⁻⁶ keeps rounding near 10⁻¹⁰ and truncation
# near 10⁻¹²: that is why minidl's checker runs in float64 and every layer takes `dtype`.

# %% [markdown]
# ## 5. One training step, taken apart
#
# The lab network (`minidl.models.lab_net`): conv 5×5 with 16 filters → max pool 2 → ReLU →
# conv 5×5 with 32 filters → max pool 2 → ReLU → flatten → FC 512 → ReLU → FC 10, trained on
# batches of 50 MNIST images with the softmax cross-entropy and SGD. We take one batch of real
# MNIST images and run one step by hand.

# %%
from minidl.data import load_mnist

mnist = load_mnist()
x_batch, y_batch = mnist.train_x[:50], mnist.train_y[:50]
print("batch:", x_batch.shape, x_batch.dtype, " labels:", y_batch[:12], "...")
net = models.lab_net(rng=0)
loss_fn = SoftmaxCrossEntropy()
LR = 0.1

# %% [markdown]
# ### Forward: shapes and the memory kept for backward
#
# Each layer's forward caches what its backward methods read, in the attributes listed in its
# `cache_slots`. Run the layers one by one and measure what each keeps:

# %%
h = x_batch
print(f"{'layer':<10}{'output shape':<20}{'cached for backward':<48}{'KiB':>9}")
cache_bytes = {}
for layer in net.layers:
    h = layer.forward(h)
    slots = [(slot, getattr(layer, slot)) for slot in layer.cache_slots]
    arrays = [(slot, value) for slot, value in slots if isinstance(value, np.ndarray)]
    cache_bytes[layer.name] = sum(value.nbytes for _, value in arrays)
    described = ", ".join(f"{slot} {value.dtype.name}{list(value.shape)}" for slot, value in arrays) or "-"
    print(f"{layer.name:<10}{str(h.shape):<20}{described:<48}{cache_bytes[layer.name] / 1024:>9.1f}")
logits = h
print(f"total: {sum(cache_bytes.values()) / 2**20:.2f} MiB for a batch of 50")
summary = net.summary((1, 28, 28), batch_size=50, file=open(os.devnull, "w"))
assert summary["total_cache_bytes"] == sum(cache_bytes.values())
assert logits.shape == (50, 10)
figures["activation memory of a step, batch 50 (MiB)"] = sum(cache_bytes.values()) / 2**20

# %% [markdown]
# The same table comes from `net.summary((1, 28, 28), batch_size=50)`, which runs this pass on
# a copy. On the fast path (float32 here, when it runs) Conv keeps its input x; on the plain
# path it keeps its column matrix, C·KH·KW times larger. The cell below turns the fast path
# off for a moment (`minidl.ops.fast.ENABLED`) and prints the summary again.

# %%
enabled_before = ops.fast.ENABLED
ops.fast.ENABLED = False
plain_summary = net.summary((1, 28, 28), batch_size=50)
ops.fast.ENABLED = enabled_before
print(f"activation memory: {summary['total_cache_bytes'] / 2**20:.2f} MiB with the fast path "
      f"{'on' if ops.fast.available(np.float32) else 'off (not available here)'}, "
      f"{plain_summary['total_cache_bytes'] / 2**20:.2f} MiB on the plain path")
assert plain_summary["total_cache_bytes"] >= summary["total_cache_bytes"]
figures["activation memory on the plain path, batch 50 (MiB)"] = plain_summary["total_cache_bytes"] / 2**20

# %% [markdown]
# **Question.** On the plain path, which two layers hold most of that memory, and why those?

# %% [markdown] tags=["solution"]
# *Solution.* The two convolutions, through their column matrices: conv1's is
# 1·5·5 × 50·28·28 = 25 × 39,200 floats (3.9 MB), conv2's 400 × 9800 (15.7 MB), about
# 90 % of the total. Every other layer keeps something the size of its input or output
# (pool: an int64 argmax per output; ReLU: one byte per element; FC: its input). The cell
# checks it.

# %%
plain_rows = {row[0].split(".", 1)[1]: row[4] for row in plain_summary["rows"]}
conv_share = (plain_rows["conv1"] + plain_rows["conv2"]) / plain_summary["total_cache_bytes"]
print(f"conv1 + conv2: {conv_share:.0%} of the plain path's activation memory")
assert conv_share > 0.85

# %% [markdown]
# ### Backward by hand, and the update
#
# The loss gives dL/dlogits; then the chain rule runs the layers in reverse. Each layer gives
# its parameter gradients (`backward_params`) and passes dL/d(its input) to the layer before
# it (`backward_inputs`). SGD then moves each parameter against its gradient: w ← w − lr · dL/dw.
# We compute the new parameters as new arrays and leave the network as it is.

# %%
loss_value = loss_fn.forward(logits, y_batch)
grad = loss_fn.backward_inputs(logits, y_batch)
print(f"loss {loss_value:.4f}; dL/dlogits {grad.shape}")
pairs_by_hand = []
for layer in reversed(net.layers):
    layer_pairs = layer.backward_params(grad)
    pairs_by_hand[:0] = layer_pairs
    grad_in = layer.backward_inputs(grad)
    print(f"{layer.name:<10} dL/d(input) {str(grad_in.shape):<20}"
          + "  ".join(f"dL/d{name} {g.shape}" for (name, _), (_, g) in zip(layer.params(), layer_pairs)
                      if hasattr(layer, "params")))
    grad = grad_in
updated_by_hand = [param - LR * g for param, g in pairs_by_hand]

# %% [markdown]
# The same step, three more ways, each on a fresh copy of the same initial network:
#
# 1. `Sequential.backward` gives all the (parameter, gradient) pairs, and `SGD.step` applies them;
# 2. `Trainer.train_step`, the step that `Trainer.fit` runs for every batch;
# 3. `Trainer.fit` for one epoch over these 50 images, at batch size 50.

# %%
show_source(Trainer.train_step)
net_seq, net_trainer, net_fit = (models.lab_net(rng=0) for _ in range(3))

grad_logits = loss_fn.backward_inputs(net_seq.forward(x_batch), y_batch)
SGD(LR).step(net_seq.backward(grad_logits))
Trainer(net_trainer, SoftmaxCrossEntropy(), SGD(LR)).train_step(x_batch, y_batch)

seen_batches = []


def spy(batch, rng):
    """A transform that changes nothing and remembers the batch the trainer formed."""
    seen_batches.append(batch.copy())
    return batch


Trainer(net_fit, SoftmaxCrossEntropy(), SGD(LR), batch_size=50, transform=spy).fit(x_batch, y_batch, epochs=1)

print(f"{'parameter':<18}{'Sequential':>14}{'train_step':>14}{'fit':>14}   (largest |difference| from the hand-made step)")
for (name, w_seq), (_, w_tr), (_, w_fit), w_hand in zip(net_seq.params(), net_trainer.params(),
                                                        net_fit.params(), updated_by_hand):
    print(f"{name:<18}" + "".join(f"{np.abs(w - w_hand).max():>14.2e}" for w in (w_seq, w_tr, w_fit)))
    assert np.array_equal(w_seq, w_hand) and np.array_equal(w_tr, w_hand)
fit_gap = max(np.abs(w_fit - w_hand).max() for (_, w_fit), w_hand in zip(net_fit.params(), updated_by_hand))
figures["fit vs the hand-made step, largest |difference|"] = fit_gap

# %% [markdown]
# `Sequential` and `train_step` agree with the hand-made step bit for bit: they run the same
# operations in the same order. (`SGD` writes w ← w − lr·g in place, with `ops.axpy` on the
# compiled backend: one multiplication and one subtraction per entry, each rounded once, the
# same two roundings as `param - LR * g`.) `fit` differs in the last bits.
#
# **Question.** `fit` trained on the same 50 images, at the same learning rate, from the same
# initial weights. Why are its numbers not identical? Prove your answer.

# %% [markdown] tags=["solution"]
# *Solution.* `fit` shuffles the training set at the start of every epoch, so its one batch
# holds the same images in another order. The loss is a mean over the batch and every
# parameter gradient is a sum over the batch (dL/dW = Gᵀx sums over the 50 rows), and
# floating-point addition is not associative: the same terms added in another order round
# differently, in the last bit or so of float32 (about 10⁻⁸ on these weights). The proof: the
# `spy` transform saw the batch as the trainer formed it; find each of its images in
# `x_batch`, give `train_step` the batch in that order, and the result equals `fit`'s bit for
# bit.

# %%
order = [int(np.flatnonzero((x_batch == image).all(axis=(1, 2, 3)))[0]) for image in seen_batches[0]]
print("fit's batch order starts", order[:10])
net_reordered = models.lab_net(rng=0)
Trainer(net_reordered, SoftmaxCrossEntropy(), SGD(LR)).train_step(x_batch[order], y_batch[order])
assert sorted(order) == list(range(50)) and order != list(range(50))
assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(net_reordered.params(), net_fit.params()))
assert 0 < fit_gap < 1e-5
print("train_step on the reordered batch equals fit bit for bit; the two orders differ by at most", f"{fit_gap:.1e}")

# %% [markdown]
# **Question.** `Sequential.backward` never computes the input gradient of the first layer.
# Why is that safe, and what does it save here?

# %% [markdown] tags=["solution"]
# *Solution.* dL/dx for the first layer is the gradient with respect to the images, which no
# parameter update needs (it is useful for other things, such as saliency maps or adversarial
# examples, and `backward_inputs` still gives it on request). For conv1 it would cost a
# product of Wmᵀ (25 × 16) with the 16 × 39,200 upstream gradient, 15.7 million
# multiply-adds, as many as the weight gradient's product, and a col2im over the whole batch.
# The hand-made loop above computed it anyway. What it costs in time depends on the path: the
# cell measures it on each path that runs here.

# %%
conv1 = models.lab_net(rng=0).layers[0]
grad_conv1 = np.random.default_rng(8).standard_normal((50, 16, 28, 28)).astype(np.float32)


def best_time(run, repeats):
    """The shortest of ``repeats`` timed calls of ``run()``, in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return min(times)


repeats = 3 if QUICK else 20
for fast_on in ([True, False] if ops.fast.available(np.float32) else [False]):
    ops.fast.ENABLED = fast_on
    conv1.forward(x_batch)
    t_params = best_time(lambda: conv1.backprop(grad_conv1, need_input_grad=False), repeats)
    t_both = best_time(lambda: conv1.backprop(grad_conv1, need_input_grad=True), repeats)
    print(f"conv1 backward, {conv1.path} path: {t_params * 1e3:6.2f} ms for the parameter gradients "
          f"alone, {t_both * 1e3:6.2f} ms with the input gradient")
    figures[f"conv1 backward with / without the input gradient, {conv1.path} path"] = t_both / t_params
    assert conv1.backprop(grad_conv1, need_input_grad=False)[0] is None
ops.fast.ENABLED = enabled_before

# %% [markdown]
# ## 6. Where the time goes
#
# Now time each layer of a training step at batch 50, on your machine. Each layer's forward,
# then its backward as `Sequential` calls it (`backprop`, both gradients in one call; none for the
# first layer's input), the median of several steps. Three configurations of the same code:
#
# * **fast**: the default. float32 convolutions and products run minidl's compiled fast path
#   (`minidl.ops.fast`) where it is available;
# * **plain, compiled**: `minidl.ops.fast.ENABLED = False`. The layers run the plain code printed
#   above: im2col and col2im from the Cython kernels, the products by NumPy;
# * **plain, NumPy**: `minidl.ops.use_backend("numpy")`, the vectorised NumPy versions of the
#   kernels (`minidl/ops/reference.py`), which is what runs where the extension is not built.
#   The environment variable `MINIDL_BACKEND=numpy` chooses it for a whole run.

# %%
from minidl.layers.base import call_backprop


def step_times(net, x, y, repeats):
    """Median forward and backward time of each layer (seconds) over ``repeats`` steps after one warm-up."""
    forward_t = np.zeros((repeats + 1, len(net.layers)))
    backward_t = np.zeros((repeats + 1, len(net.layers)))
    for r in range(repeats + 1):
        h = x
        for i, layer in enumerate(net.layers):
            t = time.perf_counter()
            h = layer.forward(h)
            forward_t[r, i] = time.perf_counter() - t
        g = loss_fn.backward_inputs(h, y)
        for i in range(len(net.layers) - 1, -1, -1):
            t = time.perf_counter()
            g, _ = call_backprop(net.layers[i], g, need_input_grad=i > 0)
            backward_t[r, i] = time.perf_counter() - t
    return np.median(forward_t[1:], axis=0), np.median(backward_t[1:], axis=0), h


timing_net = models.lab_net(rng=0)
repeats = 3 if QUICK else 25
timings, outputs = {}, {}
configurations = ["fast", "plain, compiled", "plain, NumPy"]
for config in configurations:
    if config == "fast" and not ops.fast.available(np.float32):
        print("the fast path does not run here:", ops.fast.status())
        continue
    if config != "plain, NumPy" and ops.BACKEND != "compiled":
        print(f"skipping '{config}': the compiled kernels are not built")
        continue
    ops.fast.ENABLED = config == "fast"
    if config == "plain, NumPy":
        previous_backend = ops.BACKEND
        ops.use_backend("numpy")
    try:
        *timings[config], outputs[config] = step_times(timing_net, x_batch, y_batch, repeats)
    finally:
        ops.fast.ENABLED = enabled_before
        if config == "plain, NumPy":
            ops.use_backend(previous_backend)
names = [layer.name for layer in timing_net.layers]
print(f"{'ms':<10}" + "".join(f"{c:>24}" for c in timings) + "    (forward + backward)")
for i, name in enumerate(names):
    print(f"{name:<10}" + "".join(f"{f[i] * 1e3:>12.2f} +{b[i] * 1e3:>10.2f}" for f, b in timings.values()))
print(f"{'total':<10}" + "".join(f"{(f.sum() + b.sum()) * 1e3:>24.1f}" for f, b in timings.values()))

fig, ax = plt.subplots(figsize=(9, 3.6))
left = np.zeros(len(timings))
colours = plt.cm.tab10(np.arange(len(names)))
for i, name in enumerate(names):
    widths = np.array([(f[i] + b[i]) * 1e3 for f, b in timings.values()])
    ax.barh(list(timings), widths, left=left, color=colours[i], label=name)
    left += widths
ax.set_xlabel("ms per training step, batch 50")
ax.invert_yaxis()
ax.legend(ncol=5, fontsize=8, loc="lower right")
ax.set_title("one training step of the lab network, layer by layer")
plt.tight_layout()
plt.show()

for config, (f, b) in timings.items():
    total = f.sum() + b.sum()
    conv_time = sum(f[i] + b[i] for i, name in enumerate(names) if name.startswith("conv"))
    figures[f"step time, {config} (ms)"] = total * 1e3
    figures[f"share of the two convolutions, {config}"] = conv_time / total
    assert conv_time > total / 3, (config, conv_time, total)
reference_logits = outputs[list(outputs)[0]]
for config, out in outputs.items():   # every path computes the same network, to float32 rounding
    assert np.allclose(out, reference_logits, rtol=1e-4, atol=1e-4), config

# %% [markdown]
# The convolutions dominate in every configuration (the assertion above requires at least a
# third of the step; on the machine this lab was written on they take most of it), and
# conv2 most of all: its product is 32 × 400 × 9800 multiply-adds per direction, against
# 512 × 1568 × 50 for fc3. The totals are this machine's; on a busy machine the plain
# configurations can be much slower than their arithmetic suggests, because NumPy's BLAS
# threads then wait for cores. For a thorough measurement (many repetitions, the kernels under
# each layer, both backends side by side) run `python benchmarks/bench_layers.py`.
#
# ### Where the fast corner takes over
#
# Nothing in `minidl/ops/fast/` is needed to understand minidl, and this lab does not read its
# C. What matters is where it takes over, which its README states (printed below): in
# `Conv.forward`, a single labelled branch (`if ops.fast.available(self.dtype)`, visible in
# the source printed in section 2) hands float32 convolutions to `ops.fast.conv_forward`, and
# the layer records `conv.path == "fast"` so that its backward methods follow; `ops.matmul`
# hands float32 products (FC's) to `ops.fast.matmul`. float64 never takes it, which is why
# every check in section 4 exercised the plain code.

# %%
readme = (REPO / "minidl" / "ops" / "fast" / "README.md").read_text()
start = readme.index("## When it runs")
print(readme[start:readme.index("\n## ", start + 1)])
print("here:", ops.fast.status())
probe = Conv(1, 2, 3, rng=0)
probe.forward(np.zeros((1, 1, 5, 5), np.float32))
probe64 = Conv(1, 2, 3, rng=0, dtype=np.float64)
probe64.forward(np.zeros((1, 1, 5, 5)))
print(f"a float32 Conv took the {probe.path} path; a float64 Conv took the {probe64.path} path")
assert probe64.path == "plain"
assert probe.path == ("fast" if ops.fast.available(np.float32) else "plain")

# %% [markdown]
# **Question.** The fast path and the plain path give the same logits to float32 rounding
# (the lab asserted it above), not bit for bit. Where can the two differ, given that both
# compute Wm · im2col(x) + b?

# %% [markdown] tags=["solution"]
# *Solution.* In the order of the additions. A matrix product sums K = C·KH·KW terms per
# output; NumPy's BLAS and minidl's gemm block the K axis differently and use different vector
# widths, so partial sums are formed and added in different orders, and each order rounds
# differently (section 5 showed the same effect for the batch order). The weight gradient is a
# sum over the whole batch, which the fast path accumulates image by image per thread and then
# adds up the threads' partial sums. All these differences are a few float32 units in the last
# place; the test suite checks each fast function against the loop versions within such a
# bound (`tests/test_fast.py`).

# %% [markdown]
# ## What this run measured

# %%
for name, value in figures.items():
    print(f"{name:>62}: {value:.4g}")
print(f"{'running time (s)':>62}: {time.perf_counter() - lab_started:.0f}")
