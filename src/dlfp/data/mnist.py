"""MNIST as arrays: the training, validation and test splits that :func:`load_mnist`
returns, read from the IDX files and scaled to [0, 1]."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .download import MNIST_FILES, ensure_mnist
from .idx import IMAGES_MAGIC, LABELS_MAGIC, DataError, read_idx

__all__ = ["MNIST", "Split", "load_mnist"]


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
