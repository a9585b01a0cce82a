"""The CNN recipe of Part III: :class:`CNNConfig`, and its learning rate at each step.

One configuration describes the network and its training for every implementation of
it: NumPy (:mod:`dlfp.cnn`), PyTorch (:mod:`dlfp.frameworks.torch_cnn`) and Keras
(:mod:`dlfp.frameworks.keras_cnn`). :func:`learning_rate` is the recipe's schedule,
:func:`dlfp.optim.warmup_cosine_schedule` with the configuration's peak and warm-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ..optim import warmup_cosine_schedule

__all__ = ["CNNConfig", "learning_rate"]


@dataclass(frozen=True)
class CNNConfig:
    """The architecture and training recipe shared by NumPy, PyTorch and Keras.

    One block per entry of ``channels``, each halving the side of the feature maps
    (rounding down: 28, 14, 7, 3), then the classifier:

    conv(3x3, channels[0]) - batch norm - ReLU - max-pool(2)
    conv(3x3, channels[1]) - batch norm - ReLU - max-pool(2)
    ...
    flatten - dense(hidden) - ReLU - dropout - dense(10)
    """

    channels: tuple[int, ...] = (16, 32, 64)  #: filters of each block's convolution
    hidden: int = 256  #: units of the dense hidden layer
    dropout: float = 0.1  #: dropout rate before the output layer
    epochs: int = 6
    batch_size: int = 128
    lr: float = 3e-3  #: peak learning rate of AdamW
    warmup: float = 0.15  #: fraction of the steps spent warming the rate up from 0
    weight_decay: float = 1e-4  #: decoupled (AdamW) weight decay
    max_shift: int = 2  #: random translations of up to this many pixels
    validation_size: int = 5000  #: taken out of ``subset`` when one is given
    subset: int | None = None  #: use this many training images only (None: all)
    seed: int = 0
    #: Fixed by MNIST, not by the recipe: images of side x side pixels, ten classes.
    image_side: ClassVar[int] = 28
    classes: ClassVar[int] = 10

    def feature_side(self) -> int:
        """Side of the last block's feature maps: 28 halved once per block."""
        side = self.image_side
        for _ in self.channels:
            side //= 2
        return side

    def parameter_count(self, k: int = 3) -> int:
        """Trainable parameters of the network, counted by hand: eq. (17.2)."""
        n = (1, *self.channels)  # n[0] = 1 input channel, then each block's filters
        hidden, side, classes = self.hidden, self.feature_side(), self.classes
        blocks = sum(k * k * n[b - 1] * n[b] + 2 * n[b] for b in range(1, len(n)))
        return (
            blocks
            + (side * side * n[-1] * hidden + hidden)
            + (hidden * classes + classes)
        )

    def steps_per_epoch(self, n: int) -> int:
        """Optimizer steps in one pass over ``n`` images (the last may be short)."""
        return math.ceil(n / self.batch_size)


def learning_rate(step: int, total_steps: int, config: CNNConfig) -> float:
    """The rate at step ``step`` (from 0) of a run of ``total_steps``: eq. (17.7).

    Every implementation of the CNN follows this curve: it rises from 0 to ``config.lr``
    over the first ``config.warmup`` of the steps and decays to 0 at the last step
    (:func:`dlfp.optim.warmup_cosine_schedule`, where the formula is).
    """
    return warmup_cosine_schedule(config.lr, total_steps, config.warmup)(step)
