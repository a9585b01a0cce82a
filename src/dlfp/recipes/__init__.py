"""The book's training recipes, together and apart from any framework.

Part II's multilayer perceptron and Part III's convolutional network are each one frozen
configuration and the rules that go with it:

* :mod:`.mlp`: :class:`MLPConfig` and :func:`train_mlp`, trained by dlfp alone;
* :mod:`.cnn`: :class:`CNNConfig` and its learning rate at each step,
  :func:`learning_rate`, one recipe for the NumPy (:mod:`dlfp.cnn`), PyTorch
  (:mod:`dlfp.frameworks.torch_cnn`) and Keras (:mod:`dlfp.frameworks.keras_cnn`) runs;
* :mod:`.batches`: the CNN's mini-batches and their augmentation, :class:`Batches`,
  the same arrays for every implementation;
* :func:`load_mnist_for`: MNIST split as a recipe asks.

A recipe imports only the core of dlfp and NumPy: the frameworks and the store of kept
models (:mod:`dlfp.artifacts`) depend on the recipes, never the other way round.
"""

from __future__ import annotations

from .batches import Batches
from .cnn import CNNConfig, learning_rate
from .mlp import MLPConfig, load_mnist_for, train_mlp

__all__ = [
    "MLPConfig",
    "train_mlp",
    "CNNConfig",
    "learning_rate",
    "Batches",
    "load_mnist_for",
]
