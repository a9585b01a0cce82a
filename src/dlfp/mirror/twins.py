"""dlfp's layers and PyTorch's modules: one table, read in both directions.

:data:`TORCH_EQUIVALENTS` names, for each layer type of :data:`dlfp.registry.LAYERS`
that PyTorch has, the module that computes the same function and where each of the
layer's arrays lives in it. :func:`to_torch` reads it to build PyTorch's twin of a dlfp
model; :func:`copy_from_torch` reads it to give a dlfp model the weights of a PyTorch
network (the CNN chapter starts both from PyTorch's initialisation, :func:`cnn_twins`);
:func:`param_gap` reads it to compare the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .. import registry
from ..layers import Layer
from ..model import Sequential
from ..recipes import CNNConfig

__all__ = [
    "Equivalent",
    "TORCH_EQUIVALENTS",
    "to_torch",
    "copy_from_torch",
    "param_gap",
    "cnn_twins",
]


class ToMaps(nn.Module):
    """Rows to maps of ``shape`` (dlfp's :class:`~dlfp.conv.Reshape`), stored
    channels-last when they are images, the layout PyTorch's fast CPU convolutions want
    (and :mod:`dlfp.frameworks.torch_cnn` feeds them)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, *self.shape)
        return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


@dataclass(frozen=True)
class Equivalent:
    """PyTorch's module for one dlfp layer type: its class, its arguments (a function
    of the layer), and where each of the layer's arrays lives in it (the layer's key,
    the module's attribute), ``transposed`` naming those stored the other way round."""

    module: type[nn.Module]
    arguments: Callable[[Layer], dict] = lambda layer: {}
    arrays: dict[str, str] = field(default_factory=dict)
    transposed: tuple[str, ...] = ()

    def build(self, layer: Layer, dtype: torch.dtype) -> nn.Module:
        """A module that computes what ``layer`` computes, with its weights."""
        arguments = self.arguments(layer)
        if self.arrays:  # a module with weights is created in the model's dtype
            arguments["dtype"] = dtype
        module = self.module(**arguments)
        with torch.no_grad():
            for key, attribute in self.arrays.items():
                if key in layer.params:
                    value = layer.params[key]
                    if key in self.transposed:
                        value = value.T
                    getattr(module, attribute).copy_(torch.from_numpy(value))
        return module

    def torch_arrays(self, module: nn.Module) -> dict[str, np.ndarray]:
        """The module's arrays in dlfp's layout, by the layer's keys (views)."""
        found = {}
        for key, attribute in self.arrays.items():
            tensor = getattr(module, attribute)
            if tensor is not None:
                value = tensor.detach().cpu().numpy()
                found[key] = value.T if key in self.transposed else value
        return found


#: The PyTorch module that computes what each layer computes, by the layer's name in
#: :data:`dlfp.registry.LAYERS`. PyTorch's ``Linear`` stores W transposed, shape
#: (out, in); filters have the same layout in both, (c_out, c_in, k, k), and both
#: flatten maps in the order (c, i, j).
TORCH_EQUIVALENTS: dict[str, Equivalent] = {
    "Dense": Equivalent(
        nn.Linear,
        lambda layer: {"in_features": layer.n_in, "out_features": layer.n_out},
        {"W": "weight", "b": "bias"},
        transposed=("W",),
    ),
    "ReLU": Equivalent(nn.ReLU),
    "Tanh": Equivalent(nn.Tanh),
    "Sigmoid": Equivalent(nn.Sigmoid),
    "LeakyReLU": Equivalent(
        nn.LeakyReLU, lambda layer: {"negative_slope": layer.alpha}
    ),
    "Dropout": Equivalent(nn.Dropout, lambda layer: {"p": layer.rate}),
    "Conv2D": Equivalent(
        nn.Conv2d,
        lambda layer: {
            "in_channels": layer.c_in,
            "out_channels": layer.c_out,
            "kernel_size": layer.k,
            "stride": layer.stride,
            "padding": layer.padding,
            "bias": layer.bias,
        },
        {"K": "weight", "b": "bias"},
    ),
    "BatchNorm2D": Equivalent(
        nn.BatchNorm2d,
        lambda layer: {
            "num_features": layer.channels,
            "eps": layer.eps,
            "momentum": layer.momentum,  # both: the weight of the new batch
        },
        {
            "gamma": "weight",
            "beta": "bias",
            "running_mean": "running_mean",
            "running_var": "running_var",
        },
    ),
    "MaxPool2D": Equivalent(
        nn.MaxPool2d, lambda layer: {"kernel_size": layer.k, "stride": layer.stride}
    ),
    "Flatten": Equivalent(nn.Flatten),
    "Reshape": Equivalent(ToMaps, lambda layer: {"shape": layer.shape}),
}


def _equivalent(layer: Layer) -> Equivalent:
    equivalent = TORCH_EQUIVALENTS.get(registry.layer_name(layer))
    if equivalent is None:
        raise TypeError(
            f"no PyTorch equivalent for {layer!r}; use the layers of "
            f"{', '.join(TORCH_EQUIVALENTS)}."
        )
    return equivalent


def to_torch(model: Sequential) -> nn.Sequential:
    """A PyTorch copy of ``model`` with the same weights and dtype."""
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    return nn.Sequential(
        *(_equivalent(layer).build(layer, dtype) for layer in model.layers)
    )


def _pairs(model: Sequential, net: nn.Module) -> list[tuple[Layer, nn.Module]]:
    """Each layer of ``model`` that has arrays, with the module of ``net`` that holds
    them: the two lists of such layers and modules, in order."""
    ours = [layer for layer in model.layers if layer.params]
    theirs = [m for m in net.modules() if next(m.parameters(False), None) is not None]
    expected = [_equivalent(layer).module for layer in ours]
    if [type(m) for m in theirs] != expected:
        raise ValueError(
            "the dlfp model's layers with parameters need "
            f"{', '.join(kind.__name__ for kind in expected)} and the PyTorch model "
            f"has {', '.join(type(m).__name__ for m in theirs)}; build both from the "
            "same architecture (for the CNN, the same CNNConfig)."
        )
    return list(zip(ours, theirs, strict=True))


def copy_from_torch(model: Sequential, net: nn.Module) -> None:
    """Give ``model`` the parameters and batch-norm statistics of ``net``, a PyTorch
    network of the same architecture (its layers with weights in the same order), in
    ``model``'s dtype."""
    for layer, module in _pairs(model, net):
        for key, value in _equivalent(layer).torch_arrays(module).items():
            target = layer.params[key]
            if target.shape != value.shape:
                raise ValueError(
                    f"a parameter of shape {value.shape} does not fit {target.shape}; "
                    "build both models from the same architecture (for the CNN, the "
                    "same CNNConfig)."
                )
            target[...] = value


def param_gap(model: Sequential, net: nn.Module) -> float:
    """The largest absolute difference between a trained parameter of ``model`` and
    the corresponding one of ``net`` (statistics without a gradient left out)."""
    return max(
        float(np.abs(layer.params[key] - value).max())
        for layer, module in _pairs(model, net)
        for key, value in _equivalent(layer).torch_arrays(module).items()
        if key in layer.grads
    )


def cnn_twins(config: CNNConfig, dtype=np.float32) -> tuple[Sequential, nn.Module]:
    """The CNN of ``config`` in PyTorch (:class:`dlfp.frameworks.torch_cnn.CNN`,
    initialised after ``torch.manual_seed(config.seed)``) and a :func:`dlfp.cnn.cnn`
    model with its weights, both in ``dtype``.

    PyTorch's network is stored channels-last and takes rows of pixels, as the dlfp
    model does: it starts with the module of dlfp's first layer, a
    :class:`~dlfp.conv.Reshape` to images of ``config.image_side`` pixels. The dlfp
    model draws its dropout masks from a generator seeded with ``config.seed``.
    """
    from ..cnn import cnn
    from ..frameworks.torch_cnn import CNN

    torch.manual_seed(config.seed)
    net = CNN(config).to(torch.float64 if dtype == np.float64 else torch.float32)
    net = net.to(memory_format=torch.channels_last)
    model = cnn(config, rng=np.random.default_rng(config.seed), dtype=dtype)
    copy_from_torch(model, net)
    side = config.image_side
    return model, nn.Sequential(ToMaps((1, side, side)), net)
