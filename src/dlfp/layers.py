"""Layers with parameters or randomness: the base class, the dense layer, dropout.

Every layer keeps the contract stated once in :mod:`dlfp`: ``forward`` caches what
``backward`` needs, ``backward(dout)`` returns the gradient with respect to the input
and overwrites ``grads``, and ``params``/``grads`` are dicts of arrays updated in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import init as initializers

__all__ = ["Layer", "Dense", "Dropout"]


class Layer:
    """Base class: a layer without parameters that passes its input through unchanged.

    Subclasses override :meth:`forward` and :meth:`backward`, and fill ``params`` and
    ``grads`` when they have parameters. :meth:`config` returns the constructor
    arguments needed to rebuild the layer (used to save a model without pickle).
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        return X

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout

    def config(self) -> dict[str, Any]:
        return {}

    def __call__(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(X, training)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """A fully connected layer: ``Z = X @ W + b``.

    Parameters
    ----------
    n_in, n_out : int
        Number of input features and of outputs (units).
    init : str or callable
        How to draw the initial weights: ``"he"`` (ReLU family), ``"glorot"`` (tanh,
        sigmoid), ``"zeros"``, or a function ``(n_in, n_out, rng, dtype) -> W``. Biases
        start at zero.
    rng : numpy.random.Generator
        Source of the initial weights.
    dtype : numpy dtype
        float32 (default) or float64.

    Attributes
    ----------
    params : dict
        ``"W"``, shape (n_in, n_out), and ``"b"``, shape (n_out,).
    grads : dict
        The same keys and shapes: dL/dW and dL/db after :meth:`backward`.
    """

    def __init__(
        self, n_in: int, n_out: int, *, init="glorot", rng=None, dtype=np.float32
    ):
        super().__init__()
        self.n_in, self.n_out, self.init = int(n_in), int(n_out), init
        rng = np.random.default_rng() if rng is None else rng
        draw = initializers.get(init)
        W = np.asarray(draw(self.n_in, self.n_out, rng, dtype), dtype=dtype)
        self.params = {"W": W, "b": np.zeros(self.n_out, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._X: np.ndarray | None = None

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if X.ndim != 2 or X.shape[1] != self.n_in:
            got = X.shape[1] if X.ndim == 2 else f"an array of shape {X.shape}"
            raise ValueError(
                f"this Dense layer expects {self.n_in} features per example but got "
                f"{got}; reshape the input to (batch, {self.n_in}) or change n_in."
            )
        if training:
            self._X = X
        W, b = self.params["W"], self.params["b"]
        Z = X @ W  # eq. (5.1): Z = A W + 1 b^T, one example per row
        Z += b
        return Z

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.backward_params(dout)
        return dout @ self.params["W"].T  # eq. (5.8): dL/dA = Delta W^T

    def backward_params(self, dout: np.ndarray) -> None:
        """The parameter half of :meth:`backward`: fill ``grads``, return nothing.

        For a network's first layer, whose input is the data, dL/dA is never needed,
        and skipping its product saves about a quarter of a training step's arithmetic
        (PyTorch skips it too: the data does not require a gradient).
        """
        X = self._X
        if X is None:
            raise RuntimeError(
                "backward was called before forward(X, training=True); run the forward "
                "pass in training mode first."
            )
        # eq. (5.6): dL/dW = A^T Delta. Written into the existing array, no copy.
        np.matmul(X.T, dout, out=self.grads["W"])
        dout.sum(axis=0, out=self.grads["b"])  # eq. (5.7): dL/db = 1^T Delta

    def config(self) -> dict[str, Any]:
        init = self.init if isinstance(self.init, str) else "custom"
        return {"n_in": self.n_in, "n_out": self.n_out, "init": init}


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale
    the survivors by ``1 / (1 - rate)``; at inference, do nothing.

    Scaling during training keeps the expected activation unchanged, so the trained
    network is used as it is, with no rescaling at test time.

    Parameters
    ----------
    rate : float
        Probability ``r`` that a unit is dropped, in [0, 1).
    rng : numpy.random.Generator
        Source of the masks.
    """

    def __init__(self, rate: float, *, rng=None):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}.")
        self.rate = float(rate)
        self.rng = np.random.default_rng() if rng is None else rng
        self._mask: np.ndarray | None = None
        #: Reuse the last mask instead of drawing a new one: a gradient check needs the
        #: same function at every evaluation (:func:`dlfp.gradcheck.check_model`).
        self.reuse_mask = False

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0.0:
            self._mask = None
            return X
        if self.reuse_mask and self._mask is not None and self._mask.shape == X.shape:
            return X * self._mask
        keep = 1.0 - self.rate
        # eq. (9.9): M = [u >= r] / (1 - r), out = X * M
        mask = self.rng.random(X.shape, dtype=X.dtype) >= self.rate
        self._mask = mask.astype(X.dtype) / X.dtype.type(keep)
        return X * self._mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self._mask is None else dout * self._mask

    def config(self) -> dict[str, Any]:
        return {"rate": self.rate}
