"""CIFAR-10 (the python version): its archive, its six batch files, and ``load_cifar10``.

    d = load_cifar10()
    d.train_x  (45000, 3, 32, 32)   float32, standardised per channel
    d.val_x    (5000, 3, 32, 32)    the last 5,000 of the 50,000 training images
    d.test_x   (10000, 3, 32, 32)

The batches live in ``<root>/cifar-10/cifar-10-batches-py/`` (the root is
explained in ``minidl.data.sources``). Each batch is a Python 2 pickle of a dict
whose ``b"data"`` is uint8 rows of 3072 = 3 x 32 x 32 values (the red plane,
then green, then blue, each row-major) and ``b"labels"`` a list of class indices.
The batches have no checksum table of their own: they are trusted once
extracted from an archive whose SHA-256 is known, and their structure is
checked when read.
"""
import os
import pickle

import numpy as np

from .dataset import CLASS_NAMES, make_dataset
from .sources import DEFAULT_TIMEOUT, HttpFile, check_sha256, dataset_dir, extract_files, file_sha256, obtain

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR10_ARCHIVE_NAME = "cifar-10-python.tar.gz"

# (url, sha256) of the official archive. Its SHA-256 is the one Keras' cifar10 loader
# pins; the dataset page publishes the MD5 c58f30108f718f92721af3b95e74349a (170,498,071 bytes).
CIFAR10_ARCHIVES = (
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
     "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
)

# The only globals a CIFAR-10 batch needs: numpy arrays and their dtypes, and
# _codecs.encode, which Python 3 pickles use for bytes. Anything else is refused.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers and numpy arrays.

    pickle can call any importable function while loading; this one resolves
    only the names in _PICKLE_ALLOWED, so a doctored batch file cannot run code.
    """

    def find_class(self, module, name):
        target = _PICKLE_ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(*target)


def read_cifar_batch(path):
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) from one pickled CIFAR-10 batch."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            batch = _ArrayUnpickler(f, encoding="bytes").load()  # the batches are Python 2 pickles
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a readable CIFAR-10 batch ({exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: expected a dict with b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {len(data)} images but labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= 10):
        raise ValueError(f"{path}: labels outside [0, 10)")
    # each row is the red plane, then green, then blue, each 32 x 32 row-major
    return data.reshape(-1, 3, 32, 32), labels


def ensure_cifar10_files(data_dir=None, fetch=True, archives=None, timeout=DEFAULT_TIMEOUT):
    """Paths of the six CIFAR-10 batch files, extracting or downloading the archive when needed.

    Sources, in order: the batch files in ``<root>/cifar-10/cifar-10-batches-py/``;
    an archive placed by hand at ``<root>/cifar-10/cifar-10-python.tar.gz``; each
    URL of ``archives`` (default ``CIFAR10_ARCHIVES``, pairs (url, sha256)),
    downloaded to a scratch directory inside the cache directory. An archive is
    used only when its SHA-256 is one of those in ``archives``; a placed one that
    is not is moved to ``*.corrupt``. Only the batch files are kept, not the
    archive. ``fetch=False`` skips the downloads.
    """
    directory = dataset_dir("cifar-10", data_dir)
    batch_dir = directory / CIFAR10_FOLDER
    paths = {name: batch_dir / name for name in CIFAR10_FILES}
    if all(path.is_file() for path in paths.values()):
        return paths
    archives = CIFAR10_ARCHIVES if archives is None else tuple(archives)
    known = {sha for _, sha in archives}

    def install(name, archive):
        check_sha256(archive, file_sha256(archive), known)
        batch_dir.mkdir(exist_ok=True)
        members = {f"{CIFAR10_FOLDER}/{batch}": batch for batch in CIFAR10_FILES}
        found = extract_files(archive, members, batch_dir)
        absent = sorted(set(CIFAR10_FILES) - found)
        if absent:
            raise ValueError(f"{archive}: no regular file {', '.join(absent)} under {CIFAR10_FOLDER}/")

    absent = [name for name, path in paths.items() if not path.is_file()]
    obtain(directory, [CIFAR10_ARCHIVE_NAME], install, [HttpFile(url, timeout) for url, _ in archives],
           what="CIFAR-10", fetch=fetch, notes=[f"missing {CIFAR10_FOLDER}/ {', '.join(absent)}"],
           how_to_place=[f"To place the files by hand, extract {CIFAR10_ARCHIVE_NAME} (the python version) "
                         f"so that {batch_dir} holds {', '.join(CIFAR10_FILES)}, or put the archive "
                         f"itself at {directory / CIFAR10_ARCHIVE_NAME};"])
    return paths


def load_cifar10(data_dir=None, validation_size=5000, dtype=np.float32, fetch=True, archives=None):
    """CIFAR-10 as a ``Dataset``: images (N, 3, 32, 32) standardised per channel.

    data_batch_1..5 in order give 50,000 training images: the first
    ``50000 - validation_size`` are the training split, the last ``validation_size``
    the validation split (fixed). x = (pixels / 255 - mean[c]) / std[c], with the
    per-channel mean and standard deviation of the training split only, shape
    (3,). Labels are int64 in [0, 10).
    """
    paths = ensure_cifar10_files(data_dir, fetch=fetch, archives=archives)
    batches = [read_cifar_batch(paths[name]) for name in CIFAR10_FILES[:5]]
    train_images = np.concatenate([images for images, _ in batches])
    train_labels = np.concatenate([labels for _, labels in batches])
    test_images, test_labels = read_cifar_batch(paths["test_batch"])
    return make_dataset(train_images, train_labels, test_images, test_labels, CLASS_NAMES["cifar-10"],
                        validation_size, dtype, divide_by_std=True)
