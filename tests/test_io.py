"""Model files (minidl.io): a saved network comes back bit for bit; files of another
architecture or damaged files are refused with a ValueError that says why."""
import json
import zipfile

import numpy as np
import pytest

from minidl import io
from minidl.layers import (FC, AvgPool, BatchNorm, Conv, Dropout, Flatten, GlobalAvgPool, Layer, LeakyReLU,
                           LocalResponseNorm, MaxPool, ReLU, Residual, Sigmoid, SoftmaxCrossEntropy, Tanh,
                           resnet_block)
from minidl.models import lab_net
from minidl.layers import Sequential
from minidl.optim import SGD
from minidl.trainer import Trainer


def toolbox_net(rng, dtype=np.float32):
    """Every layer type in one network, containers nested three deep."""
    return Sequential([
        Conv(1, 4, 3, padding="same", dilation=1, name="conv0", dtype=dtype, rng=rng),
        BatchNorm(4, name="bn0", dtype=dtype),
        LeakyReLU(0.05),
        LocalResponseNorm(3, alpha=0.5, beta=0.75, k=2.0),
        MaxPool(2, stride=2, padding=1),
        resnet_block(4, 4, dtype=dtype, rng=rng, name="block1"),
        resnet_block(4, 6, stride=2, dtype=dtype, rng=rng, name="block2"),
        Residual(Sequential([Conv(6, 6, 3, padding=2, dilation=2, dtype=dtype, rng=rng), Tanh()]),
                 relu=False, name="dilated"),
        AvgPool(3, stride=1, padding=1),
        Sequential([GlobalAvgPool(), Dropout(0.25, rng=0)], name="head"),
        FC(6, 5, dtype=dtype, rng=rng),
        Sigmoid(),
        FC(5, 3, bias=False, dtype=dtype, rng=rng),
    ], name="toolbox")


def trained(net, rng, steps=3):
    """A few SGD steps, so parameters and running statistics are far from their initial values."""
    x = rng.standard_normal((8, 1, 9, 9)).astype(net.params()[0][1].dtype)
    y = rng.integers(0, 3, size=8)
    loss, opt = SoftmaxCrossEntropy(), SGD(0.1, momentum=0.9)
    for _ in range(steps):
        logits = net.forward(x)
        opt.step(net.backward(loss.backward_inputs(logits, y)))
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_reproduces_outputs_bit_for_bit(rng, tmp_path, dtype):
    net = toolbox_net(rng, dtype)
    x = trained(net, rng)
    net.eval()
    path = tmp_path / "model.npz"
    io.save(net, path)
    loaded = io.load(path)
    assert type(loaded) is Sequential and repr(loaded) == repr(net)
    assert not loaded.training and not loaded[1].training and not loaded[5].body[1].training
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))
    for (name, a), (name2, b) in zip(net.params() + net.buffers(), loaded.params() + loaded.buffers()):
        assert name == name2 and a.dtype == b.dtype == dtype and a is not b
        np.testing.assert_array_equal(a, b)
    # the running statistics came back too, not the initial zeros and ones
    assert not np.array_equal(loaded[1].running_var, np.ones(4))


def test_loaded_net_trains_like_the_original(rng, tmp_path):
    """In training mode (batch statistics, no dropout randomness) the two nets stay identical step by step."""
    net = Sequential([Conv(1, 3, 3, padding=1, bias=False, rng=rng), BatchNorm(3), ReLU(),
                      resnet_block(3, 3, rng=rng), Flatten(), FC(3 * 9 * 9, 3, rng=rng)])
    x = trained(net, rng)
    io.save(net, tmp_path / "m.npz")
    other = io.load(tmp_path / "m.npz")
    assert other.training
    y = rng.integers(0, 3, size=8)
    loss = SoftmaxCrossEntropy()
    opt_a, opt_b = SGD(0.05), SGD(0.05)
    for _ in range(2):
        out_a, out_b = net.forward(x), other.forward(x)
        np.testing.assert_array_equal(out_a, out_b)
        opt_a.step(net.backward(loss.backward_inputs(out_a, y)))
        opt_b.step(other.backward(loss.backward_inputs(out_b, y)))
    for (_, a), (_, b) in zip(net.buffers(), other.buffers()):
        np.testing.assert_array_equal(a, b)


def test_load_into_an_identical_architecture(rng, tmp_path):
    net = toolbox_net(np.random.default_rng(1))
    x = trained(net, rng)
    net.eval()
    io.save(net, tmp_path / "m.npz")
    fresh = toolbox_net(np.random.default_rng(2)).eval()        # other initial weights
    assert not np.array_equal(fresh.forward(x), net.forward(x))
    assert io.load_into(fresh, tmp_path / "m.npz") is fresh
    np.testing.assert_array_equal(fresh.forward(x), net.forward(x))


def test_the_header_is_a_readable_json_tree(rng, tmp_path):
    io.save(lab_net(rng=rng), tmp_path / "lab.npz")
    with zipfile.ZipFile(tmp_path / "lab.npz") as archive:
        names = set(archive.namelist())
        meta = json.loads(np.lib.format.read_array(archive.open("__meta__.npy")).tobytes())
    assert meta["format"] == "minidl-model-1"
    arch = meta["architecture"]
    assert arch["type"] == "Sequential" and len(arch["children"]["layers"]) == 10
    assert arch["children"]["layers"][0] == {
        "type": "Conv", "children": {},
        "config": {"in_channels": 1, "out_channels": 16, "kernel_size": [5, 5], "stride": [1, 1],
                   "padding": "same", "dilation": [1, 1], "bias": True, "name": "conv1", "dtype": "float32"}}
    assert {f"param.{i}.npy" for i in range(8)} <= names


@pytest.mark.parametrize("change", ["stride", "kernel", "extra layer", "dtype", "relu", "shortcut", "lrn size"])
def test_a_different_architecture_is_refused(rng, tmp_path, change):
    def build(**kw):
        r = np.random.default_rng(0)
        layers = [Conv(1, 4, kw.get("kernel", 3), stride=kw.get("stride", 1), padding=1, dtype=kw.get("dtype", np.float32),
                       rng=r),
                  LocalResponseNorm(kw.get("lrn", 3)),
                  Residual(Conv(4, 4, 3, padding=1, dtype=kw.get("dtype", np.float32), rng=r),
                           shortcut=Conv(4, 4, 1, dtype=kw.get("dtype", np.float32), rng=r) if kw.get("shortcut") else None,
                           relu=kw.get("relu", True))]
        if kw.get("extra"):
            layers.append(ReLU())
        return Sequential(layers)

    io.save(build(), tmp_path / "m.npz")
    other = {"stride": dict(stride=2), "kernel": dict(kernel=5), "extra layer": dict(extra=True),
             "dtype": dict(dtype=np.float64), "relu": dict(relu=False), "shortcut": dict(shortcut=True),
             "lrn size": dict(lrn=5)}[change]
    net = build(**other)
    before = [a.copy() for _, a in net.params()]
    with pytest.raises(ValueError, match="different architecture"):
        io.load_into(net, tmp_path / "m.npz")
    for saved, (_, a) in zip(before, net.params()):
        np.testing.assert_array_equal(saved, a)   # nothing half-loaded


def test_damaged_files_are_refused(rng, tmp_path):
    path = tmp_path / "m.npz"
    io.save(toolbox_net(rng), path)
    data = path.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt|not a readable"):
        io.load(truncated)

    # flip bytes inside the stored data of the largest array: the zip checksum catches it
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    flipped = bytearray(data)
    middle = info.header_offset + 30 + len(info.filename) + info.file_size // 2
    flipped[middle] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupt"):
        io.load(bad)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a model at all" * 10)
    with pytest.raises(ValueError):
        io.load(garbage)
    with pytest.raises(ValueError):
        io.load(tmp_path / "missing.npz")

    plain = tmp_path / "plain.npz"
    np.savez(plain, weights=np.zeros(3))
    with pytest.raises(ValueError, match="not a minidl model file"):
        io.load(plain)


def test_a_training_checkpoint_loads_as_a_model_file(rng, tmp_path):
    """A checkpoint is a model file plus the training state: io.load gives the trained net."""
    net = lab_net(conv1_width=2, conv2_width=2, fc_width=4, rng=rng)
    trainer = Trainer(net, SoftmaxCrossEntropy(), SGD(0.1, momentum=0.9), batch_size=4)
    x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
    trainer.fit(x, rng.integers(0, 10, 8), epochs=1)
    trainer.save_checkpoint(tmp_path / "ckpt.npz")
    loaded = io.load(tmp_path / "ckpt.npz")
    assert repr(loaded) == repr(net)
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))
    fresh = io.load_into(lab_net(conv1_width=2, conv2_width=2, fc_width=4, rng=1), tmp_path / "ckpt.npz")
    np.testing.assert_array_equal(fresh.forward(x), net.forward(x))
    arrays, meta = io.load_npz(tmp_path / "ckpt.npz")
    assert meta["format"] == io.FORMAT and meta["checkpoint"]["optimizer"] == "SGD"
    assert meta["checkpoint"]["trainer"]["global_step"] == 2
    assert {f"optim.{i}.velocity" for i in range(8)} <= set(arrays)


def test_a_checkpoint_keeps_the_state_of_every_dropout_generator(tmp_path):
    """Layers that share one generator have it saved once; restoring sets the shared one."""
    shared = np.random.default_rng(3)
    net = Sequential([FC(4, 4, rng=0), Dropout(0.5, rng=shared), Sequential([Dropout(0.3, rng=1)]),
                      Dropout(0.2, rng=shared)])
    trainer = Trainer(net, SoftmaxCrossEntropy(), SGD(0.1), batch_size=4)
    x = np.ones((8, 4), dtype=np.float32)
    trainer.fit(x, np.zeros(8, dtype=np.int64), epochs=1)
    trainer.save_checkpoint(tmp_path / "ckpt.npz")
    expected = [net[1].rng.random(5), net[2][0].rng.random(5)]
    _, meta = io.load_npz(tmp_path / "ckpt.npz")
    assert len(meta["checkpoint"]["layer_generators"]) == 2
    other_shared = np.random.default_rng(7)
    other = Sequential([FC(4, 4, rng=0), Dropout(0.5, rng=other_shared), Sequential([Dropout(0.3, rng=8)]),
                        Dropout(0.2, rng=other_shared)])
    Trainer(other, SoftmaxCrossEntropy(), SGD(0.1)).load_checkpoint(tmp_path / "ckpt.npz")
    np.testing.assert_array_equal(other[1].rng.random(5), expected[0])
    np.testing.assert_array_equal(other[2][0].rng.random(5), expected[1])
    without = Sequential([FC(4, 4, rng=0), Dropout(0.5), Sequential([Dropout(0.3)]), Dropout(0.2)])
    with pytest.raises(ValueError, match="2 random generators in the checkpoint, 3 in the net"):
        Trainer(without, SoftmaxCrossEntropy(), SGD(0.1)).load_checkpoint(tmp_path / "ckpt.npz")


def test_missing_array_is_reported(rng, tmp_path):
    net = Sequential([FC(3, 2, rng=rng)])
    io.save(net, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "param.1"}
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match="missing"):
        io.load(tmp_path / "cut.npz")


class Scale(Layer):
    """A user's layer: y = factor * x."""

    def __init__(self, factor, name=None):
        super().__init__(name)
        self.factor = factor

    def forward(self, x):
        return self.factor * x

    def backward_inputs(self, grad_out):
        return self.factor * grad_out

    def config(self):
        return {"factor": self.factor, "name": self.name}


def test_user_layers_need_registering(rng, tmp_path):
    net = Sequential([FC(3, 2, rng=rng), Scale(2.5)])
    with pytest.raises(ValueError, match="register"):
        io.save(net, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    io.register(Scale)
    io.save(net, tmp_path / "m.npz")
    x = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(io.load(tmp_path / "m.npz").forward(x), net.forward(x))
    with pytest.raises(ValueError, match="taken"):
        io.register(type("Scale", (Layer,), {"__module__": "another_package.layers"}))


def test_a_redefined_user_layer_replaces_its_registration(rng, tmp_path):
    """Running a notebook cell again (or reloading a module) defines a new class object of the
    same module and qualified name: it is registered in place of the old one, and files load with it."""
    def define():
        class Twice(Layer):
            def forward(self, x):
                return 2 * x

            def backward_inputs(self, grad_out):
                return 2 * grad_out
        return Twice

    first, second = define(), define()
    assert first is not second and first.__qualname__ == second.__qualname__
    io.register(first)
    io.register(second)
    io.save(Sequential([second()]), tmp_path / "m.npz")
    assert type(io.load(tmp_path / "m.npz").layers[0]) is second


def test_unknown_type_in_a_file(rng, tmp_path):
    net = Sequential([FC(3, 2, rng=rng)])
    io.save(net, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("__meta__").tobytes())
    meta["architecture"]["children"]["layers"][0]["type"] = "Transformer"
    from minidl.io import atomic_savez
    atomic_savez(tmp_path / "odd.npz", arrays, meta)
    with pytest.raises(ValueError, match="unknown layer type 'Transformer'"):
        io.load(tmp_path / "odd.npz")
