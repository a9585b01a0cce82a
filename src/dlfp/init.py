"""Weight initialisers.

Each takes ``(n_in, n_out, rng, dtype)`` and returns a weight matrix of shape
(n_in, n_out). The variances come from keeping the variance of the signal constant
from layer to layer (Glorot and Bengio, 2010; He et al., 2015): see the chapter on
initialisation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "zeros", "get"]

Initializer = Callable[[int, int, np.random.Generator, type], np.ndarray]


def glorot_uniform(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32):
    """U(-a, a) with a = sqrt(6 / (n_in + n_out)): variance 2 / (n_in + n_out)."""
    a = np.sqrt(6.0 / (n_in + n_out))  # eq. (9.3)
    return rng.uniform(-a, a, size=(n_in, n_out)).astype(dtype)


def glorot_normal(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32):
    """N(0, 2 / (n_in + n_out))."""
    std = np.sqrt(2.0 / (n_in + n_out))  # eq. (9.3)
    return (std * rng.standard_normal((n_in, n_out))).astype(dtype)


def he_normal(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32):
    """N(0, 2 / n_in): for ReLU layers, which zero half of their inputs on average."""
    std = np.sqrt(2.0 / n_in)  # eq. (9.5)
    return (std * rng.standard_normal((n_in, n_out))).astype(dtype)


def he_uniform(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32):
    """U(-a, a) with a = sqrt(6 / n_in): variance 2 / n_in."""
    a = np.sqrt(6.0 / n_in)  # eq. (9.5)
    return rng.uniform(-a, a, size=(n_in, n_out)).astype(dtype)


def zeros(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32):
    """All zeros: every unit of the layer then computes the same thing, forever."""
    return np.zeros((n_in, n_out), dtype=dtype)


_BY_NAME: dict[str, Initializer] = {
    "glorot": glorot_uniform,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he": he_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "zeros": zeros,
}


def get(init: str | Initializer) -> Initializer:
    """An initialiser by name (``"he"``, ``"glorot"``, ...) or the callable itself."""
    if callable(init):
        return init
    try:
        return _BY_NAME[init]
    except KeyError:
        names = ", ".join(_BY_NAME)
        raise ValueError(f"unknown initialiser {init!r}; use one of {names}.") from None
