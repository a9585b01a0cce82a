"""Finding the four MNIST files, and downloading the missing ones with their checksums.

Where the files live is :func:`data_dir`'s answer: the folder named by the environment
variable ``DLFP_DATA_DIR`` when it is set, else a per-user cache folder
(``~/.cache/dlfp/mnist`` on Linux; :func:`dlfp.cache.cache_dir`). Missing files are
downloaded from public mirrors, tried in turn, and every file is checked against the
SHA-256 of its decompressed bytes, so a damaged or substituted file is never used
silently. A download is written to a temporary file and renamed into place only after
its checksum matches, so a failed or corrupted download leaves nothing behind.
"""

from __future__ import annotations

import http.client
import os
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..cache import cache_dir
from .idx import DataError, _decompress, _sha256_check

__all__ = ["MNIST_FILES", "DEFAULT_MIRRORS", "data_dir", "ensure_mnist"]

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


def data_dir() -> Path:
    """Where MNIST is read from: ``$DLFP_DATA_DIR``, else a per-user cache folder."""
    return cache_dir("mnist", "DLFP_DATA_DIR")


def _mirrors(mirrors: Sequence[str] | None) -> list[str]:
    if mirrors is None:
        configured = os.environ.get("DLFP_MNIST_MIRRORS", "").split()
        mirrors = configured or DEFAULT_MIRRORS
    return [m if m.endswith("/") else m + "/" for m in mirrors]


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
