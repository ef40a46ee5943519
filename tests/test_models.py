"""The model builders: parameter counts, shape traces, the course networks against PyTorch
versions written from the courses' definitions, LeNet-5 made fully convolutional, ResNet blocks."""
import io as stdio

import numpy as np
import pytest

from minidl import io, models
from minidl.gradcheck import check_layer
from minidl.layers import Sequential

try:
    import torch
    from torch import nn
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
F64 = np.float64


def count(net):
    return sum(int(a.size) for _, a in net.params())


def conv_params(c, f, k):
    return f * (c * k * k + 1)


def fc_params(d, m):
    return m * (d + 1)


def shapes(net, input_shape, batch_size=1):
    """Output shape (without the batch axis) after each top-level layer."""
    report = net.summary(input_shape, batch_size=batch_size, file=stdio.StringIO())
    return [row[2][1:] for row in report["rows"]]


# ------------------------------------------------------------ parameter counts
def test_parameter_counts_by_hand():
    # LeNet-5 (dense C3, FC output): the 61,706 usually quoted for it
    assert count(models.lenet5()) == (conv_params(1, 6, 5) + conv_params(6, 16, 5) + fc_params(400, 120)
                                      + fc_params(120, 84) + fc_params(84, 10)) == 61_706
    assert count(models.lenet5(in_channels=3)) == 62_006
    assert count(models.lenet5_fully_convolutional()) == 61_706
    # the LMU lab's summary: 320 + 18,496 + 36,928 + 36,928 + 650
    assert count(models.mnist_cnn()) == (conv_params(1, 32, 3) + conv_params(32, 64, 3) + conv_params(64, 64, 3)
                                         + fc_params(576, 64) + fc_params(64, 10)) == 93_322
    assert count(models.cifar_net()) == (conv_params(3, 16, 5) + conv_params(16, 32, 5) + fc_params(1568, 256)
                                         + fc_params(256, 128) + fc_params(128, 10)) == 449_898
    assert count(models.cifar_net(padding=0)) == 449_898 - fc_params(1568, 256) + fc_params(512, 256)
    assert count(models.simple_cnn()) == conv_params(1, 9, 5) + fc_params(5184, 10) == 52_084
    assert count(models.pooling_cnn()) == conv_params(1, 9, 5) + fc_params(1296, 10) == 13_204
    assert count(models.cifar_cnn()) == (conv_params(3, 32, 5) + conv_params(32, 32, 5) + conv_params(32, 64, 5)
                                         + fc_params(1024, 64) + fc_params(64, 10)) == 145_578
    assert count(models.char_cnn()) == (conv_params(1, 20, 5) + conv_params(20, 50, 5) + conv_params(50, 500, 4)
                                        + conv_params(500, 26, 2)) == 478_096


def test_resnet_parameter_counts_are_torchvisions():
    """The counts torchvision documents for its ResNets (with 1000 classes)."""
    assert count(models.resnet18()) == 11_689_512
    assert count(models.resnet34()) == 21_797_672
    assert count(models.resnet50()) == 25_557_032


# ---------------------------------------------------------------- shape traces
def test_lenet5_shape_trace_and_its_error_on_a_larger_image():
    net = models.lenet5(rng=0)
    assert shapes(net, (1, 32, 32)) == [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10),
                                        (16, 5, 5), (400,), (120,), (120,), (84,), (84,), (10,)]
    with pytest.raises(ValueError, match=r"FC 'fc1': expected input of shape \(N, 400\), got \(1, 2704\)"):
        net.forward(np.zeros((1, 1, 64, 64), dtype=np.float32))


def test_lenet5_fully_convolutional_maps_64x64_to_10x9x9():
    net = models.lenet5_fully_convolutional(in_channels=3, rng=0)
    assert shapes(net, (3, 64, 64))[-1] == (10, 9, 9)
    assert shapes(net, (3, 32, 32))[-1] == (10, 1, 1)
    assert shapes(net, (3, 64, 64))[:6] == [(6, 60, 60), (6, 60, 60), (6, 30, 30), (16, 26, 26), (16, 26, 26),
                                            (16, 13, 13)]


def test_lenet5_to_fully_convolutional_scores_every_32x32_window(rng):
    """The converted net's map at (i, j) is LeNet-5's scores for the window at (4i, 4j)."""
    lenet = models.lenet5(in_channels=2, num_classes=7, dtype=F64, rng=1)
    full = models.lenet5_to_fully_convolutional(lenet)
    x = rng.standard_normal((2, 2, 64, 64))
    score_map = full.forward(x)
    assert score_map.shape == (2, 7, 9, 9)
    windows = np.stack([x[:, :, 4 * i:4 * i + 32, 4 * j:4 * j + 32] for i in range(9) for j in range(9)])
    scores = lenet.forward(windows.reshape(-1, 2, 32, 32)).reshape(9, 9, 2, 7)
    np.testing.assert_allclose(score_map, scores.transpose(2, 3, 0, 1), rtol=1e-10, atol=1e-12)
    full.layers[6].weights[...] = 0  # its own arrays
    assert np.any(lenet.layers[7].weights != 0)
    with pytest.raises(ValueError, match="expected a net built by lenet5"):
        models.lenet5_to_fully_convolutional(models.mnist_cnn())


def test_course_network_shape_traces():
    assert shapes(models.mnist_cnn(), (1, 28, 28)) == [
        (32, 26, 26), (32, 26, 26), (32, 13, 13), (64, 11, 11), (64, 11, 11), (64, 5, 5), (64, 3, 3), (576,),
        (64,), (64,), (10,)]
    assert shapes(models.cifar_net(), (3, 32, 32))[:7] == [
        (16, 32, 32), (16, 32, 32), (16, 15, 15), (32, 15, 15), (32, 15, 15), (32, 7, 7), (1568,)]
    assert shapes(models.cifar_cnn(), (3, 32, 32)) == [
        (32, 32, 32), (32, 15, 15), (32, 15, 15), (32, 15, 15), (32, 15, 15), (32, 8, 8), (64, 8, 8), (64, 8, 8),
        (64, 4, 4), (1024,), (64,), (10,)]
    assert shapes(models.simple_cnn(), (1, 28, 28))[-2:] == [(5184,), (10,)]
    assert shapes(models.pooling_cnn(), (1, 28, 28))[-2:] == [(1296,), (10,)]
    net = models.char_cnn()
    assert shapes(net, (1, 32, 32)) == [(20, 28, 28), (20, 14, 14), (50, 10, 10), (50, 5, 5), (500, 2, 2),
                                        (500, 2, 2), (26, 1, 1)]
    assert shapes(net, (1, 32, 100))[-1] == (26, 1, 18)          # floor((100 - 32) / 4) + 1


def test_resnet_shape_traces():
    """Each stage halves the size (the stem divides by 4): 64x64 ends at 2x2 before the pooling."""
    net = models.resnet18(num_classes=10, rng=0)
    trace = shapes(net, (3, 64, 64))
    names = [layer.name for layer in net]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"] and names[-2:] == ["avgpool", "fc"]
    at = dict(zip(names, trace))
    assert at["conv1"] == (64, 32, 32) and at["maxpool"] == (64, 16, 16)
    assert [at[f"layer{i}.1"] for i in range(1, 5)] == [(64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]
    assert at["avgpool"] == (512,) and at["fc"] == (10,)
    net50 = models.resnet50(num_classes=10, rng=0)
    at = dict(zip([layer.name for layer in net50], shapes(net50, (3, 64, 64))))
    assert [at[name] for name in ("layer1.2", "layer2.3", "layer3.5", "layer4.2", "fc")] == [
        (256, 16, 16), (512, 8, 8), (1024, 4, 4), (2048, 2, 2), (10,)]
    assert net50[4].shortcut is not None and net50[5].shortcut is None   # layer1.0 widens 64 -> 256


# -------------------------------------------------------------- ResNet blocks
def test_bottleneck_block_gradient_check(rng):
    block = models.bottleneck_block(4, 2, stride=2, dtype=F64, rng=0)
    result = check_layer(block, rng.standard_normal((2, 4, 5, 6)), rng=rng)
    assert result.passed and result.max_rel_error < 1e-6, result.report()
    assert block.forward(rng.standard_normal((2, 4, 5, 6))).shape == (2, 8, 3, 3)


def test_basic_block_gradient_check(rng):
    block = models.basic_block(3, 3, dtype=F64, rng=0)
    assert block.shortcut is None
    result = check_layer(block, rng.standard_normal((2, 3, 4, 5)), rng=rng)
    assert result.passed and result.max_rel_error < 1e-6, result.report()


def test_builders_are_reproducible_and_saveable(tmp_path, rng):
    a, b = models.cifar_cnn(rng=3), models.cifar_cnn(rng=3)
    for (_, x), (_, y) in zip(a.params(), b.params()):
        np.testing.assert_array_equal(x, y)
    block = Sequential([models.bottleneck_block(4, 2, stride=2, rng=0, name="layer2.0")], name="tiny")
    io.save(block, tmp_path / "tiny.npz")
    loaded = io.load(tmp_path / "tiny.npz")
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded.eval().forward(x), block.eval().forward(x))
    assert loaded[0].name == "layer2.0" and loaded[0].shortcut.name == "downsample"


# --------------------------------------------- the course networks vs PyTorch
def torch_versions():
    """The courses' networks written in PyTorch from their definitions, layer for layer."""
    return {
        "mnist_cnn": (nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                                    nn.MaxPool2d(2), nn.Conv2d(64, 64, 3), nn.Flatten(), nn.Linear(576, 64),
                                    nn.ReLU(), nn.Linear(64, 10)), (1, 28, 28)),
        "cifar_net": (nn.Sequential(nn.Conv2d(3, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                                    nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten(),
                                    nn.Linear(1568, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                    nn.Linear(128, 10)), (3, 32, 32)),
        "simple_cnn": (nn.Sequential(nn.Conv2d(1, 9, 5), nn.Tanh(), nn.Flatten(), nn.Linear(5184, 10)), (1, 28, 28)),
        "pooling_cnn": (nn.Sequential(nn.Conv2d(1, 9, 5), nn.MaxPool2d(2, 2), nn.Tanh(), nn.Flatten(),
                                      nn.Linear(1296, 10)), (1, 28, 28)),
        "cifar_cnn": (nn.Sequential(nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(3, 2), nn.ReLU(),
                                    nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, 1),
                                    nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, 1), nn.Flatten(),
                                    nn.Linear(1024, 64), nn.Linear(64, 10)), (3, 32, 32)),
        "lenet5": (nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                                 nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                                 nn.ReLU(), nn.Linear(84, 10)), (3, 32, 32)),
        "char_cnn": (nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, stride=2), nn.Conv2d(20, 50, 5),
                                   nn.MaxPool2d(2, stride=2), nn.Conv2d(50, 500, 4), nn.ReLU(),
                                   nn.Conv2d(500, 26, 2)), (1, 32, 100)),
    }


@needs_torch
@pytest.mark.parametrize("name", ["mnist_cnn", "cifar_net", "simple_cnn", "pooling_cnn", "cifar_cnn", "lenet5",
                                  "char_cnn"])
def test_course_networks_compute_what_pytorch_computes(name, rng):
    """Parameters copied in order from the PyTorch version (same layouts); same outputs in float64."""
    torch_net, input_shape = torch_versions()[name]
    kwargs = {"in_channels": 3} if name == "lenet5" else {}
    net = getattr(models, name)(dtype=F64, rng=0, **kwargs)
    torch_params = list(torch_net.double().parameters())
    assert len(torch_params) == len(net.params())
    for (_, array), tensor in zip(net.params(), torch_params):
        assert array.shape == tuple(tensor.shape)
        array[...] = rng.standard_normal(array.shape) * 0.1
        tensor.data = torch.from_numpy(array.copy())
    x = rng.standard_normal((2, *input_shape))
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-10, atol=1e-12)
