"""End to end on the real MNIST files: fetched through the loader, the lab network learns.

The data comes from the ``real_mnist_root`` fixture (the user's cache read only, or a fetch
into a temporary directory); offline, the test is skipped with the reason.
"""
import numpy as np
import pytest

import train_mnist
from minidl import runs


@pytest.mark.slow
@pytest.mark.network
def test_lab_network_learns_real_mnist(tmp_path, real_mnist_root):
    from minidl.data import load_mnist

    data = load_mnist(real_mnist_root, fetch=False)
    assert data.train_x.shape == (55000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    # 10,000 training images, two epochs at the lab's first learning rate, then the full test set
    options = runs.options(out=str(tmp_path / "run"), epochs=2, limit=10000, lr_policy={1: 0.1},
                           filter_every=0, progress=False)
    _, result = train_mnist.train(options, data)
    assert result["test_accuracy"] > 0.95, result["test_accuracy"]
    # the validation accuracy after the last epoch is in the history and plausible too
    assert result["history"][-1]["val_accuracy"] > 0.95
    confusion = np.array(result["confusion_matrix"])
    assert confusion.sum() == 10000
