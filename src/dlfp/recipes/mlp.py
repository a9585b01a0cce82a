"""The MNIST recipe of Part II's network: :class:`MLPConfig` and :func:`train`.

Part II trains one multilayer perceptron; the chapters, the command line (``dlfp train
mlp``), the seed runs and the tests all use :class:`MLPConfig` and :func:`train`
(through the recipe ``"mlp"`` of :func:`dlfp.recipes.recipe`), so the numbers in the
book are the numbers a reader gets from the command line with the same seed. The module
implements that recipe: ``train``, ``evaluate``, ``predict_logits``, ``save`` and
``load``, the :class:`~dlfp.recipes.Implementation` protocol.

Every choice in :class:`MLPConfig` is judged on the validation split, never on the test
set, which is used once, at the end. Chapter *Training the network* shows the evidence
that short runs can give (activation and initialisation, optimizer, learning rate) and
says where they cannot (dropout and augmentation pay off over long runs).

A recipe is plain data and the code that trains it: it knows nothing of where trained
models are kept. :mod:`dlfp.artifacts` keeps them (:func:`~dlfp.artifacts.trained`,
:func:`~dlfp.artifacts.keep`), under a name computed from the configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import optim
from ..data import MNIST, load_mnist, random_shift
from ..io import load as _load
from ..model import Sequential, mlp
from ..train import History, fit

__all__ = [
    "NAME",
    "SUFFIX",
    "MLPConfig",
    "load_mnist_for",
    "train",
    "evaluate",
    "predict_logits",
    "save",
    "load",
]

#: The recipe this module implements, and the suffix of its model files.
NAME, SUFFIX = "mlp", ".npz"


@dataclass(frozen=True)
class MLPConfig:
    """Everything that determines a training run of the MNIST MLP."""

    hidden: tuple[int, ...] = (512, 256)  #: hidden widths n_1, ..., n_{L-1}
    activation: str = "relu"
    dropout: float = 0.2  #: dropout rate r after each hidden layer
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3  #: Adam's peak learning rate, decayed along a cosine
    weight_decay: float = 0.0
    max_shift: int = 2  #: random translations of up to this many pixels (0: none)
    validation_size: int = 5000
    subset: int | None = None  #: train on this many images only (None: all)
    seed: int = 0


def load_mnist_for(recipe, folder: str | os.PathLike | None = None) -> MNIST:
    """MNIST split as a training recipe asks: :func:`dlfp.data.load_mnist` with the
    recipe's ``validation_size``, ``subset`` and ``seed``.

    Parameters
    ----------
    recipe : MLPConfig or CNNConfig
        Any object with those three attributes.
    folder : path, optional
        Where the MNIST files are; :func:`dlfp.data.data_dir` when omitted.
    """
    return load_mnist(
        validation_size=recipe.validation_size,
        subset=recipe.subset,
        seed=recipe.seed,
        folder=folder,
    )


def train(
    config: MLPConfig = MLPConfig(),
    data: MNIST | None = None,
    *,
    progress: bool = False,
    verbose: bool = False,
) -> tuple[Sequential, History]:
    """Train the MNIST MLP described by ``config`` on the training split.

    The generator seeded with ``config.seed`` draws, in this order, the initial weights,
    then every epoch's shuffle, augmentation and dropout masks: the same configuration
    gives the same network on every machine.

    Returns
    -------
    (Sequential, History)
        The trained model and its per-epoch training and validation records.
    """
    if data is None:
        data = load_mnist_for(config)
    rng = np.random.default_rng(config.seed)
    model = mlp(
        [784, *config.hidden, 10],
        config.activation,
        dropout=config.dropout,
        rng=rng,
    )
    optimizer = optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    augment = None
    if config.max_shift:

        def augment(X, r):
            return random_shift(X, r, config.max_shift)

    validation = None
    if len(data.validation.labels):
        validation = (data.validation.flat, data.validation.labels)
    history = fit(
        model,
        data.train.flat,
        data.train.labels,
        optimizer=optimizer,
        epochs=config.epochs,
        batch_size=config.batch_size,
        rng=rng,
        validation=validation,
        lr_schedule=optim.cosine_schedule(config.lr, config.epochs),
        augment=augment,
        progress=progress,
        verbose=verbose,
    )
    return model, history


def evaluate(
    model: Sequential, images: np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on images (n, 28, 28), as rows of pixels."""
    return model.evaluate(images.reshape(len(images), -1), labels)


def predict_logits(
    model: Sequential, images: np.ndarray, batch_size: int = 2048
) -> np.ndarray:
    """Logits (n, 10) for images (n, 28, 28), in inference mode."""
    return model.predict_logits(images.reshape(len(images), -1), batch_size)


def save(model: Sequential, path: str | os.PathLike) -> Path:
    """Save ``model`` in dlfp's ``.npz`` format (no pickle)."""
    return model.save(path)


def load(path: str | os.PathLike, config: MLPConfig | None = None) -> Sequential:
    """The model saved at ``path`` (its file holds the architecture)."""
    return _load(path)
