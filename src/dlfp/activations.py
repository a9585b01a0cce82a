"""Activation functions, each as a plain function and as a layer with its derivative.

The functions (:func:`sigmoid`, :func:`softmax`, ...) are numerically stable for any
finite input. The layers (:class:`Sigmoid`, :class:`ReLU`, ...) keep the contract of
:mod:`dlfp`: ``forward`` caches what the derivative needs, ``backward(dout)`` multiplies
``dout`` by the derivative (element-wise, except for softmax, whose Jacobian is full).
They take arrays of any shape (a batch of rows or of feature maps), except
:class:`Softmax`, which normalises each row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import Layer
from .threads import SPLIT_MIN_SIZE, split

__all__ = [
    "sigmoid",
    "softmax",
    "log_softmax",
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "Softmax",
    "get",
]


def sigmoid(z):
    """The logistic function 1 / (1 + e^-z), without overflow for large |z|.

    Float arrays keep their dtype; integers and Python numbers give float64.
    """
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    # eq. (1.2). exp(-|z|) never overflows; for z < 0 use the equal form
    # e^z / (1 + e^z), so neither branch ever computes e^(+large).
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def log_softmax(Z: np.ndarray, axis: int = -1) -> np.ndarray:
    """log softmax(Z) along ``axis``, computed as Z - logsumexp(Z) after a shift."""
    # Softmax is unchanged by subtracting a constant from every logit; subtracting the
    # maximum makes the largest exponent e^0 = 1, so nothing overflows.
    shifted = Z - Z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(Z: np.ndarray, axis: int = -1) -> np.ndarray:
    """softmax(Z)_k = e^{Z_k} / sum_j e^{Z_j} along ``axis``, stable for finite Z."""
    shifted = Z - Z.max(axis=axis, keepdims=True)  # eq. (2.4), shifted
    E = np.exp(shifted)
    E /= E.sum(axis=axis, keepdims=True)
    return E


class Sigmoid(Layer):
    """Element-wise sigmoid; derivative sigma' = sigma (1 - sigma)."""

    keeps_shape = True
    _A = None

    def forward(self, X, training=False):
        A = sigmoid(X)
        self._A = A if training else None
        return A

    def backward(self, dout, input_grad=True):
        A = self._cached(self._A)
        return dout * A * (1 - A) if input_grad else None  # eq. (6.1)


class Tanh(Layer):
    """Element-wise hyperbolic tangent; derivative 1 - tanh^2."""

    keeps_shape = True
    _A = None

    def forward(self, X, training=False):
        A = np.tanh(X)
        self._A = A if training else None
        return A

    def backward(self, dout, input_grad=True):
        A = self._cached(self._A)
        return dout * (1 - A * A) if input_grad else None  # eq. (6.3)


class ReLU(Layer):
    """Rectified linear unit max(0, z); derivative 1 where z > 0, else 0."""

    keeps_shape = True
    _mask = None

    def forward(self, X, training=False):
        X = np.asarray(X)
        if X.ndim == 0 or X.size < SPLIT_MIN_SIZE:
            mask = X > 0
            out = X * mask  # multiplying by the mask keeps the dtype
        else:  # the same two passes, split over the batch (dlfp.threads.split)
            mask = np.empty_like(X, dtype=bool)
            out = np.empty_like(X, dtype=np.result_type(X, mask))

            def relu(start: int, stop: int) -> None:  # examples start to stop
                np.greater(X[start:stop], 0, out=mask[start:stop])
                np.multiply(X[start:stop], mask[start:stop], out=out[start:stop])

            split(relu, len(X), X.size)
        self._mask = mask if training else None
        return out

    def backward(self, dout, input_grad=True):
        mask = self._cached(self._mask)
        if not input_grad:
            return None
        dout = np.asarray(dout)
        if dout.ndim == 0 or dout.size < SPLIT_MIN_SIZE:
            return dout * mask  # eq. (6.5)
        dX = np.empty_like(dout, dtype=np.result_type(dout, mask))

        def relu_gradient(start: int, stop: int) -> None:  # examples start to stop
            np.multiply(dout[start:stop], mask[start:stop], out=dX[start:stop])

        split(relu_gradient, len(dout), dout.size)  # eq. (6.5), split over the batch
        return dX


class LeakyReLU(Layer):
    """max(alpha z, z) for a small slope ``alpha``; derivative 1 or alpha."""

    keeps_shape = True
    _slope = None

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"the leaky slope alpha must be in [0, 1), got {alpha}.")
        self.alpha = float(alpha)

    def forward(self, X, training=False):
        slope = np.where(X > 0, 1, self.alpha).astype(X.dtype)  # eq. (6.6)
        self._slope = slope if training else None
        return X * slope

    def backward(self, dout, input_grad=True):
        slope = self._cached(self._slope)
        return dout * slope if input_grad else None

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Softmax(Layer):
    """Row-wise softmax, as a layer.

    For training a classifier use :func:`dlfp.losses.softmax_cross_entropy` on the
    logits instead: it fuses the two, which is faster and numerically safer. This layer
    exists to show, and to check, the softmax's own Jacobian.
    """

    _S = None

    def forward(self, X, training=False):
        S = softmax(X, axis=1)
        self._S = S if training else None
        return S

    def backward(self, dout, input_grad=True):
        S = self._cached(self._S)
        if not input_grad:
            return None
        # eq. (6.7): the Jacobian diag(s) - s s^T applied to each row of
        # dout without forming it: s * (dout - <dout, s>).
        return S * (dout - (dout * S).sum(axis=1, keepdims=True))


def get(name: str) -> Layer:
    """A new activation layer by name: sigmoid, tanh, relu, leaky_relu or softmax (the
    short names of :data:`dlfp.registry.ACTIVATIONS`)."""
    from .registry import ACTIVATIONS, LAYERS  # here: the registry imports this module

    try:
        return LAYERS[ACTIVATIONS[name]]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}."
        ) from None
