"""The book's MNIST recipe for the from-scratch network, in one place.

Part II trains one multilayer perceptron; the chapters, the command line (``dlfp train
mlp``) and the tests all use :class:`MLPConfig` and :func:`train_mlp`, so the numbers in
the book are the numbers a reader gets from the command line with the same seed.

Every choice in :class:`MLPConfig` is judged on the validation split, never on the test
set, which is used once, at the end. Chapter *Training the network* shows the evidence
that short runs can give (activation and initialisation, optimizer, learning rate) and
says where they cannot (dropout and augmentation pay off over long runs).

Trained models are kept in an *artifacts* folder so that a later chapter can look
inside the network an earlier chapter trained without training it again: the folder
named by ``DLFP_ARTIFACTS``, else ``~/.cache/dlfp/artifacts`` (:mod:`dlfp.artifacts`),
under a name that changes with the configuration, the code and the package versions.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__, optim
from .artifacts import artifacts_dir, fingerprint
from .data import MNIST, load_mnist, random_shift
from .io import load
from .model import Sequential, mlp
from .train import History, fit

__all__ = [
    "MLPConfig",
    "load_mnist_for",
    "artifacts_dir",
    "artifact_path",
    "train_mlp",
    "save_trained",
    "trained_mlp",
]


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

    def key(self) -> str:
        """A short hash of the configuration, the code that trains it and the versions
        of the packages that compute it: the name of the file the model is kept in."""
        return fingerprint(
            {**dataclasses.asdict(self), "dlfp": __version__}, MLP_SOURCES, MLP_PACKAGES
        )


def load_mnist_for(recipe, folder: str | os.PathLike | None = None) -> MNIST:
    """MNIST split as a training recipe asks: :func:`dlfp.data.load_mnist` with the
    recipe's ``validation_size``, ``subset`` and ``seed``.

    Parameters
    ----------
    recipe : MLPConfig or dlfp.frameworks.CNNConfig
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


#: The data code (the :mod:`dlfp.data` package), part of every trained model's key.
DATA_SOURCES = (
    "data/__init__.py", "data/idx.py", "data/download.py", "data/mnist.py",
    "data/augment.py",
)  # fmt: skip

#: The modules whose code decides the trained MLP's numbers, and the packages.
MLP_SOURCES = (
    "recipes.py", "train.py", "model.py", "io.py", "registry.py", "layers.py",
    "activations.py", "init.py", "optim.py", "losses.py", *DATA_SOURCES,
)  # fmt: skip
MLP_PACKAGES = ("numpy",)


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


def artifact_path(config: MLPConfig) -> Path:
    """The file the model trained with ``config`` is kept in."""
    return artifacts_dir() / f"mlp-{config.key()}.npz"


def save_trained(model: Sequential, config: MLPConfig, history: History) -> Path:
    """Keep a trained model, with its configuration and history, for later chapters."""
    path = artifact_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    return model.save(
        path, config=dataclasses.asdict(config), history=history.as_dict()
    )


def trained_mlp(config: MLPConfig = MLPConfig(), *, verbose: bool = False):
    """The model trained with ``config``: loaded from the artifacts folder when an
    earlier run saved it, else trained now and saved there.

    Returns
    -------
    (Sequential, dict)
        The model and the metadata saved with it: ``config`` and ``history`` (the
        :class:`~dlfp.train.History` as a dict of lists).
    """
    path = artifact_path(config)
    if not path.is_file():
        model, history = train_mlp(config, verbose=verbose)
        save_trained(model, config, history)
    model = load(path)
    return model, model.metadata
