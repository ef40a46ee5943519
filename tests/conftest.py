"""Shared fixtures. The suite runs once per backend (MINIDL_BACKEND=compiled|numpy).

Data from outside the tree
--------------------------
Almost every test makes its own data (tiny IDX files, CIFAR-format pickles,
random arrays) in ``tmp_path``. The few that need a real dataset carry the
``network`` marker (``pytest -m "not network"`` leaves them out) and follow one rule:

1. the real MNIST files already in the data cache (``$MINIDL_DATA``, else
   ``~/.cache/minidl``) are used when all four are there and pass their SHA-256
   check, read only: the tests never write, move or fetch anything there;
2. otherwise they are fetched into a temporary directory for this test session
   (from the files in that cache, gzip or raw, then the usual sources), which is
   discarded with pytest's other temporary files;
3. when that fails too (offline, no npm), the tests are skipped, and the
   reason lists every source tried and why it failed (``pytest -rs`` shows it).

To keep a fetched copy for later sessions, fill the cache once yourself:
``python -c "import minidl.data as d; d.load_mnist()"``.
"""
import os
import sys

import numpy as np
import pytest

# helper modules beside the tests (naive oracles, realdata): importable however pytest imports files
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import realdata  # noqa: E402
from minidl import ops  # noqa: E402


@pytest.fixture
def rng():
    """A fixed generator: every test sees the same data on every run."""
    return np.random.default_rng(20240601)


@pytest.fixture(autouse=True)
def _restore_backend():
    """A test that switches kernels with ops.use_backend gets the suite's backend back."""
    before = ops.BACKEND
    yield
    if ops.BACKEND != before:
        ops.use_backend(before)


@pytest.fixture(scope="session")
def real_mnist_root(tmp_path_factory):
    """A data root holding the four verified MNIST files; pass it to ``load_mnist(root, fetch=False)``.

    The user's cache, read only, or a session temporary directory; skipped with
    the reason when neither works (``realdata.mnist_root``, this module's docstring).
    """
    return realdata.mnist_root(lambda: tmp_path_factory.mktemp("minidl-data"))


def pytest_report_header(config):
    return f"minidl kernels: {ops.BACKEND} (MINIDL_BACKEND={os.environ.get('MINIDL_BACKEND', '')!r})"
