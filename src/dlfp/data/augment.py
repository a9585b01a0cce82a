"""Data augmentation: :func:`random_shift` moves each training image by a few pixels."""

from __future__ import annotations

import numpy as np

__all__ = ["random_shift"]


def random_shift(
    X: np.ndarray, rng: np.random.Generator, max_shift: int = 2
) -> np.ndarray:
    """Shift every image by a random whole number of pixels, up and down and sideways.

    Parameters
    ----------
    X : ndarray, shape (n, 784) or (n, 28, 28)
        Square images (flat rows are reshaped and returned flat).
    rng : numpy.random.Generator
        Draws the shifts, uniformly from -max_shift to max_shift along each axis.
    max_shift : int
        The largest shift, in pixels; pixels shifted in from outside are 0 (background).

    Returns
    -------
    ndarray
        The shifted images, with the shape and dtype of ``X``.
    """
    n = len(X)
    side = X.shape[1] if X.ndim == 3 else int(round(np.sqrt(X.shape[1])))
    images = X.reshape(n, side, side)
    k = max_shift
    padded = np.zeros((n, side + 2 * k, side + 2 * k), dtype=X.dtype)
    padded[:, k : k + side, k : k + side] = images
    # A window of the padded image offset by (dy, dx) in [0, 2k] is the image shifted
    # by (dy - k, dx - k).
    dy = rng.integers(0, 2 * k + 1, n)[:, None, None]
    dx = rng.integers(0, 2 * k + 1, n)[:, None, None]
    pixels = np.arange(side)
    out = padded[
        np.arange(n)[:, None, None], dy + pixels[:, None], dx + pixels[None, :]
    ]
    return out.reshape(X.shape)
