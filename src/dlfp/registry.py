"""Every layer type of dlfp by name: the one table that model files (:mod:`dlfp.io`),
:func:`dlfp.activations.get` and the PyTorch mirror (:mod:`dlfp.mirror`) read.

A model file names each layer by its class name (``"Dense"``, ``"ReLU"``,
``"Conv2D"``), the key of :data:`LAYERS`; :func:`dlfp.model.mlp` and
:func:`dlfp.activations.get` name an activation in lower case (``"relu"``,
``"leaky_relu"``), the key of :data:`ACTIVATIONS`. A new layer type is added here once,
and every reader knows it.
"""

from __future__ import annotations

from . import activations, conv
from .layers import Dense, Dropout, Layer

__all__ = ["LAYERS", "ACTIVATIONS", "layer_class", "layer_name"]

#: Every layer a model file may hold, by the name it is saved under (its class name).
LAYERS: dict[str, type[Layer]] = {
    kind.__name__: kind
    for kind in (
        Dense,
        Dropout,
        activations.Sigmoid,
        activations.Tanh,
        activations.ReLU,
        activations.LeakyReLU,
        activations.Softmax,
        conv.Conv2D,
        conv.BatchNorm2D,
        conv.MaxPool2D,
        conv.Flatten,
        conv.Reshape,
    )
}

#: The activation layers by their short names (``mlp(activation=...)``): short name to
#: the layer's name in :data:`LAYERS`.
ACTIVATIONS: dict[str, str] = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "softmax": "Softmax",
}


def layer_class(name: str) -> type[Layer] | None:
    """The layer class saved under ``name``, or None when no layer has that name."""
    return LAYERS.get(name)


def layer_name(layer: Layer) -> str | None:
    """The name ``layer``'s type is saved under, or None when its type (exactly: not a
    subclass) is not in :data:`LAYERS`."""
    name = type(layer).__name__
    return name if LAYERS.get(name) is type(layer) else None
