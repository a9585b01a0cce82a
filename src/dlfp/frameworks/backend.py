"""What a framework's CNN module provides: the :class:`Backend` protocol.

:mod:`dlfp.frameworks.torch_cnn` and :mod:`dlfp.frameworks.keras_cnn` are backends:
modules that build, train, run, save and export the network of a
:class:`~dlfp.recipes.CNNConfig` with one framework. Code that works with either
(:func:`dlfp.artifacts.trained_run`, the chapters, the benchmarks) receives the module
itself and calls only what :class:`Backend` lists. :func:`get` imports a backend by its
name; :func:`check` says what a module lacks.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from ..data import MNIST
    from ..recipes import CNNConfig

__all__ = [
    "Backend",
    "BACKENDS",
    "get",
    "check",
    "onnx_logits",
    "epoch_line",
    "print_log",
]


@runtime_checkable
class Backend(Protocol):
    """A framework's implementation of the book's CNN (a module satisfies it).

    Images are NumPy arrays of shape (n, side, side), float32, with ``side`` =
    ``CNNConfig.image_side``; logits are NumPy arrays (n, ``CNNConfig.classes``).
    """

    #: The kind of kept model in :mod:`dlfp.artifacts` (``"torch-cnn"``), and the
    #: suffix of its model file (``".pt"``).
    NAME: str
    SUFFIX: str

    def train(
        self, config: CNNConfig, data: MNIST | None = None, *, verbose: bool = False
    ) -> tuple[Any, dict[str, list]]:
        """Train the network of ``config``: the model and its per-epoch history."""
        ...

    def predict_logits(
        self, model: Any, images: np.ndarray, batch_size: int = 1000
    ) -> np.ndarray:
        """Logits (n, classes) for images (n, side, side), in inference mode."""
        ...

    def save(self, model: Any, path: str | Path) -> Path:
        """Save ``model`` at ``path`` (the suffix may be adjusted); return the path."""
        ...

    def load(self, path: str | Path, config: CNNConfig) -> Any:
        """The model saved at ``path``, ready for inference."""
        ...

    def trained(self, config: CNNConfig, *, verbose: bool = False) -> tuple[Any, dict]:
        """The model trained with ``config`` and its record, kept between chapters
        (:func:`dlfp.artifacts.trained_run`)."""
        ...

    def export_onnx(self, model: Any, path: str | Path) -> Path:
        """Save the model in the ONNX format (``.onnx``); return the path."""
        ...

    def run_onnx(self, path: str | Path, images: np.ndarray) -> np.ndarray:
        """Logits from a saved ``.onnx`` model, run by ONNX Runtime."""
        ...


def epoch_line(history: dict[str, list], index: int, epochs: int) -> str:
    """The line a backend's ``train(verbose=True)`` may print after epoch ``index``
    (from 0) of a run whose per-epoch ``history`` has ``loss``, ``val_accuracy`` and
    ``seconds``."""
    return (
        f"epoch {index + 1}/{epochs}  loss {history['loss'][index]:.4f}  "
        f"val_acc {history['val_accuracy'][index]:.4f}  "
        f"({history['seconds'][index]:.1f}s)"
    )


def print_log(history: dict[str, list]) -> None:
    """Print one :func:`epoch_line` per epoch of ``history``: the log of a kept run."""
    epochs = len(history["loss"])
    for index in range(epochs):
        print(epoch_line(history, index, epochs))


#: Every backend, by its :attr:`Backend.NAME`: the module that implements it.
BACKENDS = {
    "torch-cnn": "dlfp.frameworks.torch_cnn",
    "keras-cnn": "dlfp.frameworks.keras_cnn",
}


def get(name: str) -> Backend:
    """The backend called ``name`` (``"torch-cnn"`` or ``"keras-cnn"``), imported now:
    this imports its framework."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}.")
    return importlib.import_module(BACKENDS[name])


def check(backend: Any) -> None:
    """Raise TypeError unless ``backend`` has every member of :class:`Backend`, each
    function taking the protocol's parameters (by name and kind; extra ones need
    defaults)."""
    name = getattr(backend, "__name__", repr(backend))
    for member in ("NAME", "SUFFIX"):
        if not isinstance(getattr(backend, member, None), str):
            raise TypeError(f"{name} needs a str {member}; define it at module level.")
    for member, wanted in inspect.getmembers(Backend, inspect.isfunction):
        if member.startswith("_"):
            continue
        function = getattr(backend, member, None)
        if not callable(function):
            raise TypeError(f"{name} lacks {member}(); define it as Backend says.")
        expected = list(inspect.signature(wanted).parameters.values())[1:]  # no self
        actual = inspect.signature(function).parameters
        for parameter in expected:
            got = actual.get(parameter.name)
            if got is None or got.kind != parameter.kind:
                raise TypeError(
                    f"{name}.{member} must take {parameter.name!r} as the protocol "
                    f"does ({parameter.kind.description}); fix its signature."
                )
        for extra in actual.values():
            if extra.name not in {p.name for p in expected} and (
                extra.default is inspect.Parameter.empty
                and extra.kind not in (extra.VAR_POSITIONAL, extra.VAR_KEYWORD)
            ):
                raise TypeError(
                    f"{name}.{member} has a parameter {extra.name!r} the protocol "
                    "lacks; give it a default."
                )


def onnx_logits(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Logits of the ONNX model saved at ``path`` for the input ``x``, laid out as the
    model expects it, run by ONNX Runtime on the CPU (no framework involved)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]
