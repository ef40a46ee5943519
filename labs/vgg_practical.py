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
# # Convolutional networks by hand: filters, backprop, a blob detector, a character reader
#
# This lab follows the plan of the CNN practical of the Oxford Visual Geometry Group
# (Andrea Vedaldi and Andrew Zisserman), rebuilt on minidl with data that ships with
# scikit-image and fonts installed on your machine: nothing is downloaded. Five parts:
#
# 1. the building blocks of a CNN (convolution, ReLU, max pooling, normalisation), tried on a photograph;
# 2. back-propagation: calling a layer's backward methods yourself and checking them numerically;
# 3. training a two-layer CNN that finds dark blobs in an image, with plain gradient descent;
# 4. training a character recogniser, reading a sentence with it, and making it read better with jitter;
# 5. running a network built for ImageNet, and what pretrained weights change.
#
# Questions are in **bold**; the answer follows each one in a cell marked *Solution*
# (tagged `solution`, so a teacher can strip them). Where an answer is a fact about
# the data, the lab measures it and checks it with `assert`: if a change breaks what
# the text claims, the lab stops.
#
# Arrays are NumPy arrays in the layout (N, C, H, W): N images, C channels, H rows,
# W columns. Set the environment variable `MINIDL_LAB_QUICK=1` for a quick run
# (smaller data, fewer iterations and epochs); `labs/README.md` says how long each takes.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minidl
from minidl import functional as F
from minidl import labkit, models
from minidl.layers import AvgPool, Conv, Flatten, MaxPool, Sequential, SoftmaxCrossEntropy

QUICK = labkit.quick()
rng = np.random.default_rng(0)
lab_started = time.perf_counter()
figures = {}   # the lab's measured results, printed together at the end
plt.rcParams["figure.max_open_warning"] = 0   # run as a script, the lab's figures stay open
print("quick mode: smaller data, fewer iterations" if QUICK else "full mode")

# %% [markdown]
# ## Part 1: the building blocks
#
# A feed-forward network is a chain of functions, each with its own parameters:
# x₁ = f₁(x₀; w₁), x₂ = f₂(x₁; w₂), and so on. The designer picks the kind and order of
# the functions; training picks the parameters. Only x₀ is an image; the arrays in
# between are *feature maps*, with as many channels as the layer that made them wants.
# In a *convolutional* network most of the functions are local (an output pixel depends
# on a small neighbourhood of the input) and the same everywhere in the image.
#
# ### 1.1 Convolution
#
# We start from a colour photograph, as an array of floats in [0, 1].

# %%
x = labkit.photo("coffee")
print("x:", x.shape, x.dtype)
labkit.show(x, "x: the input image");

# %% [markdown]
# **Question.** The array has shape (1, 3, 400, 600). What do the first two axes count?

# %% [markdown] tags=["solution"]
# *Solution.* The first axis counts images: a batch of one. The second counts channels:
# red, green and blue. Every layer takes a batch, and the same code that filters one
# photo filters a batch of a hundred.

# %% [markdown]
# A convolutional layer applies a *bank* of K filters. Each filter is a small block of
# weights with as many channels as its input, here 3 × 5 × 5, so the bank is an array
# of shape (K, C, 5, 5). Let us draw ten filters at random and apply them.

# %%
w = rng.standard_normal((10, 3, 5, 5)).astype(np.float32)
labkit.show_mosaic(w, "ten random filters (each a 3x5x5 block, its channels shown as colours)", size=6)
y = F.conv2d(x, w)
print("y:", y.shape)

# %% [markdown]
# Written out, filter k at output position (i, j) computes
#
# $$ y_{n,k,i,j} = \sum_{c} \sum_{a} \sum_{b} w_{k,c,a,b}\; x_{n,c,\,i+a,\,j+b}. $$
#
# **Question.** With an input of C × H × W and K filters of C × KH × KW, what is the
# shape of y? The input is indexed by i + a but the channel index c of x is not added to
# anything: why?

# %% [markdown] tags=["solution"]
# *Solution.* y has shape (N, K, H − KH + 1, W − KW + 1): the filter must fit entirely
# inside the image, so it can start at H − KH + 1 rows and W − KW + 1 columns; here
# (1, 10, 396, 596). The filter *slides* over rows and columns, hence i + a and j + b;
# it does not slide over channels: it spans all of them at once and they are summed, so
# c is a summation index, and k chooses which filter, that is which output channel.
# The cell below checks the shape and one output value against the formula.

# %%
K, C, KH, KW = w.shape
assert y.shape == (1, K, x.shape[2] - KH + 1, x.shape[3] - KW + 1) == (1, 10, 396, 596)
k, i, j = 3, 120, 250
by_hand = float(np.sum(w[k] * x[0, :, i:i + KH, j:j + KW]))
print(f"y[0, {k}, {i}, {j}] = {y[0, k, i, j]:.5f};  by the formula: {by_hand:.5f}")
assert np.isclose(y[0, k, i, j], by_hand, rtol=1e-5, atol=1e-5)

# %%
labkit.show_mosaic(labkit.channels(y), "y: one image per filter", size=10);

# %% [markdown]
# **Question.** The ten filters are random, yet most of their outputs look like drawings
# of the edges of the photo. Why?

# %% [markdown] tags=["solution"]
# *Solution.* Split each channel of each filter into its mean and the rest: w = m + (w − m).
# The mean part gives a blurred copy of each colour channel, weighted: on a patch of
# constant colour that is all there is, since the rest has weights summing to zero on
# every channel and gives zero. So away from edges a random filter only reports the
# local colour, slowly varying; wherever the colour changes inside the 5 × 5 window, the
# zero-sum part gives a large answer of either sign. The cell below measures it: the
# zero-sum parts respond far more strongly on the strongest edges of the photo than in
# its flattest places.

# %%
w_rest = w - w.mean(axis=(2, 3), keepdims=True)     # each channel of each filter minus its mean
energy = (F.conv2d(x, w_rest) ** 2).sum(axis=1)[0]       # (396, 596) summed over the filters
grey_crop = labkit.grey(x)[0, 0, 2:-2, 2:-2]             # the pixels at the centres of the windows
edge_strength = np.hypot(*np.gradient(labkit.smooth(grey_crop[None, None], 1)[0, 0]))
strong = edge_strength > np.percentile(edge_strength, 90)
flat = edge_strength < np.percentile(edge_strength, 50)
ratio = energy[strong].mean() / energy[flat].mean()
print(f"response energy of the zero-sum parts: {ratio:.0f} times larger on the strongest edges "
      f"than on the flattest half of the image")
assert ratio > 10

# %% [markdown]
# A *stride* samples the output: only every S-th position in each direction is computed.

# %%
y_strided = F.conv2d(x, w, stride=16)
print("stride 16:", y_strided.shape)
assert y_strided.shape[2:] == ((400 - 5) // 16 + 1, (600 - 5) // 16 + 1)
labkit.show_mosaic(labkit.channels(y_strided), "stride 16", size=8);

# %% [markdown]
# The output is smaller than the input by KH − 1 rows and KW − 1 columns. To keep the
# size, *pad* the input with zeros: P extra rows and columns on each side.

# %%
y_padded = F.conv2d(x, w, padding=4)
print("padding 4:", y_padded.shape)
assert y_padded.shape[2:] == (400 + 2 * 4 - 5 + 1, 600 + 2 * 4 - 5 + 1)
labkit.show_mosaic(labkit.channels(y_padded), "padding 4", size=10);

# %% [markdown]
# **Question.** Compare the borders of the padded and unpadded outputs. What has padding
# added, and where does it come from?

# %% [markdown] tags=["solution"]
# *Solution.* The padded output is the unpadded one with a frame of 4 pixels around it
# (the cell below checks the inside is identical). In the frame the windows hang over the
# edge of the photo and read zeros, i.e. black. To the filters that is a sharp dark
# border around the picture: they respond to it as to an edge, and the frame lights up.
# The measurement: the zero-sum parts of the filters respond far more in the outer two
# pixels than on average inside.

# %%
assert np.allclose(y_padded[:, :, 4:-4, 4:-4], y, atol=1e-5)
frame_energy = F.conv2d(x, w_rest, padding=4) ** 2
inside = frame_energy[:, :, 4:-4, 4:-4].mean()
outer = np.concatenate([frame_energy[:, :, :2].ravel(), frame_energy[:, :, -2:].ravel(),
                        frame_energy[:, :, :, :2].ravel(), frame_energy[:, :, :, -2:].ravel()]).mean()
print(f"edge-part response energy: {outer / inside:.1f} times larger in the outer 2 pixels than inside")
assert outer > 3 * inside

# %% [markdown]
# Now a filter made by hand: the discrete Laplacian, the sum of the second differences
# along rows and along columns, copied into each of the three channels.

# %%
laplacian = np.array([[0, 1, 0],
                      [1, -4, 1],
                      [0, 1, 0]], dtype=np.float32)
w_lap = np.broadcast_to(laplacian, (1, 3, 3, 3)).copy()    # one filter, the same kernel on R, G and B
print("w_lap:", w_lap.shape)
y_lap = F.conv2d(x, w_lap)
labkit.triptych(x, laplacian, y_lap, titles=("x", "Laplacian kernel", "response"))
labkit.triptych(x, laplacian, np.abs(y_lap), titles=("x", "Laplacian kernel", "|response|"));

# %% [markdown]
# **Questions.** Which operator is this? What happens to the three colour channels?
# Which structures of the image does it pick out, and which does it ignore?

# %% [markdown] tags=["solution"]
# *Solution.* It is the discrete Laplacian ∂²/∂r² + ∂²/∂c², each second derivative
# approximated by the difference stencil [1, −2, 1]. The filter applies it to every
# channel and sums: the result is the Laplacian of R + G + B, three times the Laplacian of
# the grey image (checked below). It is zero on flat regions and on linear ramps (the
# second derivative of a ramp is zero: also checked), so it ignores slow shading. It
# answers where the intensity *bends*: on each side of an edge with opposite signs (the
# edge itself is where the sign flips, which is why |response| shows edges as double
# lines), strongly on thin lines and on small spots, such as the specks of the coffee
# foam.

# %%
grey_lap = F.conv2d(3 * labkit.grey(x), laplacian[None, None])
assert np.allclose(y_lap, grey_lap, atol=1e-4)
rows, cols = np.mgrid[0:50, 0:60].astype(np.float32)
ramp = np.broadcast_to(0.3 + 0.01 * rows - 0.004 * cols, (1, 3, 50, 60)).copy()
assert np.abs(F.conv2d(ramp, w_lap)).max() < 1e-5
print("the Laplacian filter = the Laplacian of 3 x grey; zero on a linear ramp")

# %% [markdown]
# ### 1.2 Non-linear activations
#
# **Question.** Why must some of the functions of a network be non-linear?

# %% [markdown] tags=["solution"]
# *Solution.* A chain of linear functions is one linear function: two convolutions in a
# row are one convolution (with a larger kernel), so a hundred linear layers can express
# no more than one. The non-linearities between them are what make depth add expressive
# power. The cell below checks the first half: two stacked convolutions are additive,
# f(a + b) = f(a) + f(b); with a ReLU between them they are not.

# %%
w_a = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
w_b = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
part_a, part_b = x[:, :, :100, :100], rng.random((1, 3, 100, 100)).astype(np.float32)


def two_convs(image):
    return F.conv2d(F.conv2d(image, w_a), w_b)


def two_convs_relu(image):
    return F.conv2d(F.relu(F.conv2d(image, w_a)), w_b)


assert np.allclose(two_convs(part_a + part_b), two_convs(part_a) + two_convs(part_b), atol=1e-3)
gap = np.abs(two_convs_relu(part_a + part_b) - two_convs_relu(part_a) - two_convs_relu(part_b)).max()
print(f"with a ReLU between them, f(a + b) - f(a) - f(b) reaches {gap:.2f}")
assert gap > 0.1

# %% [markdown]
# The simplest non-linearity is the rectified linear unit, applied to every value on
# its own: ReLU(v) = max(0, v). Here it follows a filter whose three rows are [1, 0, −1].

# %%
w_dx = np.broadcast_to(np.array([1, 0, -1], dtype=np.float32), (1, 3, 3, 3)).copy()
y_dx = F.conv2d(x, w_dx)
z = F.relu(y_dx)
labkit.triptych(x, w_dx[0, 0], y_dx, titles=("x", "kernel (same on R, G, B)", "y = filter response"))
labkit.show(z, "z = relu(y)");

# %% [markdown]
# **Questions.** What does this filter compute? What is left in z?

# %% [markdown] tags=["solution"]
# *Solution.* Each output is (column j) − (column j + 2), summed over three rows and the
# three channels: a horizontal derivative, with the sign flipped, of a slightly blurred
# image. It is large and positive where the image gets darker from left to right,
# negative where it gets brighter, and near zero on vertical gradients and flat areas.
# The ReLU keeps only the positive half: z shows the edges that go from light (left) to
# dark (right) and nothing else. Nothing is lost overall: relu(y) − relu(−y) gives y back.

# %%
assert (z >= 0).all() and np.array_equal(z, np.maximum(y_dx, 0))
assert np.allclose(F.relu(y_dx) - F.relu(-y_dx), y_dx)
print(f"the ReLU keeps {100 * (y_dx > 0).mean():.0f}% of the responses (the positive ones)")

# %% [markdown]
# ### 1.3 Pooling
#
# Pooling combines the values of a window of each channel into one. Max pooling keeps
# the largest: y_{c,i,j} = max of x_{c,u,v} over the window at (i, j). The stride
# defaults to the window size, so windows do not overlap.

# %%
y_pool = F.max_pool2d(x, 15)
print("max pooling 15x15:", y_pool.shape)
labkit.show(y_pool, "max pooling, 15x15 windows");

# %% [markdown]
# **Question.** How do you read this image?

# %% [markdown] tags=["solution"]
# *Solution.* Each pixel is one 15 × 15 block of the photo, and for each colour it holds
# the brightest value of the block. The picture is coarse (26 × 40), and bright things
# win: small bright details (the reflections on the cup) survive and grow to fill their
# block, dark thin details vanish. The cell checks one block. With stride 1 and padding
# the same operation is a grey-level *dilation* of every channel: the output is never
# darker than the input.

# %%
assert y_pool.shape == (1, 3, 400 // 15, 600 // 15)
assert np.isclose(y_pool[0, 1, 7, 11], x[0, 1, 105:120, 165:180].max())
dilated = F.max_pool2d(x, 15, stride=1, padding=7)
assert dilated.shape == x.shape and (dilated >= x).all()

# %% [markdown]
# Like `conv2d`, `max_pool2d` takes a stride and a padding. **Question.** Max pooling pads
# with −∞, not with 0. Why?

# %% [markdown] tags=["solution"]
# *Solution.* Padding is only there so that windows at the border exist; it must never
# be the answer. −∞ can never be the largest value, so a border window returns the
# largest of its real pixels. A zero could win wherever the real values are negative (a
# filter response often is) and the border would show zeros that are in no input. The
# check: pooling −x − 0.1, whose values are all negative, stays negative everywhere,
# border included.

# %%
negative = -x - 0.1
assert (F.max_pool2d(negative, 15, stride=1, padding=7) < 0).all()
zero_padded = np.pad(negative, ((0, 0), (0, 0), (7, 7), (7, 7)))     # what zero padding would give
assert F.max_pool2d(zero_padded, 15, stride=1).max() == 0.0

# %% [markdown]
# ### 1.4 Normalisation across channels
#
# Local response normalisation divides each value by a power of the energy of the
# nearby channels at the same pixel:
#
# $$ y_{k} = \frac{x_{k}}{\Big(\kappa + \frac{\alpha}{\rho}\sum_{c \in G(k)} x_{c}^2\Big)^{\beta}},
# \qquad G(k) = \{k - \lfloor\rho/2\rfloor, \dots, k + \lfloor(\rho-1)/2\rfloor\} \cap \{0, \dots, C-1\},$$
#
# a window of ρ consecutive channels around channel k (ρ is `size`, κ is `k`).
#
# **Question.** How do you set κ, α, β and ρ so that the operator divides the vector of
# channels at every pixel by its Euclidean length?

# %% [markdown] tags=["solution"]
# *Solution.* We want y = x / (Σ_c x_c²)^{1/2}: so κ = 0, α/ρ = 1 (α = ρ), β = 1/2, and the
# window must hold every channel for every k. For C = 3, the window of channel 0 reaches
# up to ⌊(ρ−1)/2⌋ and that of channel 2 down to 2 − ⌊ρ/2⌋, so ρ = 5 is the smallest size
# whose window covers all three from every channel: `local_response_norm(x, 5, alpha=5, beta=0.5, k=0)`.
# Then every pixel's colour vector has length 1: the image keeps its hues and loses its
# brightness (dark and bright parts of the cup look alike). Measured below.

# %%
y_nrm = F.local_response_norm(x, 5, alpha=5, beta=0.5, k=0)
labkit.show(y_nrm, "local response normalisation with size 5, alpha 5, beta 1/2, k 0")
lengths = np.sqrt((y_nrm ** 2).sum(axis=1))
y_direct = x / np.sqrt((x ** 2).sum(axis=1, keepdims=True))


def percent_difference(a, b):
    """100 * ||a - b|| / sqrt((||a||^2 + ||b||^2) / 2): 0 when equal, in percent of their size."""
    return 100 * np.linalg.norm(a - b) / np.sqrt((np.linalg.norm(a) ** 2 + np.linalg.norm(b) ** 2) / 2)


difference = percent_difference(y_nrm, y_direct)
print(f"channel-vector lengths after normalisation: {lengths.min():.6f} .. {lengths.max():.6f}")
print(f"LRN vs x / ||x||: {difference:.2e} % apart")
assert np.allclose(lengths, 1, atol=1e-5) and difference < 1e-3

# %% [markdown]
# ## Part 2: back-propagation
#
# Training fits the parameters w = (w₁, …, w_L) so that the network, followed by a loss
# that scores its output against the desired one, gives a small average loss over the
# training examples. With the loss counted as the last layer, the whole chain is one
# function z = f(x; w) to a single number, and gradient descent repeats
#
# $$ w \leftarrow w - \eta \, \frac{\partial z}{\partial w}. $$
#
# By the chain rule, ∂z/∂w_l is a product of the derivatives of every layer after l.
# For arrays those derivatives are enormous: the derivative of our filter bank's output
# (10 × 396 × 596 numbers) with respect to the photo (3 × 400 × 600 numbers) has about
# 1.7 × 10¹² entries. Back-propagation never builds one. It evaluates the product from the
# loss end: starting from p = ∂z/∂z = 1, each layer receives p = ∂z/∂(its output), an array
# the shape of its output, and returns ∂z/∂(its input) and ∂z/∂(its parameters), arrays
# the shape of what they differentiate. In other words a layer y = f(x; w) computes the
# derivatives of the single number ⟨p, f(x; w)⟩, and never a Jacobian:
#
# * `forward(x)` computes y (and keeps what the backward methods need);
# * `backward_inputs(p)` returns ∂⟨p, y⟩/∂x, the shape of x;
# * `backward_params(p)` returns [(w, ∂⟨p, y⟩/∂w), …], each the shape of its parameter.
#
# **Question.** Why is the derivative of z with respect to any parameter array the shape
# of that array?

# %% [markdown] tags=["solution"]
# *Solution.* z is one number; it has one partial derivative per parameter, and
# arranging them like the parameters themselves is the natural layout. That is also what
# gradient descent needs: w − η ∂z/∂w, element by element.

# %% [markdown]
# ### 2.1 Backward methods, called by hand
#
# We put the ten random filters into a `Conv` layer (float64, for the numerical checks
# that follow), run it forward on the photo, and pretend the rest of the network handed
# back a random p = ∂z/∂y.

# %%
x64 = x.astype(np.float64)
conv = Conv(3, 10, 5, dtype=np.float64, name="conv")
conv.weights[...] = w
conv.bias[...] = 0.0
y64 = conv.forward(x64)
p = rng.standard_normal(y64.shape)
dzdx = conv.backward_inputs(p)
(weights, dzdw), (bias, dzdb) = conv.backward_params(p)
print(f"x {x64.shape}  dz/dx {dzdx.shape}")
print(f"w {weights.shape}  dz/dw {dzdw.shape}   b {bias.shape}  dz/db {dzdb.shape}")
print(f"y {y64.shape}  p {p.shape}")
assert dzdx.shape == x64.shape and dzdw.shape == w.shape and p.shape == y64.shape

# %% [markdown]
# Mistakes in derivatives are easy to make and hard to see, so we check them numerically.
# Pick a random direction δ the shape of x and step a little along it, both ways: by
# the definition of the derivative,
#
# $$ \frac{\langle p, f(x + \varepsilon\delta)\rangle - \langle p, f(x - \varepsilon\delta)\rangle}{2\varepsilon}
# \approx \Big\langle \frac{\partial \langle p, f\rangle}{\partial x}, \delta \Big\rangle. $$
#
# The left side needs two forward passes; the right side uses the backward method.

# %%
delta = rng.standard_normal(x64.shape)
step = 1e-6
numerical = (np.sum(p * conv.forward(x64 + step * delta)) - np.sum(p * conv.forward(x64 - step * delta))) / (2 * step)
analytical = np.sum(dzdx * delta)
relative = abs(numerical - analytical) / abs(analytical)
print(f"numerical {numerical:.6f}   analytical {analytical:.6f}   relative difference {relative:.1e}")
assert relative < 1e-6

# %% [markdown]
# **Questions.** What is δ? What do the two numbers measure?
#
# **Task.** Check the derivative with respect to the filters w in the same way.

# %% [markdown] tags=["solution"]
# *Solution.* δ is a direction in the space of inputs: a whole image's worth of random
# numbers, all moved at once. Both numbers are the rate at which z = ⟨p, y⟩ changes when
# x moves along δ: the first measured by finite differences, the second predicted by
# the gradient (its dot product with δ). They agree to better than 10⁻⁹ relative, which leaves
# little room for a wrong backward: a random direction would expose almost any error in
# any part of dz/dx. The same check for the filters follows: perturb the weights, keep x.

# %% tags=["solution"]
delta_w = rng.standard_normal(w.shape)
conv.weights[...] = w + step * delta_w
z_plus = np.sum(p * conv.forward(x64))
conv.weights[...] = w - step * delta_w
z_minus = np.sum(p * conv.forward(x64))
conv.weights[...] = w
numerical_w = (z_plus - z_minus) / (2 * step)
analytical_w = np.sum(dzdw * delta_w)
relative_w = abs(numerical_w - analytical_w) / abs(analytical_w)
print(f"filters: numerical {numerical_w:.6f}   analytical {analytical_w:.6f}   relative {relative_w:.1e}")
assert relative_w < 1e-6

# %% [markdown]
# `minidl.gradcheck.check_directional` does this for the input and every parameter of
# a layer, over several random directions, with a pass rule that knows how much rounding
# a finite difference carries.

# %%
from minidl.gradcheck import check_directional

directions = 1 if QUICK else 3
result = check_directional(conv, x64, directions=directions, upstream=p, rng=1)
print(result.report())
assert result.passed

# %% [markdown]
# ### 2.2 A two-layer network: convolution, then max pooling
#
# The chain rule in code: `Sequential.backprop` hands each layer the derivative its
# successor returned. Max pooling routes each value of p back to the pixel that won its
# window.

# %%
pool = MaxPool(10, name="pool")
net = Sequential([conv, pool])
# a photo has flat patches where several windows hold exactly the same values, so a max
# pooling window can hold several equal winners and has no derivative there; a little
# noise makes every winner unique
x_noisy = x64 + 1e-3 * rng.standard_normal(x64.shape)
x3 = net.forward(x_noisy)
p3 = rng.standard_normal(x3.shape)
dzdx1, pairs = net.backprop(p3)
dzdw1 = pairs[0][1]
print(f"x3 {x3.shape}   dz/dx1 {dzdx1.shape}   dz/dw1 {dzdw1.shape}")
assert dzdx1.shape == x64.shape and dzdw1.shape == w.shape

delta_w = rng.standard_normal(w.shape)
conv.weights[...] = w + step * delta_w
z_plus = np.sum(p3 * net.forward(x_noisy))
conv.weights[...] = w - step * delta_w
z_minus = np.sum(p3 * net.forward(x_noisy))
conv.weights[...] = w
numerical_w1 = (z_plus - z_minus) / (2 * step)
analytical_w1 = np.sum(dzdw1 * delta_w)
relative_w1 = abs(numerical_w1 - analytical_w1) / abs(analytical_w1)
print(f"conv + max pooling, filters: numerical {numerical_w1:.6f}  analytical {analytical_w1:.6f}  "
      f"relative {relative_w1:.1e}")
assert relative_w1 < 1e-6
# a step of 1e-8 rather than 1e-6: the shorter the step along a random direction, the fewer
# windows where two nearly equal values swap places during it (where the derivative jumps)
result = check_directional(net, x_noisy, directions=directions, upstream=p3, eps=1e-8, rng=2)
print(result.report())
assert result.passed

# %% [markdown]
# **Question.** Here p3 = ∂z/∂x₃ is random. In a network being trained, where does it
# come from?

# %% [markdown] tags=["solution"]
# *Solution.* From the loss: x₃ would be the network's output, and the loss layer's own
# backward gives the derivative of the loss with respect to it. For softmax
# cross-entropy that is (softmax(x₃) − one-hot label) / N. Backprop then starts there.

# %% [markdown]
# ## Part 3: a tiny CNN that learns to find blobs
#
# Two layers: a single 3 × 3 filter with a bias, then a 3 × 3 average, both padded so
# that the output has the size of the input:
#
# $$ x_2 = w * x_1 + b, \qquad x_3 = \operatorname{avgpool}_{3\times 3}(x_2). $$

# %%
def tiny_cnn(seed=0):
    """conv 1 -> 1, 3x3, padding 1, then average pooling 3x3, stride 1, padding 1."""
    return Sequential([Conv(1, 1, 3, padding=1, name="filter", rng=seed),
                       AvgPool(3, stride=1, padding=1, name="average")])


print(tiny_cnn().forward(np.zeros((1, 1, 50, 70), dtype=np.float32)).shape)

# %% [markdown]
# **Question.** For an input of M × N pixels, what size is x₃?

# %% [markdown] tags=["solution"]
# *Solution.* M × N. The 3 × 3 convolution with padding 1 gives (M + 2 − 3 + 1) = M rows,
# and so does the 3 × 3 average with stride 1 and padding 1 (the cell printed (1, 1, 50, 70)
# for a 50 × 70 input). One score per pixel.

# %% [markdown]
# ### 3.1 Data: dark blobs and their labels
#
# The image: the Hubble deep field in grey, reduced, and inverted, so that stars and
# galaxies are dark blobs on a light sky. Labels come from the determinant of the
# Hessian of the image smoothed at σ = 2.5: a blob centre is a local maximum of
# det H above the threshold 3·10⁻⁴ where trace H > 0 (the image curves up around it, so
# it is darker than its surroundings). The negatives are the pixels more than 3 pixels
# (in rows or in columns) from every centre.

# %%
im0 = labkit.hubble_blobs()
pos, neg, (blob_rows, blob_cols) = labkit.extract_black_blobs(im0)
print(f"image {im0.shape}: {pos.sum()} blob centres, {neg.sum()} negative pixels, "
      f"{pos.size - pos.sum() - neg.sum()} in neither set")
assert 65 <= pos.sum() <= 90

figure, axes = plt.subplots(1, 3, figsize=(18, 6))
axes[0].imshow(im0[0, 0], cmap="gray")
axes[0].plot(blob_cols, blob_rows, "o", mfc="none", mec="lime", ms=9)
axes[0].set_title("the image and the blob centres")
axes[1].imshow(pos, cmap="gray")
axes[1].set_title("pos")
axes[2].imshow(neg, cmap="gray")
axes[2].set_title("neg")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])

# %% [markdown]
# **Question.** Are there pixels that are neither positive nor negative? Why might that
# be a good idea?

# %% [markdown] tags=["solution"]
# *Solution.* Yes: the 7 × 7 square around each centre, minus the centre itself (the
# count printed above). A detector's response rises smoothly towards a blob's centre, so
# demanding a score of at most 0 one pixel away from a score of at least 1 would fight
# the smoothness of any small filter. Leaving a ring undecided lets the response climb.

# %% [markdown]
# ### 3.2 Pre-processing
#
# Before training, subtract the image's mean and smooth it with a Gaussian of σ = 3
# pixels. We come back to both choices in 3.4.

# %%
def preprocess(image, sigma=3.0, centre=True):
    """Subtract (centre=True) or add (centre=False) the mean, then smooth (sigma=0: no smoothing)."""
    shifted = image - image.mean() if centre else image + image.mean()
    return labkit.smooth(shifted, sigma) if sigma else shifted


if QUICK:  # a quarter of the image (labels computed on the whole one, then cut alike)
    crop = (slice(None), slice(None), slice(0, im0.shape[2] // 2), slice(0, im0.shape[3] // 2))
    train_image, train_pos, train_neg = im0[crop], pos[crop[2:]], neg[crop[2:]]
else:
    train_image, train_pos, train_neg = im0, pos, neg
im = preprocess(train_image)
print(f"training on {train_image.shape[2]}x{train_image.shape[3]} pixels with {train_pos.sum()} blobs")

# %% [markdown]
# ### 3.3 Learning with gradient descent
#
# We want a score f(x)_{uv} of at least 1 at every blob centre (the set P) and at most 0
# at every negative pixel (the set N). The energy to minimise:
#
# $$ E(w, b) = \frac{\lambda}{2}\|w\|^2 + \frac{1}{|P|}\sum_{(u,v)\in P}\max\{0,\ 1 - f_{uv}\}
# + \frac{1}{|N|}\sum_{(u,v)\in N}\max\{0,\ f_{uv}\}. $$
#
# Both sums are averages, so the few positives weigh as much as the many negatives.
#
# **Questions.** If λ = 0 and E = 0, what do you know about the scores? The energy asks
# for a *margin* between positive and negative scores: how wide?

# %% [markdown] tags=["solution"]
# *Solution.* Every term is a hinge, never negative, so E = 0 means each is zero: every
# positive pixel scores at least 1 and every negative at most 0. The margin is 1, the gap
# between the two targets. The pixels of neither set may score anything.

# %% [markdown]
# The derivative of E with respect to the output f is, pixel by pixel,
# −1/|P| where a positive scores below 1, +1/|N| where a negative scores above 0, and 0
# elsewhere: that is the p we hand to backprop. The update is gradient descent with
# *damped momentum*: a running average μ of the gradients sets the step,
#
# $$ \mu_{t+1} = m\,\mu_t + (1 - m)\,\frac{\partial E}{\partial w}(w_t), \qquad w_{t+1} = w_t - \eta\,\mu_{t+1}, $$
#
# and the bias the same way with its own rate (here a tenth of the filter's).
#
# **Questions.** Why must the momentum rate m be below 1, and what happens close to 1?
# What can go wrong with a large learning rate η?

# %% [markdown] tags=["solution"]
# *Solution.* μ is a weighted average of all past gradients, with weight (1 − m)·mᵏ for
# the gradient k steps back. With m < 1 old gradients fade geometrically; at m = 1 the
# new gradient gets weight 0 and μ never changes, and above 1 the past is amplified
# without bound. Close to 1 the average is long: the direction is smooth and noise
# cancels, but the optimiser reacts late, overshoots and oscillates around a minimum
# before settling. A large η takes steps longer than the region where the gradient is a
# good guide: the energy then jumps about or grows instead of decreasing.

# %%
def train_tiny_cnn(image, pos, neg, iterations=501, rate=10.0, momentum=0.9, shrinkage=1e-4,
                   bias_rate=0.1, seed=0):
    """Fit the tiny CNN to the blob labels by damped-momentum gradient descent.

    Returns the net, the energy E and the loss (E without the shrinkage term) at every
    iteration, and the last output.
    """
    net = tiny_cnn(seed)
    conv = net[0]
    start = np.random.default_rng(seed).standard_normal((1, 1, 3, 3)).astype(np.float32)
    conv.weights[...] = start - start.mean()          # a random zero-mean filter
    conv.bias[...] = 0.0
    weight_pos = (pos / pos.sum()).astype(np.float32)[None, None]     # 1/|P| on P, 0 elsewhere
    weight_neg = (neg / neg.sum()).astype(np.float32)[None, None]     # 1/|N| on N, 0 elsewhere
    mu_w, mu_b = np.zeros_like(conv.weights), np.zeros_like(conv.bias)
    energies, losses = [], []
    for _ in range(iterations):
        y = net.forward(image)
        loss = float(np.sum(weight_pos * np.maximum(0, 1 - y)) + np.sum(weight_neg * np.maximum(0, y)))
        losses.append(loss)
        energies.append(loss + 0.5 * shrinkage * float(np.sum(conv.weights ** 2)))
        if not np.isfinite(energies[-1]):
            break
        p = weight_neg * (y > 0) - weight_pos * (y < 1)          # dE/dy
        (_, grad_w), (_, grad_b) = net.backprop(p, need_input_grad=False)[1]
        mu_w = momentum * mu_w + (1 - momentum) * (grad_w + shrinkage * conv.weights)
        mu_b = momentum * mu_b + (1 - momentum) * grad_b
        conv.weights -= rate * mu_w
        conv.bias -= bias_rate * rate * mu_b
    return {"net": net, "energy": np.array(energies), "loss": np.array(losses), "output": y,
            "filter": conv.weights[0, 0].copy(), "bias": float(conv.bias[0])}


iterations = 201 if QUICK else 501
run = train_tiny_cnn(im, train_pos, train_neg, iterations=iterations)


def show_run(run, title):
    figure, axes = plt.subplots(1, 3, figsize=(18, 5))
    axes[0].plot(run["energy"])
    axes[0].set_yscale("log")
    axes[0].set_xlabel("iteration")
    axes[0].set_title(f"{title}: energy, final {run['energy'][-1]:.4f}")
    axes[1].imshow(run["filter"], cmap="gray")
    for (r, c), value in np.ndenumerate(run["filter"]):
        axes[1].text(c, r, f"{value:.2f}", ha="center", va="center", color="red")
    axes[1].set_title("the learned filter")
    axes[2].imshow(run["output"][0, 0], cmap="gray")
    axes[2].set_title("the response")
    for ax in axes[1:]:
        ax.set_xticks([])
        ax.set_yticks([])
    return figure


show_run(run, "smoothed, centred")
print(f"energy {run['energy'][0]:.3f} -> {run['energy'][-1]:.4f}")
assert run["energy"][-1] < 0.2 * run["energy"][0]

# %% [markdown]
# **Questions.** Compare the learned filter with the Laplacian of part 1.1. What is the
# mean of its values, compared with the mean of their absolute values?

# %% [markdown] tags=["solution"]
# *Solution.* On this image the filter is not a Laplacian: its weights are nearly all of
# one sign, so their mean is close to minus the mean of their absolute values (the cell
# below measures the ratio). A filter whose weights all have the same sign is a (negative)
# blur: it answers "how dark is it here", and with the bias it thresholds darkness. That
# is enough here: the sky of the deep field is evenly lit and the blob centres are the
# darkest pixels of the image, so darkness alone nearly separates positives from
# negatives, and gradient descent finds the easy answer. On a surface whose brightness
# varies, darkness would not do; exercise 3.4 (e) makes the light uneven, and the filter
# turns into a Laplacian. To tell the two apart, look at the filter's *moments* on a smooth
# image: a 3 × 3 filter acts like Σw · I (the blur part) + first derivatives weighted by
# Σ w·r and Σ w·c + ½ (Σ w·r²) I_rr + ½ (Σ w·c²) I_cc + (Σ w·rc) I_rc. A Laplacian is
# Σw = 0 with Σw·r² = Σw·c² > 0 and Σw·rc = 0.

# %%
def moments(kernel):
    """Sum, first and second moments of a 3x3 kernel, with row and column offsets -1, 0, 1."""
    r, c = np.mgrid[-1:2, -1:2]
    return {"sum": kernel.sum(), "r": (kernel * r).sum(), "c": (kernel * c).sum(),
            "rr": (kernel * r * r).sum(), "cc": (kernel * c * c).sum(), "rc": (kernel * r * c).sum()}


def describe(kernel):
    m = moments(kernel)
    return (f"mean / mean |.| = {kernel.mean() / np.abs(kernel).mean():+.2f};  moments: "
            + ", ".join(f"{k} {v:+.2f}" for k, v in m.items()))


sign_ratio = run["filter"].mean() / np.abs(run["filter"]).mean()
print("learned filter:", describe(run["filter"]))
print("Laplacian:     ", describe(laplacian))
recall = (run["output"][0, 0][train_pos] >= 1).mean()
print(f"{100 * recall:.0f}% of the blob centres score at least 1; "
      f"{100 * (run['output'][0, 0][train_neg] <= 0).mean():.0f}% of the negatives at most 0")
assert sign_ratio < -0.7
figures["tiny CNN energy"] = run["energy"][-1]

# %% [markdown]
# ### 3.4 Experiments, and what they show on this image
#
# Each exercise changes one thing and trains again; the cells measure the answers.
#
# **(a) No smoothing.** Train on the centred image without the Gaussian. Is the filter
# different? Is the energy better or worse? Where does the response peak?

# %% tags=["solution"]
raw = train_tiny_cnn(preprocess(train_image, sigma=0), train_pos, train_neg, iterations=iterations)
show_run(raw, "no smoothing")
print("no smoothing:", describe(raw["filter"]))
print(f"final energy: smoothed {run['energy'][-1]:.4f}, not smoothed {raw['energy'][-1]:.4f}")
assert raw["energy"][-1] < run["energy"][-1]

# %% [markdown] tags=["solution"]
# *Solution.* Without smoothing the energy ends *lower*, and the response is sharper.
# The reason is scale. A 3 × 3 filter followed by a 3 × 3 average sees about 5 pixels; on a
# smoothed image it acts on a blurred copy, as if its window were σ = 3 wider. A detector
# responds best to blobs of its own scale. The stars of this reduced image are one to
# three pixels across: the raw image already has them at the filter's scale, and blurring
# them by σ = 3 smears neighbouring stars into one another and moves the darkest point
# of faint ones. On an image with larger blobs (big dots on a shirt, say) the balance goes
# the other way: the tiny filter on the raw image would fire on the edges of each dot
# rather than at its centre, and smoothing first is what brings the dots to its scale.

# %% [markdown]
# **(b) Adding the mean instead of subtracting it.** Does training converge? Divide the
# rate by a hundred and multiply the iterations by a hundred (the quick run divides by
# ten and multiplies by ten): better? Why should a constant added to the input matter so
# much?

# %% tags=["solution"]
shifted_image = preprocess(train_image, centre=False)
shifted = train_tiny_cnn(shifted_image, train_pos, train_neg, iterations=iterations)
factor = 10 if QUICK else 100
slow = train_tiny_cnn(shifted_image, train_pos, train_neg, iterations=iterations * factor, rate=10.0 / factor)
print(f"mean added, rate 10:      final energy {shifted['energy'][-1]:.3f} "
      f"(largest {shifted['energy'].max():.1f}; centred: {run['energy'][-1]:.4f})")
print(f"mean added, rate 10/{factor}: final energy {slow['energy'][-1]:.4f} after {iterations * factor} iterations")
figure, ax = plt.subplots(figsize=(8, 4))
ax.plot(shifted["energy"], label="mean added, rate 10")
ax.plot(np.arange(len(slow["energy"])) / factor, slow["energy"], label=f"mean added, rate 10/{factor} (x-axis / {factor})")
ax.plot(run["energy"], label="centred, rate 10")
ax.set_yscale("log")
ax.set_xlabel("iteration")
ax.legend()
assert shifted["energy"][-1] > 20 * run["energy"][-1]
assert slow["energy"][-1] < shifted["energy"][-1]
figures["tiny CNN energy, mean added"] = shifted["energy"][-1]

# %% [markdown] tags=["solution"]
# *Solution.* With the mean added the energy jumps about and ends many times higher: the
# run does not converge. With a hundredth of the rate it descends steadily, but even a
# hundred times more iterations leave it behind the centred run. The reason is the
# constraint hidden in the task: on the sky, far from blobs, the score must stay at or
# below 0, whatever the brightness. On the centred image the sky is near 0, so any filter
# gives a small score there. Add a large constant a and the score gains a·Σw: the filter's
# sum must be pinned near 0 (or cancelled by the bias) all the time. The gradient along
# that one direction, the sum of the weights, is a times larger than along the others, so
# a rate that suits the sum is far too small for the shape of the filter, and a rate that
# suits the shape makes the sum oscillate. Centring the data removes that imbalance: a
# general rule, learning problems on centred data are better conditioned.

# %% [markdown]
# **(c) Larger learning rates.** Back to the original pre-processing. Can a larger rate
# reach a lower energy in the same number of iterations?

# %% tags=["solution"]
rates = (10.0, 30.0, 100.0, 1000.0)
by_rate = {r: (run if r == 10.0 else train_tiny_cnn(im, train_pos, train_neg, iterations=iterations, rate=r))
           for r in rates}
for r, result_r in by_rate.items():
    print(f"rate {r:6g}: final energy {result_r['energy'][-1]:.4f}")
assert min(by_rate[r]["energy"][-1] for r in (30.0, 100.0)) < by_rate[10.0]["energy"][-1]
assert by_rate[1000.0]["energy"][-1] > by_rate[10.0]["energy"][-1]

# %% [markdown] tags=["solution"]
# *Solution.* Somewhat: a few times the rate ends a little lower, because the energy
# surface is flat along the directions still being explored and bigger steps cover more
# ground. A hundred times the rate is too much: the steps overshoot and the energy ends
# higher. There is a best rate, and it sits not far below the rate at which training breaks.

# %% [markdown]
# **(d) No momentum.** Set m = 0 and look for the rate that does best. Can you beat the
# run with momentum?

# %% tags=["solution"]
no_momentum = {r: train_tiny_cnn(im, train_pos, train_neg, iterations=iterations, rate=r, momentum=0.0)
               for r in (3.0, 10.0, 30.0)}
for r, result_r in no_momentum.items():
    print(f"momentum 0, rate {r:4g}: final energy {result_r['energy'][-1]:.4f}")
best_without = min(result_r["energy"][-1] for result_r in no_momentum.values())
print(f"best without momentum {best_without:.4f}; with momentum 0.9 and rate 10: {run['energy'][-1]:.4f}")
assert best_without < 1.1 * run["energy"][-1]

# %% [markdown] tags=["solution"]
# *Solution.* Here, about as well. This momentum is *damped*: μ averages the gradients
# with weights that sum to one, so on a steady slope the step is η times the gradient, as
# without momentum. What momentum changes is how the step reacts to gradients that
# change direction: it smooths the zig-zag of a narrow valley and the noise of
# stochastic gradients. On this small, deterministic problem there is little of either,
# and a well-chosen rate without momentum does about as well.

# %% [markdown]
# **(e) Stronger shrinkage.** Multiply λ by 10, then by 100. What happens to the speed of
# convergence, the final energy and its loss part?

# %% tags=["solution"]
by_shrinkage = {1e-4: run}
for lam in (1e-3, 1e-2):
    by_shrinkage[lam] = train_tiny_cnn(im, train_pos, train_neg, iterations=iterations, shrinkage=lam)
for lam, result_l in by_shrinkage.items():
    to_within = int(np.argmax(result_l["energy"] < 1.05 * result_l["energy"][-1]))
    print(f"lambda {lam:g}: energy {result_l['energy'][-1]:.4f}, loss part {result_l['loss'][-1]:.4f}, "
          f"|w| {np.linalg.norm(result_l['filter']):.2f}, within 5% of its final energy after "
          f"{to_within} iterations")
settled = [int(np.argmax(by_shrinkage[lam]["energy"] < 1.05 * by_shrinkage[lam]["energy"][-1]))
           for lam in (1e-4, 1e-3, 1e-2)]
energies_l = [by_shrinkage[lam]["energy"][-1] for lam in (1e-4, 1e-3, 1e-2)]
losses_l = [by_shrinkage[lam]["loss"][-1] for lam in (1e-4, 1e-3, 1e-2)]
norms_l = [np.linalg.norm(by_shrinkage[lam]["filter"]) for lam in (1e-4, 1e-3, 1e-2)]
assert energies_l[0] < energies_l[1] < energies_l[2] and losses_l[0] < losses_l[1] < losses_l[2]
assert norms_l[0] > norms_l[1] > norms_l[2] and settled[0] > settled[2]

# %% [markdown] tags=["solution"]
# *Solution.* Shrinkage pulls the weights towards zero, and the filter's norm falls as λ
# grows. The energy settles sooner (it has less far to go: the optimum is closer to the
# start), but higher: both the total and its loss part grow with λ, since a smaller filter
# cannot push scores as far past the margins. Shrinkage trades fit for small weights; its
# benefit, better behaviour on new images, cannot show on the training image itself.

# %% [markdown]
# **(f) Uneven light** (an exercise of ours). Darken the image with a smooth shading, as an
# unevenly lit surface would be, recompute the labels, and train again. What does the
# filter become?

# %% tags=["solution"]
rows_s, cols_s = np.mgrid[0:im0.shape[2], 0:im0.shape[3]]
shading = 1 - 0.5 * (0.5 + 0.5 * np.cos(2 * np.pi * cols_s / im0.shape[3])) \
    * (0.5 + 0.5 * np.cos(2 * np.pi * rows_s / im0.shape[2]))
shaded = (im0 * shading).astype(np.float32)
pos_s, neg_s, _ = labkit.extract_black_blobs(shaded)
if QUICK:
    shaded, pos_s, neg_s = shaded[crop], pos_s[crop[2:]], neg_s[crop[2:]]
lit = train_tiny_cnn(preprocess(shaded), pos_s, neg_s, iterations=iterations)
show_run(lit, "uneven light")
print("uneven light:", describe(lit["filter"]))
m = moments(lit["filter"])
assert abs(lit["filter"].mean()) < 0.25 * np.abs(lit["filter"]).mean()          # sums to about zero
assert m["rr"] > 0 and m["cc"] > 0 and abs(m["rr"] - m["cc"]) < 0.3 * (m["rr"] + m["cc"])
assert abs(m["rc"]) < 0.2 * (m["rr"] + m["cc"])

# %% [markdown] tags=["solution"]
# *Solution.* Now the shading makes parts of the sky as dark as blob centres elsewhere,
# and darkness no longer separates them. The filter's weights sum to about zero (it
# ignores the local brightness), and its second moments are positive, nearly equal in
# rows and columns, with a small cross term: on the smoothed image it acts as a positive
# multiple of the Laplacian, I_rr + I_cc, which is large at the centre of a dark blob,
# where the intensity curves up in every direction. (It keeps a tilt as well, the first
# moments: a directional derivative, which is zero at the centre of a blob and does little
# harm.) Smoothing followed by a Laplacian is a Laplacian of Gaussian, the classic blob
# detector.

# %% [markdown]
# ## Part 4: a character recogniser
#
# ### 4.1 Data
#
# 32 × 32 images of the letters a to z, rendered from the fonts on this machine (Debian's
# `fonts-*` packages, and those that ship with matplotlib). The letters of a face sit on a
# common baseline, centred horizontally. Training and validation are split by *family*:
# no family, nor its relatives (same first word), has letters on both sides, so
# validation measures reading typefaces never seen.

# %%
started = time.perf_counter()
chars = labkit.load_characters(styles_per_family=2 if QUICK else None)
print(f"{len(chars.x_train)} training images from {len(chars.train_faces)} faces of "
      f"{len(chars.train_families)} families")
print(f"{len(chars.x_val)} validation images from {len(chars.val_faces)} faces of "
      f"{len(chars.val_families)} families: {', '.join(chars.val_families)}")
print(f"rendered in {time.perf_counter() - started:.1f} s")
assert not set(chars.train_families) & set(chars.val_families)
# This part's figures need the fonts listed in labs/README.md (some 30 training families).
# With matplotlib's own fonts alone (five or so) no network learns to read unseen typefaces:
# the lab still runs, says so here, and checks the accuracy below only with enough fonts.
ENOUGH_FONTS = len(chars.train_families) >= 20
if not ENOUGH_FONTS:
    print(f"only {len(chars.train_families)} training families: install the fonts-* packages "
          f"listed in labs/README.md for this part's figures")
labkit.show_mosaic(chars.x_train[chars.y_train == 0], "the letter a in the training faces", size=8)
labkit.show_mosaic(chars.x_val[chars.y_val == 0], "the letter a in the validation faces", size=6);

# %% [markdown]
# ### 4.2 The network
#
# Four convolutions and two max poolings; no fully connected layer at all:

# %%
net_rng = np.random.default_rng(4)
model = models.char_cnn(rng=net_rng)
print(model)
y3 = model.forward(chars.x_train[:3])
print("output for three images:", y3.shape)

# %% [markdown]
# **Question.** How many layers, how large are the filters, and how does 32 × 32 become
# 1 × 1?

# %% [markdown] tags=["solution"]
# *Solution.* Seven layers: convolution 20 filters 5 × 5 (32 → 28), max pooling 2 (→ 14),
# convolution 50 filters 5 × 5 × 20 (→ 10), max pooling 2 (→ 5), convolution 500 filters
# 4 × 4 × 50 (→ 2), ReLU, convolution 26 filters 2 × 2 × 500 (→ 1). The last two play the
# role of fully connected layers, written as convolutions whose kernel covers their whole
# input. So the output of one character is 26 × 1 × 1: a score per letter at a single
# position. Because every layer is a convolution, the same network also runs on a wider
# image and gives a row of such scores; we use that in 4.6.

# %% [markdown]
# For training, the two trailing axes of size 1 are in the way: we wrap the network with
# a `Flatten`, which turns (N, 26, 1, 1) into (N, 26) (the same layers, the same weights).
# The loss is softmax cross-entropy. Softmax turns scores into probabilities,
# q_k = exp(s_k) / Σ_c exp(s_c); the log-loss of the correct letter ℓ is −log q_ℓ, averaged
# over the batch.
#
# **Questions.** What does softmax do to the scores? Minimising the log-loss raises
# which score? Why is it better to compute the two as one layer?

# %% [markdown] tags=["solution"]
# *Solution.* Softmax maps any scores to positive numbers that sum to one, keeping their
# order, so the log-loss (which needs a probability in (0, 1]) applies. Minimising
# −log q_ℓ raises the score of the correct letter relative to the others: its gradient is
# q − onehot(ℓ), which pushes s_ℓ up and every other score down in proportion to its
# probability. Together, −log q_ℓ = log Σ_c exp(s_c) − s_ℓ can be computed without ever
# forming a tiny probability (subtract the largest score first), so it neither
# underflows nor overflows, and the gradient is the simple q − onehot(ℓ).

# %%
classifier = Sequential([model, Flatten(name="flatten")])
logits = classifier.forward(chars.x_train[:3])
targets = np.array([0, 1, 2])          # pretend the three images are a, b, c
print(f"logits {logits.shape}, loss {SoftmaxCrossEntropy().forward(logits, targets):.3f} "
      f"(a uniform guess would score log 26 = {np.log(26):.3f})")

# %% [markdown]
# ### 4.3 Training
#
# The input is centred by subtracting the mean of the training images, kept as `paper_mean`
# to centre whatever the network reads later. Training: stochastic gradient descent with
# momentum 0.9, rate 0.01, batches of 100, through `minidl.trainer.Trainer`.

# %%
from minidl.optim import SGD
from minidl.trainer import Trainer

paper_mean = float(chars.x_train.mean())
x_train, x_val = chars.x_train - paper_mean, chars.x_val - paper_mean
epochs = 3 if QUICK else 15


class Progress(minidl.trainer.Callback):
    def on_epoch_end(self, trainer, epoch, record):
        print(f"epoch {epoch:2d}: training loss {record['train_loss']:.3f} accuracy {record['train_accuracy']:.3f}  "
              f"validation loss {record['val_loss']:.3f} accuracy {record['val_accuracy']:.3f}  "
              f"({len(x_train) / record['seconds']:.0f} images/s)")


def train_characters(net, epochs, transform=None, seed=0):
    trainer = Trainer(Sequential([net, Flatten(name="flatten")]), SoftmaxCrossEntropy(),
                      SGD(0.01, momentum=0.9), batch_size=100, seed=seed, callbacks=[Progress()],
                      transform=transform)
    history = trainer.fit(x_train, chars.y_train, epochs, x_val, chars.y_val)
    speed = len(x_train) * len(history) / sum(r["seconds"] for r in history)
    return history, speed


history, images_per_second = train_characters(model, epochs)
plain_accuracy = history[-1]["val_accuracy"]
figures["validation accuracy"] = plain_accuracy
figures["minidl images/s"] = images_per_second
labkit.plot_curves({"no jitter": history})
print(f"validation accuracy on unseen families: {100 * plain_accuracy:.1f}%; "
      f"{images_per_second:.0f} training images per second")
assert plain_accuracy >= (0.80 if QUICK else 0.95) or not ENOUGH_FONTS

# %% [markdown]
# **Questions.** How many images per second does training process? The curves show a
# loss and an accuracy: what is the difference? Should the training and validation
# curves agree, and which should be better?

# %% [markdown] tags=["solution"]
# *Solution.* The speed is printed above (a forward and a backward pass per image). The
# loss is the quantity being minimised, the average cross-entropy, which also rewards
# being *confidently* right; the accuracy counts correct answers, what we care about but
# cannot differentiate. Training figures are better than validation ones: the network has
# fitted the training faces, and the validation faces are new typefaces. A small gap means
# the network learned letter shapes rather than the training fonts. (The training figures
# are running averages over each epoch while the weights still change, so early on they
# can even be worse than the validation figure at the end of the epoch.)

# %% [markdown]
# ### 4.4 Speed, beside PyTorch
#
# minidl runs on the CPU only. Where PyTorch is installed, the cell below times its CPU
# training steps on the same network, the same batches and the same optimiser.

# %%
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed: no comparison")
if torch is not None:
    torch_net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.MaxPool2d(2), torch.nn.Conv2d(20, 50, 5), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(50, 500, 4), torch.nn.ReLU(), torch.nn.Conv2d(500, 26, 2), torch.nn.Flatten())
    torch_optimizer = torch.optim.SGD(torch_net.parameters(), lr=0.01, momentum=0.9)
    torch_loss = torch.nn.CrossEntropyLoss()
    batches = [(torch.from_numpy(x_train[i:i + 100]), torch.from_numpy(chars.y_train[i:i + 100]))
               for i in range(0, len(x_train) - 99, 100)][:10 if QUICK else 30]
    for timed in (False, True):        # a first pass to warm up, then the timed one
        tic = time.perf_counter()
        for xb, yb in batches:
            torch_optimizer.zero_grad()
            torch_loss(torch_net(xb), yb).backward()
            torch_optimizer.step()
    torch_speed = 100 * len(batches) / (time.perf_counter() - tic)
    figures["PyTorch CPU images/s"] = torch_speed
    print(f"training images per second: minidl {images_per_second:.0f}, PyTorch CPU {torch_speed:.0f} "
          f"({torch.get_num_threads()} threads)")

# %% [markdown]
# ### 4.5 The learned filters
#
# The first layer has 20 filters of 5 × 5:

# %%
labkit.show_mosaic(model[0].weights, "the 20 filters of the first layer", size=5);

# %% [markdown]
# **Question.** What do the filters look like?

# %% [markdown] tags=["solution"]
# *Solution.* Most are oriented edge and bar detectors at a few angles, some pairs of
# opposite sign, with a few blob-like ones: the strokes of letters are bars at a handful
# of angles and curvatures, and the first layer learns to find them. They are smooth,
# unlike the random filters they started from, because the images are smooth at that
# scale.

# %% [markdown]
# ### 4.6 Reading a sentence
#
# A line of text, rendered in a family held out of training, 32 pixels high like the
# letters and as wide as it needs:

# %%
sentence = "the quick brown fox jumps over the lazy dog"
reading_face = next((f for f in chars.val_faces if f.name == "Lato Regular"), chars.val_faces[0])
line = labkit.render_text(reading_face, sentence)
print(f"{reading_face.name} (validation family): image {line.image.shape}")
labkit.show(line.image, sentence, size=14)
scores = model.forward(line.image - paper_mean)
print("scores:", scores.shape)
assert scores.shape == (1, 26, 1, (line.image.shape[3] - 32) // 4 + 1)

# %% [markdown]
# **Questions.** The network was trained on 32 × 32 images; why can it run on a line
# 32 pixels high and hundreds wide? What shape is its output?

# %% [markdown] tags=["solution"]
# *Solution.* Every layer is a convolution or a pooling, and those slide over any input
# at least as large as their window: nothing in the network fixes the width. Each output
# column is exactly what the network would say about the 32 × 32 window under it. The
# two poolings make consecutive columns 4 pixels apart, so W pixels give
# ⌊(W − 32) / 4⌋ + 1 columns of 26 scores: (1, 26, 1, ⌊(W − 32)/4⌋ + 1), checked above.

# %% [markdown]
# Every column's best letter, in order, reads like this:

# %%
print(labkit.decode_columns(scores))

# %% [markdown]
# Most columns do not sit on a letter, so we read only the column nearest to the centre
# of each letter. The renderer knows where it put the letters; a full reader would have to
# find them too, but this is enough to measure how well the network recognises letters
# in context. The error is the character error rate: the edit distance from what is read
# to the truth (spaces left out), divided by the length of the truth.

# %%
truth = sentence.replace(" ", "")


def read(net, text_line):
    scores = net.forward(text_line.image - paper_mean)
    letters = labkit.read_letters(scores, text_line.centres)
    return scores, letters, labkit.character_error_rate(letters, text_line.letters)


scores, read_plain, cer_plain = read(model, line)
labkit.plot_sentence(line.image, scores, line.centres, read_plain, title="trained without jitter")
print(f"read:  {read_plain}\ntruth: {truth}\ncharacter error rate {100 * cer_plain:.1f}%")
figures["character error rate, no jitter"] = cer_plain

# %% [markdown]
# **Questions.** Is the reading good? Is it as good as the validation accuracy promised?

# %% [markdown] tags=["solution"]
# *Solution.* It is much worse than the validation accuracy (the cell printed both),
# although the font is one the network reads well letter by letter. The validation
# letters are alone in their 32 × 32 square, centred exactly; in a line every window also
# holds parts of the neighbouring letters, and the centre of a letter can be up to 2
# pixels from the centre of the nearest column. The network never saw either situation.

# %% [markdown]
# ### 4.7 Training with jitter
#
# We make the training images look more like windows of a line: each character gets
# two random characters of its batch as neighbours, 13 to 18 pixels to the left and to the
# right, and the result is shifted by up to 5 pixels sideways and 2 up or down. These are
# batch transforms, called on each training batch as `transform(x, rng)` by `Trainer`;
# they draw new neighbours and shifts every time.

# %%
from minidl import transforms as T

paper = 1.0 - paper_mean              # the value of blank paper after centring
jitter = T.Compose([labkit.AddNeighbours(spacing=(13, 18), paper=paper),
                    T.RandomShift((2, 5), fill=paper)])
sample = x_train[rng.permutation(len(x_train))[:64]]
labkit.show_mosaic(sample, "without jitter", size=6)
labkit.show_mosaic(jitter(sample, np.random.default_rng(5)), "with jitter", size=6);

# %% [markdown]
# Train a second network with the jitter. (In the quick run, to save time, it starts from
# the first network's weights; the full run trains it from scratch, as the first.)

# %%
jittered = models.char_cnn(rng=np.random.default_rng(7))
if QUICK:
    for (_, target), (_, source) in zip(jittered.params(), model.params()):
        target[...] = source
history_jitter, _ = train_characters(jittered, 4 if QUICK else 25, transform=jitter, seed=1)
jitter_accuracy = history_jitter[-1]["val_accuracy"]
labkit.plot_curves({"no jitter": history, "jitter": history_jitter})
scores_j, read_jitter, cer_jitter = read(jittered, line)
labkit.plot_sentence(line.image, scores_j, line.centres, read_jitter, title="trained with jitter")
print(f"read:  {read_jitter}\ntruth: {truth}")
print(f"character error rate: {100 * cer_plain:.1f}% without jitter, {100 * cer_jitter:.1f}% with jitter")
print(f"validation accuracy: {100 * plain_accuracy:.1f}% without jitter, {100 * jitter_accuracy:.1f}% with jitter")
figures["character error rate, jitter"] = cer_jitter
figures["validation accuracy, jitter"] = jitter_accuracy
assert cer_jitter < cer_plain or not ENOUGH_FONTS

# %% [markdown]
# **Questions.** Compare the gap between the training and validation curves with and
# without jitter. Does the jittered network read the sentence better? What else could
# make it read better still?

# %% [markdown] tags=["solution"]
# *Solution.* The cell below prints the gaps. Without jitter the network fits its training
# letters perfectly, or nearly, and the gap is what the unseen families cost. With jitter
# the training accuracy, measured on jittered batches, stays well below 100% (crowded,
# shifted letters are a harder task, and a new one every epoch, so there is nothing to
# memorise) and the validation accuracy, on clean centred letters, is a little lower than
# the first network's: part of what it learned, ignoring neighbours and tolerating shifts,
# is not needed there. It is on the sentence that jitter pays: the error rate falls a lot.
# Ideas to go further: render the training letters at several sizes and weights, train
# longer with a decreasing rate, add a class for "between letters" so that the network
# itself tells where letters are, let the network look at more context (a wider window),
# and read with
# a decoder that chooses positions and letters together instead of taking centres from
# the renderer.

# %% tags=["solution"]
for name, run_history in (("no jitter", history), ("jitter", history_jitter)):
    last = run_history[-1]
    print(f"{name:>9}: training accuracy {100 * last['train_accuracy']:.1f}%, validation "
          f"{100 * last['val_accuracy']:.1f}%, gap {100 * (last['train_accuracy'] - last['val_accuracy']):+.1f} points")
assert history_jitter[-1]["train_accuracy"] < history[-1]["train_accuracy"]
#
# ## Part 5: networks trained by others
#
# Networks trained on ImageNet (1.2 million photos, 1000 classes) took days on GPUs; their
# weights are files that others can load and use as they are, or as a starting point.
# **This lab cannot download any:** there is no network access here, and minidl ships no
# weights. What minidl provides is the architecture, `models.alexnet()` (the layers
# of torchvision's AlexNet, with the same names), and `minidl.io.load_torch_state_dict`,
# which copies a PyTorch state dict into it. If you have torchvision's AlexNet weights
# (`alexnet-owt-7be5be79.pth`), set `MINIDL_ALEXNET_WEIGHTS` to its path and the next cells
# classify the photo with them. Otherwise they build a *randomly initialised* AlexNet in
# torchvision, copy its weights into minidl's, and check that both compute the same logits.

# %%
alexnet = models.alexnet()
print(alexnet)
n_convs = sum(isinstance(layer, Conv) for _, layer in alexnet.named_layers())
n_params = sum(a.size for _, a in alexnet.params())
print(f"{n_convs} convolutions, {n_params:,} parameters: {4 * n_params / 2**20:.0f} MiB as float32")
assert n_convs == 5 and n_params == 61_100_840

# %% [markdown]
# **Questions.** How many convolutional layers are there? How large is a file holding the
# weights?

# %% [markdown] tags=["solution"]
# *Solution.* Five convolutions (with ReLUs and three max poolings), then an adaptive
# average pooling to 6 × 6 and three fully connected layers (with dropout). About 61
# million parameters, 233 MiB at 4 bytes each: the weights file is that large, and nearly
# all of it is the first two fully connected layers (9216 × 4096 and 4096 × 4096).

# %%
from minidl.io import load_torch_state_dict
from minidl.transforms import imagenet_preprocess

image = (labkit.photo("coffee")[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
batch = imagenet_preprocess(image)          # resized to 224 x 224, normalised by ImageNet's statistics
print("AlexNet input:", batch.shape)
weights_path = os.environ.get("MINIDL_ALEXNET_WEIGHTS")
alexnet.eval()
if weights_path and torch is not None:
    from minidl.torch_import import import_torchvision

    load_torch_state_dict(alexnet, torch.load(weights_path, map_location="cpu", weights_only=True))
    categories = import_torchvision().models.AlexNet_Weights.IMAGENET1K_V1.meta["categories"]
    logits = alexnet.forward(batch)[0]
    for k in np.argsort(logits)[::-1][:5]:
        print(f"{logits[k]:7.2f}  {categories[k]}")
elif torch is not None:
    from minidl.torch_import import import_torchvision

    torchvision = import_torchvision()
    torch.manual_seed(0)
    reference = torchvision.models.alexnet(weights=None).eval()    # random weights: no download
    load_torch_state_dict(alexnet, reference.state_dict())
    logits = alexnet.forward(batch)
    with torch.no_grad():
        logits_torch = reference(torch.from_numpy(batch)).numpy()
    gap = np.abs(logits - logits_torch).max() / np.abs(logits_torch).max()
    print(f"logits {logits.shape}; largest difference from torchvision's: {gap:.1e} of their range")
    print(f"class with the largest logit: {int(logits.argmax())} (torchvision: {int(logits_torch.argmax())})")
    print("These weights are random: the two networks agree with each other, and the class "
          "they pick means nothing.")
    figures["AlexNet logits, relative difference from torchvision"] = gap
    assert gap < 1e-4 and logits.argmax() == logits_torch.argmax()
else:
    print("PyTorch is not installed: it is needed to read a .pth weights file and to compare with "
          "torchvision. minidl's AlexNet gives", alexnet.forward(batch).shape,
          "logits from random weights, which mean nothing.")

# %% [markdown]
# With real weights, `alexnet.forward(batch)` gives the scores of the 1000 ImageNet
# classes; the largest names the photo's content (a coffee cup should score high).
# Without them, what runs here is the machinery: the same architecture, the same
# numbers as torchvision's, ready for a weights file.
#
# ## What this run measured

# %%
for name, value in figures.items():
    print(f"{name:>55}: {value:.4g}")
print(f"{'running time (s)':>55}: {time.perf_counter() - lab_started:.0f}")
