"""PyTorch state dicts into minidl nets: the key mapping, the errors, and torchvision's models
(random weights, random BatchNorm statistics) giving the same logits in minidl."""
import numpy as np
import pytest

from minidl import io, models
from minidl.layers import FC, BatchNorm, Conv, ReLU, Residual
from minidl.layers import Sequential
from minidl.torch_import import IncompatibleKeys, import_torchvision, torch_keys, torch_state_dict

try:
    import torch
except ImportError:
    torch = None


def tiny_net(dtype=np.float64):
    """conv1 -> bn1 -> ReLU -> a residual block with a named shortcut -> fc (flattening by hand is not needed:
    the keys are all this test looks at until it runs the net)."""
    body = Sequential([Conv(2, 2, 3, padding=1, bias=False, name="conv1", dtype=dtype, rng=0),
                       BatchNorm(2, name="bn1", dtype=dtype)], name="body")
    shortcut = Sequential([Conv(2, 2, 1, bias=False, name="0", dtype=dtype, rng=0)], name="downsample")
    return Sequential([Conv(1, 2, 3, name="conv1", dtype=dtype, rng=0), BatchNorm(2, name="bn1", dtype=dtype),
                       ReLU(name="relu"), Residual(body, shortcut, name="layer1.0"),
                       FC(3, 4, name="fc", dtype=dtype, rng=0)], name="tiny")


TINY_KEYS = {"conv1.weight": (2, 1, 3, 3), "conv1.bias": (2,), "bn1.weight": (2,), "bn1.bias": (2,),
             "bn1.running_mean": (2,), "bn1.running_var": (2,), "layer1.0.conv1.weight": (2, 2, 3, 3),
             "layer1.0.bn1.weight": (2,), "layer1.0.bn1.bias": (2,), "layer1.0.bn1.running_mean": (2,),
             "layer1.0.bn1.running_var": (2,), "layer1.0.downsample.0.weight": (2, 2, 1, 1),
             "fc.weight": (4, 3), "fc.bias": (4,)}


def random_state(keys, rng, dtype=np.float64):
    return {key: rng.standard_normal(shape).astype(dtype) + (2.0 if key.endswith("running_var") else 0.0)
            for key, shape in keys.items()}


# ------------------------------------------------------------- the mapping
def test_keys_are_the_layer_names_by_hand():
    keys = torch_keys(tiny_net())
    assert {key: array.shape for key, array in keys.items()} == TINY_KEYS
    net = tiny_net()
    assert torch_keys(net)["layer1.0.bn1.running_var"] is net[3].body[1].running_var   # the live arrays
    assert set(torch_keys(Conv(3, 4, 5, rng=0))) == {"weight", "bias"}                 # a lone layer: nn.Conv2d's


def test_load_copies_every_array_in_place_with_the_nets_dtype(rng):
    net = tiny_net(np.float32)
    live = torch_keys(net)
    state = random_state(TINY_KEYS, rng)             # float64 values into a float32 net
    state["bn1.num_batches_tracked"] = np.array(7)   # ignored, as minidl's BatchNorm has no use for it
    result = io.load_torch_state_dict(net, state)
    assert result == IncompatibleKeys([], [])
    for key, array in torch_keys(net).items():
        assert array is live[key] and array.dtype == np.float32
        np.testing.assert_allclose(array, state[key], rtol=1e-6)
    np.testing.assert_array_equal(net[3].shortcut[0].weights, state["layer1.0.downsample.0.weight"].astype(np.float32))
    np.testing.assert_array_equal(net[1].gamma, state["bn1.weight"].astype(np.float32))
    np.testing.assert_array_equal(net[1].beta, state["bn1.bias"].astype(np.float32))


def test_torch_state_dict_round_trip(rng):
    net = tiny_net()
    io.load_torch_state_dict(net, random_state(TINY_KEYS, rng))
    exported = torch_state_dict(net)
    other = tiny_net()
    io.load_torch_state_dict(other, exported)
    for key, array in torch_keys(other).items():
        np.testing.assert_array_equal(array, exported[key])
    exported["fc.bias"][0] = 99.0                     # a copy, not the net's array
    assert net[4].bias[0] != 99.0


# ---------------------------------------------------------------- errors
def test_missing_unexpected_and_misshaped_keys_are_named(rng):
    net = tiny_net()
    before = {key: array.copy() for key, array in torch_keys(net).items()}
    state = random_state(TINY_KEYS, rng)
    del state["layer1.0.bn1.running_mean"]
    state["layer1.0.bn9.weight"] = np.ones(2)
    state["fc.weight"] = np.ones((3, 4))              # transposed: (in, out) instead of (out, in)
    with pytest.raises(ValueError) as info:
        io.load_torch_state_dict(net, state)
    message = str(info.value)
    assert "the state dict does not fit the net 'tiny'" in message
    assert "mis-shaped (1):\n    fc.weight: (3, 4) in the state dict, (4, 3) in the net (FC 'fc' parameter weights)" \
        in message
    assert ("missing (in the net, not in the state dict) (1):\n    layer1.0.bn1.running_mean "
            "(BatchNorm 'bn1' buffer running_mean, (2,))") in message
    assert "unexpected (in the state dict, no such array in the net) (1):\n    layer1.0.bn9.weight" in message
    for key, array in torch_keys(net).items():        # nothing was copied
        np.testing.assert_array_equal(array, before[key])


def test_each_kind_of_error_alone(rng):
    state = random_state(TINY_KEYS, rng)
    with pytest.raises(ValueError, match=r"missing .*\n    fc.bias \(FC 'fc' parameter bias, \(4,\)\)"):
        io.load_torch_state_dict(tiny_net(), {k: v for k, v in state.items() if k != "fc.bias"})
    with pytest.raises(ValueError, match=r"unexpected .*\n    classifier.1.weight"):
        io.load_torch_state_dict(tiny_net(), {**state, "classifier.1.weight": np.ones(3)})
    with pytest.raises(ValueError, match=r"mis-shaped .*\n    conv1.bias: \(3,\) in the state dict, \(2,\) in the net"):
        io.load_torch_state_dict(tiny_net(), {**state, "conv1.bias": np.ones(3)})


def test_long_lists_are_cut_short():
    with pytest.raises(ValueError, match=r"missing .* \(14\):(\n    .*){12}\n    \.\.\. and 2 more"):
        io.load_torch_state_dict(tiny_net(), {})


def test_non_strict_allows_missing_and_unexpected_but_not_misshaped(rng):
    state = random_state(TINY_KEYS, rng)
    del state["fc.bias"]
    state["extra.weight"] = np.ones(1)
    net = tiny_net()
    assert io.load_torch_state_dict(net, state, strict=False) == IncompatibleKeys(["fc.bias"], ["extra.weight"])
    np.testing.assert_array_equal(net[4].weights, state["fc.weight"])
    with pytest.raises(ValueError, match="mis-shaped"):
        io.load_torch_state_dict(net, {"fc.weight": np.ones((1, 1))}, strict=False)


def test_other_errors(rng):
    with pytest.raises(TypeError, match="expected a state dict"):
        io.load_torch_state_dict(tiny_net(), [np.ones(2)])
    state = random_state(TINY_KEYS, rng)
    state["bn1.running_var"] = np.array([1.0, np.nan])
    with pytest.raises(ValueError, match="bn1.running_var holds non-finite values"):
        io.load_torch_state_dict(tiny_net(), state)
    twins = Sequential([Conv(1, 1, 1, name="conv", rng=0), Conv(1, 1, 1, name="conv", rng=0)])
    with pytest.raises(ValueError, match=r"Conv 'conv' parameter weights and Conv 'conv' weights both map to "
                                         r"the key 'conv.weight'; give the layers distinct names"):
        torch_keys(twins)


# ------------------------------------------------------- torch and torchvision
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


@pytest.fixture(scope="module")
def torchvision():
    try:
        return import_torchvision()
    except ImportError:
        pytest.skip("torchvision is not installed")


@needs_torch
def test_torch_tensors_are_read_too(rng):
    state = {key: torch.from_numpy(value) for key, value in random_state(TINY_KEYS, rng).items()}
    state["fc.bias"] = state["fc.bias"].to(torch.bfloat16)   # a dtype NumPy does not have
    state["bn1.num_batches_tracked"] = torch.tensor(3)
    net = tiny_net()
    io.load_torch_state_dict(net, state)
    np.testing.assert_array_equal(net[0].weights, state["conv1.weight"].numpy())
    np.testing.assert_array_equal(net[4].bias, state["fc.bias"].float().numpy())


def randomise_batchnorm(model):
    """Give every BatchNorm of a torch model statistics and an affine map away from 0 and 1."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


def compare_logits(torchvision, name, input_size, dtype, num_classes=1000):
    """minidl's builder fed the state dict of torchvision's randomly initialised model:
    (minidl's logits, torch's logits) in eval mode for a batch of two."""
    torch.manual_seed(0)
    model = randomise_batchnorm(getattr(torchvision.models, name)(num_classes=num_classes)).eval()
    net = getattr(models, name)(num_classes=num_classes, rng=0, dtype=dtype)
    state = model.state_dict()
    assert set(torch_keys(net)) == {k for k in state if not k.endswith("num_batches_tracked")}
    io.load_torch_state_dict(net, state)
    x = np.random.default_rng(1).standard_normal((2, 3, input_size, input_size)).astype(dtype)
    if dtype == np.float64:
        model = model.double()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    return net.eval().forward(x), expected, net, model


def assert_close_logits(got, expected, rtol):
    assert got.shape == expected.shape
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=rtol * scale)
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))


@needs_torch
def test_resnet18_gives_torchvisions_logits(torchvision):
    got, expected, net, model = compare_logits(torchvision, "resnet18", 64, np.float32, num_classes=10)
    assert_close_logits(got, expected, 1e-4)
    # and back: minidl's arrays into a fresh torchvision model, which then computes the same
    fresh = torchvision.models.resnet18(num_classes=10).eval()
    fresh.load_state_dict({key: torch.from_numpy(value) for key, value in torch_state_dict(net).items()})
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        assert_close_logits(net.forward(x), fresh(torch.from_numpy(x)).numpy(), 1e-4)


@needs_torch
def test_resnet18_in_float64_agrees_to_rounding(torchvision):
    got, expected, _, _ = compare_logits(torchvision, "resnet18", 32, np.float64, num_classes=10)
    assert_close_logits(got, expected, 1e-11)


@needs_torch
@pytest.mark.slow
def test_resnet50_gives_torchvisions_logits(torchvision):
    got, expected, _, _ = compare_logits(torchvision, "resnet50", 64, np.float32)
    assert_close_logits(got, expected, 1e-4)


@needs_torch
@pytest.mark.slow
def test_alexnet_gives_torchvisions_logits(torchvision):
    """At 63x63, the smallest input AlexNet's features take (the adaptive pool stretches 1x1 to 6x6)."""
    got, expected, net, _ = compare_logits(torchvision, "alexnet", 63, np.float32)
    assert_close_logits(got, expected, 1e-4)
    assert sum(a.size for _, a in net.params()) == 61_100_840
    with pytest.raises(ValueError, match="does not fit"):
        net.forward(np.zeros((1, 3, 62, 62), dtype=np.float32))


@needs_torch
def test_import_torchvision(torchvision):
    assert import_torchvision() is torchvision
    assert callable(torchvision.models.resnet50)
    if torchvision._minidl_stubbed:   # the compiled operators say why they are missing
        with pytest.raises(RuntimeError, match="compiled operators .* are not available"):
            torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)


@needs_torch
@pytest.mark.parametrize("kind,stride", [("basic", 1), ("basic", 2), ("bottleneck", 1), ("bottleneck", 2)])
def test_resnet_blocks_match_torchvisions_blocks(torchvision, kind, stride, rng):
    """A block alone, as the root: its state-dict keys are those of torchvision's block (fast, float64)."""
    resnet = torchvision.models.resnet
    torch.manual_seed(0)
    if kind == "basic":
        out_channels = 6
        block = models.basic_block(4, out_channels, stride, dtype=np.float64, rng=0)
        downsample = torch.nn.Sequential(resnet.conv1x1(4, out_channels, stride), torch.nn.BatchNorm2d(out_channels))
        model = resnet.BasicBlock(4, out_channels, stride, downsample)
    else:
        out_channels = 4 * 3
        block = models.bottleneck_block(4, 3, stride, dtype=np.float64, rng=0)
        downsample = torch.nn.Sequential(resnet.conv1x1(4, out_channels, stride), torch.nn.BatchNorm2d(out_channels))
        model = resnet.Bottleneck(4, 3, stride, downsample)
    model = randomise_batchnorm(model).double().eval()
    io.load_torch_state_dict(block, model.state_dict())
    x = rng.standard_normal((2, 4, 7, 6))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(block.eval().forward(x), expected, rtol=1e-10, atol=1e-12)
