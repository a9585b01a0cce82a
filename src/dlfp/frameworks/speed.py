"""How many times longer a training step of the dlfp CNN takes than PyTorch's.

A small timing harness beside the verdict's (:mod:`dlfp.frameworks.compare`, which
times whole configurations of both frameworks): the CNN chapter times dlfp's step
against PyTorch's, from the same weights (:func:`dlfp.mirror.cnn_twins`), on the same
batches, interleaved in one process. PyTorch is imported when :func:`speed_ratio` is
called, so a walk over dlfp's modules works without it.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from ..data import MNIST
from ..losses import softmax_cross_entropy
from ..recipes import Batches, CNNConfig, load_mnist_for
from ..threads import limited
from ..train import train_step
from .compare.harness import settle
from .compare.rows import PAUSE

__all__ = ["speed_ratio"]


def speed_ratio(
    config: CNNConfig = CNNConfig(),
    data: MNIST | None = None,
    *,
    steps: int = 10,
    rounds: int = 5,
    warmup: int = 3,
    threads: int | None = None,
    pause: float = PAUSE,
) -> dict:
    """How many times longer a training step takes in dlfp than in PyTorch.

    Both train the architecture of ``config`` in float32 from the same weights, on the
    same batches (of ``config.batch_size`` images), on ``threads`` threads each (None:
    every core). Rounds alternate: ``steps`` steps of dlfp, then ``steps`` of PyTorch,
    so both meet the same machine conditions; a busy machine slows both alike. Before
    each round the process idles (not timed) until the other library's idle threads
    have stopped spinning and given the cores back, for at most ``pause`` seconds (the
    verdict's rule, :func:`dlfp.frameworks.compare.harness.settle`).

    Returns
    -------
    dict
        ``ratio`` (median dlfp step time over median PyTorch step time),
        ``dlfp_step_s`` and ``torch_step_s`` (medians over the rounds),
        ``dlfp_rounds_s`` and ``torch_rounds_s`` (per-step time of every round),
        ``threads``, ``steps``, ``rounds``.
    """
    import torch

    from ..mirror import cnn_twins, torch_step, twin_optimizers

    if data is None:
        data = load_mnist_for(config)
    model, net = cnn_twins(config, np.float32)
    ours, theirs = twin_optimizers(
        model, net, "adamw", lr=1e-4, weight_decay=config.weight_decay
    )
    batches = Batches(data.train.images, data.train.labels, config)
    inputs = [batches.batch(0, i % len(batches)) for i in range(steps)]
    rows = [(images.reshape(len(images), -1), labels) for images, labels in inputs]
    times: dict[str, list[float]] = {"dlfp": [], "torch": []}
    net.train()
    with limited(threads):
        for X, y in rows[:warmup]:
            train_step(model, softmax_cross_entropy, ours, X, y)
            torch_step(net, theirs, X, y)
        for _ in range(rounds):
            settle(pause)
            start = time.perf_counter()
            for X, y in rows:
                train_step(model, softmax_cross_entropy, ours, X, y)
            times["dlfp"].append((time.perf_counter() - start) / steps)
            settle(pause)
            start = time.perf_counter()
            for X, y in rows:
                torch_step(net, theirs, X, y)
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
