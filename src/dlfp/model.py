"""The sequential model: layers applied in order, trained end to end.

A :class:`Sequential` is itself a layer (it keeps the contract of :mod:`dlfp`), and adds
what a whole network needs: its parameters for an optimizer, prediction in batches,
evaluation, input checks at the door, and saving to a plain ``.npz`` file (whose
format is :mod:`dlfp.io`'s; :func:`load` and :class:`ModelFileError` are importable from
here too).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import activations, io
from .io import ModelFileError, load
from .layers import Dense, Dropout, Layer, Parameter

__all__ = ["Sequential", "mlp", "ModelFileError", "load"]


def _has_parameters(layer: Layer) -> bool:
    return bool(layer.grads)


class Sequential(Layer):
    """Layers applied one after the other.

    A ``Sequential`` is itself a layer, and may stand among the layers of another: it
    contributes its layers there, in order, so the model is flat and every parameter is
    seen by optimizers, early stopping, saving and gradient checks. The layers are
    shared, not copied: training the outer model trains the inner one.

    Parameters
    ----------
    layers : sequence of Layer
        The layers, input first. The last one should output logits when the model is
        trained with :func:`dlfp.losses.softmax_cross_entropy`.

    Attributes
    ----------
    layers : list of Layer
        The layers, input first (those of a ``Sequential`` given among them in its
        place).
    metadata : dict
        What was saved with the model (:meth:`save`'s keyword arguments, such as the
        test accuracy or the training history) when it was loaded with :func:`load`;
        empty for a model built in memory. It is not saved by :meth:`save`, which
        stores only the metadata passed to it.
    """

    def __init__(self, layers: Sequence[Layer]):
        super().__init__()
        self.layers = [
            inner
            for layer in layers
            for inner in (layer.layers if isinstance(layer, Sequential) else [layer])
        ]
        self.metadata: dict[str, Any] = {}

    # --- the layer contract ----------------------------------------------------------

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        for layer in self.layers:
            X = layer.forward(X, training)
        return X

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate dL/dZ of the last layer; return dL/dX for the input X.

        A layer is asked for the gradient of its input only if a layer before it has
        parameters, or if ``input_grad`` is true. With ``input_grad=False`` (what
        training uses: the data need no gradient) the pass therefore ends at the first
        layer with parameters, which computes only theirs, and None is returned.
        """
        first = next(
            (i for i, layer in enumerate(self.layers) if _has_parameters(layer)),
            len(self.layers),
        )
        for i in reversed(range(len(self.layers))):
            needed = input_grad or i > first
            dout = self.layers[i].backward(dout, input_grad=needed)
            if not needed:
                return None
        return dout

    # --- what a model adds -----------------------------------------------------------

    @property
    def dense_layers(self) -> list[Dense]:
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    @property
    def dtype(self) -> np.dtype:
        for layer in self.layers:
            for value in layer.params.values():
                return value.dtype
        return np.dtype(np.float32)

    @property
    def n_in(self) -> int:
        return self.dense_layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.dense_layers[-1].n_out

    @property
    def input_shape(self) -> tuple[int | None, ...] | None:
        """The shape of one example, as the first layer that fixes it takes it (None
        along an axis of any size; None altogether when any shape will do)."""
        for layer in self.layers:
            shape = layer.input_shape
            if shape is not None or not layer.keeps_shape:
                return shape
        return None

    def parameters(self) -> list[Parameter]:
        """Every trained parameter (those with a gradient) with its gradient array.

        Weights and filters decay, biases and batch-norm scales and shifts do not.
        Statistics kept in ``params`` without a gradient (batch normalisation's running
        averages) are saved with the model but are not parameters.
        """
        return [
            Parameter(layer.params[key], grad, f"{i}.{key}", key in layer.decayed)
            for i, layer in enumerate(self.layers)
            for key, grad in layer.grads.items()
        ]

    def num_parameters(self) -> int:
        return sum(p.value.size for p in self.parameters())

    def check_inputs(self, X: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """Validate a batch at the model's door and return it in the model's dtype.

        Raises ``ValueError`` with one sentence for: an array whose examples do not
        have the shape of :attr:`input_shape` (rows of features for a network that
        starts with a dense layer or a reshape), non-finite values, a different number
        of labels than examples, and labels that are not integers in {0, ..., K-1}.
        """
        X = np.asarray(X)
        shape = self.input_shape
        if shape is not None and len(shape) == 1:  # rows of features
            n_in = shape[0]
            if X.ndim != 2:
                raise ValueError(
                    f"the model takes a 2-D array (examples, {n_in} features) but got "
                    f"shape {X.shape}; flatten images with X.reshape(len(X), -1)."
                )
            if X.shape[1] != n_in:
                raise ValueError(
                    f"the model expects {n_in} features per example but X has "
                    f"{X.shape[1]}; check the input or the first layer's n_in."
                )
        elif shape is not None:
            _check_example_shape(X, shape)
        X = X.astype(self.dtype, copy=False)
        if not np.isfinite(X).all():
            raise ValueError(
                "X contains NaN or infinite values; clean or impute them first."
            )
        if y is not None:
            y = np.asarray(y)
            if len(y) != len(X):
                raise ValueError(
                    f"X has {len(X)} examples but y has {len(y)} labels; pass one "
                    "label per example."
                )
            if y.ndim == 1 and not np.issubdtype(y.dtype, np.integer):
                raise ValueError(
                    f"class labels must be integers, got dtype {y.dtype}; convert them "
                    "with y.astype(int)."
                )
            if y.ndim == 1 and len(y) and (y.min() < 0 or y.max() >= self.n_out):
                bad = y.min() if y.min() < 0 else y.max()
                raise ValueError(
                    f"labels must be integers from 0 to {self.n_out - 1} (the model "
                    f"has {self.n_out} outputs), but y holds {bad}; fix the labels or "
                    "the output width."
                )
        return X

    def predict_logits(self, X: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """The outputs of the last layer for every row of X, computed in batches."""
        X = self.check_inputs(X)
        return np.concatenate(
            [self.forward(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
        )

    def predict_proba(self, X: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Class probabilities softmax(logits), shape (n, K)."""
        return activations.softmax(self.predict_logits(X, batch_size), axis=1)

    def predict(self, X: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """The most probable class of every row of X, shape (n,)."""
        return self.predict_logits(X, batch_size).argmax(axis=1)

    def evaluate(
        self, X, y, loss=None, batch_size: int = 2048, classification: bool = True
    ) -> tuple[float, float]:
        """Mean loss and accuracy on (X, y); the loss defaults to softmax cross-entropy.

        Returns
        -------
        (float, float)
            The loss averaged over all examples, and the fraction classified correctly
            (NaN when ``classification`` is false and y holds regression targets).
        """
        from .losses import softmax_cross_entropy

        loss = softmax_cross_entropy if loss is None else loss
        X = self.check_inputs(X, y if classification else None)
        total, correct = 0.0, 0
        for i in range(0, len(X), batch_size):
            out = self.forward(X[i : i + batch_size])
            yb = y[i : i + batch_size]
            total += loss(out, yb)[0] * len(yb)
            if classification:
                correct += int((out.argmax(axis=1) == yb).sum())
        return total / len(X), (correct / len(X) if classification else float("nan"))

    # --- saving (the file format is in dlfp.io) -------------------------------------

    def save(self, path: str | os.PathLike, **metadata: Any) -> Path:
        """Save the architecture and parameters to a ``.npz`` file (no pickle).

        ``metadata`` (JSON-serialisable keyword arguments, for example the test
        accuracy) is stored beside them and returned by :func:`load` as
        ``model.metadata``. The format is :mod:`dlfp.io`'s; see :func:`dlfp.io.save`.
        """
        return io.save(self, path, **metadata)

    def config(self) -> dict[str, Any]:
        return {"layers": [type(layer).__name__ for layer in self.layers]}

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n  {inner}\n])"


def _check_example_shape(X: np.ndarray, shape: tuple[int | None, ...]) -> None:
    """One sentence when the examples of X (its axes after the first) do not have
    ``shape``, where None stands for any size."""
    wanted = "(" + ", ".join("any" if n is None else str(n) for n in shape) + ")"
    fits = X.ndim == len(shape) + 1 and all(
        n is None or n == m for n, m in zip(shape, X.shape[1:], strict=True)
    )
    if not fits:
        raise ValueError(
            f"the model takes examples of shape {wanted} but X has shape {X.shape}; "
            "reshape X so that each example has that shape (X[:, None] adds an axis "
            "of one channel)."
        )


def mlp(
    sizes: Sequence[int],
    activation: str = "relu",
    *,
    dropout: float = 0.0,
    init: str | None = None,
    rng: np.random.Generator | None = None,
    dtype=np.float32,
) -> Sequential:
    """A multilayer perceptron: Dense, activation (and dropout) per hidden layer.

    Parameters
    ----------
    sizes : sequence of int
        Widths n_0, n_1, ..., n_L: the input features, the hidden layers, the outputs.
    activation : str
        Hidden activation: relu, leaky_relu, tanh or sigmoid.
    dropout : float
        Dropout rate after every hidden activation (0 for none).
    init : str, optional
        Weight initialiser; by default He for the ReLU family and Glorot otherwise.
    rng : numpy.random.Generator
        Source of the initial weights and of the dropout masks.

    Returns
    -------
    Sequential
        Its output is the logits of the last Dense layer (no activation).
    """
    if len(sizes) < 2:
        raise ValueError(
            f"sizes needs an input and an output width, got {list(sizes)}."
        )
    rng = np.random.default_rng() if rng is None else rng
    if init is None:
        init = "he" if activation in ("relu", "leaky_relu") else "glorot"
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        # The output layer feeds a softmax: Glorot keeps its logits small at the start.
        layers.append(
            Dense(n_in, n_out, init="glorot" if last else init, rng=rng, dtype=dtype)
        )
        if not last:
            layers.append(activations.get(activation))
            if dropout:
                layers.append(Dropout(dropout, rng=rng))
    return Sequential(layers)
