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
# # Convolutions: a CNN for digits, convolution by hand, and its gradients
#
# This lab follows the plan of lab 7 of the *Introduction to Deep Learning* course at
# LMU Munich, rebuilt on minidl. Four parts:
#
# 1. a small convolutional network trained on MNIST with RMSprop, and measured on
#    images it has never seen;
# 2. convolution written as four nested loops, checked against minidl's `Conv`, and
#    used to find the edges of a photograph with the Sobel filters;
# 3. the derivatives of a convolution with respect to its kernel and its input,
#    derived on paper, written as loops and checked numerically;
# 4. gradient *ascent* on the input: the image a filter likes best, and images a
#    trained network takes for each digit.
#
# Questions are in **bold**; the answer follows each one in a cell marked *Solution*
# (tagged `solution`, so a teacher can strip them). Where an answer is a fact about
# the data, the lab measures it and checks it with `assert`.
#
# Arrays are NumPy arrays in the layout (N, C, H, W): N images, C channels, H rows,
# W columns. Set the environment variable `MINIDL_LAB_QUICK=1` for a quick run
# (less data, fewer epochs and steps); `labs/README.md` says how long each mode takes.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import skimage.data
import skimage.transform

from minidl import data, labkit, models
from minidl import functional as F
from minidl.layers import Conv, SoftmaxCrossEntropy, softmax
from minidl.optim import RMSprop
from minidl.trainer import Trainer, evaluate

QUICK = labkit.quick()
rng = np.random.default_rng(0)
lab_started = time.perf_counter()
figures = {}   # the lab's measured results, printed together at the end
print("quick mode: less data, fewer epochs and steps" if QUICK else "full mode")

# %% [markdown]
# ## Part 1: a convolutional network for handwritten digits
#
# A convolutional layer differs from a fully connected one in two ways.
#
# * **Local connections.** An output unit looks at a small window of the input (here
#   3x3 pixels), not at the whole image.
# * **Shared weights.** All the units of one output channel use the same window of
#   weights, slid over every position. One set of 3x3 weights is one *filter*; a layer
#   has as many filters as output channels.
#
# Both say the same thing about images: what matters in a small patch matters
# wherever the patch is.
#
# ### The data
#
# MNIST: 28x28 grey images of handwritten digits, 60,000 for training and 10,000 for
# testing. `minidl.data.load_mnist` downloads them once (into `~/.cache/minidl`),
# scales the pixels to [0, 1] and subtracts the mean pixel of the training images. It
# keeps the last 5,000 training images apart as a *validation* set.

# %%
mnist = data.load_mnist()
train_x, train_y = mnist.train_x, mnist.train_y
val_x, val_y = mnist.val_x, mnist.val_y
test_x, test_y = mnist.test_x, mnist.test_y
if QUICK:  # a small slice of each split
    train_x, train_y = train_x[:3000], train_y[:3000]
    val_x, val_y = val_x[:1000], val_y[:1000]
    test_x, test_y = test_x[:2000], test_y[:2000]
print(f"training {train_x.shape}, validation {val_x.shape}, test {test_x.shape}, {train_x.dtype}")
print("first labels:", train_y[:20])
labkit.show_mosaic(mnist.train_x[:100], title="the first 100 training images", cols=20)
plt.show()

# %% [markdown]
# **Question.** The network below begins with a convolution of 32 filters of 3x3 pixels
# that turns a 28x28 image into 32 maps of 26x26. How many parameters does that layer
# have, and how many would a fully connected layer need to produce as many outputs
# from the same image?

# %% [markdown] tags=["solution"]
# *Solution.* Each filter has 3·3 weights for its one input channel and a bias:
# 32·(9 + 1) = 320 parameters. A fully connected layer with the same 32·26·26 = 21,632
# outputs gives each output its own weight for each of the 784 pixels, plus a bias:
# 21,632·785 = 16,981,120 parameters, fifty thousand times more, and it would have to
# learn the same stroke detector separately at every position.

# %%
conv_params = 32 * (1 * 3 * 3 + 1)
fc_params = (32 * 26 * 26) * (28 * 28 + 1)
print(f"conv 32 3x3: {conv_params:,} parameters; fully connected to 32x26x26 outputs: {fc_params:,}")
assert conv_params == Conv(1, 32, 3).weights.size + 32 == 320
assert fc_params == 16_981_120

# %% [markdown]
# ### The network
#
# Three convolutions with ReLUs and 2x2 max pooling between them, then two fully
# connected layers. `models.mnist_cnn` builds it; a network's `summary` runs a batch of
# zeros through a copy of it and reports each layer's output shape and parameter count.

# %%
net = models.mnist_cnn(rng=0)
summary = net.summary((1, 28, 28), batch_size=1)

# %% [markdown]
# The count can be checked by hand: a convolution with C input channels and F filters
# of KH x KW has F·(C·KH·KW + 1) parameters, a fully connected layer from D inputs to M
# outputs M·(D + 1).

# %%
by_hand = (32 * (1 * 9 + 1) + 64 * (32 * 9 + 1) + 64 * (64 * 9 + 1)   # the three convolutions
           + 64 * (576 + 1) + 10 * (64 + 1))                          # the two FC layers
print(f"by hand: {by_hand:,}; summary: {summary['total_params']:,}")
assert summary["total_params"] == by_hand == 93_322
figures["parameters"] = summary["total_params"]

# %% [markdown]
# **Question.** The first fully connected layer takes 576 inputs. Where does that number
# come from?

# %% [markdown] tags=["solution"]
# *Solution.* From the shapes. A 3x3 convolution without padding loses one pixel on each
# side, a 2x2 pooling halves the size (rounding down): 28 → 26 → 13 → 11 → 5 → 3. The
# last convolution has 64 filters, so its output is 64 maps of 3x3, and `Flatten` lays
# them out as one vector of 64·3·3 = 576 numbers per image. Change the input size and
# this number changes, which is why the FC layer has to be told.

# %%
side = 28
for step in ("conv", "pool", "conv", "pool", "conv"):
    side = side - 2 if step == "conv" else side // 2
print("side after the last convolution:", side)
assert 64 * side * side == 576 == summary["rows"][7][2][1]   # the output of Flatten

# %% [markdown]
# **Question.** The network ends with a fully connected layer of 10 outputs and no
# softmax. How does it give probabilities, and how does it predict a class?

# %% [markdown] tags=["solution"]
# *Solution.* The 10 outputs are *logits*, unnormalised scores. The loss,
# `SoftmaxCrossEntropy`, applies the softmax itself and takes the log of the probability
# of the right class in one step, which is more accurate than a separate softmax followed
# by a logarithm (a probability that rounds to 0 would give -inf). To predict, the
# softmax is not needed either: it preserves the order of the scores, so the class with
# the largest logit is the class with the largest probability.

# %% [markdown]
# ### Training with RMSprop
#
# RMSprop divides each weight's step by a running root mean square of that weight's
# recent gradients, so every weight moves at a similar pace whatever the scale of its
# gradient. We use batches of 64 and a learning rate of 10⁻³, and after each epoch we
# measure the loss and accuracy on the validation images.

# %%
epochs = 1 if QUICK else 5
trainer = Trainer(net, SoftmaxCrossEntropy(), RMSprop(lr=1e-3), batch_size=64, seed=0)
started = time.perf_counter()
history = trainer.fit(train_x, train_y, epochs, x_val=val_x, y_val=val_y)
training_seconds = time.perf_counter() - started
for record in history:
    print(f"epoch {record['epoch']}: training loss {record['train_loss']:.3f}, accuracy "
          f"{record['train_accuracy']:.3f} | validation loss {record['val_loss']:.3f}, "
          f"accuracy {record['val_accuracy']:.3f} ({record['seconds']:.0f} s)")
figures["training seconds"] = training_seconds
if len(history) > 1:
    labkit.plot_curves({"mnist_cnn": history})
    plt.show()

# %% [markdown]
# The training figures are averages over each epoch while the weights were still
# changing; the validation figures are measured at the end of the epoch.
#
# ### Measuring the network: on the test set
#
# The network has now seen every training image several times. What we want to know is
# how it does on digits it has not seen, so we measure it on the 10,000 test images,
# which played no part in training nor in any choice we made.

# %%
test = evaluate(net, None, test_x, test_y)
seen = evaluate(net, None, train_x[:len(test_x)], train_y[:len(test_x)])
print(f"test set:     loss {test['loss']:.4f}, accuracy {test['accuracy']:.4f} ({len(test_x):,} images)")
print(f"training set: loss {seen['loss']:.4f}, accuracy {seen['accuracy']:.4f} "
      f"(as many images, all used for training)")
figures["test accuracy"] = test["accuracy"]
figures["training-set accuracy"] = seen["accuracy"]
assert test["accuracy"] > (0.85 if QUICK else 0.98)

# %% [markdown]
# **Question.** The notebook this lab follows measures its trained network on the
# training images and reports that as the evaluation. Why is that the wrong set, and
# what is the validation set for, if not this?

# %% [markdown] tags=["solution"]
# *Solution.* The training images are the ones the weights were fitted to, so accuracy on
# them mixes how well the network has learnt digits with how well it has memorised these
# particular ones. A network with enough parameters can reach 100% on its training set
# and still fail on new writing; the figure we care about is the accuracy on new images
# from the same source, and only images that influenced nothing estimate it without
# bias. On MNIST the two figures are close (above), because this network is small for
# 55,000 images; on smaller data sets they drift far apart. The validation set is for
# *decisions* (how many epochs, which learning rate, which architecture): each decision
# taken by looking at it fits the choices a little to those images, so its figure
# becomes optimistic too. The test set is looked at once, at the end.

# %% [markdown]
# A few test digits the network gets wrong, with its prediction and the true label:

# %%
wrong = np.flatnonzero(test["predictions"] != test_y)[:12]
fig, axes = plt.subplots(1, len(wrong), figsize=(1.3 * len(wrong), 1.8), squeeze=False)
for ax, index in zip(axes[0], wrong):
    ax.imshow(test_x[index, 0], cmap="gray")
    ax.set_title(f"{test['predictions'][index]} ({test_y[index]})")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Part 2: convolution by hand
#
# For a grey image X of size H x W and a kernel K of size KH x KW, the convolution layer
# of every deep-learning framework computes, for 0 ≤ i < H - KH + 1 and
# 0 ≤ j < W - KW + 1 (indices from 0, as in Python),
#
# $$ y_{ij} = \sum_{k=0}^{KH-1} \sum_{l=0}^{KW-1} x_{i+k,\, j+l}\; k_{kl}. $$
#
# The kernel is laid on the image with its top-left corner at (i, j), and the products of
# the overlapping numbers are added up. The output is KH - 1 rows and KW - 1 columns
# smaller than the input (no padding, stride 1). Written as loops:

# %%
def correlate_loops(image, kernel):
    """image (H, W), kernel (KH, KW) -> y (H - KH + 1, W - KW + 1),
    y[i, j] = sum over k, l of image[i + k, j + l] * kernel[k, l]."""
    kh, kw = kernel.shape
    out_height, out_width = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    out = np.zeros((out_height, out_width))
    for i in range(out_height):
        for j in range(out_width):
            total = 0.0
            for k in range(kh):
                for l in range(kw):
                    total += image[i + k, j + l] * kernel[k, l]
            out[i, j] = total
    return out


# %% [markdown]
# To check it, we give minidl's `Conv` layer (one input channel, one filter, no bias) the
# same kernel. A kernel that is not square and an image that is not square catch any
# mix-up of rows and columns.

# %%
image = rng.standard_normal((7, 10))
kernel = rng.standard_normal((3, 4))
conv = Conv(1, 1, kernel.shape, bias=False, dtype=np.float64)
conv.weights[0, 0] = kernel
by_layer = conv.forward(image[None, None])[0, 0]     # (1, 1, 7, 10) -> (1, 1, 5, 7)
by_loops = correlate_loops(image, kernel)
print("output shape:", by_loops.shape, "largest difference:", np.abs(by_loops - by_layer).max())
assert by_loops.shape == by_layer.shape == (5, 7)
assert np.allclose(by_loops, by_layer, rtol=0, atol=1e-12)

# %% [markdown]
# ### Edges with the Sobel filters
#
# $$ G_x = \begin{pmatrix} -1 & 0 & 1 \\ -2 & 0 & 2 \\ -1 & 0 & 1 \end{pmatrix}
# \qquad G_y = G_x^\top = \begin{pmatrix} -1 & -2 & -1 \\ 0 & 0 & 0 \\ 1 & 2 & 1 \end{pmatrix} $$
#
# The edge strength at each pixel combines the two responses:
# $E = \sqrt{(G_x \star I)^2 + (G_y \star I)^2}$, divided by its largest value so that it
# lies in [0, 1].
#
# **Question.** What does each Sobel filter measure, and what does $G_x$ respond to: a
# vertical edge or a horizontal one?

# %% [markdown] tags=["solution"]
# *Solution.* $G_x$ is the outer product of a column (1, 2, 1) and a row (-1, 0, 1). The row
# takes the difference between the pixel to the right and the pixel to the left, a
# finite-difference estimate of the derivative along x (twice it, as the step is two
# pixels); the column averages that difference over three rows with weights 1, 2, 1,
# which smooths away some noise. So $G_x$ measures how fast the brightness changes from
# left to right: it is large on a *vertical* edge (dark on one side, bright on the other)
# and zero on a horizontal one, where nothing changes along x. $G_y$ is the same along y
# and responds to horizontal edges. Together they estimate the gradient of the image, and
# E is its length: large wherever the brightness changes, in any direction. The weights of
# each filter add up to 0, so a flat region gives 0.

# %%
sobel_x = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
sobel_y = sobel_x.T.copy()
assert np.array_equal(sobel_x, np.outer([1, 2, 1], [-1, 0, 1]))
vertical_edge = np.zeros((6, 8))
vertical_edge[:, 4:] = 1.0                    # dark left half, bright right half
print("G_x on a vertical edge:\n", correlate_loops(vertical_edge, sobel_x))
print("G_y on the same edge:\n", correlate_loops(vertical_edge, sobel_y))
assert correlate_loops(vertical_edge, sobel_x).max() == 4 and not correlate_loops(vertical_edge, sobel_y).any()
assert not correlate_loops(vertical_edge.T, sobel_x).any()


# %% [markdown]
# Now the photograph: scikit-image's cameraman, 512x512 grey pixels. The loops visit
# every output pixel in Python, about 2.3 million multiplications per filter; in quick
# mode they run on the image shrunk to 128x128 instead. The `Conv` layer computes the same
# numbers on the full image, and we check that the two agree where both run.

# %%
def edge_magnitude(image, correlate):
    """E = sqrt((G_x * I)^2 + (G_y * I)^2) / max, with ``correlate(image, kernel)``."""
    edges = np.sqrt(correlate(image, sobel_x) ** 2 + correlate(image, sobel_y) ** 2)
    return edges / edges.max()


def correlate_conv(image, kernel):
    """The same convolution by minidl's Conv (through minidl.functional.conv2d)."""
    return F.conv2d(image[None, None], kernel[None, None])[0, 0]


camera = skimage.data.camera() / 255.0                                      # (512, 512) in [0, 1]
loop_image = skimage.transform.downscale_local_mean(camera, (4, 4)) if QUICK else camera
started = time.perf_counter()
edges_loops = edge_magnitude(loop_image, correlate_loops)
loop_seconds = time.perf_counter() - started
edges_conv = edge_magnitude(loop_image, correlate_conv)
print(f"loops on {loop_image.shape}: {loop_seconds:.1f} s; largest difference from Conv: "
      f"{np.abs(edges_loops - edges_conv).max():.1e}")
assert edges_loops.shape == (loop_image.shape[0] - 2, loop_image.shape[1] - 2)
assert np.allclose(edges_loops, edges_conv, rtol=0, atol=1e-12)

edges = edge_magnitude(camera, correlate_conv)
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
panels = (camera, np.abs(correlate_conv(camera, sobel_x)), np.abs(correlate_conv(camera, sobel_y)), edges)
titles = ("the image I", "|G_x * I|: vertical edges", "|G_y * I|: horizontal edges", "edge magnitude E")
for ax, panel, title in zip(axes, panels, titles):
    ax.imshow(panel, cmap="gray")
    ax.set_title(title)
    ax.axis("off")
plt.show()
figures["share of pixels with E > 0.2"] = float((edges > 0.2).mean())
assert edges.shape == (510, 510) and edges.max() == 1.0
assert np.median(edges) < 0.1 and (edges > 0.2).mean() < 0.2   # most of a photograph is not an edge

# %% [markdown]
# **Question.** Strictly speaking, the formula above is a *cross-correlation*: a
# convolution in the mathematical sense flips the kernel first (by 180 degrees). Would the
# edge image change if we flipped the Sobel kernels?

# %% [markdown] tags=["solution"]
# *Solution.* No. Turning $G_x$ by 180 degrees gives exactly $-G_x$ (and the same for
# $G_y$), so each response changes sign and the squares in E do not. In general the two
# operations differ by a flip of the kernel, and a network that learns its kernels learns
# the flipped ones just as well, which is why frameworks skip the flip and still call
# the layer a convolution.

# %%
assert np.array_equal(np.flip(sobel_x), -sobel_x) and np.array_equal(np.flip(sobel_y), -sobel_y)
flipped = np.sqrt(correlate_conv(camera, np.flip(sobel_x)) ** 2 + correlate_conv(camera, np.flip(sobel_y)) ** 2)
assert np.allclose(flipped / flipped.max(), edges)

# %% [markdown]
# ## Part 3: the gradients of a convolution
#
# Let the convolution Y = K ⋆ X be a layer inside a network: X comes from the layer
# before, and the loss L depends on X and K only through the outputs $y_{ij}$. Backprop
# hands the layer $g_{ij} = \partial L / \partial y_{ij}$, an array the shape of Y, and
# asks for $\partial L / \partial K$ (to update the kernel) and $\partial L / \partial X$
# (to pass further back). One input channel and one filter keep the notation short; a
# real layer repeats this for every pair of channels and adds up.
#
# **Question.** Show that
#
# $$ \frac{\partial L}{\partial k_{kl}} = \sum_{i,j} g_{ij}\, x_{i+k,\, j+l}
# \qquad\text{and}\qquad
# \frac{\partial L}{\partial x_{pq}} = \sum_{k=\max(0,\, p-OH+1)}^{\min(KH-1,\, p)}\;
# \sum_{l=\max(0,\, q-OW+1)}^{\min(KW-1,\, q)} g_{p-k,\, q-l}\; k_{kl}, $$
#
# where OH x OW = (H - KH + 1) x (W - KW + 1) is the size of Y.

# %% [markdown] tags=["solution"]
# *Solution.* Both follow from the chain rule over all the outputs,
# $\partial L / \partial \theta = \sum_{i,j} g_{ij}\, \partial y_{ij} / \partial \theta$,
# and the fact that $y_{ij}$ is linear in each $k_{kl}$ and in each $x_{pq}$.
#
# **Kernel.** $y_{ij} = \sum_{k,l} x_{i+k, j+l} k_{kl}$ contains $k_{kl}$ exactly once, with
# the factor $x_{i+k, j+l}$, so $\partial y_{ij} / \partial k_{kl} = x_{i+k, j+l}$ and
#
# $$ \frac{\partial L}{\partial k_{kl}} = \sum_{i=0}^{OH-1} \sum_{j=0}^{OW-1} g_{ij}\, x_{i+k,\, j+l}. $$
#
# Read as a function of (k, l), this is the input X cross-correlated with the array G:
# the kernel's gradient is a "convolution" of the input with the output gradient, and has
# the shape of the kernel (H - OH + 1 = KH).
#
# **Input.** The pixel $x_{pq}$ enters $y_{ij}$ when $p = i + k$ and $q = j + l$ for some
# kernel position (k, l), with the factor $k_{kl}$. So for each kernel entry (k, l) there is
# at most one output that uses $x_{pq}$ through it, the one at (i, j) = (p - k, q - l), and
# it exists only if that index lies inside Y: $0 \le p - k \le OH - 1$, that is
# $p - OH + 1 \le k \le p$, and together with $0 \le k \le KH - 1$ this gives the limits
# above (the same for l and the columns). Adding up over the kernel entries,
#
# $$ \frac{\partial L}{\partial x_{pq}} = \sum_{k,l \text{ in range}} g_{p-k,\, q-l}\; k_{kl}. $$
#
# In one dimension, with five inputs, a kernel of three and so three outputs:
#
# $$ \tfrac{\partial L}{\partial x_0} = g_0 k_0,\quad
#    \tfrac{\partial L}{\partial x_1} = g_0 k_1 + g_1 k_0,\quad
#    \tfrac{\partial L}{\partial x_2} = g_0 k_2 + g_1 k_1 + g_2 k_0,\quad
#    \tfrac{\partial L}{\partial x_3} = g_1 k_2 + g_2 k_1,\quad
#    \tfrac{\partial L}{\partial x_4} = g_2 k_2. $$
#
# In the middle every kernel entry contributes; near the ends some of the outputs they
# would reach do not exist. Along each line the index of g falls as the index of k rises:
# this is the *flipped* kernel slid over G. Pad G with KH - 1 zeros at the top and bottom
# and KW - 1 at the sides, and the missing terms become products with zero: the input
# gradient is the zero-padded output gradient cross-correlated with the kernel turned by
# 180 degrees, a "full" convolution whose output has the size of X.

# %% [markdown]
# The two formulas as loops:

# %%
def kernel_gradient_loops(image, grad_out):
    """dL/dK (KH, KW) from X (H, W) and dL/dY (OH, OW): sum_ij g[i, j] * x[i + k, j + l]."""
    return correlate_loops(image, grad_out)


def input_gradient_loops(grad_out, kernel):
    """dL/dX (H, W) from dL/dY (OH, OW) and K (KH, KW): sum over the kernel entries (k, l)
    whose output (p - k, q - l) exists of g[p - k, q - l] * kernel[k, l]."""
    (out_height, out_width), (kh, kw) = grad_out.shape, kernel.shape
    height, width = out_height + kh - 1, out_width + kw - 1
    grad_x = np.zeros((height, width))
    for p in range(height):
        for q in range(width):
            total = 0.0
            for k in range(max(0, p - out_height + 1), min(kh, p + 1)):
                for l in range(max(0, q - out_width + 1), min(kw, q + 1)):
                    total += grad_out[p - k, q - l] * kernel[k, l]
            grad_x[p, q] = total
    return grad_x


# %% [markdown]
# We take the loss $L = \sum_{i,j} y_{ij}^2$ with $K = G_x$ on the cameraman (shrunk to
# 128x128 in quick mode, as the loops are slow). Then $g_{ij} = 2 y_{ij}$.

# %%
x = loop_image
y = correlate_conv(x, sobel_x)
grad_y = 2 * y                                   # dL/dy for L = sum(y^2)
started = time.perf_counter()
grad_x = input_gradient_loops(grad_y, sobel_x)
grad_k = kernel_gradient_loops(x, grad_y)
print(f"the two gradients by loops: {time.perf_counter() - started:.1f} s; "
      f"dL/dX {grad_x.shape}, dL/dK {grad_k.shape}")
assert grad_x.shape == x.shape and grad_k.shape == sobel_x.shape
assert grad_x[0, 0] == grad_y[0, 0] * sobel_x[0, 0]   # a corner pixel reaches one output only

# %% [markdown]
# Three independent checks. The padded-and-flipped form derived above; the `Conv` layer's
# own backward methods, given the same dL/dY; and, at one pixel, the definition of a
# derivative, by central differences.

# %%
padded = np.pad(grad_y, 2)                      # KH - 1 = KW - 1 = 2 zeros on every side
assert np.allclose(grad_x, correlate_conv(padded, np.flip(sobel_x)), rtol=0, atol=1e-9)

layer = Conv(1, 1, 3, bias=False, dtype=np.float64)
layer.weights[0, 0] = sobel_x
layer.forward(x[None, None])
((_, layer_grad_k),) = layer.backward_params(grad_y[None, None])
layer_grad_x = layer.backward_inputs(grad_y[None, None])
print("largest differences from Conv's backward: input",
      np.abs(grad_x - layer_grad_x[0, 0]).max(), " kernel", np.abs(grad_k - layer_grad_k[0, 0]).max())
assert np.allclose(grad_x, layer_grad_x[0, 0], rtol=1e-10, atol=1e-9)
assert np.allclose(grad_k, layer_grad_k[0, 0], rtol=1e-10, atol=1e-9)


# %% [markdown]
# For the finite difference we change one pixel by ±ε and compare the losses. Only the
# nine outputs that see that pixel change, so we add up the differences of the squares
# output by output instead of subtracting two large totals (which would lose most of the
# digits to rounding). And since L is a quadratic function of X, the central difference
# $(L(x + ε) - L(x - ε)) / 2ε$ has no truncation error at all: only rounding remains, and
# the two numbers should agree to about ten digits.

# %%
def finite_difference(image, p, q, eps=1e-3):
    """(L(x + eps e_pq) - L(x - eps e_pq)) / (2 eps) for L = sum((G_x * x)^2)."""
    plus, minus = image.copy(), image.copy()
    plus[p, q] += eps
    minus[p, q] -= eps
    return (correlate_conv(plus, sobel_x) ** 2 - correlate_conv(minus, sobel_x) ** 2).sum() / (2 * eps)


p, q = (int(v) for v in rng.integers(0, x.shape[0], size=2))
scale = np.abs(grad_x).max()     # a floor for the relative error, in case a pixel's gradient is about 0
errors = []
for pixel in ((p, q), (0, 0), (x.shape[0] - 1, 1)):
    numeric = finite_difference(x, *pixel)
    errors.append(abs(numeric - grad_x[pixel]) / max(abs(numeric), 1e-6 * scale))
    print(f"pixel {pixel}: finite difference {numeric:+.10f}, formula {grad_x[pixel]:+.10f}, "
          f"relative error {errors[-1]:.1e}")
figures["finite differences: largest relative error"] = max(errors)
assert max(errors) < 1e-8

fig, axes = plt.subplots(1, 2, figsize=(10, 5))
axes[0].imshow(x, cmap="gray")
axes[0].set_title("X")
axes[1].imshow(grad_x, cmap="gray")
axes[1].set_title("dL/dX for L = sum((G_x * X)^2)")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# **Question.** What does the gradient image show, and why?

# %% [markdown] tags=["solution"]
# *Solution.* dL/dX = 2 $G_x^\top$ applied to ($G_x$ ⋆ X): the horizontal-derivative filter
# applied twice, once forward and once flipped. The result is close to a second derivative
# along x (smoothed along y), so it is zero in flat regions and on horizontal edges, and
# at a vertical edge it has a bright line on one side and a dark one on the other: raising
# the bright side of an edge and lowering the dark side makes the edge steeper, which is
# what increases L fastest.

# %% [markdown]
# ## Part 4: gradient ascent on the input
#
# The input gradient tells how to change an image to increase the loss. Following it
# (gradient *ascent*, with the weights held fixed) finds the inputs a layer or a network
# responds to most.
#
# **Question.** Which 9x9 image maximises $L = \sum_{ij} (G_x \star X)^2_{ij}$? Try plain
# gradient ascent from a random image first.

# %%
start = rng.random((9, 9))
image_ascent, losses_free = start.copy(), []
for _ in range(60):
    y = correlate_loops(image_ascent, sobel_x)
    losses_free.append((y ** 2).sum())
    image_ascent += 0.01 * input_gradient_loops(2 * y, sobel_x)
print(f"L after 0, 20, 40, 59 steps: {losses_free[0]:.3g}, {losses_free[20]:.3g}, "
      f"{losses_free[40]:.3g}, {losses_free[-1]:.3g}")
assert np.all(np.diff(losses_free) > 0) and losses_free[-1] > 1e20 * losses_free[0]

# %% [markdown] tags=["solution"]
# *Solution.* No image does: the question has no answer as asked. L is quadratic, so
# doubling an image quadruples L, and the ascent above only makes the image larger and
# larger (L grows by a roughly constant factor per step, without end). The question that
# has an answer is which image *of a given size*, say with $\|X\| = 1$, gives the largest
# L. Writing the convolution as a matrix, Y = A x for the 81 pixels x of the image, gives
# $L = \|A x\|^2$, and its largest value over unit vectors is the square of the largest
# singular value of A, reached at the top right singular vector. Gradient ascent that
# rescales the image to norm 1 after every step (projected gradient ascent) finds it: each
# step multiplies by $I + 2\eta A^\top A$ and renormalises, which is the power method.

# %%
basis = np.eye(81).reshape(81, 9, 9)
A = np.stack([correlate_loops(e, sobel_x).ravel() for e in basis], axis=1)    # (49, 81): Y = A x
singular_values = np.linalg.svd(A, compute_uv=False)
best = singular_values[0] ** 2

image_unit, losses_unit = start / np.linalg.norm(start), []
for _ in range(200):
    y = correlate_loops(image_unit, sobel_x)
    losses_unit.append((y ** 2).sum())
    image_unit += 0.05 * input_gradient_loops(2 * y, sobel_x)
    image_unit /= np.linalg.norm(image_unit)        # back onto the unit sphere
print(f"largest L on the unit sphere: {best:.6f} (SVD); ascent reached {losses_unit[-1]:.6f}")
figures["Sobel ascent: L reached / largest L"] = losses_unit[-1] / best
assert abs(losses_unit[-1] - best) < 1e-6 * best and best < 64

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
axes[0].semilogy(losses_free)
axes[0].set_title("plain ascent: L grows without bound")
axes[1].plot(losses_unit)
axes[1].axhline(best, color="k", linestyle=":", label="largest singular value squared")
axes[1].set_title("ascent on the unit sphere")
axes[1].legend()
for ax in axes[:2]:
    ax.set_xlabel("step")
axes[2].imshow(image_unit, cmap="gray")
axes[2].set_title("the image with the largest L")
axes[2].axis("off")
plt.show()
print(np.round(image_unit / np.abs(image_unit).max(), 2))

# %% [markdown]
# **Question.** The best image is a set of vertical stripes: every other column is zero,
# and the others alternate in sign, so the pattern repeats every four pixels. Why that
# period, why vertical, and why can L never reach 64 per unit of squared image norm?

# %% [markdown] tags=["solution"]
# *Solution.* Think of a pattern $\cos(\omega_x j + \omega_y i)$ filtered by
# $G_x = (1, 2, 1)^\top (-1, 0, 1)$. The row (-1, 0, 1) multiplies a wave of frequency
# $\omega_x$ by $2\sin\omega_x$ (in size), largest at $\omega_x = \pi/2$: a period of
# 4 pixels, the pattern (1, 0, -1, 0) under which the pixels two apart are as different as
# possible. The column (1, 2, 1) multiplies by $2 + 2\cos\omega_y$, largest at
# $\omega_y = 0$: constant down each column, hence vertical stripes. The largest gain is
# 2·4 = 8 in amplitude, 64 in energy, and it is reached only by an infinite wave; a 9x9
# image has borders, where the filter's window falls off the image, so its best is a
# little less (about 54 here), which is also why the stripes fade towards the top and
# bottom.

# %%
columns = np.abs(image_unit).max(axis=0)
assert columns[1::2].max() < 1e-3 * columns.max()                       # every other column empty
middle = image_unit[4, ::2]                                             # columns 0, 2, 4, 6, 8
assert np.all(np.sign(middle[1:]) == -np.sign(middle[:-1]))              # alternating signs

# %% [markdown]
# ### What does the network take for a 3?
#
# The same idea on the trained network: start from an almost blank page and change it to
# raise the logit of one class. Two things keep the result an image: a penalty on the ink,
# λ·Σ(pixel values²), that stops it from filling the page (the problem of the unbounded
# loss above), and clipping every pixel back into the range MNIST pixels can take, from 0
# (black) to 1. We do all ten classes at once, as a batch of ten images, each pushed towards
# its own class: the gradient of the sum of the ten chosen logits with respect to the batch
# is, for each image, the gradient of its own logit (the images do not interact).
#
# The page starts with a little random ink rather than perfectly uniform. At a uniform
# image every window of a filter sees the same numbers, and if all the ReLUs of one layer
# happen to be off there, the input gradient is exactly zero and the ascent never moves:
# with the network of the full run, the uniform mean-grey image is such a point.

# %%
net.train(False)
net.forward(np.zeros((1, 1, 28, 28), dtype=np.float32))    # the uniform image at the mean pixel
uniform_gradient = net.backprop(np.eye(10, dtype=np.float32)[:1], need_input_grad=True)[0]
print("largest input gradient of logit 0 at the uniform mean-grey image:", np.abs(uniform_gradient).max())

steps = 200 if QUICK else 300
penalty, step_size = 0.05, 0.1
low, high = -mnist.mean.item(), 1 - mnist.mean.item()   # pixel values 0 and 1, after the mean is taken off
dreams = (low + 0.1 * rng.random((10, 1, 28, 28))).astype(np.float32)   # black, with a little ink
wanted = np.eye(10, dtype=np.float32)                    # row c: d(sum of chosen logits)/d(logits) of image c
logit_curves = []
for _ in range(steps):
    logits = net.forward(dreams)
    logit_curves.append(np.diag(logits).copy())
    grad_input, _ = net.backprop(wanted, need_input_grad=True)
    ink = dreams - low                                   # the pixel values
    dreams += step_size * (grad_input - 2 * penalty * ink)
    np.clip(dreams, low, high, out=dreams)
probabilities = softmax(net.forward(dreams).astype(np.float64))
chosen = np.diag(probabilities)
print("probability of the wanted class:", np.round(chosen, 3))
figures["class ascent: smallest probability of the wanted class"] = float(chosen.min())
assert chosen.min() > 0.9 and (probabilities.argmax(axis=1) == np.arange(10)).all()

fig, axes = plt.subplots(1, 11, figsize=(18, 2.4), gridspec_kw={"width_ratios": [1] * 10 + [2.2]})
for c, ax in enumerate(axes[:10]):
    ax.imshow(dreams[c, 0], cmap="gray", vmin=low, vmax=high)
    ax.set_title(f"{c}: p = {chosen[c]:.2f}")
    ax.axis("off")
axes[10].plot(np.array(logit_curves))
axes[10].set_xlabel("step")
axes[10].set_title("logit of the wanted class")
plt.show()

# %% [markdown]
# **Question.** Every image is classified as its digit with high confidence, yet few look
# like handwriting. What does that tell you about the network?

# %% [markdown] tags=["solution"]
# *Solution.* The network was trained to tell digits apart, not to know what a digit looks
# like: it responds to the few strokes that separate one class from the others (the bar of
# a 7, the closed loop of a 0), and to anything else only as far as it matters among ten
# digits. Gradient ascent finds whatever raises a logit, and that includes patterns no
# person would draw: these are close cousins of *adversarial examples*, small changes to a
# real image that change the network's answer. Stronger priors (a larger penalty, blurring
# the image between steps, starting from a real digit) make the results look more like
# writing, and they show more of what the network relies on.

# %% [markdown]
# ## What this run measured

# %%
for name, value in figures.items():
    print(f"{name:>55}: {value:,}" if isinstance(value, int) else f"{name:>55}: {value:.4g}")
print(f"{'running time (s)':>55}: {time.perf_counter() - lab_started:.0f}")
