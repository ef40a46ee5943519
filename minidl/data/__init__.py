"""Datasets: MNIST and Fashion-MNIST (IDX files) and CIFAR-10 (python pickles), fetched, checked and cached.

    from minidl.data import load_mnist, load_cifar10
    d = load_mnist()                # or load_mnist(dataset="fashion-mnist"), load_cifar10()
    d.train_x, d.train_y            images (N, C, H, W) normalised, labels (N,) int64
    d.val_x, d.val_y                a fixed validation split cut from the end of the training set
    d.test_x, d.test_y              the test set
    d.unnormalize(x)                back to pixels in [0, 1] (for plots)

Files are cached in ``<root>/<dataset>/``: root is ``data_dir=`` (the scripts'
``--data-dir``), else ``$MINIDL_DATA``, else ``~/.cache/minidl``. Missing files
are fetched, checked by SHA-256, and written under their final name only when
complete; when nothing works, DataUnavailableError lists every source tried.

The modules, each with its own docstring:

    idx.py       reading IDX files (raw or gzip)
    sources.py   the cache directory, the sources, download, archive extraction,
                 SHA-256 checks, and the cache-then-sources loop shared by the loaders
    dataset.py   the Dataset record, the fixed split and normalisation, one_hot
    mnist.py     MNIST and Fashion-MNIST: files, checksums, sources, load_mnist, and
                 load_fashion_mnist_as_cifar (a CIFAR-10-shaped stand-in)
    cifar10.py   CIFAR-10: archive, batches, load_cifar10
"""
from .cifar10 import (CIFAR10_ARCHIVE_NAME, CIFAR10_ARCHIVES, CIFAR10_FILES, CIFAR10_FOLDER,
                      ensure_cifar10_files, load_cifar10, read_cifar_batch)
from .dataset import CLASS_NAMES, Dataset, one_hot
from .idx import parse_idx, read_bytes, read_idx
from .mnist import (DEBIAN_FASHION_MNIST_DIR, IDX_FILES, SHA256, SOURCES, cached_idx_files, ensure_idx_files,
                    load_fashion_mnist_as_cifar, load_mnist, read_idx_dataset)
from .sources import (DEFAULT_TIMEOUT, ChecksumError, DataUnavailableError, HttpFile, HttpMirror,
                      LocalDirectory, NpmPackage, data_root, dataset_dir, sha256_hex)

__all__ = [
    # loaders and what they return
    "load_mnist", "load_cifar10", "load_fashion_mnist_as_cifar", "Dataset", "CLASS_NAMES", "one_hot",
    # MNIST / Fashion-MNIST files
    "IDX_FILES", "SHA256", "SOURCES", "DEBIAN_FASHION_MNIST_DIR", "ensure_idx_files", "cached_idx_files",
    "read_idx_dataset", "read_idx", "parse_idx", "read_bytes",
    # CIFAR-10 files
    "CIFAR10_FOLDER", "CIFAR10_FILES", "CIFAR10_ARCHIVE_NAME", "CIFAR10_ARCHIVES",
    "ensure_cifar10_files", "read_cifar_batch",
    # the cache and the sources
    "data_root", "dataset_dir", "HttpMirror", "HttpFile", "LocalDirectory", "NpmPackage",
    "DEFAULT_TIMEOUT", "ChecksumError", "DataUnavailableError", "sha256_hex",
]
