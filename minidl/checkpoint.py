"""Atomic .npz files: nothing already saved is lost if writing is interrupted.

A file is written to a temporary name in the same directory, flushed to disk,
then renamed over the target in one step (``os.replace``), so a reader sees
either the old complete file or the new complete file, never a torn one.
"""
import contextlib
import json
import os
import secrets

import numpy as np


@contextlib.contextmanager
def atomic_target(path, suffix=""):
    """Yield a temporary path beside ``path`` to write to; on success it is flushed to
    disk and renamed over ``path`` in one step, on any error it is removed.

    ``suffix`` ends the temporary name (writers that pick the format from the
    extension need it). The file gets the usual permissions (umask), not private ones.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.part{suffix}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically."""
    with atomic_target(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def atomic_savez(path, arrays, meta=None):
    """Write ``arrays`` (name -> array) and a JSON ``meta`` dict to ``path`` atomically."""
    payload = dict(arrays)
    if meta is not None:
        payload["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with atomic_target(path) as tmp, open(tmp, "xb") as f:
        np.savez(f, **payload)


def load_npz(path):
    """(arrays dict, meta dict or None) from a file written by ``atomic_savez``."""
    try:
        # open the file here: np.load given a path leaks its handle when the zip is corrupt
        with open(os.fspath(path), "rb") as f, np.load(f, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable minidl .npz file ({exc})") from exc
    except Exception as exc:  # zipfile.BadZipFile and friends from a truncated file
        raise ValueError(f"{path}: corrupt .npz file ({type(exc).__name__}: {exc})") from exc
    meta = arrays.pop("__meta__", None)
    if meta is not None:
        meta = json.loads(meta.tobytes().decode("utf-8"))
    return arrays, meta
