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
# # Convolutional networks: from hand-made filters to ResNet-50
#
# This lab follows the plan of the convolutional-network lecture of the Cambridge
# Engineering module 4F12 (Computer Vision), rebuilt on minidl. It starts where image
# processing started, with filters designed by hand, and ends with a network of fifty
# layers:
#
# 1. four hand-designed kernels on real MNIST digits: blur, horizontal edges, horizontal bars, blobs;
# 2. a classical filter bank (Leung and Malik), built in NumPy;
# 3. convolution as one matrix product: im2col written with loops, beside minidl's;
# 4. letting a network learn its filters: a one-layer CNN on MNIST, its filters and feature maps;
# 5. pooling: subsampling, average and max pooling, and what pooling saves;
# 6. a deeper network on colour-shaped data, and the training recipe: mean image, scaling to
#    [−1, 1], training / validation / test, choosing on validation, retraining on both;
# 7. data augmentation and test-time augmentation, measured against none;
# 8. batch normalisation, measured against none;
# 9. ResNet-50: its architecture, and weights trained by others.
#
# Part 6 onwards uses CIFAR-10's shapes (32 × 32, three channels). The CIFAR-10 archive
# cannot be downloaded on this machine, so those parts train on a **stand-in**:
# Fashion-MNIST padded to 32 × 32 and repeated over three channels. The figures they
# report are the stand-in's, not CIFAR-10's.
#
# Questions are in **bold**; the answer follows each in a cell tagged `solution`.
# Where an answer is a fact about the data, the lab measures it and checks it with
# `assert`. `MINIDL_LAB_QUICK=1` runs a smaller version (fewer images and epochs).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minidl
from minidl import functional as F
from minidl import labkit, models, ops
from minidl import transforms as T
from minidl.data import load_fashion_mnist_as_cifar, load_mnist
from minidl.layers import BatchNorm, Conv, MaxPool, SoftmaxCrossEntropy
from minidl.optim import SGD
from minidl.trainer import Trainer, evaluate

QUICK = labkit.quick()
lab_started = time.perf_counter()
figures = {}   # the measured results, printed together at the end
print("quick mode: fewer images and epochs" if QUICK else "full mode")

# %% [markdown]
# ## 1. Filters designed by hand
#
# A *kernel* is a small array of weights. Sliding it over an image and taking, at every
# position, the sum of the products of the kernel with the pixels under it gives a new
# image, the *response*. (Strictly that is correlation; convolution flips the kernel
# first. Deep-learning libraries, minidl's `F.conv2d` included, compute correlation and
# call it convolution; for a symmetric kernel the two agree.)
#
# We build four kernels from the Gaussian g(x, y) = exp(−x²/2σₓ² − y²/2σᵧ²), with y
# pointing down the image:
#
# * **blur**: g itself, normalised to sum to one: a weighted local average;
# * **horizontal edges**: y · g, the (negated) derivative of g along y: it compares the
#   rows below the centre with the rows above;
# * **horizontal bars**: (1 − y²/σᵧ²) · g, elongated along x (σₓ = 2σᵧ): the negated
#   second derivative along y, positive on a thin horizontal line and negative on either side;
# * **blobs**: (2 − r²/σ²) · g, the negated Laplacian of a round Gaussian: a positive
#   centre ringed by negative weights.
#
# The last three have their mean removed, so that they ignore a constant image.

# %%
def gaussian_grid(sigma_y, sigma_x, half):
    """The coordinates y, x of a (2 half + 1)^2 grid centred on 0, and g on it."""
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    return y, x, np.exp(-y ** 2 / (2 * sigma_y ** 2) - x ** 2 / (2 * sigma_x ** 2))


def zero_mean(kernel):
    kernel = kernel - kernel.mean()
    return kernel / np.abs(kernel).sum()


y, x, g = gaussian_grid(1.0, 1.0, 2)
blur_kernel = g / g.sum()
horizontal_edge_kernel = zero_mean(y * g)
y, x, g = gaussian_grid(1.0, 2.0, 3)
horizontal_bar_kernel = zero_mean((1 - y ** 2) * g)
y, x, g = gaussian_grid(1.5, 1.5, 4)
blob_kernel = zero_mean((2 - (x ** 2 + y ** 2) / 1.5 ** 2) * g)
kernels = {"blur": blur_kernel, "horizontal edges": horizontal_edge_kernel,
           "horizontal bars": horizontal_bar_kernel, "blobs": blob_kernel}

fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, (name, kernel) in zip(axes, kernels.items()):
    limit = np.abs(kernel).max()
    ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_title(f"{name} {kernel.shape[0]}x{kernel.shape[1]}")
    ax.set_axis_off()
fig.suptitle("the four kernels (red positive, blue negative)")
plt.show()
assert np.isclose(blur_kernel.sum(), 1)
assert all(abs(k.sum()) < 1e-12 for k in (horizontal_edge_kernel, horizontal_bar_kernel, blob_kernel))

# %% [markdown]
# Real handwritten digits from MNIST, as pixels in [0, 1] (white ink on black):

# %%
mnist = load_mnist()
digits = mnist.unnormalize(mnist.test_x[:64]).astype(np.float64)   # (64, 1, 28, 28)
digit_labels = mnist.test_y[:64]
five, four = digits[np.flatnonzero(digit_labels == 5)[0]], digits[np.flatnonzero(digit_labels == 4)[0]]


def respond(images, kernel, stride=1):
    """The response of every image (N, 1, H, W) to one kernel, padded to keep the size at stride 1."""
    return F.conv2d(images, kernel[None, None], stride=stride, padding=kernel.shape[0] // 2)


def show_filtering(image, kernel, response, title):
    """Image, kernel and response side by side; signed arrays in red (+) and blue (-)."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 0.6, 1]})
    axes[0].imshow(image.squeeze(), cmap="gray")
    for ax, array in zip(axes[1:], (kernel, response)):
        array = array.squeeze()
        limit = np.abs(array).max()
        ax.imshow(array, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    for ax, name in zip(axes, ("image", "kernel", "response")):
        ax.set_title(name)
        ax.set_axis_off()
    fig.suptitle(title)
    plt.show()


for name, kernel, image in (("blur", blur_kernel, five), ("horizontal edges", horizontal_edge_kernel, five),
                            ("horizontal bars", horizontal_bar_kernel, five), ("blobs", blob_kernel, four)):
    show_filtering(image, kernel, respond(image[None], kernel)[0], name)

# %% [markdown]
# **Questions.** Where does each kernel respond most strongly? What does the sign of the
# edge response say? Why does the blob kernel draw the outline of the digit?

# %% [markdown] tags=["solution"]
# *Solution.* The blur response is largest along the middle of the strokes, where the
# most ink lies within the kernel's reach; it is the digit, softened. The edge kernel
# is positive where the image gets brighter going down (the top side of a white stroke)
# and negative where it gets darker (the bottom side); vertical strokes barely register.
# The bar kernel peaks on horizontal strokes of about its own width, such as the top
# bar of the 5. The blob kernel is a centre-minus-surround detector: on a stroke its
# positive centre fires, just beside a stroke its negative ring does, so it traces the
# strokes and their outlines, and a dark gap enclosed by ink (the inside of a loop)
# gives a strong negative spot. The checks below measure the first three claims on all
# 64 digits.

# %%
vertical_change = np.gradient(digits[:, 0], axis=1)     # d/dy, down the rows
horizontal_change = np.gradient(digits[:, 0], axis=2)   # d/dx, along the rows
edges = respond(digits, horizontal_edge_kernel)[:, 0]
corr_dy = np.corrcoef(edges.ravel(), vertical_change.ravel())[0, 1]
corr_dx = np.corrcoef(edges.ravel(), horizontal_change.ravel())[0, 1]
print(f"edge response vs d/dy: correlation {corr_dy:.2f}; vs d/dx: {corr_dx:.2f}")
blurred = respond(digits, blur_kernel)
print(f"total ink kept by the blur: {blurred.sum() / digits.sum():.4f}")
assert corr_dy > 0.8 and abs(corr_dx) < 0.4
assert abs(blurred.sum() / digits.sum() - 1) < 1e-2

# a horizontal and a vertical bar of the same size, three pixels thick
bars = np.zeros((1, 1, 28, 28))
bars[0, 0, 6:9, 3:13] = 1      # horizontal
bars[0, 0, 12:22, 18:21] = 1   # vertical
bar_response = respond(bars, horizontal_bar_kernel)[0, 0]
on_horizontal, on_vertical = bar_response[6:9, 3:13].max(), bar_response[12:22, 18:21].max()
print(f"bar kernel: {on_horizontal:.3f} on the horizontal bar, {on_vertical:.3f} on the vertical one")
assert on_horizontal > 2 * on_vertical

# a disc: the blob kernel peaks at its centre
disc = np.zeros((1, 1, 28, 28))
rows, cols = np.mgrid[:28, :28]
disc[0, 0][(rows - 14) ** 2 + (cols - 9) ** 2 <= 4] = 1
peak = np.unravel_index(respond(disc, blob_kernel)[0, 0].argmax(), (28, 28))
print("blob kernel's strongest response to a disc centred at (14, 9):", tuple(map(int, peak)))
assert peak == (14, 9)

# %% [markdown]
# ## 2. A filter bank
#
# One kernel finds one kind of structure at one orientation and one size. Turning and
# scaling the same few shapes gives a *filter bank*, and the responses of all its
# filters at a pixel describe the local texture there. The bank of Leung and Malik
# (2001) has 48 filters of 49 × 49:
#
# * first derivatives of an elongated Gaussian (σ across, 3σ along), 6 orientations ×
#   3 scales (σ = √2, 2, 2√2): **edges**;
# * second derivatives of the same, 6 orientations × 3 scales: **bars**;
# * 8 Laplacians of Gaussians (σ = √2, 2, 2√2, 4 and three times each): **blobs**;
# * 4 Gaussians (σ = √2, 2, 2√2, 4): **low-pass** filters.
#
# To turn a filter by θ we rotate the coordinates: u = x cos θ + y sin θ runs across it
# (the direction of differentiation), v = −x sin θ + y cos θ along it.

# %%
def oriented_derivative(sigma, theta, order, size=49):
    """A derivative of order 1 or 2, across direction theta, of a Gaussian that is
    sigma wide across and 3 sigma long along."""
    half = size // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    u = x * np.cos(theta) + y * np.sin(theta)
    v = -x * np.sin(theta) + y * np.cos(theta)
    g = np.exp(-u ** 2 / (2 * sigma ** 2) - v ** 2 / (2 * (3 * sigma) ** 2))
    shape = -u / sigma ** 2 if order == 1 else u ** 2 / sigma ** 4 - 1 / sigma ** 2
    return zero_mean(shape * g)


def laplacian_of_gaussian(sigma, size=49):
    half = size // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    r2 = x ** 2 + y ** 2
    return zero_mean((r2 / sigma ** 4 - 2 / sigma ** 2) * np.exp(-r2 / (2 * sigma ** 2)))


def gaussian(sigma, size=49):
    half = size // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    g = np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def leung_malik_bank():
    """(48, 49, 49): 18 edge filters, 18 bar filters (scale-major, 6 orientations each),
    8 Laplacians of Gaussians, 4 Gaussians."""
    scales = [np.sqrt(2), 2, 2 * np.sqrt(2), 4]
    angles = [k * np.pi / 6 for k in range(6)]
    edges = [oriented_derivative(s, a, 1) for s in scales[:3] for a in angles]
    bars = [oriented_derivative(s, a, 2) for s in scales[:3] for a in angles]
    blobs = [laplacian_of_gaussian(s) for s in scales] + [laplacian_of_gaussian(3 * s) for s in scales]
    lows = [gaussian(s) for s in scales]
    return np.stack(edges + bars + blobs + lows)


bank = leung_malik_bank()
print("filter bank:", bank.shape)
labkit.show_mosaic(bank[:, None], cols=12, title="Leung-Malik: edges, bars, blobs, low-pass (each tile scaled on its own)")
plt.show()

assert bank.shape == (48, 49, 49)
assert np.allclose(bank[:44].sum(axis=(1, 2)), 0) and np.allclose(bank[44:].sum(axis=(1, 2)), 1)
# turning by 90 degrees swaps x and y: the filter at 90 degrees is the one at 0 degrees, transposed
assert np.allclose(bank[3], bank[0].T) and np.allclose(bank[18 + 3], bank[18].T)

# %% [markdown]
# **Question.** Apply the six smallest bar filters to the horizontal and vertical bars
# above. Which orientations respond, and what does this bank offer that a network's
# first layer would have to learn?

# %% tags=["solution"]
small_bars = bank[18:24]   # bar filters at sigma = sqrt(2), 0, 30, ..., 150 degrees
bar_image = np.pad(bars, ((0, 0), (0, 0), (24, 24), (24, 24)))   # room for the 49 x 49 support
responses = F.conv2d(bar_image, -small_bars[:, None], padding=24)[0, :, 24:-24, 24:-24]
strongest_on_horizontal = responses[:, 6:9, 3:13].max(axis=(1, 2))
strongest_on_vertical = responses[:, 12:22, 18:21].max(axis=(1, 2))
for k in range(6):
    print(f"{30 * k:3d} degrees: {strongest_on_horizontal[k]:.3f} on the horizontal bar, "
          f"{strongest_on_vertical[k]:.3f} on the vertical one")
assert strongest_on_horizontal.argmax() == 3 and strongest_on_vertical.argmax() == 0

# %% [markdown] tags=["solution"]
# *Solution.* (The sign is flipped so that a bright bar gives a positive response.) The
# filter that differentiates across y (90°) answers the horizontal bar, the one across x
# (0°) the vertical bar, and the oblique ones answer both weakly. A bank like this gives
# every orientation and scale of edges, bars and blobs, chosen once by hand. A network's
# first layer has to find such filters from data, and it only finds the ones its task
# needs, at the size its kernels allow. Filters of this kind are also what neurons in
# the primary visual cortex of mammals respond to.

# %% [markdown]
# ## 3. Convolution as one matrix product
#
# A convolutional layer applies F kernels of K × K at every position. Written directly
# that is six nested loops. im2col ("image to columns") rearranges the input instead: each
# K × K patch becomes one column of a matrix X, one column per output position. The F
# kernels, flattened, are the rows of a matrix W (F × K²), and the whole layer is the
# product W X, one row per output channel. The product is what fast libraries do best;
# the price is memory, since every pixel is copied into up to K² columns.
#
# **Task.** Write im2col for one grey image and a K × K kernel with plain loops,
# element by element, and compare it with `minidl.ops.im2col` on a 5 × 5 image holding
# 0 … 24.

# %% tags=["solution"]
def im2col_loops(image, k):
    """image (H, W) -> X (K*K, OH*OW): X[i*K + j, r*OW + c] = image[r + i, c + j]."""
    height, width = image.shape
    out_height, out_width = height - k + 1, width - k + 1
    columns = np.empty((k * k, out_height * out_width), dtype=image.dtype)
    for i in range(k):                       # row inside the patch
        for j in range(k):                   # column inside the patch
            for r in range(out_height):      # output row
                for c in range(out_width):   # output column
                    columns[i * k + j, r * out_width + c] = image[r + i, c + j]
    return columns


small = np.arange(25, dtype=np.float64).reshape(5, 5)
columns = im2col_loops(small, 3)
print("image:\n", small.astype(int))
print("im2col, 3x3 patches as columns:\n", columns.astype(int))
assert np.array_equal(columns, ops.im2col(small[None, None], 3, 3))

# the layer as a product: two 3x3 kernels, outputs of 3x3
kernels_2 = np.stack([horizontal_edge_kernel[1:4, 1:4], blur_kernel[1:4, 1:4]])
product = (kernels_2.reshape(2, 9) @ columns).reshape(2, 3, 3)
assert np.allclose(product, F.conv2d(small[None, None], kernels_2[:, None])[0])
print(f"{small.size} pixels became {columns.size} entries of X")

# %% [markdown]
# **Question.** For a 28 × 28 digit and nine 5 × 5 kernels, how large is X, and how
# many entries of the output does one kernel weight touch?

# %% [markdown] tags=["solution"]
# *Solution.* The output is 24 × 24 = 576 positions, so X is 25 × 576 = 14,400 entries
# for 784 pixels, about 18 times the image. Each kernel weight multiplies one row of X:
# it touches all 576 outputs of its channel. That sharing is why a convolution has so few
# parameters (9 · 25 + 9 = 234 here) and why its gradient sums over every position.

# %% [markdown]
# ## 4. Learning the filters: a one-layer CNN on MNIST
#
# Instead of designing kernels, let gradient descent choose them. The lecture's first
# network, `models.simple_cnn()`, is one convolution of nine 5 × 5 kernels, tanh, and
# a fully connected layer to the ten classes:
#
#     1x28x28 -> conv 9 5x5 -> 9x24x24 -> tanh -> flatten 5184 -> FC 10

# %%
MNIST_IMAGES = 20000 if QUICK else 55000
MNIST_EPOCHS = 1 if QUICK else 3


def train_mnist_net(net, seed=0):
    """SGD with momentum on MNIST; returns the trainer and the test accuracy."""
    trainer = Trainer(net, SoftmaxCrossEntropy(), SGD(lr=0.02, momentum=0.9), batch_size=50, seed=seed)
    trainer.fit(mnist.train_x[:MNIST_IMAGES], mnist.train_y[:MNIST_IMAGES], MNIST_EPOCHS,
                mnist.val_x, mnist.val_y)
    return trainer, evaluate(net, None, mnist.test_x, mnist.test_y)["accuracy"]


simple = models.simple_cnn(rng=0)
simple_params = sum(a.size for _, a in simple.params())
started = time.perf_counter()
_, simple_accuracy = train_mnist_net(simple)
print(f"SimpleCNN: {simple_params:,} parameters, test accuracy {simple_accuracy:.4f} "
      f"({time.perf_counter() - started:.0f} s)")
figures["SimpleCNN MNIST test accuracy"] = simple_accuracy
assert simple_params == (25 + 1) * 9 + (9 * 24 * 24 + 1) * 10 == 52_084
assert simple_accuracy > (0.88 if QUICK else 0.95)

# %%
labkit.show_mosaic(simple[0].weights, cols=9, title="SimpleCNN's nine learned 5x5 kernels", size=9)
plt.show()


def feature_maps(net, image, upto):
    """The output of the first ``upto`` layers of ``net`` for one image (1, C, H, W), in evaluation mode."""
    net.eval()
    out = image
    for layer in list(net)[:upto]:
        out = layer.forward(out)
    net.train()
    return out


digit = mnist.test_x[np.flatnonzero(mnist.test_y == 4)[0]][None]
labkit.show_mosaic(labkit.channels(feature_maps(simple, digit, 1)), cols=9,
                   title="the nine feature maps of a 4, after the convolution", size=12)
plt.show()
labkit.show_mosaic(labkit.channels(feature_maps(simple, digit, 2)), cols=9,
                   title="... and after tanh", size=12)
plt.show()

# %% [markdown]
# **Question.** What do the learned kernels look like, and what is left for the fully
# connected layer to do? Count its weights.

# %% [markdown] tags=["solution"]
# *Solution.* Smooth oriented patterns: edges and bars at various angles, some like
# corners or curved strokes, tuned to the strokes of digits rather than to images in
# general (another task or data set would give other kernels). Each feature map shows
# where its pattern occurs. The fully connected layer has to read the class from nine
# maps of 24 × 24: 9 · 24 · 24 · 10 = 51,840 weights, 99.5 % of the network, one weight
# for every pixel of every map and class. That is the problem pooling addresses.

# %% [markdown]
# ## 5. Pooling
#
# A blur mixes each pixel with its neighbours, so after blurring, keeping every second
# pixel loses little: the response at stride 2 is a quarter of the size.

# %%
full_blur = respond(five[None], blur_kernel)
strided_blur = respond(five[None], blur_kernel, stride=2)
print("blur at stride 1:", full_blur.shape[2:], "  at stride 2:", strided_blur.shape[2:])
assert np.allclose(strided_blur, full_blur[:, :, ::2, ::2])

# %% [markdown]
# A *pooling* layer summarises each window with one number and has no parameters. With
# a 3 × 3 window moved 2 pixels at a time (padding 1), **average pooling** outputs the
# mean of the nine values under the window (the padding counting as zeros), which is the
# product of im2col's columns with a row of nine weights of 1/9. **Max pooling** keeps the
# largest value of each window instead: the strongest response nearby, wherever exactly
# it was.

# %%
average = F.avg_pool2d(five[None], 3, stride=2, padding=1)
maximum = F.max_pool2d(five[None], 3, stride=2, padding=1)
maximum_2 = F.max_pool2d(five[None], 2, stride=2)
windows = ops.im2col(five[None], 3, 3, 2, 2, 1, 1)          # (9, 14 * 14), zero padding
assert np.allclose(average.ravel(), np.full(9, 1 / 9) @ windows)
assert np.allclose(maximum.ravel(), windows.max(axis=0))   # ink is >= 0, so zero padding never wins
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
for ax, (name, array) in zip(axes, (("digit 28x28", five), ("average 3/2 14x14", average),
                                    ("max 3/2 14x14", maximum), ("max 2/2 14x14", maximum_2))):
    ax.imshow(array.squeeze(), cmap="gray", interpolation="nearest")
    ax.set_title(name)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# The lecture's second network, `models.pooling_cnn()`, puts a 2 × 2 max pooling after
# the convolution:
#
#     1x28x28 -> conv 9 5x5 -> 9x24x24 -> max-pool 2 -> 9x12x12 -> tanh -> flatten 1296 -> FC 10

# %%
pooling = models.pooling_cnn(rng=0)
pooling_params = sum(a.size for _, a in pooling.params())
_, pooling_accuracy = train_mnist_net(pooling)
print(f"PoolingCNN: {pooling_params:,} parameters, test accuracy {pooling_accuracy:.4f} "
      f"(SimpleCNN: {simple_params:,}, {simple_accuracy:.4f})")
figures["PoolingCNN MNIST test accuracy"] = pooling_accuracy
assert pooling_params == (25 + 1) * 9 + (9 * 12 * 12 + 1) * 10 == 13_204
assert pooling_accuracy > simple_accuracy - 0.02
labkit.show_mosaic(labkit.channels(feature_maps(pooling, digit, 3)), cols=9,
                   title="PoolingCNN: the nine maps of the 4 after max pooling", size=12)
plt.show()

# %% [markdown]
# **Question.** The pooling network has a quarter of the fully connected weights. Why
# does it lose (almost) no accuracy?

# %% [markdown] tags=["solution"]
# *Solution.* Neighbouring outputs of a smooth filter are strongly correlated, so the
# 24 × 24 maps carry far fewer than 576 independent numbers each; the 12 × 12 maxima keep
# whether and roughly where each pattern occurred, which is what the classifier needs.
# Max pooling also makes the features tolerant of shifts of a pixel within each window,
# and handwriting varies by more than that. Stacking convolutions and poolings lets later
# layers see larger regions at lower resolution, and combine simple features into parts.

# %% [markdown]
# ## 6. A deeper network, and the training recipe
#
# The lecture's network for CIFAR-10, `models.cifar_cnn()`, has three convolutions of
# 5 × 5 (padding 2), a max pooling and two average poolings of 3 × 3 at stride 2, and two
# fully connected layers:
#
#     3x32x32 -> c1 32x32x32 -> max-pool 32x15x15 -> ReLU -> c3 32x15x15 -> ReLU -> avg-pool 32x8x8
#     -> c5 64x8x8 -> ReLU -> avg-pool 64x4x4 -> f7 64 -> f8 10
#
# c1 finds low-level features, the first pooling makes them tolerant of small shifts,
# c3 combines them into parts, c5 parts into larger structures, f7 is a small space in
# which the classes separate, f8 the classifier. (As in the lecture there is no
# nonlinearity between f7 and f8.)
#
# The recipe for training such a network:
#
# 1. split the data into a training set D, a validation set V and a test set T;
# 2. compute the mean image of D and subtract it from every image;
# 3. scale so that the pixel values lie in [−1, 1];
# 4. choose an architecture, and an optimiser (a form of SGD);
# 5. for a number of epochs, go through D in random mini-batches, taking a gradient step
#    on each, and measure the loss on D and V after every epoch;
# 6. compare the final performance on V across settings of the hyperparameters;
# 7. retrain with the chosen settings on D ∪ V and measure, once, on T.
#
# The data here is the stand-in (Fashion-MNIST as CIFAR: grey clothes padded to 32 × 32,
# three equal channels), with a validation split drawn at random.

# %%
stand_in = load_fashion_mnist_as_cifar(validation_size=5000, split_seed=0)
SIZES = dict(train=500, validation=500, test=1000) if QUICK else dict(train=5000, validation=2500, test=10000)
CIFAR_EPOCHS = 5 if QUICK else 8


def pixels(x):
    """Back to pixel values in [0, 1] (the loader standardised them)."""
    return stand_in.unnormalize(x).astype(np.float32)


D_x, D_y = pixels(stand_in.train_x[:SIZES["train"]]), stand_in.train_y[:SIZES["train"]]
V_x, V_y = pixels(stand_in.val_x[:SIZES["validation"]]), stand_in.val_y[:SIZES["validation"]]
T_x, T_y = pixels(stand_in.test_x[:SIZES["test"]]), stand_in.test_y[:SIZES["test"]]


def recipe_statistics(images):
    """Steps 2 and 3, measured on ``images`` alone: the mean image (3, 32, 32), and the
    scale that brings every value of ``images - mean image`` into [-1, 1]."""
    mean_image = images.mean(axis=0)
    return mean_image, float(np.abs(images - mean_image).max())


def prepare(images, statistics):
    """Subtract the mean image, divide by the scale."""
    mean_image, scale = statistics
    return ((images - mean_image) / scale).astype(np.float32)


D_statistics = recipe_statistics(D_x)
mean_image, scale = D_statistics
D_in, V_in, T_in = (prepare(images, D_statistics) for images in (D_x, V_x, T_x))
print(f"D {D_in.shape}, V {V_in.shape}, T {T_in.shape}; scale {scale:.3f}")
print(f"D after the recipe: values in [{D_in.min():.3f}, {D_in.max():.3f}], "
      f"largest |mean over D| of a pixel {np.abs(D_in.mean(axis=0)).max():.1e}")
assert np.isclose(np.abs(D_in).max(), 1) and np.abs(D_in.mean(axis=0, dtype=np.float64)).max() < 1e-5
labkit.show(mean_image, "the mean image of D", size=3)
plt.show()

# %% [markdown]
# **Question.** Why subtract a mean *image* (one mean per pixel and channel) rather than
# one mean per channel? Why must V and T be prepared with D's mean and scale?

# %% [markdown] tags=["solution"]
# *Solution.* The mean image is the average garment: a bright blob in the middle, black
# borders. Subtracting it removes what every image has in common, so what is left is
# what tells images apart, centred on zero in every pixel, where the first layer's ReLUs
# and the gradient steps work best. For objects that can be anywhere (CIFAR-10) the
# mean image is nearly uniform and per-pixel and per-channel centring become almost the
# same. V and T must go through the very same function as D, with D's numbers: they are
# new data the network should meet as it would in use, and nothing about them may shape
# training.

# %%
def train_cifar_cnn(x, y, lr, net=None, transform=None, seed=0, epochs=CIFAR_EPOCHS):
    """Steps 4-5: SGD with momentum on CifarCNN (or ``net``); returns the net and its history."""
    net = models.cifar_cnn(rng=seed) if net is None else net
    trainer = Trainer(net, SoftmaxCrossEntropy(), SGD(lr=lr, momentum=0.9), batch_size=50, seed=seed,
                      transform=transform)
    trainer.fit(x, y, epochs, V_in, V_y)
    return net, trainer.history


started = time.perf_counter()
candidates = {}
for lr in (0.003, 0.03):   # step 6: two learning rates, compared on V
    net, history = train_cifar_cnn(D_in, D_y, lr)
    candidates[lr] = (net, history)
    print(f"lr {lr}: training loss by epoch {[round(r['train_loss'], 3) for r in history]}, "
          f"validation accuracy {history[-1]['val_accuracy']:.3f}")
chosen_lr = max(candidates, key=lambda lr: candidates[lr][1][-1]["val_accuracy"])
baseline_net, baseline_history = candidates[chosen_lr]
baseline_val = baseline_history[-1]["val_accuracy"]
print(f"chosen: lr {chosen_lr} ({time.perf_counter() - started:.0f} s for both)")
figures["CifarCNN (stand-in), chosen lr: validation accuracy"] = baseline_val
assert all(baseline_val >= history[-1]["val_accuracy"] for _, history in candidates.values())
assert baseline_val > (0.5 if QUICK else 0.75)

# %% [markdown]
# Step 7: the chosen settings, trained again on D ∪ V (with the mean image and scale of
# D ∪ V), then measured once on T.

# %%
DV_x, DV_y = np.concatenate([D_x, V_x]), np.concatenate([D_y, V_y])
DV_statistics = recipe_statistics(DV_x)
final_net = models.cifar_cnn(rng=0)
Trainer(final_net, SoftmaxCrossEntropy(), SGD(lr=chosen_lr, momentum=0.9), batch_size=50,
        seed=0).fit(prepare(DV_x, DV_statistics), DV_y, CIFAR_EPOCHS)
final_test = evaluate(final_net, None, prepare(T_x, DV_statistics), T_y)["accuracy"]
baseline_test = evaluate(baseline_net, None, T_in, T_y)["accuracy"]   # T_in: prepared with D's numbers
print(f"test accuracy: {final_test:.3f} retrained on D + V, {baseline_test:.3f} trained on D only")
figures["CifarCNN (stand-in), retrained on D+V: test accuracy"] = final_test
figures["CifarCNN (stand-in), trained on D: test accuracy"] = baseline_test
assert final_test > (0.5 if QUICK else 0.75)

# %% [markdown]
# **Question.** Why is the retrained network's test accuracy the figure to report, and
# not the best validation accuracy of step 6?

# %% [markdown] tags=["solution"]
# *Solution.* The validation accuracy of the winner was used to pick it: among several
# settings, the one that happened to do best on V is favoured by chance as well as by
# merit, so its V score is optimistic. T has played no part in any choice, so one
# measurement on it is an unbiased estimate of accuracy on new data. Retraining on D ∪ V
# uses all labelled data for the final model; with the same number of epochs on more
# images it usually does a little better than the network trained on D alone.

# %% [markdown]
# Here are the feature maps of the network trained on D, for one validation image:

# %%
image = V_in[:1]
print("image of class", stand_in.class_names[V_y[0]])
for upto, name in ((1, "c1"), (4, "c3"), (7, "c5")):
    maps = feature_maps(baseline_net, image, upto)
    labkit.show_mosaic(labkit.channels(maps), cols=16, size=12, title=f"after {name}: {maps.shape[1]} maps of "
                       f"{maps.shape[2]}x{maps.shape[3]}")
    plt.show()

# %% [markdown]
# The maps after c1 are still recognisably the garment, filtered; after c3 and c5 they
# are coarse and hard to name, each the answer of a detector for some part or structure
# that the classifier combines.
#
# ## 7. Data augmentation and test-time augmentation
#
# Labelled data is expensive; transformed copies of it are free. On every pass a
# training image can be shifted a few pixels (a random crop of a padded copy) and
# mirrored, so the network rarely sees exactly the same image twice. `minidl.transforms`
# has these as batch transforms, and `Trainer(transform=...)` applies one to every
# training batch. Same learning rate, epochs, images and seed as the run chosen above.
# Besides accuracy on the (unaltered) training images and on V, we measure how often
# the network gives a validation image and its mirror image the same class.

# %%
augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])
augmented_net, augmented_history = train_cifar_cnn(D_in, D_y, chosen_lr, transform=augment)
V_mirrored = np.ascontiguousarray(V_in[:, :, :, ::-1])
rows = {}
for name, net, history in (("plain", baseline_net, baseline_history),
                           ("augmented", augmented_net, augmented_history)):
    clean = evaluate(net, None, D_in, D_y)["accuracy"]
    same = np.mean(evaluate(net, None, V_in, V_y)["predictions"] == evaluate(net, None, V_mirrored, V_y)["predictions"])
    rows[name] = {"train": clean, "validation": history[-1]["val_accuracy"], "mirror agreement": float(same)}
    print(f"{name:>10}: training images {clean:.3f}, validation {rows[name]['validation']:.3f}, "
          f"gap {clean - rows[name]['validation']:.3f}; same class for image and mirror image {same:.3f}")
    figures[f"CifarCNN (stand-in) {name}: validation accuracy"] = rows[name]["validation"]
    figures[f"CifarCNN (stand-in) {name}: train - validation gap"] = clean - rows[name]["validation"]
    figures[f"CifarCNN (stand-in) {name}: image / mirror image agreement"] = same
assert rows["augmented"]["mirror agreement"] > rows["plain"]["mirror agreement"] + 0.05

# %% [markdown]
# At test time the same transforms can be applied to each test image: the network
# classifies every version, and the answers are combined, by averaging the class
# probabilities or by a majority vote over the versions' top classes.
# `transforms.tta_predict` does both; the views here are the image and its mirror
# image, then those two plus four copies shifted by two pixels.

# %%
shifted = [T.Crop(32, padding=2, offset=offset) for offset in ((0, 0), (0, 4), (4, 0), (4, 4))]
view_sets = {"image and mirror": [T.Identity(), T.HorizontalFlip()],
             "+ four shifts": [T.Identity(), T.HorizontalFlip()] + shifted}
for name, net in (("plain", baseline_net), ("augmented", augmented_net)):
    single = evaluate(net, None, V_in, V_y)["accuracy"]
    line = f"{name:>10}: one view {single:.3f}"
    for views_name, views in view_sets.items():
        for combine in ("softmax", "vote"):
            accuracy = float((T.tta_predict(net, V_in, views, combine=combine).argmax(axis=1) == V_y).mean())
            line += f", {views_name} ({combine}) {accuracy:.3f}"
            figures[f"CifarCNN (stand-in) {name}: TTA {views_name} ({combine})"] = accuracy
    figures[f"CifarCNN (stand-in) {name}: one view"] = single
    print(line)

# averaging over an image and its mirror image gives a classifier that cannot tell them apart
assert np.allclose(T.tta_predict(augmented_net, V_in), T.tta_predict(augmented_net, V_mirrored), atol=1e-6)

# %% [markdown]
# **Question.** What did augmentation change on this budget, and when does test-time
# augmentation help?

# %% [markdown] tags=["solution"]
# *Solution.* The augmented network learned what the transforms taught it: a garment and
# its mirror image are the same garment, so it classifies them alike far more often
# than the plain network, whose training data (all shoes pointing one way) never said
# so. It also memorises less: images that keep changing cannot be learned by heart, so
# accuracy on the training images stays closer to accuracy on new ones. On a short
# budget it often pays for that with lower accuracy, since its task is harder; its
# benefit grows with longer training, where the plain network overfits. Test-time
# augmentation helps most when the network was trained on the same transforms (it has
# learned to recognise shifted and mirrored images, and averaging over them cancels some
# of its errors); for the plain network the extra views are images unlike its training
# data and can even hurt. On this stand-in mirroring is a doubtful transform anyway:
# every shoe in Fashion-MNIST points the same way. On CIFAR-10, whose classes look the
# same in a mirror, it is the standard choice.

# %% [markdown]
# ## 8. Batch normalisation
#
# A layer's input distribution keeps changing while the layers before it learn. Batch
# normalisation standardises each channel over the mini-batch, then rescales it with a
# learned γ and β: y = γ (x − μ_B) / √(σ²_B + ε) + β. At test time the batch statistics
# are replaced by running averages collected during training. We put a `BatchNorm` after
# each convolution of CifarCNN.

# %%
def cifar_cnn_with_batchnorm(rng=0):
    """CifarCNN with a BatchNorm after each convolution."""
    layers = []
    for layer in models.cifar_cnn(rng=rng):
        layers.append(layer)
        if isinstance(layer, Conv):
            layers.append(BatchNorm(layer.weights.shape[0], name=f"bn_{layer.name}"))
    return minidl.Sequential(layers)


normed = cifar_cnn_with_batchnorm()
after_c1 = normed[1].forward(normed[0].forward(D_in[:50]))          # training mode: the batch's statistics
print("after c1 + BatchNorm, per channel: mean within", np.abs(after_c1.mean(axis=(0, 2, 3))).max().round(6),
      "of 0, std within", np.abs(after_c1.std(axis=(0, 2, 3)) - 1).max().round(4), "of 1")
assert np.allclose(after_c1.mean(axis=(0, 2, 3)), 0, atol=1e-4)
assert np.allclose(after_c1.std(axis=(0, 2, 3)), 1, atol=1e-2)

normed, normed_history = train_cifar_cnn(D_in, D_y, chosen_lr, net=cifar_cnn_with_batchnorm())
labkit.plot_curves({"CifarCNN": baseline_history, "with BatchNorm": normed_history})
plt.show()
normed_val = normed_history[-1]["val_accuracy"]
print(f"validation accuracy: {normed_val:.3f} with BatchNorm, {baseline_val:.3f} without; training loss "
      f"after epoch 1: {normed_history[0]['train_loss']:.3f} and {baseline_history[0]['train_loss']:.3f}")
figures["CifarCNN (stand-in) with BatchNorm: validation accuracy"] = normed_val
assert normed_history[0]["train_loss"] < baseline_history[0]["train_loss"]
assert normed_val > baseline_val

# %% [markdown]
# **Question.** Why does the normalised network learn faster on the same budget?

# %% [markdown] tags=["solution"]
# *Solution.* Every convolution's output reaches the next layer with zero mean and unit
# variance per channel whatever the weights before it did, so a step on one layer's
# weights changes what the next layer sees much less, and one learning rate suits all
# layers. Gradients neither fade nor blow up through the normalised layers, so larger
# steps are safe. The batch statistics also add a little noise, a mild regulariser.
# (γ and β let the network undo the normalisation wherever that is better.)

# %% [markdown]
# ## 9. ResNet-50 and weights trained by others
#
# Very deep plain networks train worse than shallower ones, even on their training data.
# Residual networks (He et al., 2015) add each block's input to its output, y = x + f(x),
# so a block only has to learn a correction, and an identity path carries signal and
# gradient through all the layers. ResNet-50 uses *bottleneck* blocks: a 1 × 1
# convolution that narrows the channels, a 3 × 3 one, and a 1 × 1 that widens them four
# times, each followed by BatchNorm. `models.resnet50()` builds torchvision's
# architecture with its layer names.

# %%
from minidl.torch_import import torch_keys

resnet = models.resnet50(rng=0)
arrays = torch_keys(resnet)          # every parameter and buffer, by torchvision's names
resnet_params = sum(a.size for _, a in resnet.params())
convolutions = [key for key, array in arrays.items() if array.ndim == 4]
print(f"ResNet-50: {len(convolutions)} convolutions, {resnet_params:,} parameters "
      f"({4 * resnet_params / 2 ** 20:.0f} MiB as float32)")
print("the first bottleneck block:")
for key, array in arrays.items():
    if key.startswith("layer1.0.") and key.endswith("weight"):
        print(f"  {key:<28} {array.shape}")
assert resnet_params == 25_557_032 and len(convolutions) == 53

# %% [markdown]
# **Question.** 53 convolutions: where do they come from, and why "50"?

# %% [markdown] tags=["solution"]
# *Solution.* A first 7 × 7 convolution, then 3 + 4 + 6 + 3 = 16 bottleneck blocks of
# three convolutions each (48), and one 1 × 1 convolution on the shortcut of the first
# block of each stage, where the number of channels or the resolution changes (4). The
# name counts the layers along the main path that carry weights: 1 + 48 + the final fully
# connected layer = 50.

# %% [markdown]
# Trained on ImageNet (1.2 million photos, 1000 classes), such a network names the main
# object of a photo. **This lab cannot download the trained weights**: this machine has
# no access to them, and minidl ships none. `minidl.io.load_torch_state_dict` copies a
# PyTorch state dict into the network. If you have torchvision's ResNet-50 weights
# (`resnet50-0676ba61.pth`), set `MINIDL_RESNET50_WEIGHTS` to their path and the next
# cell classifies a photograph with them. Otherwise it builds a *randomly initialised*
# ResNet-50 in torchvision, copies its weights into minidl's, and checks that both
# compute the same logits.

# %%
from minidl.io import load_torch_state_dict
from minidl.transforms import imagenet_preprocess

try:
    import torch
    from minidl.torch_import import import_torchvision
    torchvision = import_torchvision()
except ImportError:
    torch = None

photo = (labkit.photo("coffee")[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
batch = imagenet_preprocess(photo)          # 1 x 3 x 224 x 224, normalised by ImageNet's statistics
resnet.eval()
weights_path = os.environ.get("MINIDL_RESNET50_WEIGHTS")
if weights_path and torch is not None:
    load_torch_state_dict(resnet, torch.load(weights_path, map_location="cpu", weights_only=True))
    categories = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    probabilities = minidl.layers.softmax(resnet.forward(batch))[0]
    for k in np.argsort(probabilities)[::-1][:5]:
        print(f"{probabilities[k]:.3f}  {categories[k]}")
elif torch is not None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None).eval()   # random weights: no download
    load_torch_state_dict(resnet, reference.state_dict())
    logits = resnet.forward(batch)
    with torch.no_grad():
        logits_torch = reference(torch.from_numpy(batch)).numpy()
    gap = float(np.abs(logits - logits_torch).max() / np.abs(logits_torch).max())
    print(f"logits {logits.shape}; largest difference from torchvision's: {gap:.1e} of their range; "
          f"top class {int(logits.argmax())} (torchvision: {int(logits_torch.argmax())})")
    print("These weights are random: the two networks agree with each other, and the class they pick "
          "means nothing.")
    figures["ResNet-50 logits, relative difference from torchvision"] = gap
    assert gap < 1e-4 and logits.argmax() == logits_torch.argmax()
else:
    print("Neither a weights file nor PyTorch: nothing to compare with. minidl's ResNet-50 gives",
          resnet.forward(batch).shape, "logits from random weights, which mean nothing.")

# %% [markdown]
# With the trained weights, the five most probable classes of the photo would be
# printed above (a cup of coffee should be among them). Without them, what runs here is
# the machinery: the architecture and the arithmetic, the same as torchvision's to
# float32 rounding, ready for a weights file.
#
# ## What this run measured

# %%
for name, value in figures.items():
    print(f"{name:>72}: {value:.4g}")
print(f"{'running time (minutes)':>72}: {(time.perf_counter() - lab_started) / 60:.1f}")
print(f"{'CPU time of this process (minutes)':>72}: {time.process_time() / 60:.1f}")
