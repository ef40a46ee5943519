"""Ready-made networks, by the names a reader looks for.

    lab_net                     the FER lab's MNIST network
    cifar_net                   the FER lab's CIFAR-10 network
    lenet5                      LeNet-5 (LeCun et al. 1998, in its common modern form)
    lenet5_fully_convolutional  LeNet-5 with its classifier as convolutions (any input size)
    simple_cnn, pooling_cnn,    the Cambridge 4F12 CNN lecture's MNIST and CIFAR-10 networks
    cifar_cnn
    mnist_cnn                   the LMU i2dl lab 7 network (93,322 parameters)
    char_cnn                    the Oxford VGG practical's character recogniser
    alexnet, resnet18,          torchvision's architectures, layer for layer
    resnet34, resnet50
    basic_block,                ResNet's two blocks; ``resnet`` builds any depth from them
    bottleneck_block
    lenet5_to_fully_convolutional   a trained LeNet-5's weights in its fully convolutional form

Every builder takes ``dtype`` (float32 to train, float64 for gradient checks) and
``rng`` (a seed or a Generator: the He initialisation of all layers, reproducibly).

Layer names: where a network has a PyTorch counterpart, its layers carry the names of
that model's modules, dots included (``features.0``, ``layer1.0``, ``fc``), so that
``minidl.io.load_torch_state_dict`` maps its keys one to one (see ``minidl/torch_import.py``).
"""
import numpy as np

from .layers import (FC, AdaptiveAvgPool, AvgPool, BatchNorm, Conv, Dropout, Flatten, GlobalAvgPool, MaxPool,
                     ReLU, Residual, Sequential, Tanh)


def lab_net(in_channels=1, image_size=28, conv1_width=16, conv2_width=32, fc_width=512,
            num_classes=10, kernel_size=5, dtype=np.float32, rng=None):
    """The lab's network (FER deep learning lab 2):

        conv 16 5x5 (same) -> maxpool 2 -> ReLU -> conv 32 5x5 (same) -> maxpool 2 -> ReLU
        -> flatten -> FC 512 -> ReLU -> FC 10          (followed by softmax cross-entropy)

    For 28x28 MNIST: 1x28x28 -> 16x28x28 -> 16x14x14 -> 32x14x14 -> 32x7x7 -> 1568 -> 512 -> 10.
    ``rng`` seeds the He initialisation of all layers reproducibly.
    """
    rng = np.random.default_rng(rng)
    side = image_size // 2 // 2
    return Sequential([
        Conv(in_channels, conv1_width, kernel_size, padding="same", name="conv1", dtype=dtype, rng=rng),
        MaxPool(2, name="pool1"),
        ReLU(name="relu1"),
        Conv(conv1_width, conv2_width, kernel_size, padding="same", name="conv2", dtype=dtype, rng=rng),
        MaxPool(2, name="pool2"),
        ReLU(name="relu2"),
        Flatten(name="flatten3"),
        FC(conv2_width * side * side, fc_width, name="fc3", dtype=dtype, rng=rng),
        ReLU(name="relu3"),
        FC(fc_width, num_classes, name="logits", dtype=dtype, rng=rng),
    ], name="lab_net")


def cifar_net(in_channels=3, image_size=32, num_classes=10, padding=2, dtype=np.float32, rng=None):
    """The FER lab's CIFAR-10 network:

        conv 16 5x5 -> ReLU -> maxpool 3 stride 2 -> conv 32 5x5 -> ReLU -> maxpool 3 stride 2
        -> flatten -> FC 256 -> ReLU -> FC 128 -> ReLU -> FC 10

    The convolutions keep the size (``padding=2``, as the lab's MNIST network); the
    pools do not pad (OH = floor((H - 3) / 2) + 1). For 32x32 colour images:

        3x32x32 -> 16x32x32 -> 16x15x15 -> 32x15x15 -> 32x7x7 -> 1568 -> 256 -> 128 -> 10

    449,898 parameters. ``padding=0`` gives the unpadded variant
    (3x32x32 -> 16x28x28 -> 16x13x13 -> 32x9x9 -> 32x4x4 -> 512 -> ...).
    """
    rng = np.random.default_rng(rng)
    side = image_size
    for _ in range(2):  # conv 5x5, then pool 3 stride 2
        side = (side + 2 * padding - 5 + 1 - 3) // 2 + 1
    return Sequential([
        Conv(in_channels, 16, 5, padding=padding, name="conv1", dtype=dtype, rng=rng),
        ReLU(name="relu1"),
        MaxPool(3, stride=2, name="pool1"),
        Conv(16, 32, 5, padding=padding, name="conv2", dtype=dtype, rng=rng),
        ReLU(name="relu2"),
        MaxPool(3, stride=2, name="pool2"),
        Flatten(name="flatten"),
        FC(32 * side * side, 256, name="fc3", dtype=dtype, rng=rng),
        ReLU(name="relu3"),
        FC(256, 128, name="fc4", dtype=dtype, rng=rng),
        ReLU(name="relu4"),
        FC(128, num_classes, name="logits", dtype=dtype, rng=rng),
    ], name="cifar_net")


# ------------------------------------------------------------------ LeNet-5
def _lenet_features(in_channels, dtype, rng):
    return [
        Conv(in_channels, 6, 5, name="conv1", dtype=dtype, rng=rng),
        ReLU(name="relu1"),
        MaxPool(2, name="pool1"),
        Conv(6, 16, 5, name="conv2", dtype=dtype, rng=rng),
        ReLU(name="relu2"),
        MaxPool(2, name="pool2"),
    ]


def lenet5(in_channels=1, num_classes=10, dtype=np.float32, rng=None):
    """LeNet-5 for 32x32 images, in the form usually taught today:

        conv 6 5x5 -> ReLU -> maxpool 2 -> conv 16 5x5 -> ReLU -> maxpool 2
        -> flatten -> FC 120 -> ReLU -> FC 84 -> ReLU -> FC 10

        1x32x32 -> 6x28x28 -> 6x14x14 -> 16x10x10 -> 16x5x5 -> 400 -> 120 -> 84 -> 10

    61,706 parameters for one input channel (62,006 for three):
    6*(25+1) + 16*(6*25+1) + (400+1)*120 + (120+1)*84 + (84+1)*10.
    The 1998 original differs in three ways: its second convolution connects each of
    the 16 maps to only some of the 6 (1,516 parameters instead of 2,416), its pooling
    is a trainable average (a weight and a bias per map) and its activation a scaled
    tanh, and its output is a layer of radial basis functions. The classifier expects
    exactly 16x5x5 features: on a larger input the first FC layer raises a ValueError
    (see ``lenet5_fully_convolutional``).
    """
    rng = np.random.default_rng(rng)
    return Sequential(_lenet_features(in_channels, dtype, rng) + [
        Flatten(name="flatten"),
        FC(16 * 5 * 5, 120, name="fc1", dtype=dtype, rng=rng),
        ReLU(name="relu3"),
        FC(120, 84, name="fc2", dtype=dtype, rng=rng),
        ReLU(name="relu4"),
        FC(84, num_classes, name="fc3", dtype=dtype, rng=rng),
    ], name="lenet5")


def lenet5_fully_convolutional(in_channels=1, num_classes=10, dtype=np.float32, rng=None):
    """LeNet-5 with its classifier written as convolutions, so it runs on any input size:

        (LeNet-5's features) -> conv 120 5x5 -> ReLU -> conv 84 1x1 -> ReLU -> conv 10 1x1

    On 32x32 it computes what ``lenet5`` computes (with the same weights: see
    ``lenet5_to_fully_convolutional``), as a 10x1x1 map. On 64x64 it gives a map of
    class scores, one per 32x32 window at a stride of 4 pixels:

        1x64x64 -> 6x60x60 -> 6x30x30 -> 16x26x26 -> 16x13x13 -> 120x9x9 -> 84x9x9 -> 10x9x9
    """
    rng = np.random.default_rng(rng)
    return Sequential(_lenet_features(in_channels, dtype, rng) + [
        Conv(16, 120, 5, name="conv3", dtype=dtype, rng=rng),
        ReLU(name="relu3"),
        Conv(120, 84, 1, name="conv4", dtype=dtype, rng=rng),
        ReLU(name="relu4"),
        Conv(84, num_classes, 1, name="conv5", dtype=dtype, rng=rng),
    ], name="lenet5_fully_convolutional")


def lenet5_to_fully_convolutional(net):
    """A ``lenet5_fully_convolutional`` computing what the ``lenet5`` ``net`` computes.

    The convolutions are copied; each FC layer becomes a convolution whose filters are
    its weight rows, reshaped: FC 400 -> 120 (120, 400) is conv 120 5x5 (120, 16, 5, 5),
    because ``Flatten`` orders the 16x5x5 features channel by channel, row by row. The
    new net has its own arrays (training one does not change the other).
    """
    if len(getattr(net, "layers", ())) != 12 or [layer.name for layer in net][7:12:2] != ["fc1", "fc2", "fc3"]:
        raise ValueError(f"lenet5_to_fully_convolutional: expected a net built by lenet5, got {net!r:.200}")
    fc1, fc2, fc3 = (net[i] for i in (7, 9, 11))
    out = lenet5_fully_convolutional(net[0].in_channels, fc3.out_features, dtype=fc3.dtype, rng=0)
    for i in (0, 3):  # conv1, conv2
        out[i].weights[...] = net[i].weights
        out[i].bias[...] = net[i].bias
    for conv, fc in zip((out[6], out[8], out[10]), (fc1, fc2, fc3)):
        conv.weights[...] = fc.weights.reshape(conv.weights.shape)
        conv.bias[...] = fc.bias
    return out


# --------------------------------------------------------- course networks
def simple_cnn(dtype=np.float32, rng=None):
    """The Cambridge 4F12 CNN lecture's first MNIST network (``SimpleCNN``):

        conv 9 5x5 -> tanh -> flatten -> FC 10

        1x28x28 -> 9x24x24 -> 5184 -> 10            (52,084 parameters)
    """
    rng = np.random.default_rng(rng)
    return Sequential([
        Conv(1, 9, 5, name="c1", dtype=dtype, rng=rng),
        Tanh(name="tanh"),
        Flatten(name="flatten"),
        FC(9 * 24 * 24, 10, name="f3", dtype=dtype, rng=rng),
    ], name="simple_cnn")


def pooling_cnn(dtype=np.float32, rng=None):
    """The Cambridge 4F12 CNN lecture's MNIST network with pooling (``PoolingCNN``):

        conv 9 5x5 -> maxpool 2 -> tanh -> flatten -> FC 10

        1x28x28 -> 9x24x24 -> 9x12x12 -> 1296 -> 10  (13,204 parameters)
    """
    rng = np.random.default_rng(rng)
    return Sequential([
        Conv(1, 9, 5, name="c1", dtype=dtype, rng=rng),
        MaxPool(2, name="pool"),
        Tanh(name="tanh"),
        Flatten(name="flatten"),
        FC(9 * 12 * 12, 10, name="f3", dtype=dtype, rng=rng),
    ], name="pooling_cnn")


def cifar_cnn(num_classes=10, dtype=np.float32, rng=None):
    """The Cambridge 4F12 CNN lecture's CIFAR-10 network (``CifarCNN``):

        conv 32 5x5 pad 2 -> maxpool 3 stride 2 -> ReLU
        -> conv 32 5x5 pad 2 -> ReLU -> avgpool 3 stride 2 pad 1
        -> conv 64 5x5 pad 2 -> ReLU -> avgpool 3 stride 2 pad 1
        -> flatten -> FC 64 -> FC 10

        3x32x32 -> 32x32x32 -> 32x15x15 -> 32x15x15 -> 32x8x8 -> 64x8x8 -> 64x4x4 -> 1024 -> 64 -> 10

    As in the lecture, there is no nonlinearity between the two FC layers (together they
    are one linear map of rank 64), and the average pools count the zero padding.
    145,578 parameters.
    """
    rng = np.random.default_rng(rng)
    return Sequential([
        Conv(3, 32, 5, padding=2, name="c1", dtype=dtype, rng=rng),
        MaxPool(3, stride=2, name="p2"),
        ReLU(name="relu2"),
        Conv(32, 32, 5, padding=2, name="c3", dtype=dtype, rng=rng),
        ReLU(name="relu3"),
        AvgPool(3, stride=2, padding=1, name="p4"),
        Conv(32, 64, 5, padding=2, name="c5", dtype=dtype, rng=rng),
        ReLU(name="relu5"),
        AvgPool(3, stride=2, padding=1, name="p6"),
        Flatten(name="flatten"),
        FC(64 * 4 * 4, 64, name="f7", dtype=dtype, rng=rng),
        FC(64, num_classes, name="f8", dtype=dtype, rng=rng),
    ], name="cifar_cnn")


def mnist_cnn(in_channels=1, num_classes=10, dtype=np.float32, rng=None):
    """The LMU i2dl lab 7 MNIST network (also TensorFlow's CNN tutorial):

        conv 32 3x3 -> ReLU -> maxpool 2 -> conv 64 3x3 -> ReLU -> maxpool 2 -> conv 64 3x3
        -> flatten -> FC 64 -> ReLU -> FC 10

        1x28x28 -> 32x26x26 -> 32x13x13 -> 64x11x11 -> 64x5x5 -> 64x3x3 -> 576 -> 64 -> 10

    93,322 parameters: 320 + 18,496 + 36,928 + 36,928 + 650. No ReLU after the third
    convolution, as in the lab.
    """
    rng = np.random.default_rng(rng)
    return Sequential([
        Conv(in_channels, 32, 3, name="conv1", dtype=dtype, rng=rng),
        ReLU(name="relu1"),
        MaxPool(2, name="pool1"),
        Conv(32, 64, 3, name="conv2", dtype=dtype, rng=rng),
        ReLU(name="relu2"),
        MaxPool(2, name="pool2"),
        Conv(64, 64, 3, name="conv3", dtype=dtype, rng=rng),
        Flatten(name="flatten"),
        FC(64 * 3 * 3, 64, name="fc1", dtype=dtype, rng=rng),
        ReLU(name="relu4"),
        FC(64, num_classes, name="fc2", dtype=dtype, rng=rng),
    ], name="mnist_cnn")


def char_cnn(num_classes=26, in_channels=1, dtype=np.float32, rng=None):
    """The Oxford VGG CNN practical's character recogniser, fully convolutional:

        conv 20 5x5 -> maxpool 2 -> conv 50 5x5 -> maxpool 2 -> conv 500 4x4 -> ReLU -> conv 26 2x2

        1x32x32 -> 20x28x28 -> 20x14x14 -> 50x10x10 -> 50x5x5 -> 500x2x2 -> 500x2x2 -> 26x1x1

    One 32x32 character gives 26 scores as a 26x1x1 map; to train on characters with
    ``SoftmaxCrossEntropy`` wrap it, ``Sequential([net, Flatten()])`` (the same layers,
    output (N, 26)). On a text line 32 pixels high and W wide the net itself gives
    26 x 1 x (floor((W - 32) / 4) + 1): a score per class every 4 pixels. 478,096 parameters.
    """
    rng = np.random.default_rng(rng)
    return Sequential([
        Conv(in_channels, 20, 5, name="conv1", dtype=dtype, rng=rng),
        MaxPool(2, name="pool1"),
        Conv(20, 50, 5, name="conv2", dtype=dtype, rng=rng),
        MaxPool(2, name="pool2"),
        Conv(50, 500, 4, name="conv3", dtype=dtype, rng=rng),
        ReLU(name="relu3"),
        Conv(500, num_classes, 2, name="conv4", dtype=dtype, rng=rng),
    ], name="char_cnn")


# ------------------------------------------------------------------ AlexNet
def alexnet(num_classes=1000, dropout=0.5, dtype=np.float32, rng=None):
    """AlexNet as torchvision builds it (Krizhevsky 2014's one-GPU variant):

        features:   conv 64 11x11 stride 4 pad 2 -> ReLU -> maxpool 3 stride 2
                    -> conv 192 5x5 pad 2 -> ReLU -> maxpool 3 stride 2
                    -> conv 384 3x3 pad 1 -> ReLU -> conv 256 3x3 pad 1 -> ReLU
                    -> conv 256 3x3 pad 1 -> ReLU -> maxpool 3 stride 2
        avgpool:    adaptive average pooling to 6x6
        classifier: dropout -> FC 4096 -> ReLU -> dropout -> FC 4096 -> ReLU -> FC 1000

        3x224x224 -> 64x55x55 -> 64x27x27 -> 192x27x27 -> 192x13x13 -> 384x13x13 -> 256x13x13
        -> 256x13x13 -> 256x6x6 -> (avgpool) 256x6x6 -> 9216 -> 4096 -> 4096 -> 1000

    61,100,840 parameters. Inputs of at least 63x63 pass the features (the adaptive pool
    then stretches their map to 6x6). Layer names are torchvision's module paths
    (``features.0`` ... ``classifier.6``); ``Dropout`` draws from ``rng`` too.
    """
    rng = np.random.default_rng(rng)

    def conv(c, f, k, name, **kw):
        return Conv(c, f, k, name=name, dtype=dtype, rng=rng, **kw)

    return Sequential([
        conv(3, 64, 11, "features.0", stride=4, padding=2),
        ReLU(name="features.1"),
        MaxPool(3, stride=2, name="features.2"),
        conv(64, 192, 5, "features.3", padding=2),
        ReLU(name="features.4"),
        MaxPool(3, stride=2, name="features.5"),
        conv(192, 384, 3, "features.6", padding=1),
        ReLU(name="features.7"),
        conv(384, 256, 3, "features.8", padding=1),
        ReLU(name="features.9"),
        conv(256, 256, 3, "features.10", padding=1),
        ReLU(name="features.11"),
        MaxPool(3, stride=2, name="features.12"),
        AdaptiveAvgPool(6, name="avgpool"),
        Flatten(name="flatten"),
        Dropout(dropout, rng=rng, name="classifier.0"),
        FC(256 * 6 * 6, 4096, name="classifier.1", dtype=dtype, rng=rng),
        ReLU(name="classifier.2"),
        Dropout(dropout, rng=rng, name="classifier.3"),
        FC(4096, 4096, name="classifier.4", dtype=dtype, rng=rng),
        ReLU(name="classifier.5"),
        FC(4096, num_classes, name="classifier.6", dtype=dtype, rng=rng),
    ], name="alexnet")


# ------------------------------------------------------------------- ResNet
def _downsample(in_channels, out_channels, stride, dtype, rng):
    """The projection shortcut: conv 1x1 (stride, no bias) -> BatchNorm, named as torchvision's."""
    return Sequential([
        Conv(in_channels, out_channels, 1, stride=stride, bias=False, name="0", dtype=dtype, rng=rng),
        BatchNorm(out_channels, name="1", dtype=dtype),
    ], name="downsample")


def basic_block(in_channels, out_channels, stride=1, dtype=np.float32, rng=None, name="block"):
    """ResNet's basic block (ResNet-18 and -34): x (N, C, H, W) -> y (N, F, OH, OW),

        body:     conv 3x3 (stride, pad 1) -> BN -> ReLU -> conv 3x3 (pad 1) -> BN
        shortcut: identity, or conv 1x1 (stride) -> BN where stride != 1 or C != F
        y = ReLU(body(x) + shortcut(x)),          OH = floor((H - 1) / stride) + 1

    Convolutions without bias (BatchNorm's beta is the bias); names as torchvision's
    ``BasicBlock`` (conv1, bn1, conv2, bn2, downsample.0, downsample.1).
    """
    rng = np.random.default_rng(rng)
    body = Sequential([
        Conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, name="conv1", dtype=dtype,
             rng=rng),
        BatchNorm(out_channels, name="bn1", dtype=dtype),
        ReLU(name="relu1"),
        Conv(out_channels, out_channels, 3, padding=1, bias=False, name="conv2", dtype=dtype, rng=rng),
        BatchNorm(out_channels, name="bn2", dtype=dtype),
    ], name="body")
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = _downsample(in_channels, out_channels, stride, dtype, rng)
    return Residual(body, shortcut, relu=True, name=name)


def bottleneck_block(in_channels, width, stride=1, expansion=4, dtype=np.float32, rng=None, name="block"):
    """ResNet's bottleneck block (ResNet-50 and deeper), torchvision's "v1.5" form with the
    stride on the 3x3 convolution: x (N, C, H, W) -> y (N, expansion*width, OH, OW),

        body:     conv 1x1 to width -> BN -> ReLU -> conv 3x3 (stride, pad 1) -> BN -> ReLU
                  -> conv 1x1 to expansion*width -> BN
        shortcut: identity, or conv 1x1 (stride) -> BN where stride != 1 or C != expansion*width
        y = ReLU(body(x) + shortcut(x)),          OH = floor((H - 1) / stride) + 1

    The 1x1 convolutions narrow the channels to ``width`` around the 3x3 one and widen
    them again. Names as torchvision's ``Bottleneck`` (conv1..3, bn1..3, downsample).
    """
    rng = np.random.default_rng(rng)
    out_channels = expansion * width
    body = Sequential([
        Conv(in_channels, width, 1, bias=False, name="conv1", dtype=dtype, rng=rng),
        BatchNorm(width, name="bn1", dtype=dtype),
        ReLU(name="relu1"),
        Conv(width, width, 3, stride=stride, padding=1, bias=False, name="conv2", dtype=dtype, rng=rng),
        BatchNorm(width, name="bn2", dtype=dtype),
        ReLU(name="relu2"),
        Conv(width, out_channels, 1, bias=False, name="conv3", dtype=dtype, rng=rng),
        BatchNorm(out_channels, name="bn3", dtype=dtype),
    ], name="body")
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = _downsample(in_channels, out_channels, stride, dtype, rng)
    return Residual(body, shortcut, relu=True, name=name)


def resnet(block, blocks_per_stage, num_classes=1000, in_channels=3, dtype=np.float32, rng=None, name="resnet"):
    """A ResNet as torchvision builds it; ``block`` is ``"basic"`` or ``"bottleneck"``.

        stem:   conv 64 7x7 stride 2 pad 3 -> BN -> ReLU -> maxpool 3 stride 2 pad 1
        stages: layer1..layer4 of ``blocks_per_stage`` blocks with widths 64, 128, 256, 512;
                the first block of layer2..4 has stride 2 (and a projection shortcut)
        head:   global average pooling -> FC num_classes

    Block j of stage i is the layer named ``layer{i}.{j}``. Any input of at least 32x32
    runs (the global pooling takes whatever size is left: 1/32 of the input's).
    """
    rng = np.random.default_rng(rng)
    expansion = {"basic": 1, "bottleneck": 4}[block]
    layers = [
        Conv(in_channels, 64, 7, stride=2, padding=3, bias=False, name="conv1", dtype=dtype, rng=rng),
        BatchNorm(64, name="bn1", dtype=dtype),
        ReLU(name="relu"),
        MaxPool(3, stride=2, padding=1, name="maxpool"),
    ]
    channels = 64
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), blocks_per_stage), start=1):
        for j in range(count):
            stride = 2 if stage > 1 and j == 0 else 1
            block_name = f"layer{stage}.{j}"
            if block == "basic":
                layers.append(basic_block(channels, width, stride, dtype=dtype, rng=rng, name=block_name))
            else:
                layers.append(bottleneck_block(channels, width, stride, dtype=dtype, rng=rng, name=block_name))
            channels = width * expansion
    layers += [GlobalAvgPool(name="avgpool"), FC(channels, num_classes, name="fc", dtype=dtype, rng=rng)]
    return Sequential(layers, name=name)


def resnet18(num_classes=1000, dtype=np.float32, rng=None):
    """ResNet-18 (torchvision's): basic blocks, 2 per stage.

        3x224x224 -> conv1 64x112x112 -> maxpool 64x56x56 -> layer1 64x56x56 -> layer2 128x28x28
        -> layer3 256x14x14 -> layer4 512x7x7 -> avgpool 512 -> fc 1000

    11,689,512 parameters (with 1000 classes).
    """
    return resnet("basic", (2, 2, 2, 2), num_classes, dtype=dtype, rng=rng, name="resnet18")


def resnet34(num_classes=1000, dtype=np.float32, rng=None):
    """ResNet-34 (torchvision's): basic blocks, 3, 4, 6, 3 per stage; the shapes of
    ResNet-18. 21,797,672 parameters (with 1000 classes)."""
    return resnet("basic", (3, 4, 6, 3), num_classes, dtype=dtype, rng=rng, name="resnet34")


def resnet50(num_classes=1000, dtype=np.float32, rng=None):
    """ResNet-50 (torchvision's): bottleneck blocks, 3, 4, 6, 3 per stage, each stage
    four times as wide at its output as inside.

        3x224x224 -> conv1 64x112x112 -> maxpool 64x56x56 -> layer1 256x56x56 -> layer2 512x28x28
        -> layer3 1024x14x14 -> layer4 2048x7x7 -> avgpool 2048 -> fc 1000

    25,557,032 parameters (with 1000 classes).
    """
    return resnet("bottleneck", (3, 4, 6, 3), num_classes, dtype=dtype, rng=rng, name="resnet50")
