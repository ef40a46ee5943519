"""Shared fixtures. The suite runs once per backend (MINIDL_BACKEND=compiled|numpy)."""
import os

import numpy as np
import pytest

from minidl import ops


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


def pytest_report_header(config):
    return f"minidl kernels: {ops.BACKEND} (MINIDL_BACKEND={os.environ.get('MINIDL_BACKEND', '')!r})"
