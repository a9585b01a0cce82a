"""How many times longer a training step of the dlfp CNN takes than PyTorch's.

The CNN chapter times dlfp's step against PyTorch's, from the same weights
(:func:`dlfp.mirror.cnn_twins`), on the same batches, interleaved in one process, with
the verdict's timing harness (:func:`dlfp.frameworks.compare.harness._interleave`: the
rounds in balanced orders, a settle before each clock, the garbage collector out of
the clocks). PyTorch is imported when :func:`speed_ratio` is called, so a walk over
dlfp's modules works without it.
"""

from __future__ import annotations

import numpy as np

from ..data import MNIST
from ..losses import softmax_cross_entropy
from ..recipes import Batches, CNNConfig, load_mnist_for
from ..threads import limited
from ..train import train_step
from .compare.harness import _interleave
from .compare.rows import DLFP, PAUSE, PYTORCH, Row, Setting
from .compare.stats import paired_ratio, speed_verdict

__all__ = ["speed_ratio"]


def speed_ratio(
    config: CNNConfig = CNNConfig(),
    data: MNIST | None = None,
    *,
    steps: int = 10,
    rounds: int = 5,
    warmup: int = 1,
    threads: int | None = None,
    pause: float = PAUSE,
) -> dict:
    """How many times longer a training step takes in dlfp than in PyTorch.

    Both train the architecture of ``config`` in float32 from the same weights, on the
    same batches (of ``config.batch_size`` images), on ``threads`` threads each (None:
    every core). Each round times ``steps`` steps of each, in the balanced orders of
    the verdict's harness, after ``warmup`` untimed rounds; before each clock the
    process idles until the other library's threads have stopped spinning, for at most
    ``pause`` seconds (:func:`dlfp.frameworks.compare.harness.settle`).

    Returns
    -------
    dict
        ``ratio`` (the median over the rounds of dlfp's time over PyTorch's in the same
        round), ``verdict`` (:func:`~dlfp.frameworks.compare.speed_verdict`, with its
        interval), ``dlfp_step_s`` and ``torch_step_s`` (medians over the rounds),
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
    net.train()

    def dlfp_block(_):
        for X, y in rows:
            train_step(model, softmax_cross_entropy, ours, X, y)

    def torch_block(_):
        for X, y in rows:
            torch_step(net, theirs, X, y)

    timed = [
        Row("training", Setting(name, "twin", "default"), "cpu", steps)
        for name in (DLFP, PYTORCH)
    ]
    with limited(threads):
        _interleave(
            timed, [dlfp_block, torch_block], rounds, warmup, lambda r: None, pause
        )
        used = torch.get_num_threads()
    for row in timed:
        if row.error is not None:
            raise RuntimeError(f"{row.framework}'s training step failed: {row.error}")
    ours_row, torch_row = timed
    return {
        "ratio": paired_ratio(ours_row, torch_row)["median"],
        "verdict": speed_verdict(ours_row, torch_row),
        "dlfp_step_s": ours_row.median(),
        "torch_step_s": torch_row.median(),
        "dlfp_rounds_s": ours_row.per_unit().tolist(),
        "torch_rounds_s": torch_row.per_unit().tolist(),
        "threads": used,
        "steps": steps,
        "rounds": rounds,
    }
