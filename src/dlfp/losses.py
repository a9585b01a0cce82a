"""Loss functions. Each returns the loss and its gradient together.

Every loss is a *mean* over the examples of a batch (and, for the element-wise losses,
over the outputs too), so each gradient already carries the factor 1/B. The gradients
are with respect to what the function takes: the logits for the two cross-entropies
(the sigmoid or softmax is inside the loss), the predictions for the squared error.
"""

from __future__ import annotations

import numpy as np

from .activations import sigmoid

__all__ = ["mse", "binary_cross_entropy_with_logits", "softmax_cross_entropy", "get"]


def mse(y_hat: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error, averaged over every element.

    Parameters
    ----------
    y_hat : ndarray, shape (B,) or (B, n)
        Predictions.
    y : ndarray, same shape
        Targets.

    Returns
    -------
    loss : float
        ``mean((y_hat - y) ** 2)``.
    grad : ndarray, shape of ``y_hat``
        dL/dy_hat = 2 (y_hat - y) / y_hat.size.
    """
    diff = y_hat - y
    loss = float(np.mean(diff * diff))  # eq. (2.6)
    return loss, (2.0 / diff.size) * diff


def binary_cross_entropy_with_logits(
    z: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """Binary cross-entropy of sigmoid(z) against targets y in {0, 1}, from the logits.

    Parameters
    ----------
    z : ndarray, shape (B,) or (B, 1)
        Logits: the pre-activations of a sigmoid output.
    y : ndarray, same shape
        Targets, 0 or 1 (or probabilities in [0, 1]).

    Returns
    -------
    loss : float
        The mean of -[y log sigma(z) + (1 - y) log(1 - sigma(z))], computed as
        ``max(z, 0) - y z + log(1 + e^-|z|)``, which never overflows or takes log(0).
    grad : ndarray, shape of ``z``
        dL/dz = (sigma(z) - y) / B: the gradient goes *through* the sigmoid.
    """
    y = y.astype(z.dtype, copy=False)
    # eq. (2.2): the stable form of eq. (2.1) for p = sigma(z).
    per_example = np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))
    loss = float(np.mean(per_example))
    return loss, (sigmoid(z) - y) / z.size  # eq. (2.3)


def softmax_cross_entropy(Z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Cross-entropy of softmax(Z) against integer labels, fused and stable.

    Parameters
    ----------
    Z : ndarray, shape (B, K)
        Logits, one row per example.
    y : ndarray of int, shape (B,)
        Labels in {0, ..., K-1}.

    Returns
    -------
    loss : float
        The mean over the batch of -log softmax(Z_i)[y_i].
    grad : ndarray, shape (B, K)
        dL/dZ = (softmax(Z) - Y) / B with Y the one-hot labels: the gradient goes
        *through* the softmax, so the network's last layer outputs logits.
    """
    B = Z.shape[0]
    rows = np.arange(B)
    # One exponential serves both the loss and the gradient. Shifting every logit of a
    # row by the row's maximum changes neither softmax nor the loss, and keeps e^z <= 1.
    shifted = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(shifted)
    total = E.sum(axis=1)
    # eq. (2.5): -log softmax(z)_y = log sum_j e^{z_j} - z_y
    loss = float(np.mean(np.log(total) - shifted[rows, y]))
    E /= total[:, None]  # now softmax(Z), eq. (2.4)
    E[rows, y] -= 1  # eq. (5.5): (Y_hat - Y) / B
    E /= B
    return loss, E


_BY_NAME = {
    "mse": mse,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
    "softmax_cross_entropy": softmax_cross_entropy,
}


def get(name: str):
    """A loss function by name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown loss {name!r}; use one of {', '.join(_BY_NAME)}."
        ) from None
