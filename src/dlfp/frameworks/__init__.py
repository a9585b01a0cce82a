"""One convolutional network, written twice: in PyTorch and in TensorFlow/Keras.

Both versions share everything that is not framework code, so that any difference
between them is the framework's: the configuration (:class:`CNNConfig`), the data
(MNIST from :mod:`dlfp.data`), the mini-batches and their augmentation
(:class:`Batches`, identical arrays in both), and the learning-rate schedule
(:func:`learning_rate`).

The framework modules are imported only where used: :mod:`dlfp.frameworks.torch_cnn`
needs PyTorch, :mod:`dlfp.frameworks.keras_cnn` needs TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import artifacts_dir, fingerprint
from ..data import random_shift
from ..recipes import DATA_SOURCES, load_mnist_for

__all__ = [
    "CNNConfig",
    "Batches",
    "learning_rate",
    "count_lines",
    "artifact_path",
    "save_record",
    "load_record",
    "save_run",
    "trained_run",
]


@dataclass(frozen=True)
class CNNConfig:
    """The architecture and training recipe shared by both frameworks.

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

    def feature_side(self) -> int:
        """Side of the last block's feature maps: 28 halved once per block."""
        side = 28
        for _ in self.channels:
            side //= 2
        return side

    def parameter_count(self, k: int = 3, classes: int = 10) -> int:
        """Trainable parameters of the network, counted by hand: eq. (18.2)."""
        n = (1, *self.channels)  # n[0] = 1 input channel, then each block's filters
        hidden, side = self.hidden, self.feature_side()
        blocks = sum(k * k * n[b - 1] * n[b] + 2 * n[b] for b in range(1, len(n)))
        return (
            blocks
            + (side * side * n[-1] * hidden + hidden)
            + (hidden * classes + classes)
        )

    def steps_per_epoch(self, n: int) -> int:
        return math.ceil(n / self.batch_size)


def learning_rate(step: int, total_steps: int, config: CNNConfig) -> float:
    """The rate at optimizer step ``step`` (from 0): linear warm-up, then a half cosine.

    Both frameworks follow exactly this curve: it rises from 0 to ``config.lr`` over the
    first ``config.warmup`` of the steps and decays to 0 at the last step.
    """
    warm = max(1, round(config.warmup * total_steps))
    if step < warm:
        return config.lr * step / warm
    progress = (step - warm) / max(1, total_steps - warm)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class Batches:
    """The training mini-batches of every epoch, identical for both frameworks.

    Epoch ``e`` visits the images in the order of a permutation drawn from a generator
    seeded with ``(seed, e)``; batch ``i`` of that epoch is shifted at random by a
    generator seeded with ``(seed, e, i)``. Any batch can therefore be produced on its
    own, in any order, and is always the same array.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, config: CNNConfig):
        self.images, self.labels, self.config = images, labels, config
        self.n = len(labels)
        self._epoch, self._order = -1, np.arange(self.n)

    def __len__(self) -> int:
        return self.config.steps_per_epoch(self.n)

    def order(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.config.seed, epoch])
            self._epoch, self._order = epoch, rng.permutation(self.n)
        return self._order

    def batch(self, epoch: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Images (B, 28, 28) float32 and labels (B,) of batch ``i`` of ``epoch``."""
        size = self.config.batch_size
        idx = self.order(epoch)[i * size : (i + 1) * size]
        images = self.images[idx]
        if self.config.max_shift:
            rng = np.random.default_rng([self.config.seed, epoch, i])
            images = random_shift(images, rng, self.config.max_shift)
        return images, self.labels[idx]

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """All batches of ``epoch``, concatenated in order: images (n, 28, 28), labels.

        Cut into consecutive slices of ``batch_size`` rows, these are
        ``batch(epoch, 0)``, ``batch(epoch, 1)``, ... again.
        """
        pairs = [self.batch(epoch, i) for i in range(len(self))]
        return (
            np.concatenate([images for images, _ in pairs]),
            np.concatenate([labels for _, labels in pairs]),
        )


def count_lines(*objects) -> int:
    """Lines of code of functions or classes: no blank lines, comments, docstrings."""
    import ast
    import inspect
    import textwrap

    total = 0
    for obj in objects:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
        docstrings = set()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                value = body[0].value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
        for number, line in enumerate(source.splitlines(), start=1):
            stripped = line.strip()
            if stripped and not stripped.startswith("#") and number not in docstrings:
                total += 1
    return total


def artifact_path(framework: str, config: CNNConfig, suffix: str) -> Path:
    """Where a chapter keeps what it trained: ``<artifacts>/<framework>-cnn-<key>...``.

    The folder is :func:`dlfp.artifacts.artifacts_dir` (``$DLFP_ARTIFACTS``). The name
    hashes the configuration, the code that builds and trains the model (the data code
    included) and the versions of the packages that compute it, so a model saved
    before any of them changed is never mistaken for a current one.
    """
    sources = [f"frameworks/{name}" for name in FRAMEWORK_SOURCES[framework]]
    key = fingerprint(
        dataclasses.asdict(config),
        [*sources, *DATA_SOURCES],
        FRAMEWORK_PACKAGES[framework],
    )
    return artifacts_dir() / f"{framework}-cnn-{key}{suffix}"


#: The code and the packages whose versions decide each framework's trained numbers.
FRAMEWORK_SOURCES = {
    "torch": ("__init__.py", "torch_cnn.py"),
    "keras": ("__init__.py", "keras_cnn.py", "_quiet.py"),
}
FRAMEWORK_PACKAGES = {
    "torch": ("numpy", "torch"),
    "keras": ("numpy", "tensorflow", "tensorflow-cpu", "keras"),
}


def save_record(framework: str, config: CNNConfig, record: dict) -> Path:
    """Write a training run's record (history, test accuracy) as JSON, atomically."""
    path = artifact_path(framework, config, ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"config": dataclasses.asdict(config), **record}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json")
    with os.fdopen(fd, "w") as out:
        json.dump(record, out, indent=1)
    os.replace(tmp, path)
    return path


def load_record(framework: str, config: CNNConfig) -> dict | None:
    """The record a run with ``config`` saved, or None when there is none."""
    path = artifact_path(framework, config, ".json")
    return json.loads(path.read_text()) if path.is_file() else None


def save_run(module, config: CNNConfig, model, history: dict, test_accuracy: float):
    """Keep a trained model and its record for later chapters.

    ``module`` is :mod:`dlfp.frameworks.torch_cnn` or :mod:`dlfp.frameworks.keras_cnn`.
    """
    path = artifact_path(module.NAME, config, module.SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.save(model, path)
    save_record(
        module.NAME, config, {"history": history, "test_accuracy": test_accuracy}
    )


def trained_run(module, config: CNNConfig, *, verbose: bool = False):
    """The model ``module`` trained with ``config``, and its record.

    Loaded from the artifacts folder when an earlier chapter saved it; else trained now,
    evaluated once on the test set, and saved with :func:`save_run`.
    """
    path = artifact_path(module.NAME, config, module.SUFFIX)
    if load_record(module.NAME, config) is None or not path.exists():
        data = load_mnist_for(config)
        model, history = module.train(config, data, verbose=verbose)
        logits = module.predict_logits(model, data.test.images)
        accuracy = float((logits.argmax(axis=1) == data.test.labels).mean())
        save_run(module, config, model, history, accuracy)
    return module.load(path, config), load_record(module.NAME, config)
