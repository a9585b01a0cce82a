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

Each recipe has one name, :data:`RECIPES`, used everywhere: by the seed runs
(``seeds.json``), the claims (:mod:`dlfp.claims`), the kept models
(:mod:`dlfp.artifacts`), the frameworks' backends, the verdict and the command line.

A recipe imports only the core of dlfp and NumPy: the frameworks and the store of kept
models (:mod:`dlfp.artifacts`) depend on the recipes, never the other way round.
"""

from __future__ import annotations

from .batches import Batches
from .cnn import CNNConfig, learning_rate
from .mlp import MLPConfig, load_mnist_for, train_mlp

__all__ = [
    "RECIPES",
    "recipe_config",
    "MLPConfig",
    "train_mlp",
    "CNNConfig",
    "learning_rate",
    "Batches",
    "load_mnist_for",
]

#: Every recipe by its one name, and the class of its configuration.
RECIPES: dict[str, type[MLPConfig] | type[CNNConfig]] = {
    "mlp": MLPConfig,  # Part II's perceptron, trained by dlfp (train_mlp)
    "numpy-cnn": CNNConfig,  # Part III's CNN in NumPy alone (dlfp.cnn)
    "torch-cnn": CNNConfig,  # the same recipe in PyTorch (dlfp.frameworks.torch_cnn)
    "keras-cnn": CNNConfig,  # and in Keras (dlfp.frameworks.keras_cnn)
}


def recipe_config(name: str, **changes) -> MLPConfig | CNNConfig:
    """The configuration of the recipe called ``name``, with ``changes`` applied:
    ``recipe_config("torch-cnn", seed=3)``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; use one of {', '.join(RECIPES)}.")
    return RECIPES[name](**changes)
