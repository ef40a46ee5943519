"""Where the tests that need real MNIST get it (the rule is stated in conftest's docstring)."""
import pytest

from minidl.data import SOURCES, DataUnavailableError, LocalDirectory, cached_idx_files, data_root, ensure_idx_files


def mnist_root(make_scratch_dir):
    """A data root holding the four verified MNIST files, for ``load_mnist(root, fetch=False)``.

    The user's data cache (``data_root()``) when it already holds them, only read;
    else ``make_scratch_dir()``, a fresh temporary directory, filled from that
    cache's files (raw or .gz) and then ``SOURCES["mnist"]``. Calls
    ``pytest.skip`` with every source tried and its reason when nothing works.
    """
    user_root = data_root()
    if cached_idx_files("mnist", user_root) is not None:
        return user_root
    root = make_scratch_dir()
    sources = (LocalDirectory(user_root / "mnist", label="data cache"),) + tuple(SOURCES["mnist"])
    try:
        ensure_idx_files("mnist", root, sources=sources)
    except DataUnavailableError as exc:
        pytest.skip("real MNIST unavailable: " + "; ".join(f"{place}: {why}" for place, why in exc.failures))
    return root
