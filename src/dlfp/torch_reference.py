"""The dlfp MLP rebuilt in PyTorch, to show that both compute the same numbers.

:func:`to_torch` copies a :class:`dlfp.model.Sequential` of Dense and activation layers
into an equivalent ``torch.nn.Sequential`` with identical weights (PyTorch's ``Linear``
stores W transposed: shape (out, in), computing ``x W^T + b``). :func:`lockstep` trains
the two side by side on identical mini-batches and records both losses at every step.

This module imports PyTorch; ``import dlfp`` does not.
"""

from __future__ import annotations

import numpy as np
import torch

from . import optim, registry
from .layers import Dense, Dropout
from .losses import softmax_cross_entropy
from .model import Sequential
from .train import batches

__all__ = ["to_torch", "lockstep"]


def _linear(layer: Dense, dtype: torch.dtype) -> torch.nn.Linear:
    linear = torch.nn.Linear(layer.n_in, layer.n_out, dtype=dtype)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
        linear.bias.copy_(torch.from_numpy(layer.params["b"]))
    return linear


#: The PyTorch module that computes what each layer computes, by the layer's name in
#: :data:`dlfp.registry.LAYERS`: a function of the layer and the dtype.
TORCH_EQUIVALENTS = {
    "Dense": _linear,
    "ReLU": lambda layer, dtype: torch.nn.ReLU(),
    "Tanh": lambda layer, dtype: torch.nn.Tanh(),
    "Sigmoid": lambda layer, dtype: torch.nn.Sigmoid(),
    "LeakyReLU": lambda layer, dtype: torch.nn.LeakyReLU(layer.alpha),
    "Dropout": lambda layer, dtype: torch.nn.Dropout(layer.rate),
}


def to_torch(model: Sequential) -> torch.nn.Sequential:
    """A PyTorch copy of ``model`` with the same weights and dtype."""
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    layers: list[torch.nn.Module] = []
    for layer in model.layers:
        build = TORCH_EQUIVALENTS.get(registry.layer_name(layer))
        if build is None:
            raise TypeError(
                f"no PyTorch equivalent for {layer!r}; use Dense and ReLU, "
                "Tanh, Sigmoid, LeakyReLU or Dropout layers."
            )
        layers.append(build(layer, dtype))
    return torch.nn.Sequential(*layers)


def lockstep(
    model: Sequential,
    X: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    rng: np.random.Generator,
    momentum: float | None = None,
) -> dict[str, np.ndarray]:
    """Train ``model`` and its PyTorch copy on the same mini-batches.

    The optimizer is Adam with learning rate ``lr``, or SGD with momentum when
    ``momentum`` is given.

    Both start from the weights ``model`` has now and see the batches drawn from
    ``rng``, in the same order. ``model`` must not use dropout (the two would draw
    different masks).

    Returns
    -------
    dict
        ``"dlfp"`` and ``"torch"``: the loss at every step; ``"max_weight_diff"``: the
        largest absolute difference between corresponding parameters after each epoch.
    """
    if any(isinstance(layer, Dropout) for layer in model.layers):
        raise ValueError(
            "lockstep needs a model without dropout: the two frameworks "
            "would draw different masks."
        )
    net = to_torch(model)
    if momentum is None:
        ours = optim.Adam(model.parameters(), lr=lr)
        theirs = torch.optim.Adam(net.parameters(), lr=lr)
    else:
        ours = optim.Momentum(model.parameters(), lr=lr, momentum=momentum)
        theirs = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    X = model.check_inputs(X, y)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y, dtype=np.int64))
    losses = {"dlfp": [], "torch": []}
    diffs = []
    for _ in range(epochs):
        for idx in batches(len(X), batch_size, rng):
            value, dZ = softmax_cross_entropy(
                model.forward(X[idx], training=True), y[idx]
            )
            model.backward(dZ, input_grad=False)
            ours.step()
            losses["dlfp"].append(value)

            index = torch.from_numpy(idx)
            loss = torch.nn.functional.cross_entropy(net(Xt[index]), yt[index])
            theirs.zero_grad()
            loss.backward()
            theirs.step()
            losses["torch"].append(loss.item())
        with torch.no_grad():
            pairs = zip(model.parameters(), net.parameters(), strict=True)
            diffs.append(
                max(
                    float(
                        np.abs(
                            p.value - (t.numpy().T if t.ndim == 2 else t.numpy())
                        ).max()
                    )
                    for p, t in pairs
                )
            )
    return {k: np.array(v) for k, v in losses.items()} | {
        "max_weight_diff": np.array(diffs)
    }
