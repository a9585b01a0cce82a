"""Classification metrics computed from labels and predictions, and the exact binomial
test that says whether a count of correct answers is at odds with a probability."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "accuracy",
    "confusion_matrix",
    "precision_recall",
    "most_confused",
    "binomial_p_value",
]


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of predictions equal to the labels."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> np.ndarray:
    """Counts C[i, j] of examples of true class i predicted as class j, shape (K, K)."""
    C = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(C, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return C


def precision_recall(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision C[k, k] / sum_i C[i, k] and recall C[k, k] / sum_j C[k, j].

    Precision: of the examples predicted as k, the fraction that are k. Recall: of the
    examples that are k, the fraction predicted as k. A class never predicted gets
    precision NaN.
    """
    tp = np.diag(C).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / C.sum(axis=0), tp / C.sum(axis=1)


def most_confused(C: np.ndarray, n: int = 5) -> list[tuple[int, int, int]]:
    """The ``n`` largest off-diagonal counts as (true class, predicted class, count)."""
    off = C.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:n]
    return [
        (int(i), int(j), int(off[i, j]))
        for i, j in zip(*np.unravel_index(order, C.shape), strict=True)
    ]


def binomial_p_value(k: int, n: int, p: float) -> float:
    """Exact two-sided p-value of ``k`` successes in ``n`` independent trials that each
    succeed with probability ``p``: the total probability of every outcome that is no
    more likely than ``k`` (the definition of R's ``binom.test``)."""
    if not 0 <= k <= n:
        raise ValueError(f"k must lie between 0 and n = {n}, got {k}.")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}.")
    p = float(p)  # a Python float: a NumPy float32 would round every term
    pmf = [math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(n + 1)]
    # Outcomes as likely as k, up to rounding, count as no more likely.
    return min(1.0, sum(q for q in pmf if q <= pmf[k] * (1 + 1e-7)))
