"""train_cifar.py end to end: on a small CIFAR-10 archive made here in the real format (python
pickles in cifar-10-batches-py/, packed as cifar-10-python.tar.gz), and on the Fashion-MNIST
stand-in when the Debian package's files are on this machine."""
import hashlib
import json
import os
import pickle
import signal
import tarfile
from pathlib import Path

import numpy as np
import pytest

import train_cifar
from minidl import io, runs
from minidl.data import DEBIAN_FASHION_MNIST_DIR
from minidl.optim import SGD
from minidl.trainer import evaluate

OUTPUTS = ("config.json", "checkpoint.npz", "model.npz", "metrics.json", "training_plot.png", "worst_test.png",
           "filters_start_end.png")
TRAIN_PER_BATCH, TEST_IMAGES = 40, 100


def class_images(labels, rng):
    """uint8 (N, 3, 32, 32): dim noise, and for class c a bright 8x8 square in colour plane
    c % 3 at one of ten places, so that a small network can tell the classes apart."""
    images = rng.integers(0, 60, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    for n, c in enumerate(labels):
        top, left = 3 + 10 * (c // 4), 1 + 8 * (c % 4)
        images[n, c % 3, top:top + 8, left:left + 6] = 230
    return images


def cifar_archive(path, seed=0):
    """A CIFAR-10 python archive at ``path``: five training batches of 40 images and a test batch
    of 100, pickled as the originals (protocol 2, bytes keys, rows of 3072 = R, G, B planes).
    The last training batch holds only classes 8 and 9, so a fixed validation split (the last
    40 images) would see two classes. Returns (training labels, test labels)."""
    rng = np.random.default_rng(seed)
    train_labels = np.concatenate([rng.integers(0, 10, size=4 * TRAIN_PER_BATCH),
                                   rng.integers(8, 10, size=TRAIN_PER_BATCH)])
    test_labels = rng.integers(0, 10, size=TEST_IMAGES)
    build = path.parent / "build" / "cifar-10-batches-py"
    build.mkdir(parents=True)
    images = class_images(train_labels, rng).reshape(-1, 3072)
    for b in range(5):
        rows = slice(b * TRAIN_PER_BATCH, (b + 1) * TRAIN_PER_BATCH)
        batch = {b"batch_label": f"training batch {b + 1} of 5".encode(), b"labels": train_labels[rows].tolist(),
                 b"data": images[rows], b"filenames": [b"x.png"] * TRAIN_PER_BATCH}
        (build / f"data_batch_{b + 1}").write_bytes(pickle.dumps(batch, protocol=2))
    test = {b"batch_label": b"testing batch 1 of 1", b"labels": test_labels.tolist(),
            b"data": class_images(test_labels, rng).reshape(-1, 3072)}
    (build / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    (build / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2))
    with tarfile.open(path, "w:gz") as tar:
        tar.add(build, arcname="cifar-10-batches-py")
    return train_labels, test_labels


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    """A data directory holding a small CIFAR-10 archive placed by hand (as a user would), whose
    SHA-256 stands in for the official one; the official URL is never reached."""
    root = tmp_path / "data"
    (root / "cifar-10").mkdir(parents=True)
    archive = root / "cifar-10" / "cifar-10-python.tar.gz"
    labels = cifar_archive(archive)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr("minidl.data.cifar10.CIFAR10_ARCHIVES", (("https://cifar.invalid/archive.tar.gz", sha),))
    return root, labels


@pytest.fixture
def titles(monkeypatch):
    """The title of every figure the script writes, by file name."""
    seen = {}
    for name in ("plot_training", "plot_worst", "filter_comparison"):
        original = getattr(runs.viz, name)

        def record(*args, original=original, **kwargs):
            path = original(*args, **kwargs)
            seen[os.path.basename(path)] = kwargs["title"]
            return path
        monkeypatch.setattr(runs.viz, name, record)
    return seen


def small_args(out, data_dir, *more):
    return ["--out", str(out), "--data-dir", str(data_dir), "--validation-size", "40", "--batch-size", "20",
            "--filter-every", "4", "--no-progress", *more]


def test_on_a_cifar10_archive_every_output_is_written_and_the_net_learns(tmp_path, cifar_dir, titles, capsys):
    root, (train_labels, test_labels) = cifar_dir
    out = tmp_path / "run"
    assert train_cifar.main(small_args(out, root, "--epochs", "4")) == 0
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert (root / "cifar-10" / "cifar-10-batches-py" / "test_batch").is_file()  # extracted from the archive
    filters = sorted(os.listdir(out / "filters"))  # the initialisation, every 4 steps, each epoch end
    assert filters[0] == "epoch_00_step_000000.png" and "epoch_04_step_000032.png" in filters

    result = json.loads((out / "metrics.json").read_text())
    assert result["dataset"] == "cifar10" and result["dataset_description"] == "CIFAR-10"
    assert [record["lr"] for record in result["history"]] == [0.01] * 4
    for record in result["history"]:  # every epoch: the validation split's confusion matrix and its ratios
        confusion = np.array(record["val_confusion"])
        assert confusion.shape == (10, 10) and confusion.sum() == 40
        assert record["val_accuracy"] == pytest.approx(np.trace(confusion) / 40)
        assert len(record["val_precision"]) == len(record["val_recall"]) == 10
    # the validation split is drawn at random: not only the last batch's classes 8 and 9
    support = np.array(result["history"][0]["val_confusion"]).sum(axis=1)
    assert support[:8].sum() > 0 and np.all(support <= np.bincount(train_labels, minlength=10))
    _, meta = io.load_npz(out / "checkpoint.npz")  # the last checkpoint has the whole history too
    assert meta["checkpoint"]["trainer"]["history"] == result["history"]
    confusion = np.array(result["confusion_matrix"])
    assert confusion.sum(axis=1).tolist() == np.bincount(test_labels, minlength=10).tolist()
    history = result["history"]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert result["test_accuracy"] > 0.5  # ten classes: chance is 0.1

    # the model file gives back the net that made the test figures
    model = io.load(out / "model.npz")
    data = train_cifar.load_data(runs.options("cifar", data_dir=str(root), validation_size=40))
    assert evaluate(model, None, data.test_x, data.test_y)["accuracy"] == result["test_accuracy"]
    assert set(titles) == {"training_plot.png", "worst_test.png", "filters_start_end.png"}
    assert all("CIFAR-10" in title and "stand-in" not in title for title in titles.values())
    log = capsys.readouterr().out
    assert "data: CIFAR-10\n" in log and "validation after epoch 4" in log and "on CIFAR-10" in log


def test_resume_after_ctrl_c_continues_bit_for_bit_with_augmentation(tmp_path, cifar_dir, monkeypatch):
    root, _ = cifar_dir
    skip_figures(monkeypatch)
    args = ["--epochs", "2", "--augment", "--weight-decay", "1e-3"]
    assert train_cifar.main(small_args(tmp_path / "straight", root, *args)) == 0

    # a real SIGINT after the 11th optimiser step (3rd step of epoch 2): the step finishes, the
    # checkpoint is written, the script exits with 130
    step, steps = SGD.step, []

    def step_then_ctrl_c(self, pairs):
        step(self, pairs)
        steps.append(1)
        if len(steps) == 11:
            os.kill(os.getpid(), signal.SIGINT)
    with monkeypatch.context() as patch:
        patch.setattr(SGD, "step", step_then_ctrl_c)
        assert train_cifar.main(small_args(tmp_path / "split", root, *args)) == 130
    assert len(steps) == 11
    assert not (tmp_path / "split" / "model.npz").exists()
    assert train_cifar.main(small_args(tmp_path / "split", root, *args)) == 2  # refused without --resume
    assert train_cifar.main(small_args(tmp_path / "split", root, *args, "--resume")) == 0

    straight, resumed = io.load(tmp_path / "straight" / "model.npz"), io.load(tmp_path / "split" / "model.npz")
    for (name, a), (_, b) in zip(straight.params(), resumed.params()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    histories = [json.loads((tmp_path / run / "metrics.json").read_text())["history"] for run in ("straight", "split")]
    for a, b in zip(*histories):
        a.pop("seconds"), b.pop("seconds")
        assert a == b


def test_augment_moves_and_mirrors_the_training_images_only():
    assert train_cifar.augmentation(runs.options("cifar")) is None
    augment = train_cifar.augmentation(runs.options("cifar", augment=True))
    x = np.arange(2 * 3 * 32 * 32, dtype=np.float32).reshape(2, 3, 32, 32)
    rng = np.random.default_rng(0)
    outs = [augment(x, rng) for _ in range(20)]
    assert all(out.shape == x.shape for out in outs)
    assert any(not np.array_equal(out, x) for out in outs)
    # a crop of the zero-padded image, mirrored or not: every value comes from the same image or is 0
    for out in outs:
        for n in range(2):
            assert set(np.unique(out[n])) <= set(np.unique(x[n])) | {0.0}


def test_the_cifar_options():
    options = runs.options("cifar")
    assert (options.dataset, options.validation_size, options.augment, options.weight_decay) == \
        ("cifar10", 5000, False, 1e-4)
    assert not hasattr(options, "conv1_width")  # the network is fixed
    with pytest.raises(SystemExit):
        runs.parser(None, out="x", script="cifar").parse_args(["--dataset", "mnist"])
    assert "stand-in" in runs.DATASETS["fashion-mnist-as-cifar"]


def test_without_cifar10_the_script_says_so_and_names_the_stand_in(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("minidl.data.cifar10.CIFAR10_ARCHIVES", ())  # nothing to download from
    assert train_cifar.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "fashion-mnist-as-cifar" in err and "could not get CIFAR-10" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.network
def test_on_the_fashion_mnist_stand_in_every_output_names_it(tmp_path, titles, capsys):
    debian = Path(DEBIAN_FASHION_MNIST_DIR)
    if not (debian / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the Fashion-MNIST stand-in needs the Debian package dataset-fashion-mnist ({debian})")
    out = tmp_path / "run"
    assert train_cifar.main(["--dataset", "fashion-mnist-as-cifar", "--data-dir", str(tmp_path / "data"),
                             "--out", str(out), "--limit", "400", "--epochs", "1", "--validation-size", "500", "--no-progress",
                             "--filter-every", "0"]) == 0
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    result = json.loads((out / "metrics.json").read_text())
    assert result["dataset"] == "fashion-mnist-as-cifar"
    description = result["dataset_description"]
    assert "stand-in" in description and "not CIFAR-10" in description
    assert sum(map(sum, result["history"][0]["val_confusion"])) == 500
    assert result["test_accuracy"] > 0.4  # 400 images, one epoch; chance is 0.1
    assert len(titles) == 3 and all("stand-in" in " ".join(title.split()) for title in titles.values())
    log = capsys.readouterr().out
    assert f"data: {description}" in log and f"on {description}" in log


def skip_figures(monkeypatch):
    for name in ("plot_training", "plot_worst", "filter_comparison"):
        monkeypatch.setattr(runs.viz, name, lambda *args, **kwargs: None)
