"""Optimiser updates by hand, schedules, training, checkpoints and exact resume."""
import gc
import os
import re

import numpy as np
import pytest

from minidl import io
from minidl.io import atomic_savez, load_npz
from minidl.layers import (FC, BatchNorm, Conv, Dropout, Flatten, L2Regularizer, Layer, MaxPool, RegularizedLoss,
                           ReLU, SoftmaxCrossEntropy)
from minidl.models import lab_net
from minidl.layers import Sequential
from minidl.optim import SGD, Adam, EpochPolicy
from minidl.trainer import Callback, NonFiniteLossError, Trainer, evaluate


# ------------------------------------------------------------------ SGD by hand
W0 = [1.0, -2.0]
G1 = [0.5, 0.5]
G2 = [-1.0, 2.0]


def two_steps(optimizer):
    w = np.array(W0)
    live = w
    optimizer.step([(w, np.array(G1))])
    first = w.copy()
    optimizer.step([(w, np.array(G2))])
    assert w is live, "the update must be in place"
    return first, w


@pytest.mark.parametrize("kwargs,expected_1,expected_2", [
    # w1 = w0 - 0.1 g1;  w2 = w1 - 0.1 g2
    ({}, [0.95, -2.05], [1.05, -2.25]),
    # v1 = g1 = [.5, .5];  v2 = 0.9 v1 + g2 = [-.55, 2.45];  w2 = w1 - 0.1 v2
    ({"momentum": 0.9}, [0.95, -2.05], [1.005, -2.295]),
    # w1 = w0 - 0.1 (g1 + 0.9 v1) = w0 - 0.1 * .95;  w2 = w1 - 0.1 (g2 + 0.9 v2) = w1 - 0.1 [-1.495, 4.205]
    ({"momentum": 0.9, "nesterov": True}, [0.905, -2.095], [1.0545, -2.5155]),
    # g1' = g1 + 0.01 w0 = [.51, .48];  g2' = g2 + 0.01 w1 = [-.99051, 1.97952]
    ({"weight_decay": 0.01}, [0.949, -2.048], [1.048051, -2.245952]),
    # momentum and decay: v1 = [.51, .48]; g2' = [-.99051, 1.97952]; v2 = .5 v1 + g2' = [-.73551, 2.21952]
    ({"momentum": 0.5, "weight_decay": 0.01}, [0.949, -2.048], [1.022551, -2.269952]),
])
def test_sgd_updates_by_hand(kwargs, expected_1, expected_2):
    first, second = two_steps(SGD(0.1, **kwargs))
    np.testing.assert_allclose(first, expected_1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(second, expected_2, rtol=0, atol=1e-12)


def test_sgd_sums_the_gradients_of_a_parameter_listed_twice():
    w = np.array(W0)
    SGD(0.1).step([(w, np.array(G1)), (w, np.array(G2))])    # data gradient + a regularizer's
    np.testing.assert_allclose(w, [1.05, -2.25], atol=1e-12)


def test_sgd_keeps_the_parameter_dtype():
    w = np.ones(3, dtype=np.float32)
    SGD(0.5).step([(w, np.full(3, 0.25))])                    # a float64 gradient
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w, np.full(3, 0.875, dtype=np.float32))


def test_epoch_policy_values():
    policy = EpochPolicy({1: .1, 3: .01, 5: .001, 7: .0001})
    assert [policy(e) for e in range(1, 11)] == [.1, .1, .01, .01, .001, .001, .0001, .0001, .0001, .0001]
    with pytest.raises(ValueError, match="epoch 1"):
        EpochPolicy({2: .1})


# ------------------------------------------------------------------ fixtures
def bars(n, rng, size=6):
    """1 x size x size images: class 0 a horizontal bar, class 1 a vertical bar, plus noise."""
    x = 0.1 * rng.standard_normal((n, 1, size, size))
    y = rng.integers(0, 2, n)
    pos = rng.integers(1, size - 1, n)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, pos[i], :] += 1.0
        else:
            x[i, 0, :, pos[i]] += 1.0
    return x.astype(np.float32), y


def tiny_cnn(seed=0):
    return Sequential([Conv(1, 4, 3, padding="same", name="conv", rng=seed), MaxPool(2, name="pool"),
                       ReLU(), Flatten(), FC(4 * 3 * 3, 2, name="fc", rng=seed + 1)])


def small_lab_net(seed):
    return lab_net(image_size=8, conv1_width=2, conv2_width=3, fc_width=8, num_classes=3, rng=seed)


def lab_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].sum(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 0, :, :4].sum(axis=(1, 2)) > 0)
    return x, y


def make_trainer(seed=0, path=None, callbacks=(), net=None, transform=None):
    net = net if net is not None else small_lab_net(seed)
    loss = RegularizedLoss(SoftmaxCrossEntropy(), [L2Regularizer(net[0].weights, 1e-3)])
    return Trainer(net, loss, SGD(0.05, momentum=0.9), lr_schedule=EpochPolicy({1: 0.05, 2: 0.02}),
                   batch_size=8, seed=123, callbacks=callbacks, checkpoint_path=path, transform=transform)


def params_of(trainer):
    return [arr.copy() for _, arr in trainer.net.params()]


def assert_bit_identical(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)


def trainer_state(path):
    """The trainer's part of a checkpoint file, read without loading it."""
    return load_npz(path)[1]["checkpoint"]["trainer"]


def without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


class StopAfter(Callback):
    """Raise KeyboardInterrupt (as Ctrl-C would) after ``k`` steps of this run."""

    def __init__(self, k):
        self.k, self.steps = k, 0

    def on_step_end(self, trainer, info):
        self.steps += 1
        if self.steps == self.k:
            raise KeyboardInterrupt


# ------------------------------------------------------------------ training
def test_training_a_tiny_cnn_reduces_the_loss():
    rng = np.random.default_rng(0)
    x, y = bars(64, rng)
    x_val, y_val = bars(32, rng)
    net = tiny_cnn()
    before = evaluate(net, SoftmaxCrossEntropy(), x_val, y_val)
    trainer = Trainer(net, SoftmaxCrossEntropy(), SGD(0.1, momentum=0.9), batch_size=16, seed=0)
    history = trainer.fit(x, y, epochs=6, x_val=x_val, y_val=y_val)
    assert len(history) == 6 and [r["epoch"] for r in history] == list(range(1, 7))
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < 0.5 * before["loss"]
    assert history[-1]["val_accuracy"] >= 0.9


def test_evaluate_by_hand():
    net = Sequential([FC(2, 2, dtype=np.float64, rng=0)])
    net[0].weights[...] = np.eye(2)
    x = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    result = evaluate(net, SoftmaxCrossEntropy(), x, np.array([0, 0, 0]), batch_size=2)
    np.testing.assert_array_equal(result["predictions"], [0, 1, 0])
    assert result["accuracy"] == pytest.approx(2 / 3)
    expected = np.mean([np.log(1 + np.exp(-2)), np.log(1 + np.exp(1)), np.log(1 + np.exp(-3))])
    assert result["loss"] == pytest.approx(expected, rel=1e-12)


def test_the_last_batch_may_be_smaller():
    class RecordingNet(Sequential):
        def forward(self, x):
            self.sizes.append(len(x))
            return super().forward(x)

    base = tiny_cnn()
    net = RecordingNet(base.layers)
    net.sizes = []
    x, y = bars(70, np.random.default_rng(1))
    Trainer(net, SoftmaxCrossEntropy(), SGD(0.01), batch_size=16).fit(x, y, epochs=1)
    assert net.sizes == [16, 16, 16, 16, 6]


def test_one_hot_targets_train_like_labels():
    x, y = bars(32, np.random.default_rng(2))
    results = []
    for targets in (y, np.eye(2)[y]):
        trainer = Trainer(tiny_cnn(), SoftmaxCrossEntropy(), SGD(0.1), batch_size=8, seed=0)
        trainer.fit(x, targets, epochs=1)
        results.append((params_of(trainer), trainer.history[0]["train_accuracy"]))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert results[0][1] == results[1][1]


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_save_load_roundtrip(tmp_path):
    x, y = lab_data()
    trainer = make_trainer(seed=0)
    trainer.fit(x, y, epochs=1)
    path = tmp_path / "ckpt.npz"
    trainer.save_checkpoint(path)
    other = make_trainer(seed=99)                       # different initial weights
    meta = other.load_checkpoint(path)
    assert meta["epoch"] == 1 and other.epoch == 1 and other.global_step == trainer.global_step == 5
    assert_bit_identical(params_of(other), params_of(trainer))
    params = [a for _, a in trainer.net.params()]
    other_params = [a for _, a in other.net.params()]
    state, other_state = trainer.optimizer.state_dict(params), other.optimizer.state_dict(other_params)
    assert state.keys() == other_state.keys() and any(k.endswith("velocity") for k in state)
    for key in state:
        np.testing.assert_array_equal(state[key], other_state[key])
    assert other.rng.bit_generator.state == trainer.rng.bit_generator.state
    assert other.history == trainer.history


def test_resume_after_an_epoch_is_bit_identical(tmp_path):
    x, y = lab_data()
    straight = make_trainer()
    straight.fit(x, y, epochs=2)

    path = tmp_path / "ckpt.npz"
    first = make_trainer(path=path)
    first.fit(x, y, epochs=1)
    resumed = make_trainer(seed=7)
    resumed.load_checkpoint(path)
    resumed.fit(x, y, epochs=2)
    assert_bit_identical(params_of(resumed), params_of(straight))
    assert without_seconds(resumed.history) == without_seconds(straight.history)
    assert resumed.global_step == straight.global_step == 10


@pytest.mark.parametrize("k", [2, 7])        # inside epoch 1, inside epoch 2 (5 steps per epoch)
def test_resume_from_the_middle_of_an_epoch_is_bit_identical(tmp_path, k):
    x, y = lab_data()
    straight = make_trainer()
    straight.fit(x, y, epochs=2)

    path = tmp_path / "ckpt.npz"
    interrupted = make_trainer(path=path, callbacks=[StopAfter(k)])
    interrupted.fit(x, y, epochs=2)
    assert interrupted.stopped_by_user
    assert interrupted.step_in_epoch == k % 5 and interrupted.global_step == k
    saved = trainer_state(path)
    assert saved["step_in_epoch"] == k % 5 and saved["epoch"] == k // 5

    resumed = make_trainer(seed=7)
    resumed.load_checkpoint(path)
    assert resumed.step_in_epoch == k % 5
    resumed.fit(x, y, epochs=2)
    assert_bit_identical(params_of(resumed), params_of(straight))
    assert without_seconds(resumed.history) == without_seconds(straight.history)


@pytest.mark.filterwarnings("error")      # also: reading a corrupt file leaks no file handle
def test_a_checkpoint_for_another_network_is_refused(tmp_path):
    x, y = lab_data()
    trainer = make_trainer()
    trainer.fit(x, y, epochs=1)
    trainer.save_checkpoint(tmp_path / "ckpt.npz")
    other = Trainer(tiny_cnn(), SoftmaxCrossEntropy(), SGD(0.1))
    with pytest.raises(ValueError, match="different architecture"):
        other.load_checkpoint(tmp_path / "ckpt.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(ValueError, match="broken.npz"):
        other.load_checkpoint(tmp_path / "broken.npz")
    gc.collect()


def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path):
    x, y = lab_data()
    path = tmp_path / "ckpt.npz"
    trainer = Trainer(small_lab_net(0), SoftmaxCrossEntropy(), SGD(0.05), batch_size=8, seed=1,
                      checkpoint_path=path)
    trainer.fit(x, y, epochs=1)
    saved_bytes = path.read_bytes()
    saved_params = params_of(trainer)
    trainer.optimizer.lr = 1e30                    # diverges within a few steps
    with pytest.raises(NonFiniteLossError) as info, np.errstate(over="ignore", invalid="ignore"):
        trainer.fit(x, y, epochs=20)
    message = str(info.value)
    match = re.search(r"at step (\d+) of epoch (\d+) \(global step (\d+)\)", message)
    assert match, message
    step, epoch, global_step = map(int, match.groups())
    assert epoch == trainer.epoch + 1 and step == trainer.step_in_epoch + 1
    assert global_step == trainer.global_step + 1 and epoch >= 2
    assert "checkpoint" in message
    assert path.read_bytes() == saved_bytes
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]
    # the checkpoint still holds the last good state
    fresh = Trainer(small_lab_net(5), SoftmaxCrossEntropy(), SGD(0.05), batch_size=8, seed=1)
    fresh.load_checkpoint(path)
    assert_bit_identical(params_of(fresh), saved_params)


def test_a_failing_write_leaves_the_old_file_and_no_temporary_files(tmp_path, monkeypatch):
    x, y = lab_data()
    path = tmp_path / "ckpt.npz"
    trainer = make_trainer(path=path)
    trainer.fit(x, y, epochs=1)
    old_bytes = path.read_bytes()
    trainer.checkpoint_path = None
    trainer.fit(x, y, epochs=2)                    # the state moves on; the next write fails

    def half_written_then_full_disk(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", half_written_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        trainer.save_checkpoint(path)
    with pytest.raises(OSError):
        atomic_savez(tmp_path / "other.npz", {"a": np.ones(2)})
    assert path.read_bytes() == old_bytes
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]
    monkeypatch.undo()
    assert trainer_state(path)["epoch"] == 1


def test_ctrl_c_saves_a_checkpoint_at_a_step_boundary(tmp_path):
    x, y = lab_data()
    path = tmp_path / "ckpt.npz"
    trainer = make_trainer(path=path, callbacks=[StopAfter(3)])
    history = trainer.fit(x, y, epochs=2)
    assert trainer.stopped_by_user and history == []
    meta = trainer_state(path)
    assert (meta["epoch"], meta["step_in_epoch"], meta["global_step"]) == (0, 3, 3)


# ------------------------------------------------------- the batch transform hook
def flip_left_right(x, rng):
    return x[..., ::-1]


def random_flip(x, rng):
    """Each image mirrored left-right with probability 1/2."""
    out = x.copy()
    flip = rng.random(len(x)) < 0.5
    out[flip] = x[flip][..., ::-1]
    return out


def test_the_transform_is_applied_to_every_training_batch_and_nothing_else():
    """Training with a left-right flip equals training on flipped images, validation unchanged."""
    x, y = lab_data()
    x_val, y_val = lab_data(n=16, seed=1)
    with_hook = make_trainer(transform=flip_left_right)
    with_hook.fit(x, y, epochs=2, x_val=x_val, y_val=y_val)
    on_flipped = make_trainer()
    on_flipped.fit(np.ascontiguousarray(x[..., ::-1]), y, epochs=2, x_val=x_val, y_val=y_val)
    assert_bit_identical(params_of(with_hook), params_of(on_flipped))
    assert without_seconds(with_hook.history) == without_seconds(on_flipped.history)
    untransformed = make_trainer()
    untransformed.fit(x, y, epochs=2)
    assert not np.array_equal(params_of(untransformed)[0], params_of(with_hook)[0])


def test_the_transform_draws_from_the_trainers_own_generator():
    x, y = lab_data()
    seen = []

    def recording(batch, rng):
        seen.append((batch.copy(), rng))
        return random_flip(batch, rng)

    trainer = make_trainer(transform=recording)
    shuffle_state = trainer.rng.bit_generator.state
    trainer.fit(x, y, epochs=1)
    assert len(seen) == 5 and all(rng is trainer.transform_rng for _, rng in seen)
    assert trainer.transform_rng is not trainer.rng
    # the shuffle is the one a trainer without a transform makes: the draws do not disturb it
    plain = make_trainer()
    assert plain.rng.bit_generator.state == shuffle_state
    order = np.random.default_rng(123).permutation(len(x))
    np.testing.assert_array_equal(seen[0][0], x[order[:8]])
    # the same seed draws the same flips
    again = make_trainer(transform=random_flip)
    again.fit(x, y, epochs=1)
    other = make_trainer(transform=random_flip)
    other.fit(x, y, epochs=1)
    assert_bit_identical(params_of(again), params_of(other))


def test_a_transform_that_returns_the_wrong_batch_is_refused():
    x, y = lab_data()
    trainer = make_trainer(transform=lambda batch, rng: batch[:-1])
    with pytest.raises(ValueError, match="transform must return an array of 8 inputs"):
        trainer.fit(x, y, epochs=1)


@pytest.mark.parametrize("k", [3, 8])        # inside epoch 1, inside epoch 2 (5 steps per epoch)
def test_resume_with_random_augmentation_is_bit_identical(tmp_path, k):
    x, y = lab_data()
    straight = make_trainer(transform=random_flip)
    straight.fit(x, y, epochs=2)

    path = tmp_path / "ckpt.npz"
    make_trainer(path=path, callbacks=[StopAfter(k)], transform=random_flip).fit(x, y, epochs=2)
    resumed = make_trainer(seed=7, transform=random_flip)
    resumed.transform_rng = np.random.default_rng(99)   # whatever it held is replaced by the saved state
    resumed.load_checkpoint(path)
    resumed.fit(x, y, epochs=2)
    assert_bit_identical(params_of(resumed), params_of(straight))
    assert without_seconds(resumed.history) == without_seconds(straight.history)


def dropout_net(seed):
    return Sequential([Conv(1, 2, 3, padding=1, name="conv", rng=seed), ReLU(), Dropout(0.5, rng=seed + 100),
                       Flatten(), FC(2 * 8 * 8, 3, name="fc", rng=seed + 1)])


@pytest.mark.parametrize("k", [3, 7])
def test_resume_with_dropout_is_bit_identical(tmp_path, k):
    x, y = lab_data()
    straight = make_trainer(net=dropout_net(0))
    straight.fit(x, y, epochs=2)

    path = tmp_path / "ckpt.npz"
    make_trainer(net=dropout_net(0), path=path, callbacks=[StopAfter(k)]).fit(x, y, epochs=2)
    resumed = make_trainer(net=dropout_net(5))          # other weights and another dropout seed
    resumed.load_checkpoint(path)
    resumed.fit(x, y, epochs=2)
    assert_bit_identical(params_of(resumed), params_of(straight))


def test_a_checkpoint_is_a_model_file_with_the_training_state(tmp_path):
    x, y = lab_data()
    trainer = make_trainer()
    trainer.fit(x, y, epochs=1)
    trainer.save_checkpoint(tmp_path / "ckpt.npz")
    net = io.load(tmp_path / "ckpt.npz")
    np.testing.assert_array_equal(net.eval().forward(x), trainer.net.eval().forward(x))
    io.save(trainer.net, tmp_path / "model.npz")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        make_trainer().load_checkpoint(tmp_path / "model.npz")
    adam = Trainer(small_lab_net(0), SoftmaxCrossEntropy(), Adam(0.01))
    before = params_of(adam)
    with pytest.raises(ValueError, match="SGD optimiser state, this trainer's optimiser is Adam"):
        adam.load_checkpoint(tmp_path / "ckpt.npz")
    assert_bit_identical(params_of(adam), before)


# ---------------------------------------------------------- a non-finite loss
class NaNAt(Layer):
    """Passes x through, except that its ``k``-th training forward returns NaNs."""

    def __init__(self, k):
        super().__init__()
        self.k, self.calls = k, 0

    def forward(self, x):
        self.calls += self.training
        return x * np.nan if self.training and self.calls == self.k else x

    def backward_inputs(self, grad_out):
        return grad_out


class Snapshot(Callback):
    """Copies of the parameters, buffers and optimiser state after step ``k``."""

    def __init__(self, k):
        self.k = k

    def on_step_end(self, trainer, info):
        if info["global_step"] == self.k:
            net, params = trainer.net, [a for _, a in trainer.net.params()]
            self.params = [a.copy() for _, a in net.params()]
            self.buffers = [a.copy() for _, a in net.buffers()]
            self.optim = {k: np.array(v, copy=True) for k, v in trainer.optimizer.state_dict(params).items()}


@pytest.mark.parametrize("k", [1, 7])
def test_a_non_finite_loss_leaves_parameters_buffers_and_optimiser_state_as_they_were(k):
    """The step whose loss is NaN changes nothing: not the parameters, not the optimiser's
    velocities, not the running statistics its forward pass had already updated."""
    x, y = lab_data()
    net = Sequential([Conv(1, 3, 3, padding=1, rng=0), BatchNorm(3), ReLU(), NaNAt(k), Flatten(),
                      FC(3 * 8 * 8, 3, rng=1)])
    snapshot = Snapshot(k - 1)
    trainer = Trainer(net, SoftmaxCrossEntropy(), SGD(0.05, momentum=0.9), batch_size=8, seed=0,
                      callbacks=[snapshot])
    if k == 1:
        snapshot.on_step_end(trainer, {"global_step": 0})
    with pytest.raises(NonFiniteLossError, match=f"global step {k}"):
        trainer.fit(x, y, epochs=3)
    assert trainer.global_step == k - 1
    assert_bit_identical(params_of(trainer), snapshot.params)
    assert_bit_identical([a for _, a in net.buffers()], snapshot.buffers)
    params = [a for _, a in net.params()]
    optim = trainer.optimizer.state_dict(params)
    assert optim.keys() == snapshot.optim.keys()
    assert_bit_identical([optim[key] for key in sorted(optim)], [snapshot.optim[key] for key in sorted(optim)])
