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
# # Shapes, fully convolutional networks and ResNets
#
# This lab follows the plan of tutorial 4 (convolutional networks) of the Technion's deep
# learning course CS236605, rebuilt on minidl. Five parts:
#
# 1. what a convolutional layer does to the shape of its input, and how many parameters
#    it has, on a 32x32 colour image;
# 2. the output-size formula with stride, padding and dilation, drawn, and the receptive
#    field of stacked layers, measured with backprop;
# 3. LeNet-5, and why it refuses an image of another size;
# 4. the same network made fully convolutional, which turns a larger image into a map of
#    class scores;
# 5. the residual block and ResNet-18, checked against torchvision's.
#
# Questions are in **bold**; the answer follows each one in a cell marked *Solution*
# (tagged `solution`, so a teacher can strip them). Where an answer is a fact, the lab
# computes it and checks it with `assert`.
#
# Arrays are NumPy arrays in the layout (N, C, H, W): N images, C channels, H rows,
# W columns. Set the environment variable `MINIDL_LAB_QUICK=1` for a quick run (less
# training); `labs/README.md` says how long each mode takes.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from minidl import Sequential, data, labkit, models
from minidl.layers import AvgPool, Conv, MaxPool, SoftmaxCrossEntropy, softmax
from minidl.optim import Adam
from minidl.trainer import Trainer, evaluate

QUICK = labkit.quick()
rng = np.random.default_rng(0)
lab_started = time.perf_counter()
figures = {}   # the lab's measured results, printed together at the end
print("quick mode: less training" if QUICK else "full mode")


def count_params(layer):
    """The number of trainable numbers in a layer or a network."""
    return sum(int(array.size) for _, array in layer.params())


# %% [markdown]
# ## Part 1: a convolutional layer, its shapes and its parameters
#
# A convolutional layer turns a *volume* of C input channels of H x W into a volume of F
# output channels. Each of its F filters is a small volume of C x KH x KW weights, as deep
# as the input; laid on the input at one position it gives one number (the products summed,
# plus the filter's bias), and slid over all positions it gives one output channel. The
# layer is set by a few numbers:
#
# | symbol | meaning |
# |---|---|
# | F | number of filters = output channels |
# | KH x KW | size of each filter |
# | S | stride: the step between two positions of the filter |
# | P | padding: rows and columns of zeros added on each side of the input |
# | D | dilation: the spacing between the taps of the filter (1 = next to each other) |
#
# Our input: a photograph shrunk to the 32x32 pixels of a CIFAR-10 image, with a
# batch axis in front.

# %%
cat = labkit.resize(labkit.photo("chelsea"), 32, 32)
print("input:", cat.shape, cat.dtype)
labkit.show(cat, "a 32x32 colour image", size=3)
plt.show()

# %% [markdown]
# A first layer of 16 filters of 3x3 with one pixel of padding, then 32 filters of 5x5
# with a stride of 2 and no padding, then 2x2 max pooling:

# %%
conv1 = Conv(3, 16, 3, padding=1, rng=0)
conv2 = Conv(16, 32, 5, stride=2, rng=0)
pool = MaxPool(2)
after1 = conv1.forward(cat)
after2 = conv2.forward(after1)
after_pool = pool.forward(after2)
for name, layer, out in (("conv1", conv1, after1), ("conv2", conv2, after2), ("max-pool", pool, after_pool)):
    print(f"{name:>9}: output {out.shape}, {count_params(layer):,} parameters")
assert after1.shape == (1, 16, 32, 32) and after2.shape == (1, 32, 14, 14) and after_pool.shape == (1, 32, 7, 7)

# %% [markdown]
# **Question.** Work out the three output shapes and the two parameter counts by hand.
# Where did the width and height of the input enter?

# %% [markdown] tags=["solution"]
# *Solution.* conv1: each filter has 3·3·3 = 27 weights and a bias, so 16·28 = 448
# parameters; with padding 1 a 3x3 filter fits at all 32x32 positions, so the output is
# 16x32x32. conv2: each filter spans all 16 channels, 16·5·5 = 400 weights and a bias,
# 32·401 = 12,832 parameters; a 5x5 filter fits at 32 - 5 + 1 = 28 positions along a side,
# and a stride of 2 keeps every other one, positions 0, 2, ..., 26: 14 of them, so 32x14x14.
# The max pooling keeps the largest of each 2x2 block, 32x7x7, and has no parameters. The
# image size entered none of the parameter counts: a filter is the same whatever the size
# of the image it slides over. That is why we never told the layers the input size.

# %%
assert count_params(conv1) == 16 * (3 * 3 * 3 + 1) == 448
assert count_params(conv2) == 32 * (16 * 5 * 5 + 1) == 12_832
assert count_params(pool) == 0

# %% [markdown]
# **Question.** A 640x480 colour photograph goes through a convolution with 16 filters of
# 5x5. How many parameters does the layer have? How many would a fully connected layer
# with just 16 outputs have on the same photograph?

# %% [markdown] tags=["solution"]
# *Solution.* The convolution: 16·(3·5·5 + 1) = 1,216, the same as for a 32x32 image.
# The fully connected layer has a weight from every input number to every output:
# 16·(640·480·3 + 1) = 14,745,616, and it gives 16 numbers for the whole photograph where
# the convolution gives 16 numbers at each of 636x476 positions.

# %%
assert count_params(Conv(3, 16, 5)) == 1_216
assert 16 * (640 * 480 * 3 + 1) == 14_745_616

# %% [markdown]
# ## Part 2: the output size, with stride, padding and dilation
#
# With dilation D, a filter of K taps has D - 1 gaps between neighbouring taps, so it
# spans D·(K - 1) + 1 input pixels. On an input padded to H + 2P, that span fits at
# H + 2P - D·(K - 1) positions in steps of one; a stride of S keeps the first of every S:
#
# $$ OH = \left\lfloor \frac{H + 2P - D\,(KH - 1) - 1}{S} \right\rfloor + 1, $$
#
# and the same with W, KW for the width. We write it as a function and compare it with
# what `Conv` actually returns, for a few hundred settings.

# %%
def output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output height (or width) of a convolution or pooling layer."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


tried = 0
for size in (5, 8, 13, 32):
    for kernel in (1, 2, 3, 5):
        for stride in (1, 2, 3):
            for padding in (0, 1, 2):
                for dilation in (1, 2, 3):
                    expected = output_size(size, kernel, stride, padding, dilation)
                    if expected < 1:
                        continue      # the filter does not fit (Conv says so with a ValueError)
                    layer = Conv(1, 1, (kernel, 1), stride=(stride, 1), padding=(padding, 0),
                                 dilation=(dilation, 1), dtype=np.float64)
                    got = layer.forward(np.zeros((1, 1, size, 3)))
                    assert got.shape[2] == expected, (size, kernel, stride, padding, dilation)
                    tried += 1
print(f"the formula agrees with Conv in all {tried} settings")

# %% [markdown]
# How the output size depends on the kernel and the dilation, for a 32x32 input, and on
# the input size for a stride of 2:

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
kernels = np.arange(1, 12)
for dilation in (1, 2, 3):
    sizes = [output_size(32, k, 1, 0, dilation) for k in kernels]
    axes[0].plot(kernels, sizes, "o-", label=f"D = {dilation}: span D(K-1)+1")
axes[0].set_xlabel("kernel size K")
axes[0].set_ylabel("output size OH")
axes[0].set_title("H = 32, S = 1, P = 0: each tap costs D pixels")
axes[0].legend()
inputs = np.arange(3, 33)
for padding in (0, 1):
    axes[1].step(inputs, [output_size(h, 3, 2, padding) for h in inputs], where="mid",
                 label=f"K = 3, S = 2, P = {padding}")
axes[1].plot(inputs, inputs / 2, "k:", label="H / 2")
axes[1].set_xlabel("input size H")
axes[1].set_title("a stride of 2 halves the size, with a floor")
axes[1].legend()
plt.show()

# %% [markdown]
# **Question.** With stride 1 and an odd kernel, which padding keeps the output the size
# of the input? With dilation?

# %% [markdown] tags=["solution"]
# *Solution.* OH = H + 2P - D·(K - 1) at stride 1, so OH = H needs P = D·(K - 1) / 2: half
# the span minus the centre, on each side. For a 3x3 kernel that is P = 1 (P = 2 at
# dilation 2), for 5x5 P = 2. With an even kernel D·(K - 1) is odd at D = 1 and no
# symmetric padding works. This is what `Conv(..., padding="same")` computes.

# %%
for kernel in (1, 3, 5, 7):
    for dilation in (1, 2, 3):
        same = dilation * (kernel - 1) // 2
        assert output_size(32, kernel, 1, same, dilation) == 32
        assert Conv(1, 1, kernel, padding="same", dilation=dilation).padding == (same, same)

# %% [markdown]
# ### Receptive fields, measured with backprop
#
# Which input pixels can one output value depend on? Its *receptive field*. We can read
# it off the input gradient: send a gradient of 1 into a single output value and 0 into
# all others, run `backward_inputs`, and see which input pixels get something. With every
# weight set to 1 no contributions cancel, so every pixel that the output depends on shows.
# (Average pooling rather than max pooling, whose gradient only reaches the largest pixel
# of each window.)

# %%
def conv_ones(kernel, dilation=1):
    layer = Conv(1, 1, kernel, dilation=dilation, bias=False, dtype=np.float64)
    layer.weights[...] = 1.0
    return layer


def receptive_field(layers, size=33):
    """The input pixels (size x size) that the centre output value of ``layers`` depends on."""
    net = Sequential(layers)
    out = net.forward(np.zeros((1, 1, size, size)))
    grad_out = np.zeros_like(out)
    grad_out[0, 0, out.shape[2] // 2, out.shape[3] // 2] = 1.0
    return net.backprop(grad_out)[0][0, 0] != 0


stacks = {
    "3x3": ([conv_ones(3)], 3),
    "3x3, D = 2": ([conv_ones(3, 2)], 5),
    "3x3 then 3x3": ([conv_ones(3), conv_ones(3)], 5),
    "3x3, D = 1, 2, 4": ([conv_ones(3, 1), conv_ones(3, 2), conv_ones(3, 4)], 15),
    "3x3, avg-pool 2, 3x3": ([conv_ones(3), AvgPool(2), conv_ones(3)], 8),
}
fig, axes = plt.subplots(1, len(stacks), figsize=(3.2 * len(stacks), 3.6))
for ax, (name, (layers, expected)) in zip(axes, stacks.items()):
    field = receptive_field(layers)
    rows, cols = np.flatnonzero(field.any(axis=1)), np.flatnonzero(field.any(axis=0))
    extent = rows[-1] - rows[0] + 1
    ax.imshow(field, cmap="Greys", vmin=0, vmax=1.3)
    ax.set_title(f"{name}\n{extent}x{cols[-1] - cols[0] + 1}, {field.sum()} pixels")
    ax.set_xticks([])
    ax.set_yticks([])
    print(f"{name:>22}: receptive field {extent}x{extent}, {field.sum()} pixels in it")
    assert extent == expected and cols[-1] - cols[0] + 1 == expected
plt.show()
assert receptive_field(stacks["3x3, D = 2"][0]).sum() == 9                  # holes between the taps
assert receptive_field(stacks["3x3, D = 1, 2, 4"][0]).sum() == 15 * 15     # no holes

# %% [markdown]
# **Question.** Give a rule for the size of the receptive field of a stack of layers, and
# explain the two dilated examples: why does one have holes and the other none?

# %% [markdown] tags=["solution"]
# *Solution.* Going up one layer with kernel K and dilation D widens the field by D·(K - 1)
# pixels *of that layer's input*; a stride or a pooling of S below it makes each of those
# pixels worth S times more at the image. So r = 1 + Σᵢ Dᵢ·(Kᵢ - 1)·(S₁···Sᵢ₋₁): 1 + 2 = 3,
# 1 + 4 = 5, 1 + 2 + 2 = 5, 1 + 2 + 4 + 8 = 15, and 1 + 2 + 1 + 2·2 = 8 for the last one
# (the pooling's own window of 2 adds 1, then the second convolution's 2 counts double).
# One dilated 3x3 layer touches only 9 pixels spread over 5x5: the output never sees the
# pixels in between. Stacking dilations 1, 2, 4 fills the gaps: each layer's taps land on
# values that already cover the gaps of the next, so the field grows exponentially with
# the depth and stays solid. That is how dilated networks see far with few parameters.

# %% [markdown]
# ## Part 3: LeNet-5
#
# LeNet-5 (LeCun et al., 1998) in the form usually taught: two convolutions with pooling
# that turn a 32x32 image into 16 maps of 5x5, then three fully connected layers.

# %%
lenet = models.lenet5(in_channels=3, rng=0)
lenet_summary = lenet.summary((3, 32, 32), batch_size=1)
logits = lenet.forward(cat)
print("LeNet-5 on the image:", logits.shape)
lenet_params = (6 * (3 * 25 + 1) + 16 * (6 * 25 + 1)                  # the convolutions
                + 120 * (400 + 1) + 84 * (120 + 1) + 10 * (84 + 1))     # the FC layers
assert lenet_summary["total_params"] == count_params(lenet) == lenet_params == 62_006
assert logits.shape == (1, 10)
figures["LeNet-5 parameters (3 channels)"] = lenet_params

# %% [markdown]
# Nothing in the convolutions and the pooling depends on the size of the image. Can we give
# LeNet-5 a 64x64 image, then?

# %%
large = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
try:
    lenet.forward(large)
    raise AssertionError("LeNet-5 accepted a 64x64 image")
except ValueError as error:
    message = str(error)
    print("ValueError:", message)
assert "fc1" in message and "400" in message and "2704" in message

# %% [markdown]
# **Question.** Where does the 2704 in the message come from?

# %% [markdown] tags=["solution"]
# *Solution.* From the features of the larger image: 64 → 60 (conv 5x5) → 30 (pool) → 26
# (conv 5x5) → 13 (pool), so 16 maps of 13x13, which `Flatten` makes 16·13·13 = 2704
# numbers. The first FC layer has a weight for each of exactly 400 = 16·5·5 inputs and has
# no meaning for the others. The convolutions were ready for any size; the FC layers fix
# the input size of the whole network.

# %%
features = Sequential(lenet.layers[:6])             # LeNet-5 up to its Flatten
assert features.forward(large).shape == (1, 16, 13, 13) and 16 * 13 * 13 == 2704

# %% [markdown]
# ## Part 4: the fully convolutional LeNet
#
# A fully connected layer applied to the 16x5x5 features is a convolution with 120 filters
# of 16x5x5 that fits at exactly one position: each weight row of the FC layer, reshaped,
# is one filter. The two FC layers after it work on a 120-vector, that is a 120x1x1 volume,
# and become 1x1 convolutions. `models.lenet5_fully_convolutional` is LeNet-5 built that
# way, and `models.lenet5_to_fully_convolutional` copies a LeNet-5's weights into one.

# %%
fully_conv = models.lenet5_to_fully_convolutional(lenet)
print(fully_conv)
small_scores = fully_conv.forward(cat)
large_scores = fully_conv.forward(large)
print("fully convolutional LeNet: 32x32 ->", small_scores.shape, "; 64x64 ->", large_scores.shape)
assert count_params(fully_conv) == count_params(lenet)
assert small_scores.shape == (1, 10, 1, 1) and large_scores.shape == (1, 10, 9, 9)
gap = np.abs(small_scores[:, :, 0, 0] - logits).max()
print(f"on 32x32 it gives LeNet-5's logits: largest difference {gap:.1e}")
assert np.allclose(small_scores[:, :, 0, 0], logits, rtol=1e-5, atol=1e-5)

# %% [markdown]
# **Question.** What is the value at position (i, j) of the 9x9 map? Why 9, and how far
# apart in the image are two neighbouring positions?

# %% [markdown] tags=["solution"]
# *Solution.* It is what LeNet-5 gives for the 32x32 window of the image whose top-left
# corner is at (4i, 4j). The two poolings of 2 make one step in the feature map worth 4
# pixels of the image, and the 5x5 "FC" convolution on the 13x13 features fits at
# 13 - 5 + 1 = 9 positions: windows at 0, 4, ..., 32, the last one ending at pixel 63. The
# network classifies all 81 windows at once, and shares the work of the overlapping
# windows instead of repeating it. We check it below by running LeNet-5 itself on the 81
# crops.

# %%
crops = np.stack([large[0, :, 4 * i:4 * i + 32, 4 * j:4 * j + 32] for i in range(9) for j in range(9)])
crop_logits = lenet.forward(crops)                                   # (81, 10)
as_map = crop_logits.reshape(9, 9, 10).transpose(2, 0, 1)[None]      # (1, 10, 9, 9)
print("largest difference between the map and LeNet-5 on the 81 crops:", np.abs(as_map - large_scores).max())
assert np.allclose(as_map, large_scores, rtol=1e-4, atol=1e-4)

# %% [markdown]
# ### A map that means something: digits on a larger page
#
# With random weights the map is noise. So we train a one-channel LeNet-5 on MNIST digits,
# padded from 28x28 to the 32x32 it expects, convert it, and run it on a page of 64x96
# pixels with three digits on it.

# %%
mnist = data.load_mnist()
background = -mnist.mean.item()                 # the value of a blank pixel after the mean is taken off


def pad32(images):
    return np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=background)


train_x, train_y = pad32(mnist.train_x), mnist.train_y
test_x, test_y = pad32(mnist.test_x), mnist.test_y
if QUICK:
    train_x, train_y, test_x, test_y = train_x[:10000], train_y[:10000], test_x[:2000], test_y[:2000]
digit_net = models.lenet5(in_channels=1, rng=1)
trainer = Trainer(digit_net, SoftmaxCrossEntropy(), Adam(lr=1e-3), batch_size=64, seed=0)
trainer.fit(train_x, train_y, 1 if QUICK else 3)
digit_test = evaluate(digit_net, None, test_x, test_y)
print(f"LeNet-5 on MNIST: test accuracy {digit_test['accuracy']:.4f} on {len(test_x):,} images "
      f"({sum(r['seconds'] for r in trainer.history):.0f} s of training)")
figures["LeNet-5 MNIST test accuracy"] = digit_test["accuracy"]
assert digit_test["accuracy"] > (0.8 if QUICK else 0.98)

# %% [markdown]
# The page: three test digits that the trained network classifies correctly (the most
# confidently of their class), each padded to a 32x32 window placed at a multiple of 4
# pixels (so that it is exactly one of the windows the map sees), on an empty background.

# %%
probability = softmax(digit_test["logits"].astype(np.float64)).max(axis=1)
picks = []
for label in (3, 8, 5):      # of the correctly classified test digits of each label, the most confident
    candidates = np.flatnonzero((digit_test["predictions"] == test_y) & (test_y == label))
    picks.append(int(candidates[np.argmax(probability[candidates])]))
page = np.full((1, 1, 64, 96), background, dtype=np.float32)
places = ((0, 0), (32, 32), (4, 64))            # top-left corners of the three windows
for index, (row, col) in zip(picks, places):
    page[0, 0, row:row + 32, col:col + 32] = test_x[index, 0]
page_net = models.lenet5_to_fully_convolutional(digit_net)
page_scores = page_net.forward(page)            # (1, 10, 9, 17)
page_probs = softmax(page_scores[0].reshape(10, -1).T.astype(np.float64)).T.reshape(page_scores.shape[1:])
predicted, confidence = page_probs.argmax(axis=0), page_probs.max(axis=0)
print("score map:", page_scores.shape)

fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
axes[0].imshow(page[0, 0], cmap="gray")
axes[0].set_title("the page (64x96)")
shown = axes[1].imshow(confidence, cmap="viridis", vmin=0, vmax=1)
for i in range(predicted.shape[0]):
    for j in range(predicted.shape[1]):
        if confidence[i, j] > 0.5:
            axes[1].text(j, i, str(predicted[i, j]), ha="center", va="center", color="white", fontsize=9)
axes[1].set_title("predicted class (where p > 0.5) over its probability p")
fig.colorbar(shown, ax=axes[1], fraction=0.03)
plt.show()
for index, (row, col) in zip(picks, places):
    i, j = row // 4, col // 4
    print(f"window at ({row}, {col}) -> map position ({i}, {j}): class {predicted[i, j]} "
          f"with probability {confidence[i, j]:.3f} (true label {test_y[index]})")
    assert page_scores.shape == (1, 10, 9, 17) and predicted[i, j] == test_y[index]

# %% [markdown]
# **Question.** Away from the three windows the map is not blank: some positions see half a
# digit, or parts of two, and name a class anyway, sometimes with confidence. Why, and
# what would a network that reads whole pages need?

# %% [markdown] tags=["solution"]
# *Solution.* The network was only ever shown centred digits and always has to pick one of
# ten classes: the softmax has no "nothing here" answer, so half a 3 or the gap between two
# digits still gets the digit it resembles most. A page reader needs training windows of
# that kind too, with a *background* class (or a separate objectness score), and then a
# rule for merging the overlapping detections of one digit, which is what detection and
# segmentation networks built on fully convolutional layers add.

# %% [markdown]
# ## Part 5: residual networks
#
# Deeper networks can learn richer features, but past a certain depth a plain stack of
# convolutions trains *worse*, even on its training data, though the extra layers could in
# principle just copy their input. A residual block makes copying the easy default: it
# computes y = ReLU(F(x) + x), so its layers only have to learn the change F(x) to make,
# and the gradient has a path back through the + that skips them.
#
# ResNet-18's *basic block*: two 3x3 convolutions, each followed by batch normalisation,
# with a ReLU between them; the shortcut is the identity, or, where the block changes the
# number of channels or the size, a 1x1 convolution with the same stride and its own batch
# normalisation.

# %%
identity_block = models.basic_block(64, 64, rng=0)
down_block = models.basic_block(64, 128, stride=2, rng=0)
x56 = rng.standard_normal((2, 64, 56, 56)).astype(np.float32)
print("same channels, stride 1:", x56.shape, "->", identity_block.forward(x56).shape,
      f"({count_params(identity_block):,} parameters, shortcut: {identity_block.shortcut})")
print("128 channels, stride 2: ", x56.shape, "->", down_block.forward(x56).shape,
      f"({count_params(down_block):,} parameters, shortcut: {type(down_block.shortcut).__name__})")
print(down_block.shortcut)
assert identity_block.forward(x56).shape == x56.shape and identity_block.shortcut is None
assert down_block.forward(x56).shape == (2, 128, 28, 28)
assert count_params(identity_block) == 2 * 64 * 64 * 9 + 2 * 2 * 64
assert count_params(down_block) == 64 * 128 * 9 + 128 * 128 * 9 + 64 * 128 + 3 * 2 * 128

# %% [markdown]
# **Question.** The convolutions in the block have no bias. Why not? And why must the
# shortcut of the second block be a convolution?

# %% [markdown] tags=["solution"]
# *Solution.* Each convolution is followed by batch normalisation, which subtracts the mean
# of every channel: a bias added before it would be subtracted again. Its own learnt shift
# β plays the part of the bias. The shortcut's output is added to the body's, so the two
# must have the same shape; the second block's body has 128 channels of 28x28 for an input
# of 64 channels of 56x56, and a 1x1 convolution with stride 2 is the cheapest linear map
# that makes x that shape (8,192 weights plus its batch normalisation).

# %% [markdown]
# A residual block whose body outputs zero is the identity on non-negative inputs (the
# outputs of the ReLU before it): ReLU(0 + x) = x. Setting the γ of the body's last batch
# normalisation to zero does exactly that; some training recipes start every block this way.

# %%
quiet = models.basic_block(64, 64, rng=0)
quiet.body[4].gamma[...] = 0.0                       # bn2: the body now outputs beta = 0
relu_x = np.maximum(x56, 0)
assert np.array_equal(quiet.forward(relu_x), relu_x)

# %% [markdown]
# ### ResNet-18
#
# The stem (a 7x7 convolution with stride 2 and a 3x3 max pooling with stride 2), four
# stages of two basic blocks with 64, 128, 256 and 512 channels (each stage after the first
# halving the size in its first block), global average pooling and one FC layer. The layer
# names are torchvision's, so its weights load by name.

# %%
resnet = models.resnet18(rng=0)
resnet.train(False)                       # batch normalisation with its running statistics
photo = labkit.resize(labkit.photo("chelsea"), 224, 224)
resnet_summary = resnet.summary((3, 224, 224), batch_size=1)
resnet_logits = resnet.forward(photo)
resnet_params = count_params(resnet)
print(f"ResNet-18: {photo.shape} -> {resnet_logits.shape}, {resnet_params:,} parameters")
assert resnet_logits.shape == (1, 1000) and resnet_params == 11_689_512
stage_shapes = {path.split(".", 1)[1]: shape for path, _, shape, *_ in resnet_summary["rows"]}
assert [stage_shapes[f"layer{stage}.1"] for stage in (1, 2, 3, 4)] == [
    (1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 512, 7, 7)]     # the four stages
assert count_params(models.resnet18(num_classes=10)) == 11_689_512 - 1000 * 513 + 10 * 513
figures["ResNet-18 parameters"] = resnet_params

# %% [markdown]
# **Question.** Where are ResNet-18's 11.7 million parameters? The FC layer is only
# 513,000 of them.

# %% [markdown] tags=["solution"]
# *Solution.* In the last stages. A 3x3 convolution from C to C channels has 9·C² weights:
# the four such convolutions of stage 4 (512 channels) have 2.4 million each, less the
# first one which comes from 256 channels, and stage 4 alone holds about 8.4 million, 72%
# of the total; stage 1 (64 channels) has 0.15 million. The spatial size does not enter
# the count; it enters the computation, which is spread far more evenly over the stages.

# %%
stage_params = {stage: sum(count_params(layer) for layer in resnet if layer.name.startswith(stage))
                for stage in ("layer1", "layer2", "layer3", "layer4")}
print({stage: f"{count:,}" for stage, count in stage_params.items()})
assert stage_params["layer4"] == 8_393_728 and stage_params["layer1"] == 147_968
assert stage_params["layer4"] > 0.7 * resnet_params

# %% [markdown]
# ### The same network as torchvision's
#
# If PyTorch and torchvision are installed, we build torchvision's ResNet-18 with random
# weights (no download), copy its state dict into ours with
# `minidl.io.load_torch_state_dict`, and compare the parameter counts and the logits on
# the photograph.

# %%
try:
    import torch

    from minidl.torch_import import import_torchvision
    torchvision = import_torchvision()
except ImportError:
    torch = torchvision = None

if torchvision is not None:
    from minidl.io import load_torch_state_dict

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    torch_params = sum(p.numel() for p in reference.parameters())
    load_torch_state_dict(resnet, reference.state_dict())
    ours = resnet.forward(photo)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(photo)).numpy()
    difference = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print(f"parameters: torchvision {torch_params:,}, minidl {resnet_params:,}")
    print(f"logits: largest difference {difference:.1e} of their range; "
          f"top class {int(ours.argmax())} (torchvision {int(theirs.argmax())})")
    figures["ResNet-18 logits, relative difference from torchvision"] = difference
    assert torch_params == resnet_params and difference < 1e-4 and ours.argmax() == theirs.argmax()
else:
    print("PyTorch or torchvision is not installed: no comparison.")

# %% [markdown]
# The weights are random, so the class means nothing; what the comparison shows is that
# the two networks are the same function, ready for torchvision's trained weights.
#
# ## What this run measured

# %%
for name, value in figures.items():
    print(f"{name:>55}: {value:,}" if isinstance(value, int) else f"{name:>55}: {value:.4g}")
print(f"{'running time (s)':>55}: {time.perf_counter() - lab_started:.0f}")
