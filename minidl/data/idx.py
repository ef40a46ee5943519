"""Reading IDX files, the format of MNIST and Fashion-MNIST.

IDX (big-endian): two zero bytes, a type byte (0x08 = uint8, the only one MNIST
uses), a byte giving the number of dimensions, one 4-byte size per dimension,
then the data in C order. Images are 0x00000803 (N, H, W), labels 0x00000801 (N,).

A file may be raw or gzip-compressed; ``read_bytes`` tells them apart by their
first two bytes, not by their name.
"""
import gzip
import os
import struct
import zlib

import numpy as np

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
