"""Checking gradients against centred finite differences.

For a function f of an array x, each partial derivative is estimated by

    (f(x + h e_i) - f(x - h e_i)) / (2 h),

whose error shrinks like h^2 (a one-sided difference only like h). Compared in float64
with h around 1e-5, a correct analytic gradient agrees to a relative error of about
1e-9 or better; a wrong one is off by order one. Away from kinks (ReLU at 0), anything
below 1e-6 passes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .layers import Dropout, Layer

__all__ = [
    "numerical_gradient",
    "rel_error",
    "check_layer",
    "check_loss",
    "check_model",
]


def numerical_gradient(
    f: Callable[[], float], x: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """The gradient of ``f()`` with respect to ``x`` by centred differences.

    ``f`` takes no argument: it reads ``x``, which this function perturbs in place, one
    entry at a time, and restores. That way ``x`` can be a parameter inside a layer.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = f()
        x[i] = old - h
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)  # eq. (7.1)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Norm-wise relative error ||a - b|| / (||a|| + ||b||): 0 when equal, at most 1.

    Norm-wise rather than entry by entry: an entry that is itself near zero (a unit deep
    in a saturated network) has a centred difference dominated by rounding noise, and
    would fail an entrywise test however right the formula.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    # eq. (7.2); two zero gradients agree perfectly.
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def check_layer(
    layer: Layer, X: np.ndarray, rng: np.random.Generator, h: float = 1e-5
) -> dict[str, float]:
    """Relative errors of a layer's backward pass, for its input and every parameter.

    The scalar tested is f = sum(forward(X, training=True) * R) for a fixed random R,
    whose gradient with respect to the output is exactly R: ``backward(R)`` must then
    return df/dX. f is evaluated in training mode, the function whose gradient
    ``backward`` computes (batch normalisation uses the batch's own statistics there;
    a dropout layer keeps the mask of its first pass). Statistics that a training pass
    updates (running averages) are put back afterwards. Use float64 arrays.
    """
    R = rng.standard_normal(layer.forward(X).shape)
    statistics = {k: v.copy() for k, v in layer.params.items() if k not in layer.grads}
    dropout = isinstance(layer, Dropout)
    if dropout:
        layer.reuse_mask, layer._mask = True, None  # the next forward draws, then keeps

    def f() -> float:
        return float(np.sum(layer.forward(X, training=True) * R))

    try:
        layer.forward(X, training=True)
        dX = layer.backward(R.copy())
        analytic = {"X": dX, **{k: g.copy() for k, g in layer.grads.items()}}
        errors = {"X": rel_error(dX, numerical_gradient(f, X, h))}
        for key in layer.grads:
            numerical = numerical_gradient(f, layer.params[key], h)
            errors[key] = rel_error(analytic[key], numerical)
    finally:
        if dropout:
            layer.reuse_mask = False
        for key, value in statistics.items():
            layer.params[key][...] = value
    return errors


def check_loss(loss: Callable, Z: np.ndarray, y: np.ndarray, h: float = 1e-5) -> float:
    """Relative error of the gradient a loss returns, against centred differences."""
    _, analytic = loss(Z, y)
    return rel_error(analytic, numerical_gradient(lambda: loss(Z, y)[0], Z, h))


def check_model(model, X: np.ndarray, y: np.ndarray, loss: Callable, h: float = 1e-5):
    """Relative error of every parameter's gradient in a whole model, end to end.

    The analytic gradient is the one training computes: a forward pass in training
    mode, then backward. The differences evaluate the same function, so every dropout
    layer keeps the mask it drew in that forward pass for all of them (a new mask at
    each evaluation would compare two different functions and report errors of order
    one for a correct network).

    Returns a dict from parameter name (``"0.W"``, ``"0.b"``, ...) to relative error.
    """
    dropouts = [layer for layer in model.layers if isinstance(layer, Dropout)]

    def f() -> float:
        return loss(model.forward(X, training=True), y)[0]

    for layer in dropouts:
        layer.reuse_mask, layer._mask = True, None  # the next forward draws, then keeps
    try:
        out = model.forward(X, training=True)
        model.backward(loss(out, y)[1])
        analytic = {p.name: p.grad.copy() for p in model.parameters()}
        return {
            p.name: rel_error(analytic[p.name], numerical_gradient(f, p.value, h))
            for p in model.parameters()
        }
    finally:
        for layer in dropouts:
            layer.reuse_mask = False
