"""One example of every registered layer type, for the tests that must cover them all.

A new layer type is one entry in :data:`dlfp.registry.LAYERS`; if it needs arguments,
:func:`example` needs one branch here, and ``tests/test_registry.py`` fails until it has
it. Every test that walks the layer types (saving and loading, the layer contract, each
layer's own facts) takes its layers from here.
"""

from __future__ import annotations

import numpy as np

from dlfp import activations, conv, registry
from dlfp.layers import Dense, Dropout, Layer


def example(name: str, rng: np.random.Generator, dtype) -> tuple[Layer, np.ndarray]:
    """A ``name`` layer (its name in :data:`dlfp.registry.LAYERS`) built with arguments
    other than the defaults, and a batch it takes: ``(layer, X)``."""
    kind = registry.LAYERS[name]
    maps = rng.random((4, 2, 6, 6)).astype(dtype)
    if kind is Dense:
        return Dense(6, 3, init="he", rng=rng, dtype=dtype), maps[:, 0, 0]
    if kind is Dropout:
        return Dropout(0.25, rng=rng), maps
    if kind is activations.LeakyReLU:
        return activations.LeakyReLU(0.2), maps
    if kind is activations.Softmax:
        return activations.Softmax(), maps[:, 0, 0]
    if kind is conv.Conv2D:
        return conv.Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype=dtype), maps
    if kind is conv.BatchNorm2D:
        layer = conv.BatchNorm2D(2, momentum=0.3, dtype=dtype)
        layer.forward(maps, training=True)  # running averages away from the start
        return layer, maps
    if kind is conv.MaxPool2D:
        return conv.MaxPool2D(3, stride=2), maps
    if kind is conv.Reshape:
        return conv.Reshape((2, 36)), maps.reshape(4, -1)
    return kind(), maps  # layers without arguments
