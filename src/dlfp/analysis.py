"""Looking inside a trained network: hidden representations and their principal axes."""

from __future__ import annotations

import numpy as np

from .model import Sequential

__all__ = ["pca", "hidden_representation"]


def pca(X: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal component analysis by the singular value decomposition.

    Centre the rows of X (subtract the mean row), factor the centred matrix as
    U S V^T, and project onto the first k right singular vectors: the directions along
    which the data vary most (Pearson, 1901).

    Parameters
    ----------
    X : ndarray, shape (n, d)
    k : int
        Number of components.

    Returns
    -------
    projection : ndarray, shape (n, k)
        Coordinates of each row along the components.
    components : ndarray, shape (k, d)
        The principal directions, unit vectors, one per row.
    explained : ndarray, shape (k,)
        The fraction of the total variance along each component.
    """
    X = np.asarray(X, dtype=np.float64)
    centred = X - X.mean(axis=0)
    # full_matrices=False: U is (n, r), not (n, n); only r = min(n, d) columns exist.
    U, S, Vt = np.linalg.svd(centred, full_matrices=False)
    # The signs of singular vectors are arbitrary; fix them so results are reproducible.
    signs = np.sign(Vt[:k, np.argmax(np.abs(Vt[:k]), axis=1)].diagonal())
    components = Vt[:k] * signs[:, None]
    explained = S[:k] ** 2 / np.sum(S**2)
    return centred @ components.T, components, explained


def hidden_representation(model: Sequential, X: np.ndarray, upto: int) -> np.ndarray:
    """The output of layer ``upto`` (counted from 0) of ``model`` for inputs X.

    For example, in ``mlp([784, 512, 256, 10])`` the layers are Dense, ReLU, Dense,
    ReLU, Dense (with a Dropout after each ReLU when dropout is used); the output of the
    last ReLU is the representation the output layer classifies.
    """
    A = model.check_inputs(X)
    for layer in model.layers[: upto + 1]:
        A = layer.forward(A)
    return A
