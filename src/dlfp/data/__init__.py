"""MNIST, read from its original IDX files and downloaded when it is missing.

The package has one module per concern, and every public name is importable from
``dlfp.data`` itself:

* :mod:`dlfp.data.idx`: the IDX file format (:func:`parse_idx`, :func:`read_idx`) and
  :class:`DataError`;
* :mod:`dlfp.data.download`: where the files live (:func:`data_dir`), the mirrors, the
  checksums and the download (:func:`ensure_mnist`);
* :mod:`dlfp.data.mnist`: the splits, :func:`load_mnist`;
* :mod:`dlfp.data.augment`: :func:`random_shift`.

Anything wrong with the files raises :class:`DataError` with one sentence that names the
file and says what to do.
"""

from __future__ import annotations

from .augment import random_shift
from .download import DEFAULT_MIRRORS, MNIST_FILES, data_dir, ensure_mnist
from .idx import IMAGES_MAGIC, LABELS_MAGIC, DataError, parse_idx, read_idx
from .mnist import MNIST, Split, load_mnist

__all__ = [
    "DataError",
    "MNIST",
    "MNIST_FILES",
    "DEFAULT_MIRRORS",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "Split",
    "data_dir",
    "ensure_mnist",
    "load_mnist",
    "parse_idx",
    "read_idx",
    "random_shift",
]
