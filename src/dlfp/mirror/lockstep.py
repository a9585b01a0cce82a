"""A dlfp model and its PyTorch twin trained side by side, step for step.

:func:`lockstep` gives both the same mini-batches in the same order, the same optimizer
with the same settings (:data:`OPTIMIZERS`) and the same learning rate at every step,
and PyTorch's dropout the masks that dlfp's drew; it records both losses and how far the
parameters have drifted apart after every step (:class:`Lockstep`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import optim
from ..layers import Dropout
from ..losses import softmax_cross_entropy
from ..model import Sequential
from ..threads import limited
from ..train import BatchSource, train_step
from .twins import TORCH_EQUIVALENTS, param_gap

__all__ = ["OPTIMIZERS", "Lockstep", "lockstep", "twin_optimizers", "torch_step"]


#: The same optimizer in both libraries, by name: dlfp's class and PyTorch's, which
#: take the same settings (``lr``, and ``momentum`` or ``weight_decay``).
OPTIMIZERS = {
    "adam": (optim.Adam, torch.optim.Adam),
    "adamw": (optim.AdamW, torch.optim.AdamW),
    "momentum": (optim.Momentum, torch.optim.SGD),  # SGD with momentum, PyTorch's form
}


def twin_optimizers(
    model: Sequential, net: nn.Module, name: str, **settings
) -> tuple[optim.Optimizer, torch.optim.Optimizer]:
    """The optimizer ``name`` of :data:`OPTIMIZERS` for ``model`` and for ``net``."""
    if name not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}."
        )
    ours, theirs = OPTIMIZERS[name]
    return ours(model.parameters(), **settings), theirs(net.parameters(), **settings)


def torch_step(
    net: nn.Module, optimizer: torch.optim.Optimizer, X: np.ndarray, y: np.ndarray
) -> float:
    """One training step of ``net`` on the batch (X, y), PyTorch's side of lockstep."""
    loss = nn.functional.cross_entropy(
        net(torch.from_numpy(X)), torch.from_numpy(np.asarray(y, dtype=np.int64))
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


@contextlib.contextmanager
def _same_masks(model: Sequential, net: nn.Module):
    """Inside the block, each dropout module of ``net`` applies the mask that the
    corresponding :class:`~dlfp.layers.Dropout` of ``model`` drew for the same batch."""
    ours = [layer for layer in model.layers if isinstance(layer, Dropout)]
    dropout = TORCH_EQUIVALENTS["Dropout"].module
    theirs = [m for m in net.modules() if isinstance(m, dropout)]
    if len(ours) != len(theirs):
        raise ValueError(
            f"the dlfp model has {len(ours)} dropout layers and the PyTorch model "
            f"{len(theirs)}; build both from the same architecture."
        )

    def mask_of(layer: Dropout):
        def apply(module: nn.Module, inputs: tuple, output: torch.Tensor):
            if not module.training or layer._mask is None:
                return None  # keep PyTorch's output: no dropout
            x = inputs[0]
            return x * torch.from_numpy(layer._mask).to(x.dtype)

        return apply

    pairs = zip(ours, theirs, strict=True)
    hooks = [module.register_forward_hook(mask_of(layer)) for layer, module in pairs]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


@dataclass(frozen=True, eq=False)
class Lockstep:
    """What :func:`lockstep` records, one entry per step: the mini-batch loss of each
    library, and the largest absolute difference between corresponding parameters
    after the step (:func:`~dlfp.mirror.param_gap`)."""

    dlfp_loss: np.ndarray
    torch_loss: np.ndarray
    param_gap: np.ndarray
    steps_per_epoch: int

    @property
    def epoch_gap(self) -> np.ndarray:
        """``param_gap`` after the last step of every whole epoch."""
        n = self.steps_per_epoch
        return self.param_gap[n - 1 :: n]


def lockstep(
    model: Sequential,
    net: nn.Module,
    batches: BatchSource,
    *,
    epochs: int = 1,
    steps: int | None = None,
    optimizer: str = "adam",
    schedule: Callable[[int], float] | None = None,
    threads: int | None = None,
    **settings,
) -> Lockstep:
    """Train ``model`` and ``net``, its PyTorch twin at the same weights, side by side.

    Both see the batches of ``epochs`` epochs (or the first ``steps``), in order
    (:class:`dlfp.train.Shuffled` for arrays, :class:`dlfp.cnn.Rows` for the CNN), and
    step the optimizer ``optimizer`` of :data:`OPTIMIZERS` with the same ``settings``
    (``lr=...``), at the rate ``schedule(step)`` when given. PyTorch's dropout uses
    the masks dlfp's drew. Both run on ``threads`` threads (None: as they are):
    alternating every step, the idle threads of one library's pool, still spinning,
    would slow the other down on a machine with few cores.
    """
    ours, theirs = twin_optimizers(model, net, optimizer, **settings)
    steps = epochs * len(batches) if steps is None else steps
    dlfp_loss, torch_loss, gap = [], [], []
    net.train()
    with limited(threads), _same_masks(model, net):
        for step in range(steps):
            if schedule is not None:
                ours.lr = rate = schedule(step)
                for group in theirs.param_groups:
                    group["lr"] = rate
            X, y = batches.batch(*divmod(step, len(batches)))
            X = model.check_inputs(X, y)  # in the model's dtype, for both
            dlfp_loss.append(train_step(model, softmax_cross_entropy, ours, X, y)[0])
            torch_loss.append(torch_step(net, theirs, X, y))
            gap.append(param_gap(model, net))
    return Lockstep(
        np.array(dlfp_loss), np.array(torch_loss), np.array(gap), len(batches)
    )
