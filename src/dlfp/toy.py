"""Small two-dimensional data sets for seeing what a network does.

Every generator takes an explicit ``numpy.random.Generator`` and returns ``(X, y)``:
``X`` of shape (n, 2) and dtype float64, ``y`` of shape (n,) with integer classes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["spirals", "moons", "circles", "blobs", "train_test_split"]


def spirals(
    n_per_class: int,
    rng: np.random.Generator,
    *,
    classes: int = 3,
    noise: float = 0.2,
    turns: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class: not separable by any straight line.

    Arm k has points at radius r in [0, 1] and angle ``2 pi (turns r + k / classes)``,
    the angle perturbed by Gaussian noise of standard deviation ``noise`` (radians).
    """
    X, y = [], []
    for k in range(classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        angle = 2 * np.pi * (turns * r + k / classes)
        angle = angle + noise * rng.standard_normal(n_per_class)
        X.append(np.column_stack([r * np.cos(angle), r * np.sin(angle)]))
        y.append(np.full(n_per_class, k))
    return np.concatenate(X), np.concatenate(y)


def moons(n: int, rng: np.random.Generator, *, noise: float = 0.1):
    """Two interleaving half circles, ``n`` points in all, with Gaussian noise."""
    n0 = n // 2
    t0 = np.pi * rng.random(n0)
    t1 = np.pi * rng.random(n - n0)
    upper = np.column_stack([np.cos(t0), np.sin(t0)])
    lower = np.column_stack([1 - np.cos(t1), 0.5 - np.sin(t1)])
    X = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    return X, np.concatenate([np.zeros(n0, int), np.ones(n - n0, int)])


def circles(
    n: int, rng: np.random.Generator, *, noise: float = 0.08, factor: float = 0.5
):
    """A disc inside a ring: class 1 at radius ``factor``, class 0 at radius 1."""
    n0 = n // 2
    t = 2 * np.pi * rng.random(n)
    radius = np.where(np.arange(n) < n0, 1.0, factor)
    X = np.column_stack([radius * np.cos(t), radius * np.sin(t)])
    X += noise * rng.standard_normal((n, 2))
    return X, (np.arange(n) >= n0).astype(int)


def blobs(
    n_per_class: int, centers: np.ndarray, rng: np.random.Generator, *, std: float = 0.5
):
    """Gaussian clouds of standard deviation ``std`` around each row of ``centers``."""
    centers = np.asarray(centers, dtype=np.float64)
    X = np.concatenate(
        [c + std * rng.standard_normal((n_per_class, 2)) for c in centers]
    )
    y = np.repeat(np.arange(len(centers)), n_per_class)
    return X, y


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float, rng: np.random.Generator
):
    """Shuffle, hold out ``test_fraction`` of the examples: (X_tr, y_tr, X_te, y_te)."""
    order = rng.permutation(len(X))
    n_test = int(round(test_fraction * len(X)))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]
