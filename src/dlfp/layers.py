"""Layers with parameters or randomness: the base class, the record of one parameter
(:class:`Parameter`), the dense layer, dropout.

Every layer keeps the contract stated once in :mod:`dlfp`: ``forward`` caches what
``backward`` needs, ``backward(dout, input_grad=True)`` returns the gradient with
respect to the input (None when ``input_grad`` is false) and overwrites ``grads``, and
``params``/``grads`` are dicts of arrays updated in place.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, NamedTuple

import numpy as np

from . import init as initializers

__all__ = ["Layer", "Parameter", "Dense", "Dropout"]


class Layer:
    """Base class: a layer without parameters that passes its input through unchanged.

    Subclasses override :meth:`forward` and :meth:`backward`, and fill ``params`` and
    ``grads`` when they have parameters. :meth:`config` returns the constructor
    arguments needed to rebuild the layer (used to save a model without pickle), and
    :meth:`from_config` rebuilds it. A layer states its own facts, so that the model
    and the file format never ask which class it is.
    """

    #: The shape of one example the layer takes (None along an axis of any size), for
    #: the model's input checks; None when any shape will do.
    input_shape: tuple[int | None, ...] | None = None
    #: Whether the output has the shape of the input, whatever it is.
    keeps_shape: bool = False
    #: The keys of ``params`` that weight decay applies to (weights, not biases).
    decayed: tuple[str, ...] = ()
    _shape: tuple[int, ...] | None = None  # cached by a forward pass in training mode

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        self._shape = X.shape if training else None
        return X

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        self._cached(self._shape)
        return dout if input_grad else None

    def config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], *, dtype, rng) -> Layer:
        """The layer that ``config()`` describes, for a model of ``dtype`` that draws
        its random numbers from ``rng`` (a layer takes what it needs of the two)."""
        return cls(**config)

    def _cached(self, value):
        """``value`` as the last ``forward(X, training=True)`` cached it, or the error
        every layer raises when ``backward`` comes without that forward pass."""
        if value is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward was called without a forward(X, "
                "training=True) before it; run the forward pass in training mode first."
            )
        return value

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _accept_input_grad(cls)  # a backward(dout) written before input_grad existed

    def __call__(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(X, training)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _accept_input_grad(cls: type[Layer]) -> None:
    """Let a subclass's ``backward(self, dout)`` be called as ``backward(dout,
    input_grad)``: it computes dL/dX as before, and the answer is dropped when not
    wanted. (Code written for the one-argument contract keeps working unchanged.)"""
    backward = cls.__dict__.get("backward")
    if backward is None or "input_grad" in inspect.signature(backward).parameters:
        return

    @functools.wraps(backward)
    def adapted(self, dout, input_grad=True):
        dX = backward(self, dout)
        return dX if input_grad else None

    cls.backward = adapted


class Parameter(NamedTuple):
    """One parameter array of a model and the array its gradient lives in."""

    value: np.ndarray
    grad: np.ndarray
    name: str
    decay: bool


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

    decayed = ("W",)

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

    @property
    def input_shape(self) -> tuple[int]:
        """The shape of one example: a row of ``n_in`` features."""
        return (self.n_in,)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if X.ndim != 2 or X.shape[1] != self.n_in:
            got = X.shape[1] if X.ndim == 2 else f"an array of shape {X.shape}"
            raise ValueError(
                f"this Dense layer expects {self.n_in} features per example but got "
                f"{got}; reshape the input to (batch, {self.n_in}) or change n_in."
            )
        self._X = X if training else None  # what backward needs, only in training
        W, b = self.params["W"], self.params["b"]
        Z = X @ W  # eq. (5.1): Z = A W + 1 b^T, one example per row
        Z += b
        return Z

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        self.backward_params(dout)
        if not input_grad:
            return None
        return dout @ self.params["W"].T  # eq. (5.8): dL/dA = Delta W^T

    def backward_params(self, dout: np.ndarray) -> None:
        """The parameter half of :meth:`backward`: fill ``grads``, return nothing.

        For a network's first layer, whose input is the data, dL/dA is never needed
        (``backward(dout, input_grad=False)``), and skipping its product saves about a
        quarter of a training step's arithmetic (PyTorch skips it too: the data does
        not require a gradient).
        """
        X = self._cached(self._X)
        # eq. (5.6): dL/dW = A^T Delta. Written into the existing array, no copy.
        np.matmul(X.T, dout, out=self.grads["W"])
        dout.sum(axis=0, out=self.grads["b"])  # eq. (5.7): dL/db = 1^T Delta

    def config(self) -> dict[str, Any]:
        init = self.init if isinstance(self.init, str) else "custom"
        return {"n_in": self.n_in, "n_out": self.n_out, "init": init}

    @classmethod
    def from_config(cls, config, *, dtype, rng) -> Dense:
        return cls(**config, dtype=dtype, rng=rng)


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

    keeps_shape = True

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
        self._shape = X.shape if training else None
        if not training or self.rate == 0.0:
            self._mask = None
            return X
        if self.reuse_mask and self._mask is not None and self._mask.shape == X.shape:
            return X * self._mask
        keep = 1.0 - self.rate
        # eq. (10.4): M = [u >= r] / (1 - r), out = X * M
        mask = self.rng.random(X.shape, dtype=X.dtype) >= self.rate
        self._mask = mask.astype(X.dtype) / X.dtype.type(keep)
        return X * self._mask

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        self._cached(self._shape)
        if not input_grad:
            return None
        return dout if self._mask is None else dout * self._mask

    def config(self) -> dict[str, Any]:
        return {"rate": self.rate}

    @classmethod
    def from_config(cls, config, *, dtype, rng) -> Dropout:
        return cls(**config, rng=rng)
