"""The book's training recipes: each one object, under one name, behind one interface.

Part II's multilayer perceptron and Part III's convolutional network are each one frozen
configuration and the rules that go with it:

* :mod:`.mlp`: :class:`MLPConfig`, trained by dlfp alone (:func:`.mlp.train`);
* :mod:`.cnn`: :class:`CNNConfig` and its learning rate at each step,
  :func:`learning_rate`, one recipe for the NumPy (:mod:`dlfp.cnn`), PyTorch
  (:mod:`dlfp.frameworks.torch_cnn`) and Keras (:mod:`dlfp.frameworks.keras_cnn`) runs;
* :mod:`.batches`: the CNN's mini-batches and their augmentation, :class:`Batches`,
  the same arrays for every implementation;
* :func:`load_mnist_for`: MNIST split as a recipe asks.

A :class:`Recipe` is a name of :data:`RECIPES` and a configuration:
``recipe("torch-cnn", seed=3)``. Its name is used everywhere: by the seed runs
(``seeds.json``), the claims (:mod:`dlfp.claims`), the kept models
(:mod:`dlfp.artifacts`), the verdict and the command line. It trains, tests, saves and
loads through the module that implements it, which every implementation provides in the
same words (:class:`Implementation`), and returns one kind of history,
:class:`dlfp.train.History`.

A recipe imports only the core of dlfp and NumPy. Its implementation is named here by
its module's path and imported only when a recipe trains, tests, saves or loads a model:
the implementations and the store of kept models depend on the recipes, never the other
way round.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .batches import Batches
from .cnn import CNNConfig, learning_rate
from .mlp import MLPConfig, load_mnist_for

if TYPE_CHECKING:
    import os

    import numpy as np

    from ..data import MNIST, Split
    from ..train import History

__all__ = [
    "RECIPES",
    "Recipe",
    "recipe",
    "Implementation",
    "MLPConfig",
    "CNNConfig",
    "learning_rate",
    "Batches",
    "load_mnist_for",
]


@dataclass(frozen=True)
class Kind:
    """What a recipe's name stands for: the class of its configuration, the module
    that implements it, and the suffix of its model files."""

    config: type[MLPConfig] | type[CNNConfig]
    module: str
    suffix: str


#: Every recipe by its one name.
RECIPES: dict[str, Kind] = {
    # Part II's perceptron, trained by dlfp
    "mlp": Kind(MLPConfig, "dlfp.recipes.mlp", ".npz"),
    # Part III's CNN in NumPy alone
    "numpy-cnn": Kind(CNNConfig, "dlfp.cnn", ".npz"),
    # the same recipe in PyTorch, and in Keras
    "torch-cnn": Kind(CNNConfig, "dlfp.frameworks.torch_cnn", ".pt"),
    "keras-cnn": Kind(CNNConfig, "dlfp.frameworks.keras_cnn", ".keras"),
}


@runtime_checkable
class Implementation(Protocol):
    """What the module implementing a recipe provides (a module satisfies it).

    Images are NumPy arrays of shape (n, 28, 28), float32, and labels integers (n,).
    """

    #: The recipe's name in :data:`RECIPES`, and the suffix of its model files.
    NAME: str
    SUFFIX: str

    def train(
        self, config: Any, data: MNIST | None = None, *, verbose: bool = False
    ) -> tuple[Any, History]:
        """Train the network of ``config``: the model and its history."""
        ...

    def evaluate(
        self, model: Any, images: np.ndarray, labels: np.ndarray
    ) -> tuple[float, float]:
        """Mean cross-entropy and accuracy on (images, labels), in inference mode."""
        ...

    def predict_logits(
        self, model: Any, images: np.ndarray, batch_size: int = 1000
    ) -> np.ndarray:
        """Logits (n, classes) for images (n, side, side), in inference mode."""
        ...

    def save(self, model: Any, path: str | os.PathLike) -> Path:
        """Save ``model`` at ``path`` (the suffix may be adjusted); return the path."""
        ...

    def load(self, path: str | os.PathLike, config: Any) -> Any:
        """The model saved at ``path``, ready for inference."""
        ...


@dataclass(frozen=True)
class Recipe:
    """One of the book's recipes: its name in :data:`RECIPES` and its configuration.

    ``train``, ``test``, ``save`` and ``load`` call the module that implements it
    (:attr:`implementation`), which is imported at the first call.
    """

    name: str
    config: MLPConfig | CNNConfig

    def __post_init__(self):
        kind = _kind(self.name)
        if not isinstance(self.config, kind.config):
            raise TypeError(
                f"the recipe {self.name!r} takes a {kind.config.__name__}, not a "
                f"{type(self.config).__name__}; build it with recipe({self.name!r})."
            )

    @property
    def suffix(self) -> str:
        """The suffix of this recipe's model files (``".npz"``, ``".pt"``, ...)."""
        return RECIPES[self.name].suffix

    @property
    def implementation(self) -> Implementation:
        """The module that trains this recipe, imported now (with its framework)."""
        return importlib.import_module(RECIPES[self.name].module)

    def replace(self, **changes) -> Recipe:
        """The same recipe with ``changes`` to its configuration."""
        return Recipe(self.name, dataclasses.replace(self.config, **changes))

    def data(self, folder: str | os.PathLike | None = None) -> MNIST:
        """MNIST split as this recipe asks (:func:`load_mnist_for`)."""
        return load_mnist_for(self.config, folder)

    def train(
        self, data: MNIST | None = None, *, verbose: bool = False, **options
    ) -> tuple[Any, History]:
        """Train the network: the model and its :class:`~dlfp.train.History`.

        ``options`` go to the implementation's ``train`` (dlfp's take
        ``progress=True``, a progress bar).
        """
        data = self.data() if data is None else data
        return self.implementation.train(self.config, data, verbose=verbose, **options)

    def test(self, model: Any, split: Split) -> tuple[float, float]:
        """Mean cross-entropy and accuracy of ``model`` on ``split`` (the test set)."""
        return self.implementation.evaluate(model, split.images, split.labels)

    def save(self, model: Any, path: str | os.PathLike) -> Path:
        """Save ``model`` at ``path``; return the path written."""
        return self.implementation.save(model, path)

    def load(self, path: str | os.PathLike) -> Any:
        """The model saved at ``path``, ready for inference."""
        return self.implementation.load(path, self.config)


def _kind(name: str) -> Kind:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; use one of {', '.join(RECIPES)}.")
    return RECIPES[name]


def recipe(name: str, **changes) -> Recipe:
    """The recipe called ``name``, with ``changes`` to its default configuration:
    ``recipe("torch-cnn", seed=3)``."""
    return Recipe(name, _kind(name).config(**changes))
