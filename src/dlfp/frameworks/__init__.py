"""One convolutional network, written twice: in PyTorch and in TensorFlow/Keras.

Both versions share everything that is not framework code, so that any difference
between them is the framework's. The shared things live elsewhere, with every recipe:
:mod:`dlfp.recipes` holds the configuration, :class:`~dlfp.recipes.CNNConfig`, its
learning rate at each step, :func:`~dlfp.recipes.learning_rate`, and the mini-batches,
:class:`~dlfp.recipes.Batches` (identical arrays for every implementation); the trained
runs are kept by :mod:`dlfp.artifacts`. Here:

* :mod:`.backend`: what a framework's module provides, the :class:`Backend` protocol;
* :mod:`.torch_cnn` (needs PyTorch) and :mod:`.keras_cnn` (needs TensorFlow), imported
  only where used;
* :mod:`.compare`: the two measured side by side, imported only where used.
"""

from __future__ import annotations

from .backend import Backend

__all__ = ["Backend"]
