"""The dlfp CNN beside PyTorch's: the same weights, training in lockstep, and speed.

:func:`copy_from_torch` gives a :func:`dlfp.cnn.cnn` model the weights of a
:class:`dlfp.frameworks.torch_cnn.CNN`; :func:`lockstep` trains the two side by side on
the same batches, with the same dropout masks, and records both losses at every step;
:func:`speed_ratio` times training steps of each, interleaved in one process, and
returns the ratio of their medians.

These functions need PyTorch, which they import when called: ``import dlfp`` and a
walk over its modules work without it, and :mod:`dlfp.cnn` never imports it.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

import numpy as np

from .cnn import cnn
from .conv import BatchNorm2D, Conv2D
from .data import MNIST
from .layers import Dense, Dropout
from .losses import softmax_cross_entropy
from .model import Sequential
from .optim import AdamW
from .recipes import Batches, CNNConfig, learning_rate, load_mnist_for
from .threads import limited
from .train import train_step

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["copy_from_torch", "lockstep", "speed_ratio"]


def copy_from_torch(model: Sequential, net: nn.Module) -> None:
    """Give ``model`` (from :func:`dlfp.cnn.cnn`) the parameters and batch-norm
    statistics of ``net`` (a :class:`~dlfp.frameworks.torch_cnn.CNN` of the same
    configuration), in ``model``'s dtype.

    Filters have the same layout in both, (c_out, c_in, k, k); PyTorch's ``Linear``
    stores W transposed. Both flatten the last maps in the order (c, i, j).
    """
    from torch import nn

    ours = [layer for layer in model.layers if layer.params]
    theirs = [
        m
        for m in net.modules()
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
    ]
    if len(ours) != len(theirs):
        raise ValueError(
            f"the dlfp model has {len(ours)} layers with parameters and the PyTorch "
            f"model {len(theirs)}; build both from the same CNNConfig."
        )

    def put(target: np.ndarray, tensor: torch.Tensor) -> None:
        value = tensor.detach().cpu().numpy()
        if target.shape != value.shape:
            raise ValueError(
                f"a parameter of shape {value.shape} does not fit {target.shape}; "
                "build both models from the same CNNConfig."
            )
        target[...] = value

    for layer, module in zip(ours, theirs, strict=True):
        if isinstance(layer, Conv2D):
            put(layer.params["K"], module.weight)
            if layer.bias:
                put(layer.params["b"], module.bias)
        elif isinstance(layer, BatchNorm2D):
            put(layer.params["gamma"], module.weight)
            put(layer.params["beta"], module.bias)
            put(layer.params["running_mean"], module.running_mean)
            put(layer.params["running_var"], module.running_var)
        elif isinstance(layer, Dense):
            put(layer.params["W"], module.weight.T)
            put(layer.params["b"], module.bias)


def _trained_arrays(net: nn.Module) -> list[np.ndarray]:
    """PyTorch's parameters as NumPy arrays, in the order and layout of dlfp's."""
    from torch import nn

    arrays = []
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)):
            weight = m.weight.detach().numpy()
            arrays.append(weight.T if isinstance(m, nn.Linear) else weight)
            if m.bias is not None:
                arrays.append(m.bias.detach().numpy())
    return arrays


def _same_mask(layer: Dropout) -> nn.Module:
    """A module that replaces PyTorch's dropout by the mask ``layer`` drew for the same
    batch."""
    import torch
    from torch import nn

    class SameMask(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mask = layer._mask
            if not self.training or mask is None:
                return x
            return x * torch.from_numpy(mask).to(x.dtype)

    return SameMask()


def _models(config: CNNConfig, dtype) -> tuple[Sequential, nn.Module]:
    """A PyTorch CNN, seeded with ``config.seed``, and a dlfp copy of it."""
    import torch

    from .frameworks.torch_cnn import CNN

    torch.manual_seed(config.seed)
    net = CNN(config).to(torch.float64 if dtype == np.float64 else torch.float32)
    net = net.to(memory_format=torch.channels_last)
    model = cnn(config, rng=np.random.default_rng(config.seed), dtype=dtype)
    copy_from_torch(model, net)
    return model, net


def _torch_step(net, optimizer, images: np.ndarray, labels: np.ndarray) -> float:
    import torch
    from torch import nn

    dtype = next(net.parameters()).dtype
    x = torch.from_numpy(images).reshape(-1, 1, 28, 28).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    loss = nn.functional.cross_entropy(net(x), torch.from_numpy(labels))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def lockstep(
    config: CNNConfig = CNNConfig(),
    data: MNIST | None = None,
    *,
    steps: int = 10,
    dtype=np.float64,
    threads: int | None = 1,
) -> dict[str, np.ndarray]:
    """Train the dlfp CNN and PyTorch's from the same weights, step for step.

    Both see the first ``steps`` batches of ``config``'s training run
    (:class:`~dlfp.recipes.Batches`), with the learning rate of its schedule
    (:func:`~dlfp.recipes.learning_rate`) and AdamW; PyTorch's dropout uses the
    mask that dlfp's drew for the same batch. Both run on ``threads`` threads (None:
    as they are): alternating every step, the idle threads of one library's pool,
    still spinning, would slow the other down on a machine with few cores.

    Returns
    -------
    dict
        ``"dlfp"`` and ``"torch"``: the loss at every step; ``"max_param_diff"``: the
        largest absolute difference between corresponding parameters after each step.
    """
    import torch

    if data is None:
        data = load_mnist_for(config)
    model, net = _models(config, dtype)
    dropout = next(layer for layer in model.layers if isinstance(layer, Dropout))
    net.classifier[3] = _same_mask(dropout)
    ours = AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    theirs = torch.optim.AdamW(
        net.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    batches = Batches(data.train.images, data.train.labels, config)
    total = config.epochs * len(batches)
    result: dict[str, list] = {"dlfp": [], "torch": [], "max_param_diff": []}
    net.train()
    with limited(threads):
        for step in range(steps):
            epoch, i = divmod(step, len(batches))
            images, labels = batches.batch(epoch, i)
            rate = learning_rate(step, total, config)
            ours.lr = rate
            for group in theirs.param_groups:
                group["lr"] = rate
            X = images.reshape(len(images), -1).astype(dtype)
            result["dlfp"].append(
                train_step(model, softmax_cross_entropy, ours, X, labels)[0]
            )
            result["torch"].append(_torch_step(net, theirs, X, labels))
            pairs = zip(model.parameters(), _trained_arrays(net), strict=True)
            result["max_param_diff"].append(
                max(float(np.abs(p.value - array).max()) for p, array in pairs)
            )
    return {key: np.array(values) for key, values in result.items()}


def speed_ratio(
    config: CNNConfig = CNNConfig(),
    data: MNIST | None = None,
    *,
    steps: int = 10,
    rounds: int = 5,
    warmup: int = 3,
    threads: int | None = None,
    pause: float = 0.25,
) -> dict:
    """How many times longer a training step takes in dlfp than in PyTorch.

    Both train the architecture of ``config`` in float32 from the same weights, on the
    same batches (of ``config.batch_size`` images), on ``threads`` threads each (None:
    every core). Rounds alternate: ``steps`` steps of dlfp, then ``steps`` of PyTorch,
    so both meet the same machine conditions; a busy machine slows both alike. Before
    each round the process sleeps ``pause`` seconds (not timed), long enough for the
    other library's idle threads to stop spinning and give the cores back.

    Returns
    -------
    dict
        ``ratio`` (median dlfp step time over median PyTorch step time),
        ``dlfp_step_s`` and ``torch_step_s`` (medians over the rounds),
        ``dlfp_rounds_s`` and ``torch_rounds_s`` (per-step time of every round),
        ``threads``, ``steps``, ``rounds``.
    """
    import torch

    if data is None:
        data = load_mnist_for(config)
    model, net = _models(config, np.float32)
    ours = AdamW(model.parameters(), lr=1e-4, weight_decay=config.weight_decay)
    theirs = torch.optim.AdamW(
        net.parameters(), lr=1e-4, weight_decay=config.weight_decay
    )
    batches = Batches(data.train.images, data.train.labels, config)
    inputs = [batches.batch(0, i % len(batches)) for i in range(steps)]
    rows = [(images.reshape(len(images), -1), labels) for images, labels in inputs]
    times: dict[str, list[float]] = {"dlfp": [], "torch": []}
    net.train()
    with limited(threads):
        for X, y in rows[:warmup]:
            train_step(model, softmax_cross_entropy, ours, X, y)
            _torch_step(net, theirs, X, y)
        for _ in range(rounds):
            time.sleep(pause)
            start = time.perf_counter()
            for X, y in rows:
                train_step(model, softmax_cross_entropy, ours, X, y)
            times["dlfp"].append((time.perf_counter() - start) / steps)
            time.sleep(pause)
            start = time.perf_counter()
            for X, y in rows:
                _torch_step(net, theirs, X, y)
            times["torch"].append((time.perf_counter() - start) / steps)
        used = torch.get_num_threads()
    dlfp_s, torch_s = (
        statistics.median(times["dlfp"]),
        statistics.median(times["torch"]),
    )
    return {
        "ratio": dlfp_s / torch_s,
        "dlfp_step_s": dlfp_s,
        "torch_step_s": torch_s,
        "dlfp_rounds_s": times["dlfp"],
        "torch_rounds_s": times["torch"],
        "threads": used,
        "steps": steps,
        "rounds": rounds,
    }
