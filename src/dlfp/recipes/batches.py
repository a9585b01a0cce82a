"""The CNN's training mini-batches, as NumPy arrays identical for every framework.

:class:`Batches` indexes and augments the images before any framework sees them, so the
NumPy, PyTorch and Keras runs of :class:`~dlfp.recipes.CNNConfig` train on the
same arrays in the same order.
"""

from __future__ import annotations

import numpy as np

from ..data import random_shift
from .cnn import CNNConfig

__all__ = ["Batches"]


class Batches:
    """The training mini-batches of every epoch, identical for every implementation.

    Epoch ``e`` visits the images in the order of a permutation drawn from a generator
    seeded with ``(seed, e)``; batch ``i`` of that epoch is shifted at random by a
    generator seeded with ``(seed, e, i)``. Any batch can therefore be produced on its
    own, in any order, and is always the same array.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, config: CNNConfig):
        self.images, self.labels, self.config = images, labels, config
        self.n = len(labels)
        self._epoch, self._order = -1, np.arange(self.n)

    def __len__(self) -> int:
        return self.config.steps_per_epoch(self.n)

    def order(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.config.seed, epoch])
            self._epoch, self._order = epoch, rng.permutation(self.n)
        return self._order

    def batch(self, epoch: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Images (B, 28, 28) float32 and labels (B,) of batch ``i`` of ``epoch``."""
        size = self.config.batch_size
        idx = self.order(epoch)[i * size : (i + 1) * size]
        images = self.images[idx]
        if self.config.max_shift:
            rng = np.random.default_rng([self.config.seed, epoch, i])
            images = random_shift(images, rng, self.config.max_shift)
        return images, self.labels[idx]

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """All batches of ``epoch``, concatenated in order: images (n, 28, 28), labels.

        Cut into consecutive slices of ``batch_size`` rows, these are
        ``batch(epoch, 0)``, ``batch(epoch, 1)``, ... again.
        """
        pairs = [self.batch(epoch, i) for i in range(len(self))]
        return (
            np.concatenate([images for images, _ in pairs]),
            np.concatenate([labels for _, labels in pairs]),
        )
