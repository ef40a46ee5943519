"""Ready-made networks."""
import numpy as np

from .layers import FC, Conv, Flatten, MaxPool, ReLU
from .layers import Sequential


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
