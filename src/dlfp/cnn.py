"""The book's CNN in dlfp alone: the architecture and its training.

The network is the one :class:`dlfp.recipes.CNNConfig` describes, which Part III
also trains in PyTorch and Keras; :func:`cnn` builds it from the layers of
:mod:`dlfp.conv`. :func:`train` trains it with :func:`dlfp.train.fit`, the loop that
trains the MLP too, on the same augmented mini-batches as PyTorch
(:class:`dlfp.recipes.Batches`), with the same schedule
(:func:`dlfp.recipes.learning_rate`) and the same optimizer (:class:`dlfp.optim.AdamW`),
so the two runs differ only in the arithmetic.

The model takes rows of 784 pixels, like the perceptrons of Part II: its first layer,
``Reshape((1, 28, 28))``, views each row as a one-channel image. Everything that feeds
an MLP (``fit``, ``evaluate``, ``dlfp evaluate``) therefore feeds it too.

The module implements the recipe ``"numpy-cnn"`` of :data:`dlfp.recipes.RECIPES`
(``train``, ``evaluate``, ``predict_logits``, ``save``, ``load``: the
:class:`~dlfp.recipes.Implementation` protocol). Nothing here imports PyTorch; the
comparisons with it live in :mod:`dlfp.mirror`, and where a step spends its time in
:mod:`dlfp.profile`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import conv
from .activations import ReLU
from .data import MNIST
from .io import load as _load
from .layers import Dense, Dropout, Layer
from .model import Sequential
from .optim import AdamW
from .recipes import Batches, CNNConfig, learning_rate, load_mnist_for
from .train import History, fit

__all__ = [
    "NAME",
    "SUFFIX",
    "cnn",
    "adamw",
    "Rows",
    "train",
    "evaluate",
    "predict_logits",
    "save",
    "load",
]

#: The recipe this module implements, and the suffix of its model files.
NAME, SUFFIX = "numpy-cnn", ".npz"


def cnn(
    config: CNNConfig = CNNConfig(),
    *,
    rng: np.random.Generator | None = None,
    dtype=np.float32,
) -> Sequential:
    """The network of ``config``, initialised as PyTorch's :class:`~dlfp.frameworks.
    torch_cnn.CNN` is: He-uniform filters and hidden weights, a Glorot-uniform output
    layer, zero biases, batch normalisation starting at gamma = 1, beta = 0.

    ``rng`` draws the initial weights, in order from the input, and then the dropout
    masks of training.
    """
    rng = np.random.default_rng(config.seed) if rng is None else rng
    weights = {"init": "he_uniform", "rng": rng, "dtype": dtype}
    layers: list[Layer] = [conv.Reshape((1, config.image_side, config.image_side))]
    c_in = 1
    for c_out in config.channels:  # one block per entry: conv, BN, ReLU, pool
        layers += [
            conv.Conv2D(c_in, c_out, 3, padding=1, bias=False, **weights),
            conv.BatchNorm2D(c_out, dtype=dtype),
            ReLU(),
            conv.MaxPool2D(2),
        ]
        c_in = c_out
    side = config.feature_side()
    layers += [
        conv.Flatten(),
        Dense(c_in * side * side, config.hidden, **weights),
        ReLU(),
        Dropout(config.dropout, rng=rng),
        Dense(config.hidden, config.classes, init="glorot", rng=rng, dtype=dtype),
    ]
    return Sequential(layers)


def adamw(model: Sequential, config: CNNConfig) -> AdamW:
    """The recipe's optimizer for ``model``: AdamW with the peak rate and weight decay
    of ``config``, decay on every parameter, as in PyTorch."""
    return AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


class Rows:
    """The recipe's :class:`~dlfp.recipes.Batches` as :func:`dlfp.train.fit` takes
    them for this network: each batch of images (B, 28, 28) as rows of pixels (B, 784)
    in the model's dtype."""

    def __init__(self, batches: Batches, dtype=np.float32):
        self.batches, self.dtype = batches, dtype

    def __len__(self) -> int:
        return len(self.batches)

    def batch(self, epoch: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        images, labels = self.batches.batch(epoch, i)
        return images.reshape(len(images), -1).astype(self.dtype, copy=False), labels


def train(
    config: CNNConfig = CNNConfig(),
    data: MNIST | None = None,
    *,
    dtype=np.float32,
    verbose: bool = False,
    progress: bool = False,
) -> tuple[Sequential, History]:
    """Train the CNN of ``config`` with dlfp, exactly as the PyTorch chapter does.

    :func:`dlfp.train.fit` takes the batches of :class:`~dlfp.recipes.Batches` (the
    same arrays PyTorch sees), sets the rate of step t to ``learning_rate(t, total,
    config)`` and steps :func:`adamw`. The generator seeded with ``config.seed`` draws
    the initial weights and then the dropout masks. The validation split is evaluated
    after every epoch, 1,000 images at a time.

    Returns
    -------
    (Sequential, History)
        The model and its history, with the loss of every step.
    """
    if data is None:
        data = load_mnist_for(config)
    model = cnn(config, rng=np.random.default_rng(config.seed), dtype=dtype)
    batches = Rows(Batches(data.train.images, data.train.labels, config), dtype)
    total = config.epochs * len(batches)
    validation = None
    if len(data.validation.labels):
        validation = (data.validation.flat, data.validation.labels)
    history = fit(
        model,
        batches=batches,
        optimizer=adamw(model, config),
        epochs=config.epochs,
        step_schedule=lambda step: learning_rate(step, total, config),
        validation=validation,
        validation_batch_size=1000,
        progress=progress,
        verbose=verbose,
    )
    return model, history


def evaluate(
    model: Sequential, images: np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on images (n, 28, 28), 1,000 at a time."""
    return model.evaluate(images.reshape(len(images), -1), labels, batch_size=1000)


def predict_logits(
    model: Sequential, images: np.ndarray, batch_size: int = 1000
) -> np.ndarray:
    """Logits (n, 10) for images (n, 28, 28), in inference mode."""
    return model.predict_logits(images.reshape(len(images), -1), batch_size)


def save(model: Sequential, path: str | os.PathLike) -> Path:
    """Save ``model`` in dlfp's ``.npz`` format (no pickle)."""
    return model.save(path)


def load(path: str | os.PathLike, config: CNNConfig | None = None) -> Sequential:
    """The model saved at ``path`` (its file holds the architecture)."""
    return _load(path)
