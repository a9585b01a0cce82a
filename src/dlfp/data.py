"""MNIST, read from its original IDX files and downloaded when it is missing.

The four MNIST files (LeCun, Cortes and Burges) use the IDX format, which is simple
enough to parse by hand:

* a 4-byte big-endian *magic number*: two zero bytes, a type code (``0x08`` = unsigned
  byte) and the number of dimensions (3 for images, 1 for labels), so images start with
  ``0x00000803`` and labels with ``0x00000801``;
* one 4-byte big-endian size per dimension (count, then rows and columns for images);
* the data, one unsigned byte per pixel or label, row after row.

Where the files live
--------------------
:func:`data_dir` answers: the folder named by the environment variable
``DLFP_DATA_DIR`` when it is set, else a per-user cache folder (``~/.cache/dlfp/mnist``
on Linux). A file may be stored gzip-compressed (``train-images-idx3-ubyte.gz``) or
plain. Missing files are downloaded from public mirrors, tried in turn, and every file
is checked against the SHA-256 of its decompressed bytes, so a damaged or substituted
file is never used silently.

Errors
------
Anything wrong with the files raises :class:`DataError` with one sentence that names the
file and says what to do. A download is written to a temporary file and renamed into
place only after its checksum matches, so a failed or corrupted download leaves nothing
behind.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "DataError",
    "MNIST",
    "MNIST_FILES",
    "DEFAULT_MIRRORS",
    "Split",
    "data_dir",
    "ensure_mnist",
    "load_mnist",
    "load_mnist_for",
    "parse_idx",
    "read_idx",
    "random_shift",
]

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions: (count, rows, columns)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension: (count,)

#: SHA-256 of each *decompressed* file (the compressed bytes differ between mirrors).
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte":
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte":
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte":
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte":
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}  # fmt: skip

#: Public copies of the gzip-compressed files, tried in this order. Override with the
#: ``mirrors`` argument or the environment variable ``DLFP_MNIST_MIRRORS``
#: (space-separated).
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)

_MAX_DOWNLOAD_BYTES = 64 * 2**20  # far above the largest file (9.9 MB compressed)


class DataError(RuntimeError):
    """A data file is missing, damaged or inconsistent; the message says what to do."""


class Split(NamedTuple):
    """One part of the data set.

    Attributes
    ----------
    images : ndarray, shape (n, 28, 28), float32
        Pixel intensities scaled to [0, 1] (0 is the white background, 1 full ink).
    labels : ndarray, shape (n,), int64
        The digit shown, 0 to 9.
    """

    images: np.ndarray
    labels: np.ndarray

    @property
    def flat(self) -> np.ndarray:
        """The images as rows of 784 pixels, shape (n, 784), for a dense network."""
        return self.images.reshape(len(self.images), -1)

    def __repr__(self) -> str:
        images, labels = self.images, self.labels
        return f"Split(images={images.shape} {images.dtype}, labels={labels.shape})"


class MNIST(NamedTuple):
    """The training, validation and test splits returned by :func:`load_mnist`.

    ``validation`` holds no images when no validation split was asked for.
    """

    train: Split
    validation: Split
    test: Split


def data_dir() -> Path:
    """Where MNIST is read from: ``$DLFP_DATA_DIR``, else a per-user cache folder."""
    configured = os.environ.get("DLFP_DATA_DIR", "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dlfp" / "mnist"


def _mirrors(mirrors: Sequence[str] | None) -> list[str]:
    if mirrors is None:
        configured = os.environ.get("DLFP_MNIST_MIRRORS", "").split()
        mirrors = configured or DEFAULT_MIRRORS
    return [m if m.endswith("/") else m + "/" for m in mirrors]


# --- Parsing ------------------------------------------------------------------------


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


# --- Finding and downloading --------------------------------------------------------


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _fetch(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "dlfp (MNIST loader)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        declared = response.headers.get("Content-Length")
        data = response.read(_MAX_DOWNLOAD_BYTES + 1)
    if len(data) > _MAX_DOWNLOAD_BYTES:
        raise DataError("the response is far larger than any MNIST file")
    if declared is not None and int(declared) != len(data):
        raise DataError(f"the transfer stopped after {len(data)} of {declared} bytes")
    return data


def _download(
    stem: str, folder: Path, mirrors: Sequence[str], sha256: str | None, timeout: float
) -> Path:
    """Fetch ``stem.gz`` from the first mirror serving a good copy; return its path."""
    failures = []
    for mirror in mirrors:
        url = f"{mirror}{stem}.gz"
        try:
            data = _fetch(url, timeout)
            raw = _decompress(data, url)
            _sha256_check(raw, sha256, url, "this mirror serves a different file.")
        except (OSError, http.client.HTTPException, DataError, ValueError) as err:
            failures.append(f"{url}: {err}")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{stem}.gz"
        # Write beside the target and rename: readers see the old state or the whole
        # file, never a half-written one; a crash leaves only an ignored '.part' file.
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
    raise DataError(
        f"could not download {stem}.gz from any mirror ({'; '.join(failures)})"
    )


def ensure_mnist(
    folder: str | os.PathLike | None = None,
    *,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str | None] = MNIST_FILES,
    timeout: float = 60.0,
) -> dict[str, Path]:
    """Make sure the four MNIST files are in ``folder``, downloading any missing ones.

    Parameters
    ----------
    folder : path, optional
        Where the files live; :func:`data_dir` when omitted.
    download : bool
        Whether to fetch missing files from the mirrors.
    mirrors : sequence of str, optional
        Base URLs tried in turn; each must serve ``<name>.gz``. Defaults to
        ``$DLFP_MNIST_MIRRORS`` or :data:`DEFAULT_MIRRORS`.
    checksums : mapping
        File name (without ``.gz``) to the SHA-256 of its decompressed bytes, or None to
        skip the check for that file.
    timeout : float
        Seconds to wait for each mirror.

    Returns
    -------
    dict
        File name (without ``.gz``) to the path of the file found or downloaded.
    """
    folder = data_dir() if folder is None else Path(folder).expanduser()
    found = {stem: _find(folder, stem) for stem in checksums}
    missing = [stem for stem, path in found.items() if path is None]
    if missing and download:
        try:
            for stem in missing:
                found[stem] = _download(
                    stem, folder, _mirrors(mirrors), checksums[stem], timeout
                )
        except (DataError, OSError) as err:
            raise DataError(
                _missing_message(folder, missing, f" and the download failed: {err}")
            ) from None
    elif missing:
        raise DataError(_missing_message(folder, missing, ""))
    return found  # type: ignore[return-value]


def _missing_message(folder: Path, missing: list[str], why: str) -> str:
    names = ", ".join(f"{stem}.gz" for stem in missing)
    return (
        f"MNIST files are missing from {folder} ({names}){why}; put the four files "
        f"{', '.join(f'{s}.gz' for s in MNIST_FILES)} (gzip-compressed or not) in a "
        "folder and point the environment variable DLFP_DATA_DIR at it."
    )


# --- The public loader --------------------------------------------------------------


def _read_split(
    paths: Mapping[str, Path], checksums: Mapping[str, str | None], prefix: str
) -> Split:
    """Read and cross-check the uint8 images and labels of "train" or "t10k"."""
    images_stem, labels_stem = (
        f"{prefix}-images-idx3-ubyte",
        f"{prefix}-labels-idx1-ubyte",
    )
    images_path, labels_path = paths[images_stem], paths[labels_stem]
    images = read_idx(
        images_path, expect_magic=IMAGES_MAGIC, sha256=checksums[images_stem]
    )
    labels = read_idx(
        labels_path, expect_magic=LABELS_MAGIC, sha256=checksums[labels_stem]
    )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels; the two files do not belong together, so "
            "replace them with a matching pair."
        )
    if labels.size and labels.max() > 9:
        raise DataError(
            f"{labels_path} holds the label {int(labels.max())}, but MNIST labels "
            "are digits 0 to 9; replace it with the original labels file."
        )
    return Split(images, labels)


def _scaled(images: np.ndarray, labels: np.ndarray) -> Split:
    # eq. (11.1): x = pixel / 255, so every input lies in [0, 1].
    return Split(images.astype(np.float32) / np.float32(255), labels.astype(np.int64))


def load_mnist(
    *,
    validation_size: int = 0,
    subset: int | None = None,
    seed: int = 0,
    folder: str | os.PathLike | None = None,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str | None] = MNIST_FILES,
) -> MNIST:
    """Load MNIST as float32 images in [0, 1] and integer labels.

    Parameters
    ----------
    validation_size : int
        How many of the 60,000 training images to hold out as a validation set, drawn at
        random (seeded). The test set is never touched by this split.
    subset : int, optional
        Use only this many training images (drawn at random, seeded, before the
        validation split); handy for quick experiments. The test set is always the full
        10,000.
    seed : int
        Seed of the :class:`numpy.random.Generator` that draws the subset and validation
        split: the same seed gives the same split on every machine.
    folder, download, mirrors, checksums
        Passed to :func:`ensure_mnist`.

    Returns
    -------
    MNIST
        ``train``, ``validation`` and ``test`` splits; images have shape (n, 28, 28) and
        dtype float32, labels shape (n,) and dtype int64.

    Examples
    --------
    >>> data = load_mnist(validation_size=5000)             # doctest: +SKIP
    >>> X, y = data.train                                   # doctest: +SKIP
    >>> X.shape, y.shape                                    # doctest: +SKIP
    ((55000, 28, 28), (55000,))
    """
    paths = ensure_mnist(
        folder, download=download, mirrors=mirrors, checksums=checksums
    )
    train = _read_split(paths, checksums, "train")
    test = _read_split(paths, checksums, "t10k")

    n = len(train.labels)
    pool_size = n if subset is None else subset
    if not 0 < pool_size <= n:
        raise ValueError(
            f"subset must be between 1 and {n}, got {subset}; "
            "pass None to use every training image."
        )
    if not 0 <= validation_size < pool_size:
        raise ValueError(
            f"validation_size must be between 0 and {pool_size - 1} (the training "
            f"images in use), got {validation_size}."
        )
    rng = np.random.default_rng(seed)
    pool = rng.permutation(n)[:pool_size]
    # Sorting keeps each split in file order, so the same seed gives the same arrays.
    val_idx = np.sort(pool[:validation_size])
    train_idx = np.sort(pool[validation_size:])
    return MNIST(
        train=_scaled(train.images[train_idx], train.labels[train_idx]),
        validation=_scaled(train.images[val_idx], train.labels[val_idx]),
        test=_scaled(*test),
    )


# --- Augmentation -------------------------------------------------------------------


def load_mnist_for(recipe, folder: str | os.PathLike | None = None) -> MNIST:
    """MNIST split as a training recipe asks: :func:`load_mnist` with the recipe's
    ``validation_size``, ``subset`` and ``seed`` (a :class:`dlfp.recipes.MLPConfig` or a
    :class:`dlfp.frameworks.CNNConfig`)."""
    return load_mnist(
        validation_size=recipe.validation_size,
        subset=recipe.subset,
        seed=recipe.seed,
        folder=folder,
    )


def random_shift(
    X: np.ndarray, rng: np.random.Generator, max_shift: int = 2
) -> np.ndarray:
    """Shift every image by a random whole number of pixels, up and down and sideways.

    Parameters
    ----------
    X : ndarray, shape (n, 784) or (n, 28, 28)
        Square images (flat rows are reshaped and returned flat).
    rng : numpy.random.Generator
        Draws the shifts, uniformly from -max_shift to max_shift along each axis.
    max_shift : int
        The largest shift, in pixels; pixels shifted in from outside are 0 (background).

    Returns
    -------
    ndarray
        The shifted images, with the shape and dtype of ``X``.
    """
    n = len(X)
    side = X.shape[1] if X.ndim == 3 else int(round(np.sqrt(X.shape[1])))
    images = X.reshape(n, side, side)
    k = max_shift
    padded = np.zeros((n, side + 2 * k, side + 2 * k), dtype=X.dtype)
    padded[:, k : k + side, k : k + side] = images
    # A window of the padded image offset by (dy, dx) in [0, 2k] is the image shifted
    # by (dy - k, dx - k).
    dy = rng.integers(0, 2 * k + 1, n)[:, None, None]
    dx = rng.integers(0, 2 * k + 1, n)[:, None, None]
    pixels = np.arange(side)
    out = padded[
        np.arange(n)[:, None, None], dy + pixels[:, None], dx + pixels[None, :]
    ]
    return out.reshape(X.shape)
