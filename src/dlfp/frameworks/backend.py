"""What a framework's CNN module provides: the :class:`Backend` protocol.

:mod:`dlfp.frameworks.torch_cnn` and :mod:`dlfp.frameworks.keras_cnn` are backends:
modules that build, train, run, save and export the network of a
:class:`~dlfp.recipes.CNNConfig` with one framework. A backend implements a recipe
(:class:`dlfp.recipes.Implementation`: train, evaluate, predict, save, load) and
exports to ONNX. Code that works with either (the verdict, the chapters, the
benchmarks) receives the module itself and calls only what :class:`Backend` lists.
:func:`get` imports a backend by its name; :func:`check` says what a module lacks.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..recipes import RECIPES, Implementation

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Backend",
    "BACKENDS",
    "get",
    "check",
    "onnx_logits",
]


@runtime_checkable
class Backend(Implementation, Protocol):
    """A framework's implementation of the book's CNN (a module satisfies it): a
    recipe's :class:`~dlfp.recipes.Implementation`, and the export to ONNX.

    Images are NumPy arrays of shape (n, side, side), float32, with ``side`` =
    ``CNNConfig.image_side``; logits are NumPy arrays (n, ``CNNConfig.classes``).
    """

    def export_onnx(self, model: Any, path: str | Path) -> Path:
        """Save the model in the ONNX format (``.onnx``); return the path."""
        ...

    def run_onnx(self, path: str | Path, images: np.ndarray) -> np.ndarray:
        """Logits from a saved ``.onnx`` model, run by ONNX Runtime."""
        ...


#: Every backend, by its :attr:`Backend.NAME`: the module that implements it (the
#: recipes of :data:`dlfp.recipes.RECIPES` that a framework trains).
BACKENDS = {
    name: kind.module
    for name, kind in RECIPES.items()
    if kind.module.startswith("dlfp.frameworks.")
}


def get(name: str) -> Backend:
    """The backend called ``name`` (``"torch-cnn"`` or ``"keras-cnn"``), imported now:
    this imports its framework."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}.")
    return importlib.import_module(BACKENDS[name])


def check(backend: Any, protocol: type = Backend) -> None:
    """Raise TypeError unless ``backend`` has every member of ``protocol`` (default
    :class:`Backend`; :class:`~dlfp.recipes.Implementation` for any recipe's module),
    each function taking the protocol's parameters (by name and kind; extra ones need
    defaults)."""
    name = getattr(backend, "__name__", repr(backend))
    for member in ("NAME", "SUFFIX"):
        if not isinstance(getattr(backend, member, None), str):
            raise TypeError(f"{name} needs a str {member}; define it at module level.")
    for member, wanted in inspect.getmembers(protocol, inspect.isfunction):
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
