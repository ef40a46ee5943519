"""End to end: a small residual network with batch normalisation learns real MNIST.

conv 3x3 (8) -> BatchNorm -> ReLU -> maxpool 2 -> ResNet block 8 -> ResNet block 16 (stride 2,
projection shortcut) -> flatten -> FC 10, trained with Adam on 10,000 images for two epochs
(about 15 s on two cores) and tested on 2,000 test images (about 97%; at least 95% required).
A global-average-pooling head of 16 features learns more slowly at this budget (about 92%).
"""
import time

import numpy as np
import pytest

from minidl import io
from minidl.layers import FC, BatchNorm, Conv, Flatten, MaxPool, ReLU, SoftmaxCrossEntropy, resnet_block
from minidl.net import Sequential
from minidl.optim import Adam, CosineDecay
from minidl.trainer import Trainer, evaluate

TRAIN_IMAGES = 10000
TEST_IMAGES = 2000
EPOCHS = 2


def small_resnet(width=8, rng=None):
    rng = np.random.default_rng(rng)
    return Sequential([
        Conv(1, width, 3, padding=1, bias=False, name="conv0", rng=rng),   # 1x28x28 -> 8x28x28
        BatchNorm(width, name="bn0"),
        ReLU(name="relu0"),
        MaxPool(2, name="pool0"),                                          # -> 8x14x14
        resnet_block(width, width, rng=rng, name="block1"),                # identity shortcut
        resnet_block(width, 2 * width, stride=2, rng=rng, name="block2"),  # -> 16x7x7, projection
        Flatten(name="flatten"),                                           # -> 784
        FC(2 * width * 7 * 7, 10, name="logits", rng=rng),
    ], name="small_resnet")


@pytest.mark.slow
@pytest.mark.network
def test_residual_network_with_batchnorm_learns_mnist(tmp_path, real_mnist_root):
    from minidl.data import load_mnist

    data = load_mnist(real_mnist_root, fetch=False)
    order = np.random.default_rng(0).permutation(len(data.train_x))[:TRAIN_IMAGES]
    x, y = data.train_x[order], data.train_y[order]
    net = small_resnet(rng=1)
    trainer = Trainer(net, SoftmaxCrossEntropy(), Adam(3e-3), lr_schedule=CosineDecay(3e-3, EPOCHS, min_lr=3e-4),
                      batch_size=50, seed=0)
    tic = time.perf_counter()
    trainer.fit(x, y, epochs=EPOCHS)
    seconds = time.perf_counter() - tic

    test_x, test_y = data.test_x[:TEST_IMAGES], data.test_y[:TEST_IMAGES]
    result = evaluate(net, None, test_x, test_y)    # eval mode: BatchNorm uses its running statistics
    print(f"\nresidual net: {TRAIN_IMAGES} images x {EPOCHS} epochs in {seconds:.1f} s, "
          f"test accuracy {result['accuracy']:.4f} on {TEST_IMAGES} images")
    assert result["accuracy"] > 0.95, result["accuracy"]
    assert net.training                              # evaluate restored training mode

    # the trained model survives a round trip through a model file, predictions and all
    io.save(net.eval(), tmp_path / "resnet.npz")
    again = evaluate(io.load(tmp_path / "resnet.npz"), None, test_x, test_y)
    np.testing.assert_array_equal(again["logits"], result["logits"])
