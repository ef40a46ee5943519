"""The training scripts' library code on a small synthetic digit task the test makes itself."""
import json
import os
import types

import numpy as np
import pytest

import minidl.runs as runs
from minidl.runs import RunConfig, l2_sweep, parse_lr_policy, train_run


def synthetic_digits(n_train=600, n_val=100, n_test=200, seed=0):
    """28x28 images whose class (0..9) is which of ten horizontal bands is bright, plus noise."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = rng.integers(0, 10, size=n)
        x = rng.normal(0, 0.3, size=(n, 1, 28, 28)).astype(np.float32)
        for i, c in enumerate(labels):
            x[i, 0, 2 + 2 * c:4 + 2 * c, 4:24] += 1.5
        return x, labels.astype(np.int64)

    train_x, train_y = make(n_train)
    val_x, val_y = make(n_val)
    test_x, test_y = make(n_test)
    mean = float(train_x.mean())
    return types.SimpleNamespace(train_x=train_x - mean, train_y=train_y, val_x=val_x - mean, val_y=val_y,
                                 test_x=test_x - mean, test_y=test_y, mean=mean)


def small_config(tmp_path, **kw):
    base = dict(out=str(tmp_path / "run"), epochs=2, batch_size=20, conv1_width=4, conv2_width=8, fc_width=32,
                filter_every=10, progress=False, lr_policy={1: 0.1, 2: 0.01}, eval_batch_size=64)
    base.update(kw)
    return RunConfig(**base)


def quiet(*args, **kwargs):
    """A log function that drops the messages."""


def test_train_run_writes_every_artifact_and_learns(tmp_path):
    data = synthetic_digits()
    result = train_run(small_config(tmp_path), data=data, log=quiet)
    out = tmp_path / "run"
    for name in ("config.json", "checkpoint.npz", "training_plot.png", "metrics.json", "worst_test.png",
                 "model.npz"):
        assert (out / name).is_file(), name
    filters = sorted(os.listdir(out / "filters"))
    # initialisation + every 10 steps of 30 per epoch + each epoch end (which coincides with step 30)
    assert filters[0] == "epoch_00_step_000000.png"
    assert "epoch_01_step_000010.png" in filters and "epoch_02_step_000060.png" in filters
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == len(data.test_y)
    assert metrics["test_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    # precision of class c is the diagonal over the column sum, as computed by hand
    col = confusion.sum(axis=0)
    expected_precision = np.where(col > 0, np.diag(confusion) / np.maximum(col, 1), 0.0)
    np.testing.assert_allclose(metrics["precision"], expected_precision)
    # the bands task is easy: the network must learn it
    assert result["test_accuracy"] > 0.9


def test_refuses_to_overwrite_a_run_and_resume_continues_it_exactly(tmp_path):
    data = synthetic_digits()
    straight = train_run(small_config(tmp_path, out=str(tmp_path / "straight")), data=data, log=quiet)

    train_run(small_config(tmp_path, out=str(tmp_path / "split"), epochs=1), data=data, log=quiet)
    with pytest.raises(FileExistsError):
        train_run(small_config(tmp_path, out=str(tmp_path / "split"), epochs=2), data=data, log=quiet)
    resumed = train_run(small_config(tmp_path, out=str(tmp_path / "split"), epochs=2, resume=True),
                        data=data, log=quiet)
    for (name, a), (_, b) in zip(straight["net"].params(), resumed["net"].params()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert resumed["test_accuracy"] == straight["test_accuracy"]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_run(small_config(tmp_path, resume=True), data=synthetic_digits(), log=quiet)


def test_l2_sweep_shrinks_weights_and_writes_comparison(tmp_path):
    data = synthetic_digits(n_train=300)
    result = l2_sweep(small_config(tmp_path, epochs=1), [1e-3, 1.0], data=data, log=quiet)
    out = tmp_path / "run"
    assert (out / "filters_by_lambda.png").is_file()
    assert (out / "lambda_table.md").read_text().count("\n") == 4  # header, rule, two rows
    norms = [row["conv1_weight_norm"] for row in result["rows"]]
    assert norms[1] < norms[0]  # a strong penalty pulls the weights towards zero
    assert (out / "lambda_0.001" / "metrics.json").is_file() and (out / "lambda_1" / "metrics.json").is_file()


def test_regularized_build_penalises_exactly_conv1_conv2_fc3(tmp_path):
    net, loss, _, _ = runs.build(small_config(tmp_path, weight_decay=0.5))
    penalised = {id(r.weights) for r in loss.regularizers}
    by_name = {layer.name: layer for layer in net}
    assert penalised == {id(by_name[n].weights) for n in ("conv1", "conv2", "fc3")}
    w = by_name["conv1"].weights
    assert loss.regularizers[0].forward() == pytest.approx(0.25 * float((w.astype(np.float64) ** 2).sum()))


def test_parse_lr_policy():
    assert parse_lr_policy("1:0.1,3:0.01,5:0.001,7:0.0001") == {1: 0.1, 3: 0.01, 5: 0.001, 7: 0.0001}
    with pytest.raises(ValueError):
        parse_lr_policy("1=0.1")
    with pytest.raises(ValueError):
        parse_lr_policy("2:0.1")  # nothing for epoch 1


def test_scripts_are_thin_wrappers(tmp_path, monkeypatch):
    import train_l2reg
    import train_mnist

    data = synthetic_digits(n_train=200)
    monkeypatch.setattr(runs, "load_dataset", lambda config: data)
    args = ["--out", str(tmp_path / "cli"), "--epochs", "1", "--batch-size", "25", "--conv1-width", "2",
            "--conv2-width", "4", "--fc-width", "16", "--no-progress", "--filter-every", "0"]
    assert train_mnist.main(args) == 0
    assert (tmp_path / "cli" / "metrics.json").is_file()
    assert train_mnist.main(args) == 2  # the run exists: refused without --resume
    assert train_l2reg.main(args[:1] + [str(tmp_path / "l2")] + args[2:] + ["--lambdas", "0.01", "0.1"]) == 0
    assert (tmp_path / "l2" / "filters_by_lambda.png").is_file()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_divergence_stops_with_a_message_and_keeps_checkpoint(tmp_path, monkeypatch, capsys):
    import train_mnist

    data = synthetic_digits(n_train=200)
    data.train_x = data.train_x * 1e3  # a huge input scale with a huge learning rate blows up
    monkeypatch.setattr(runs, "load_dataset", lambda config: data)
    out = tmp_path / "div"
    args = ["--out", str(out), "--epochs", "1", "--batch-size", "25", "--conv1-width", "2", "--conv2-width", "4",
            "--fc-width", "16", "--no-progress", "--lr-policy", "1:1e6"]
    assert train_mnist.main(args) == 1
    assert "loss is" in capsys.readouterr().err
    assert not (out / "checkpoint.npz").exists()  # no bad state was saved
