"""Optimizers behind one interface.

The contract
------------
An optimizer is built from a model's parameters, ``model.parameters()``: a list of
:class:`Parameter` records, each holding a parameter array, the array its gradient is
written into, and whether weight decay applies to it (weights yes, biases no). Each call
of :meth:`Optimizer.step` reads the current gradients and updates every parameter array
*in place*; the layers see the new values at once. ``lr`` is a plain attribute, so a
schedule can change it between steps.

``weight_decay`` is the L2 penalty (lambda / 2) ||W||^2 added to the loss: its gradient
lambda W is added to the gradient of every decayed parameter before the update.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

__all__ = [
    "Parameter",
    "Optimizer",
    "SGD",
    "Momentum",
    "Adam",
    "cosine_schedule",
    "get",
]


class Parameter(NamedTuple):
    """One parameter array of a model and the array its gradient lives in."""

    value: np.ndarray
    grad: np.ndarray
    name: str
    decay: bool


class Optimizer:
    """Base class. Subclasses implement :meth:`update` for one parameter."""

    def __init__(
        self, params: Iterable[Parameter], lr: float, weight_decay: float = 0.0
    ):
        self.params = list(params)
        if not self.params:
            raise ValueError(
                "the optimizer got no parameters; pass model.parameters()."
            )
        if lr <= 0:
            raise ValueError(f"the learning rate must be positive, got {lr}.")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.t = 0  # number of steps taken

    def step(self) -> None:
        """Update every parameter in place from its current gradient."""
        self.t += 1
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay and p.decay:
                g = g + self.weight_decay * p.value  # eq. (9.7)
            self.update(i, p.value, g)

    def update(self, i: int, theta: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr}, weight_decay={self.weight_decay})"


class SGD(Optimizer):
    """Plain (stochastic) gradient descent: theta <- theta - eta g."""

    def update(self, i, theta, g):
        theta -= self.lr * g  # eq. (3.3)


class Momentum(Optimizer):
    """Gradient descent with (heavy-ball) momentum, in PyTorch's form.

    v <- mu v + g, theta <- theta - eta v. With a constant learning rate this gives the
    same parameters as the textbook form v <- mu v - eta g, theta <- theta + v.
    ``nesterov=True`` uses the look-ahead gradient g + mu v instead of v in the step.
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        *,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr, weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        self.momentum, self.nesterov = float(momentum), nesterov
        self.velocity = [np.zeros_like(p.value) for p in self.params]

    def update(self, i, theta, g):
        v = self.velocity[i]
        v *= self.momentum  # eq. (8.1)
        v += g
        theta -= self.lr * (g + self.momentum * v if self.nesterov else v)


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015): momentum on the gradient, scaled per coordinate by a
    running root mean square of the gradient, with both averages bias-corrected."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2 = map(float, betas)
        self.eps = float(eps)
        self.m = [np.zeros_like(p.value) for p in self.params]
        self.s = [np.zeros_like(p.value) for p in self.params]

    def update(self, i, theta, g):
        b1, b2, t = self.beta1, self.beta2, self.t
        m, s = self.m[i], self.s[i]
        m *= b1  # eq. (8.2): m <- beta1 m + (1 - beta1) g
        m += (1 - b1) * g
        s *= b2  # eq. (8.3): s <- beta2 s + (1 - beta2) g^2
        s += (1 - b2) * (g * g)
        # eq. (8.5) with the bias corrections of eq. (8.4) folded
        # into the step size: eta m_hat / (sqrt(s_hat) + eps).
        step = self.lr / (1 - b1**t)
        denom = np.sqrt(s)
        denom /= math.sqrt(1 - b2**t)
        denom += self.eps
        theta -= step * (m / denom)


def cosine_schedule(
    lr_max: float, epochs: int, lr_min: float = 0.0
) -> Callable[[int], float]:
    """A learning rate that falls from ``lr_max`` to ``lr_min`` along half a cosine.

    Returns a function of the epoch (counted from 0) for :func:`dlfp.train.fit`.
    """

    def lr(epoch: int) -> float:
        return lr_min + 0.5 * (lr_max - lr_min) * (
            1 + math.cos(math.pi * epoch / epochs)
        )

    return lr


_BY_NAME = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def get(name: str) -> type[Optimizer]:
    """An optimizer class by name: sgd, momentum or adam."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; use one of {', '.join(_BY_NAME)}."
        ) from None
