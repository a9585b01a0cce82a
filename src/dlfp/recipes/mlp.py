"""The MNIST recipe of Part II's network: :class:`MLPConfig` and :func:`train_mlp`.

Part II trains one multilayer perceptron; the chapters, the command line (``dlfp train
mlp``) and the tests all use :class:`MLPConfig` and :func:`train_mlp`, so the numbers in
the book are the numbers a reader gets from the command line with the same seed.

Every choice in :class:`MLPConfig` is judged on the validation split, never on the test
set, which is used once, at the end. Chapter *Training the network* shows the evidence
that short runs can give (activation and initialisation, optimizer, learning rate) and
says where they cannot (dropout and augmentation pay off over long runs).

A recipe is plain data and the code that trains it: it knows nothing of where trained
models are kept. :mod:`dlfp.artifacts` keeps them (:func:`~dlfp.artifacts.trained_mlp`,
:func:`~dlfp.artifacts.save_trained`), under a name computed from the configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .. import optim
from ..data import MNIST, load_mnist, random_shift
from ..model import Sequential, mlp
from ..train import History, fit

__all__ = ["MLPConfig", "load_mnist_for", "train_mlp"]


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


def train_mlp(
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
