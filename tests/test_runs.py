"""The training scripts (train_mnist.py, train_l2reg.py and their plumbing in minidl.runs) on a
small synthetic digit task the tests make themselves."""
import json
import os
import signal
import subprocess
import sys
import types

import numpy as np
import pytest

import train_l2reg
import train_mnist
from minidl import io, runs
from minidl.trainer import NonFiniteLossError, evaluate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def small_options(tmp_path, **changes):
    base = dict(out=str(tmp_path / "run"), epochs=2, batch_size=20, conv1_width=4, conv2_width=8, fc_width=32,
                filter_every=10, progress=False, lr_policy={1: 0.1, 2: 0.01})
    base.update(changes)
    return runs.options(**base)


SMALL_ARGS = ["--epochs", "1", "--batch-size", "25", "--conv1-width", "2", "--conv2-width", "4", "--fc-width", "16",
              "--no-progress", "--filter-every", "0"]


@pytest.fixture
def small_mnist(monkeypatch):
    """The scripts' load_mnist returns 200 synthetic training digits; the two slowest
    figures are not drawn (test_a_run_writes_every_output_and_learns draws them)."""
    data = synthetic_digits(n_train=200)
    for script in (train_mnist, train_l2reg):
        monkeypatch.setattr(script, "load_mnist", lambda **kwargs: data)
    skip_slow_figures(monkeypatch.setattr)
    return data


def skip_slow_figures(setattr):
    for name in ("plot_worst", "plot_training"):
        setattr(runs.viz, name, lambda *args, **kwargs: None)


def test_a_run_writes_every_output_and_learns(tmp_path, capsys):
    data = synthetic_digits()
    options = small_options(tmp_path)
    net, metrics = train_mnist.train(options, data)
    out = tmp_path / "run"
    for name in ("config.json", "checkpoint.npz", "training_plot.png", "metrics.json", "worst_test.png",
                 "model.npz"):
        assert (out / name).is_file(), name
    filters = sorted(os.listdir(out / "filters"))
    # initialisation + every 10 steps of 30 per epoch + each epoch end (which coincides with step 30)
    assert filters[0] == "epoch_00_step_000000.png"
    assert "epoch_01_step_000010.png" in filters and "epoch_02_step_000060.png" in filters
    assert json.loads((out / "config.json").read_text())["conv1_width"] == 4
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert len(metrics["history"]) == 2
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == len(data.test_y)
    assert metrics["test_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    # precision of class c is the diagonal over the column sum, as computed by hand
    col = confusion.sum(axis=0)
    expected_precision = np.where(col > 0, np.diag(confusion) / np.maximum(col, 1), 0.0)
    np.testing.assert_allclose(metrics["precision"], expected_precision)
    # the bands task is easy: the network must learn it
    assert metrics["test_accuracy"] > 0.9
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in capsys.readouterr().out
    # the model file is the trained net: the same logits, bit for bit
    loaded = io.load(out / "model.npz")
    np.testing.assert_array_equal(loaded.eval().forward(data.test_x), net.eval().forward(data.test_x))


def test_the_model_file_of_a_script_run_loads_and_predicts_its_logits(tmp_path, small_mnist):
    out = tmp_path / "cli"
    assert train_mnist.main(["--out", str(out)] + SMALL_ARGS) == 0
    model = io.load(out / "model.npz")
    assert [layer.name for layer in model][0] == "conv1" and model[0].weights.shape == (2, 1, 5, 5)
    # the same logits as the net inside the final checkpoint, and the accuracy metrics.json reports
    from_checkpoint = io.load(out / "checkpoint.npz")
    x = small_mnist.test_x
    np.testing.assert_array_equal(model.eval().forward(x), from_checkpoint.eval().forward(x))
    accuracy = evaluate(model, None, x, small_mnist.test_y)["accuracy"]
    assert accuracy == json.loads((out / "metrics.json").read_text())["test_accuracy"]


def test_refuses_to_overwrite_a_run_and_resume_continues_it_exactly(tmp_path, monkeypatch):
    skip_slow_figures(monkeypatch.setattr)
    data = synthetic_digits()
    straight, _ = train_mnist.train(small_options(tmp_path, out=str(tmp_path / "straight")), data)

    train_mnist.train(small_options(tmp_path, out=str(tmp_path / "split"), epochs=1), data)
    with pytest.raises(FileExistsError):
        train_mnist.train(small_options(tmp_path, out=str(tmp_path / "split"), epochs=2), data)
    resumed, _ = train_mnist.train(small_options(tmp_path, out=str(tmp_path / "split"), epochs=2, resume=True),
                                   data)
    for (name, a), (_, b) in zip(straight.params(), resumed.params()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_mnist.train(small_options(tmp_path, resume=True), synthetic_digits())


def test_l2_sweep_shrinks_weights_and_writes_comparison(tmp_path, small_mnist):
    out = tmp_path / "l2"
    assert train_l2reg.main(["--out", str(out), "--lambdas", "1e-3", "1"] + SMALL_ARGS) == 0
    assert (out / "filters_by_lambda.png").is_file()
    assert (out / "lambda_table.md").read_text().count("\n") == 4  # header, rule, two rows
    rows = json.loads((out / "lambda_table.json").read_text())
    assert [row["lambda"] for row in rows] == [1e-3, 1.0]
    assert rows[1]["conv1_weight_norm"] < rows[0]["conv1_weight_norm"]  # a strong penalty pulls weights to 0
    for lam in ("0.001", "1"):
        run = out / f"lambda_{lam}"
        assert json.loads((run / "config.json").read_text())["weight_decay"] == float(lam)
        norm = np.linalg.norm(io.load(run / "model.npz")[0].weights)
        assert norm == pytest.approx(rows[["0.001", "1"].index(lam)]["conv1_weight_norm"])


def test_the_l2_script_penalises_exactly_conv1_conv2_fc3(tmp_path, small_mnist, monkeypatch):
    made = []
    real = train_mnist.RegularizedLoss
    monkeypatch.setattr(train_mnist, "RegularizedLoss", lambda *args: made.append(real(*args)) or made[-1])
    assert train_l2reg.main(["--out", str(tmp_path / "one"), "--weight-decay", "0.5"] + SMALL_ARGS) == 0
    (loss,) = made
    assert [r.name for r in loss.regularizers] == ["l2_conv1", "l2_conv2", "l2_fc3"]
    net = io.load(tmp_path / "one" / "model.npz")
    w = net[0].weights
    np.testing.assert_array_equal(loss.regularizers[0].weights, w)
    assert loss.regularizers[0].forward() == pytest.approx(0.25 * float((w.astype(np.float64) ** 2).sum()))
    # without --weight-decay, train_mnist.py trains on the plain loss
    made.clear()
    assert train_mnist.main(["--out", str(tmp_path / "plain")] + SMALL_ARGS) == 0
    assert made == []


def test_parse_lr_policy():
    assert runs.parse_lr_policy("1:0.1,3:0.01,5:0.001,7:0.0001") == {1: 0.1, 3: 0.01, 5: 0.001, 7: 0.0001}
    with pytest.raises(ValueError):
        runs.parse_lr_policy("1=0.1")
    with pytest.raises(ValueError):
        runs.parse_lr_policy("2:0.1")  # nothing for epoch 1


def test_options_are_the_parser_defaults_and_bad_values_are_refused(tmp_path, capsys):
    defaults = runs.options()
    assert defaults.lr_policy == {1: 0.1, 3: 0.01, 5: 0.001, 7: 0.0001}
    assert (defaults.epochs, defaults.batch_size, defaults.limit, defaults.progress) == (8, 50, None, True)
    assert runs.options(epochs=3).epochs == 3
    with pytest.raises(TypeError, match="unknown option"):
        runs.options(epoch=3)
    for bad in (["--lr-policy", "2:0.1"], ["--limit", "0"], ["--batch-size", "x"]):
        with pytest.raises(SystemExit) as info:
            train_mnist.main(["--out", str(tmp_path / "never")] + bad)
        assert info.value.code == 2
    assert "epoch 1" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_scripts_refuse_to_overwrite_and_limit_the_training_set(tmp_path, small_mnist, capsys):
    args = ["--out", str(tmp_path / "cli")] + SMALL_ARGS
    assert train_mnist.main(args + ["--limit", "50"]) == 0
    history = json.loads((tmp_path / "cli" / "metrics.json").read_text())["history"]
    _, meta = io.load_npz(tmp_path / "cli" / "checkpoint.npz")
    assert meta["checkpoint"]["trainer"]["global_step"] == 2  # 50 images in batches of 25
    assert len(history) == 1
    assert train_mnist.main(args) == 2  # the run exists: refused without --resume
    assert "--resume" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_divergence_stops_with_a_message_and_keeps_checkpoint(tmp_path, small_mnist, capsys):
    small_mnist.train_x = small_mnist.train_x * 1e3  # a huge input scale with a huge learning rate blows up
    out = tmp_path / "div"
    assert train_mnist.main(["--out", str(out), "--lr-policy", "1:1e6"] + SMALL_ARGS) == 1
    assert "loss is" in capsys.readouterr().err
    assert not (out / "checkpoint.npz").exists()  # no bad state was saved


# ------------------------------------------------------------ a real Ctrl-C
def test_sigint_mid_step_finishes_the_step_saves_and_resumes_bit_for_bit(tmp_path, small_mnist):
    """SIGINT from outside while an SGD step has updated half the parameters: the step
    completes, the checkpoint is written, the exit status is 130, and --resume ends on
    the parameters of an uninterrupted run."""
    stop_at = 3  # of 8 steps per epoch, in the first of two epochs
    args = ["--epochs", "2"] + SMALL_ARGS[2:]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "interruptible_train.py"), str(stop_at),
                              "--out", str(tmp_path / "stopped")] + args,
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in child.stdout:
            lines.append(line)
            if line.startswith("halfway through step"):
                child.send_signal(signal.SIGINT)
                break
        stdout, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, "".join(lines) + stdout + stderr
    assert "continue with --resume" in stdout

    _, meta = io.load_npz(tmp_path / "stopped" / "checkpoint.npz")
    state = meta["checkpoint"]["trainer"]
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, stop_at, stop_at)

    assert train_mnist.main(["--out", str(tmp_path / "stopped"), "--resume"] + args) == 0
    assert train_mnist.main(["--out", str(tmp_path / "straight")] + args) == 0
    resumed, straight = io.load(tmp_path / "stopped" / "model.npz"), io.load(tmp_path / "straight" / "model.npz")
    for (name, a), (_, b) in zip(straight.params(), resumed.params()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    history = [json.loads((tmp_path / run / "metrics.json").read_text())["history"] for run in ("stopped", "straight")]
    for a, b in zip(*history):
        assert a["train_loss"] == b["train_loss"] and a["val_accuracy"] == b["val_accuracy"]


@pytest.mark.parametrize("raised,status", [(None, 0), (runs.Interrupted("ckpt.npz"), 130), (KeyboardInterrupt(), 130),
                                           (NonFiniteLossError("the loss is nan"), 1),
                                           (FileExistsError("a run"), 2), (ValueError("bad"), 2)])
def test_exit_status(raised, status, capsys):
    @runs.exit_status
    def main(argv=None):
        if raised is not None:
            raise raised

    assert main([]) == status
    printed = capsys.readouterr()
    assert (printed.out + printed.err != "") == (status != 0)


def test_other_errors_are_not_hidden():
    @runs.exit_status
    def main(argv=None):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        main([])
