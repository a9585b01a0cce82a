"""dlfp checked against PyTorch: the same networks, the same weights, the same steps.

:mod:`.twins` holds the one table between dlfp's layers and PyTorch's modules
(:data:`TORCH_EQUIVALENTS`), read in both directions: :func:`to_torch` builds PyTorch's
twin of a dlfp model, :func:`copy_from_torch` gives a dlfp model a PyTorch network's
weights (:func:`cnn_twins`: the CNN, from PyTorch's initialisation). :mod:`.lockstep`
trains a model and its twin side by side (:func:`lockstep`), for the MLP of Part II and
the CNN of Part III alike.

This package imports PyTorch; ``import dlfp`` does not. (How long a step takes in each
is :func:`dlfp.frameworks.speed.speed_ratio`.)
"""

from __future__ import annotations

from .lockstep import OPTIMIZERS, Lockstep, lockstep, torch_step, twin_optimizers
from .twins import (
    TORCH_EQUIVALENTS,
    Equivalent,
    cnn_twins,
    copy_from_torch,
    param_gap,
    to_torch,
)

__all__ = [
    "TORCH_EQUIVALENTS",
    "Equivalent",
    "to_torch",
    "copy_from_torch",
    "param_gap",
    "cnn_twins",
    "OPTIMIZERS",
    "twin_optimizers",
    "torch_step",
    "Lockstep",
    "lockstep",
]
