"""The IDX format of the MNIST files: its magic numbers, and reading a file to an array.

IDX is simple enough to parse by hand:

* a 4-byte big-endian *magic number*: two zero bytes, a type code (``0x08`` = unsigned
  byte) and the number of dimensions (3 for images, 1 for labels), so images start with
  ``0x00000803`` and labels with ``0x00000801``;
* one 4-byte big-endian size per dimension (count, then rows and columns for images);
* the data, one unsigned byte per pixel or label, row after row.

A file may be stored gzip-compressed (``.gz``) or plain. Anything wrong with a file
raises :class:`DataError` with one sentence that names the file and says what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DataError", "IMAGES_MAGIC", "LABELS_MAGIC", "parse_idx", "read_idx"]

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions: (count, rows, columns)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension: (count,)


class DataError(RuntimeError):
    """A data file is missing, damaged or inconsistent; the message says what to do."""


def parse_idx(raw: bytes, *, expect_magic: int, name: str) -> np.ndarray:
    """Parse the bytes of one decompressed IDX file into a ``uint8`` array.

    Parameters
    ----------
    raw : bytes
        The whole decompressed file.
    expect_magic : int
        ``0x00000803`` for an images file, ``0x00000801`` for a labels file.
    name : str
        How to name the file in an error message.

    Returns
    -------
    ndarray, uint8
        Shape (count, rows, columns) for images, (count,) for labels. The array is a
        read-only view of ``raw``: no copy is made.
    """
    kind = "images" if expect_magic == IMAGES_MAGIC else "labels"
    if len(raw) < 4:
        raise DataError(
            f"{name} is too short to be an IDX file ({len(raw)} bytes); "
            "delete it and load again to download a fresh copy."
        )
    magic = int.from_bytes(raw[:4], "big")
    if magic != expect_magic:
        raise DataError(
            f"{name} starts with magic number 0x{magic:08x}, but an MNIST {kind} "
            f"file starts with 0x{expect_magic:08x}; check that it is the right file "
            "(images and labels swapped?) or delete it to download it again."
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(
            f"{name} ends inside its header ({len(raw)} bytes); "
            "delete it and load again to download a fresh copy."
        )
    # ">u4": big-endian ("network order") unsigned 32-bit integers, as IDX stores them.
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{name} has a header for {kind} of shape {shape}, which needs "
            f"{expected} bytes, but the file holds {len(raw)}; it is truncated or "
            "damaged, so delete it and load again to download a fresh copy."
        )
    return np.frombuffer(raw, np.uint8, offset=header_size).reshape(shape)


def _decompress(data: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataError(
            f"{name} is not a readable gzip file ({err}); it is truncated or "
            "corrupt, so delete it and load again to download a fresh copy."
        ) from None


def _sha256_check(raw: bytes, expected: str | None, name: str, remedy: str) -> None:
    if expected is None:
        return
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise DataError(
            f"{name} has SHA-256 {digest[:16]}… but MNIST's is {expected[:16]}…; "
            f"{remedy}"
        )


def read_idx(
    path: str | os.PathLike, *, expect_magic: int, sha256: str | None = None
) -> np.ndarray:
    """Read one IDX file, gzip-compressed (``.gz``) or not, and check it.

    ``sha256``, when given, is the expected digest of the decompressed bytes.
    """
    path = Path(path)
    data = path.read_bytes()
    raw = _decompress(data, str(path)) if path.suffix == ".gz" else data
    _sha256_check(
        raw,
        sha256,
        str(path),
        "the file is damaged or not the original, so delete "
        "it and load again to download a fresh copy.",
    )
    return parse_idx(raw, expect_magic=expect_magic, name=str(path))
