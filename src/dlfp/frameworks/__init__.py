"""One convolutional network, written twice: in PyTorch and in TensorFlow/Keras.

Both versions share everything that is not framework code, so that any difference
between them is the framework's. Each shared thing has its module:

* :mod:`.config`: the recipe, :class:`CNNConfig`, and its learning rate at each step,
  :func:`learning_rate` (the formula is :func:`dlfp.optim.warmup_cosine_schedule`);
* :mod:`.batches`: the mini-batches and their augmentation, :class:`Batches`
  (identical arrays for both);
* :mod:`.backend`: what a framework's module provides, the :class:`Backend` protocol;
* :mod:`.compare`: the two measured side by side, and :func:`count_lines`;
* :mod:`dlfp.artifacts`: trained runs kept for later chapters (:func:`save_run`,
  :func:`kept_run`, :func:`trained_run`, :func:`artifact_path`, :func:`save_record`,
  :func:`load_record`), with every other kept model.

The data are MNIST from :mod:`dlfp.data`. The names above can be imported from here.
The framework modules are imported only where used: :mod:`dlfp.frameworks.torch_cnn`
needs PyTorch, :mod:`dlfp.frameworks.keras_cnn` needs TensorFlow.
"""

from __future__ import annotations

from ..artifacts import (
    artifact_path,
    kept_run,
    load_record,
    save_record,
    save_run,
    trained_run,
)
from .backend import Backend, print_log
from .batches import Batches
from .compare import count_lines
from .config import CNNConfig, learning_rate

__all__ = [
    "CNNConfig",
    "Batches",
    "Backend",
    "learning_rate",
    "count_lines",
    "artifact_path",
    "save_record",
    "load_record",
    "save_run",
    "kept_run",
    "trained_run",
    "print_log",
]
