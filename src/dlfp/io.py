"""The model file format: a :class:`~dlfp.model.Sequential` saved to, and loaded from, a
plain ``.npz`` archive, without pickle.

The archive holds one array per parameter, named ``"<layer index>.<key>"``
(``"0.W"``), and a JSON description under ``__spec__``: the format name and version
(:data:`FORMAT`, :data:`FORMAT_VERSION`), the dtype, every layer's type (its name in
:data:`dlfp.registry.LAYERS`) and constructor arguments, and the metadata saved with the
model. Anything wrong with a file raises :class:`ModelFileError` with one sentence.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import registry
from .layers import Layer

if TYPE_CHECKING:
    from .model import Sequential

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "save", "load"]

FORMAT = "dlfp-sequential"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A file is not a saved dlfp model (or is damaged)."""


def save(model: Sequential, path: str | os.PathLike, **metadata: Any) -> Path:
    """Save the architecture and parameters of ``model`` to a ``.npz`` file (no pickle).

    Parameters
    ----------
    model : Sequential
        Its layers must be of the types of :data:`dlfp.registry.LAYERS`.
    path : path
        The file; ``.npz`` is added (or replaces another suffix) when missing.
    **metadata
        JSON-serialisable values (for example the test accuracy), stored beside the
        parameters and returned by :func:`load` as ``model.metadata``.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    spec = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "dtype": str(model.dtype),
        "layers": [
            {"type": _saved_name(layer), **layer.config()} for layer in model.layers
        ],
        "metadata": metadata,
    }
    arrays = {
        f"{i}.{k}": v
        for i, layer in enumerate(model.layers)
        for k, v in layer.params.items()
    }
    # Written beside the target and renamed into place, so that an interrupted save
    # never leaves a half-written file that looks like a model.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, __spec__=np.array(json.dumps(spec)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _saved_name(layer: Layer) -> str:
    """The registry's name for ``layer``'s type, or a one-sentence error."""
    name = registry.layer_name(layer)
    if name is None:
        raise TypeError(
            f"a model file cannot hold a {type(layer).__name__} layer, which is not in "
            "dlfp.registry.LAYERS; use the layers listed there, or add the class to it "
            "(with a config() that rebuilds the layer)."
        )
    return name


def _check_spec(path: Path, spec: Any) -> np.dtype:
    """Raise :class:`ModelFileError` unless ``spec`` describes a model; its dtype."""
    if not isinstance(spec, dict):
        raise ModelFileError(
            f"{path} holds a {type(spec).__name__} where a model's description (a JSON "
            "object) belongs; the file is damaged or not a dlfp model."
        )
    if spec.get("format") != FORMAT or spec.get("version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} holds format {spec.get('format')!r} version "
            f"{spec.get('version')!r}, but this dlfp reads {FORMAT!r} version "
            f"{FORMAT_VERSION}; save the model again with this version."
        )
    if "dtype" not in spec:
        raise ModelFileError(
            f"{path} does not say which dtype its parameters have; the file is "
            "damaged: save the model again."
        )
    known = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
    dtype = known.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
    if dtype is None:
        raise ModelFileError(
            f"{path} names the dtype {spec['dtype']!r}, but dlfp models are float32 or "
            "float64; the file is damaged or not a dlfp model."
        )
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelFileError(
            f"{path} describes no layers; the file is damaged: save the model again."
        )
    for i, entry in enumerate(layers):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ModelFileError(
                f"{path}: layer {i} has no type; the file is damaged: save the model "
                "again."
            )
    return dtype


def load(
    path: str | os.PathLike, *, rng: np.random.Generator | None = None
) -> Sequential:
    """Load a model saved with :meth:`Sequential.save`.

    Raises :class:`ModelFileError` with one sentence when the file is missing, is not a
    ``.npz`` archive, or does not hold a complete dlfp model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"{path} does not exist; check the path to the saved model."
        )
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is not an .npz archive, so not a saved dlfp model; check the path."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "__spec__" not in archive:
                raise ModelFileError(
                    f"{path} is an .npz file but not a dlfp model (it has no __spec__ "
                    "entry); save models with model.save()."
                )
            spec = json.loads(str(archive["__spec__"]))
            arrays = {k: archive[k] for k in archive.files if k != "__spec__"}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(
            f"{path} is not a readable .npz archive ({err}); it is damaged or not a "
            "saved model."
        ) from None
    from .model import Sequential  # here, not above: dlfp.model imports this module

    dtype = _check_spec(path, spec)
    rng = np.random.default_rng() if rng is None else rng
    layers: list[Layer] = []
    for i, entry in enumerate(spec["layers"]):
        kwargs = {k: v for k, v in entry.items() if k != "type"}
        kind = registry.layer_class(entry["type"])
        if kind is None:
            raise ModelFileError(
                f"{path} has a layer of unknown type {entry['type']!r}; it was saved "
                "by another version of dlfp or is damaged."
            )
        init = kwargs.get("init")  # as the layer was created ("custom": a function)
        if init is not None:
            # Start from zeros (nothing to draw): the saved values replace them below.
            kwargs["init"] = "zeros"
        try:
            layer = kind.from_config(kwargs, dtype=dtype, rng=rng)
        except (TypeError, ValueError) as err:
            raise ModelFileError(
                f"{path}: layer {i} ({entry['type']}) has arguments this dlfp cannot "
                f"use ({err}); the file is damaged or from another version of dlfp."
            ) from None
        for key, value in layer.params.items():
            stored = arrays.get(f"{i}.{key}")
            if stored is None or stored.shape != value.shape:
                got = "missing" if stored is None else f"shape {stored.shape}"
                raise ModelFileError(
                    f"{path}: parameter {i}.{key} should have shape {value.shape} but "
                    f"is {got}; the file is damaged."
                )
            value[...] = stored
        if init is not None:
            layer.init = init  # as it was created, not the zeros it was loaded with
        layers.append(layer)
    model = Sequential(layers)
    model.metadata = spec.get("metadata", {})
    return model
