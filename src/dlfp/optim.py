"""Optimizers behind one interface, and the learning-rate schedules that drive them.

The contract
------------
An optimizer is built from a model's parameters, ``model.parameters()``: a list of
:class:`~dlfp.layers.Parameter` records (defined beside the layers, importable from here
too), each holding a parameter array, the array its gradient is written into, and
whether weight decay applies to it (weights yes, biases no). Each call of
:meth:`Optimizer.step` reads the current gradients and updates every parameter array
*in place*; the layers see the new values at once. ``lr`` is a plain attribute, so a
schedule can change it between steps.

``weight_decay`` is the L2 penalty (lambda / 2) ||W||^2 added to the loss: its gradient
lambda W is added to the gradient of every decayed parameter before the update.

Schedules
---------
Every learning-rate schedule of the book is here, each a function that returns
``rate(t)``: :func:`cosine_schedule` (per epoch, the MLP's), :func:`warmup_schedule`
(per step, eq. (8.8)) and :func:`warmup_cosine_schedule` (per step, the CNNs',
eq. (17.7)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from .layers import Parameter

__all__ = [
    "Parameter",
    "Optimizer",
    "SGD",
    "Momentum",
    "AdaGrad",
    "RMSProp",
    "Adam",
    "AdamW",
    "cosine_schedule",
    "warmup_schedule",
    "warmup_cosine_schedule",
    "get",
]


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
                g = g + self.weight_decay * p.value  # eq. (10.2)
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


class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al., 2011): each coordinate's step is divided by the root of
    the sum of all its squared gradients so far.

    s <- s + g^2, theta <- theta - eta g / (sqrt(s) + eps), as ``torch.optim.Adagrad``
    with its defaults ``lr_decay=0`` and ``initial_accumulator_value=0``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        eps: float = 1e-10,
        *,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr, weight_decay)
        self.eps = float(eps)
        self.s = [np.zeros_like(p.value) for p in self.params]

    def update(self, i, theta, g):
        s = self.s[i]
        s += g * g  # eq. (8.2): the sum of every squared gradient so far
        theta -= self.lr * g / (np.sqrt(s) + self.eps)  # eq. (8.2)


class RMSProp(Optimizer):
    """RMSProp (Tieleman and Hinton, 2012): AdaGrad with a moving average in place of
    the sum, so that old gradients are forgotten.

    s <- beta2 s + (1 - beta2) g^2, theta <- theta - eta g / (sqrt(s) + eps), as
    ``torch.optim.RMSprop(alpha=beta2)`` without momentum or centring. ``beta2`` is the
    same decay rate as Adam's second one (PyTorch calls it ``alpha``, Keras ``rho``).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        beta2: float = 0.99,
        eps: float = 1e-8,
        *,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr, weight_decay)
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"beta2 must be in [0, 1), got {beta2}.")
        self.beta2, self.eps = float(beta2), float(eps)
        self.s = [np.zeros_like(p.value) for p in self.params]

    def update(self, i, theta, g):
        s = self.s[i]
        s *= self.beta2  # eq. (8.3): s <- beta2 s + (1 - beta2) g^2
        s += (1 - self.beta2) * (g * g)
        theta -= self.lr * g / (np.sqrt(s) + self.eps)


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
        m *= b1  # eq. (8.4): m <- beta1 m + (1 - beta1) g
        m += (1 - b1) * g
        s *= b2  # eq. (8.5): s <- beta2 s + (1 - beta2) g^2
        s += (1 - b2) * (g * g)
        # eq. (8.7) with the bias corrections of eq. (8.6) folded
        # into the step size: eta m_hat / (sqrt(s_hat) + eps).
        step = self.lr / (1 - b1**t)
        denom = np.sqrt(s)
        denom /= math.sqrt(1 - b2**t)
        denom += self.eps
        theta -= step * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay, as PyTorch's ``torch.optim.AdamW``.

    Every step first shrinks the parameters by the factor 1 - eta lambda, then takes
    Adam's step computed from the gradient of the loss alone: eq. (17.6).
    (:class:`Adam`'s ``weight_decay`` instead adds lambda theta to the
    gradient, where Adam's scaling distorts it.)

    Parameters
    ----------
    params, lr, betas, eps
        As for :class:`dlfp.optim.Adam`.
    weight_decay : float
        The decoupled decay lambda.
    decay_all : bool
        Decay every parameter, biases and batch-norm scales included, as PyTorch does
        with the parameters it is given (the book's recipe); False decays only weights
        and filters (the parameters whose ``decay`` flag is set).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        weight_decay: float = 0.01,
        decay_all: bool = True,
    ):
        super().__init__(params, lr, betas, eps)  # no L2 term in the gradient
        self.decoupled_decay, self.decay_all = float(weight_decay), decay_all

    def step(self) -> None:
        shrink = 1.0 - self.lr * self.decoupled_decay  # eq. (17.6)
        if shrink != 1.0:
            for p in self.params:
                if self.decay_all or p.decay:
                    np.multiply(p.value, shrink, out=p.value)
        super().step()

    def __repr__(self) -> str:
        return f"AdamW(lr={self.lr}, weight_decay={self.decoupled_decay})"


def cosine_schedule(
    lr_max: float, epochs: int, lr_min: float = 0.0
) -> Callable[[int], float]:
    """A learning rate that falls from ``lr_max`` to ``lr_min`` along half a cosine.

    Returns a function of the epoch (counted from 0) for :func:`dlfp.train.fit`: the
    MLP's schedule. The CNNs' (:func:`warmup_cosine_schedule`) adds a warm-up.
    """

    def lr(epoch: int) -> float:
        return lr_min + 0.5 * (lr_max - lr_min) * (
            1 + math.cos(math.pi * epoch / epochs)
        )

    return lr


def warmup_schedule(lr: float, steps: int) -> Callable[[int], float]:
    """A learning rate that grows linearly from ``lr / steps`` to ``lr`` over the first
    ``steps`` steps (counted from 0), then stays at ``lr``.

    Returns a function of the step; set ``optimizer.lr`` from it before every step.
    """
    if steps < 1:
        raise ValueError(f"the warm-up needs at least one step, got {steps}.")

    def rate(step: int) -> float:
        return lr * min(1.0, (step + 1) / steps)  # eq. (8.8)

    return rate


def warmup_cosine_schedule(
    lr: float, total_steps: int, warmup: float
) -> Callable[[int], float]:
    """The CNNs' rate: a linear warm-up from 0, then half a cosine to 0: eq. (17.7).

    The warm-up lasts ``max(1, round(warmup * total_steps))`` steps; the rate peaks at
    ``lr`` when it ends and reaches 0 at step ``total_steps`` (and stays there).

    Parameters
    ----------
    lr : float
        The peak rate.
    total_steps : int
        Optimizer steps in the whole run.
    warmup : float
        The fraction of the steps spent warming up.

    Returns
    -------
    callable
        ``rate(step) -> float`` for the step counted from 0; set ``optimizer.lr`` from
        it before every step (:func:`dlfp.recipes.learning_rate` is its value for a
        :class:`~dlfp.recipes.CNNConfig`).

    Notes
    -----
    The cosine is that of :func:`cosine_schedule`, over steps instead of epochs, but
    each function keeps its own order of floating-point operations (pi * (j / T) here,
    (pi * j) / E there), which can differ in the last bit: the book's numbers were
    computed with them.
    """
    warm = max(1, round(warmup * total_steps))

    def rate(step: int) -> float:
        if step < warm:
            return lr * step / warm  # eq. (17.7), warm-up
        progress = (step - warm) / max(1, total_steps - warm)
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))  # eq. (17.7)

    return rate


_BY_NAME = {
    "sgd": SGD,
    "momentum": Momentum,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adam": Adam,
}


def get(name: str) -> type[Optimizer]:
    """An optimizer class by name: sgd, momentum, adagrad, rmsprop or adam."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; use one of {', '.join(_BY_NAME)}."
        ) from None
