"""Trained models kept between chapters, under names that go stale with their inputs.

A chapter that inspects the network an earlier chapter trained loads it from the
*artifacts* folder instead of training it again: the folder named by
``DLFP_ARTIFACTS``, else ``~/.cache/dlfp/artifacts``. A kept model may be reused only
while everything that produced it is unchanged, so its file name hashes the recipe's
configuration, the source code that trains it, and the versions of the packages that
compute it (:func:`fingerprint`). Change any of them and the name changes: the old file
is never mistaken for a current one, and the model is trained again.

This module is the one place for every kept model. Each kind is a recipe of
:data:`dlfp.recipes.RECIPES`, whose name is the prefix of its files: ``"mlp"`` (Part
II's perceptron, :func:`trained_mlp`), ``"numpy-cnn"`` (the NumPy CNN,
:func:`trained_cnn`), ``"torch-cnn"`` and ``"keras-cnn"`` (the frameworks' CNNs,
:func:`trained_run`, with a JSON record beside each model). A chapter that trains
a model itself asks first for the run an earlier build kept (:func:`kept_mlp`,
:func:`kept_run`), so that each recipe trains once, not once per build or launch.
:data:`SOURCES` and :data:`PACKAGES` list what each kind's numbers depend on;
:func:`artifact_path` names its files. The training code is imported only when a model
must be trained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .cache import cache_dir

if TYPE_CHECKING:
    from .frameworks.backend import Backend
    from .model import Sequential
    from .recipes import CNNConfig, MLPConfig
    from .train import History

__all__ = [
    "artifacts_dir",
    "fingerprint",
    "package_versions",
    "SOURCES",
    "PACKAGES",
    "key",
    "artifact_path",
    "save_trained",
    "kept_mlp",
    "trained_mlp",
    "trained_cnn",
    "save_record",
    "load_record",
    "save_run",
    "kept_run",
    "trained_run",
]

PACKAGE_ROOT = Path(__file__).resolve().parent


def artifacts_dir() -> Path:
    """Where trained models wait for later chapters: ``$DLFP_ARTIFACTS`` or a cache."""
    return cache_dir("artifacts", "DLFP_ARTIFACTS")


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution (``"absent"`` when not installed)."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def fingerprint(
    config: dict, sources: Iterable[str | os.PathLike], packages: Iterable[str]
) -> str:
    """A short hash of a configuration, source files and package versions.

    Parameters
    ----------
    config : dict
        The recipe (JSON-serialisable), e.g. ``dataclasses.asdict(MLPConfig())``.
    sources : iterable of path
        Source files whose code trains the model; relative paths are taken from the
        ``dlfp`` package folder.
    packages : iterable of str
        Distributions whose versions change the numbers (``"numpy"``, ``"torch"``).
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(config, sort_keys=True).encode())
    digest.update(json.dumps(package_versions(packages), sort_keys=True).encode())
    for source in sources:
        path = PACKAGE_ROOT / source
        digest.update(str(source).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


# --- What each kind of kept model depends on ------------------------------------------

#: The modules (paths in the ``dlfp`` package folder) whose code decides the numbers of
#: each kind of kept model: how it is built, trained and evaluated, and its data.
#: The recipes, which every kind shares, and the data they read.
RECIPES = (
    "recipes/__init__.py",
    "recipes/mlp.py",
    "recipes/cnn.py",
    "recipes/batches.py",
)
DATA = (
    "data/__init__.py",
    "data/idx.py",
    "data/download.py",
    "data/mnist.py",
    "data/augment.py",
)
SOURCES: dict[str, tuple[str, ...]] = {
    "mlp": (
        *RECIPES, "train.py", "model.py", "io.py", "registry.py", "layers.py",
        "activations.py", "init.py", "optim.py", "losses.py", "artifacts.py", *DATA,
    ),
    "numpy-cnn": (
        *RECIPES, "cnn.py", "conv.py", "model.py", "io.py", "registry.py", "layers.py",
        "activations.py", "init.py", "optim.py", "losses.py", "train.py",
        "artifacts.py", *DATA,
    ),
    "torch-cnn": (
        *RECIPES, "frameworks/torch_cnn.py", "optim.py", "artifacts.py", *DATA,
    ),
    "keras-cnn": (
        *RECIPES, "frameworks/keras_cnn.py", "frameworks/_quiet.py", "optim.py",
        "artifacts.py", *DATA,
    ),
}  # fmt: skip

#: The distributions whose versions change each kind's numbers.
PACKAGES: dict[str, tuple[str, ...]] = {
    "mlp": ("numpy",),
    "numpy-cnn": ("numpy",),
    "torch-cnn": ("numpy", "torch"),
    "keras-cnn": ("numpy", "tensorflow", "tensorflow-cpu", "keras"),
}


def key(kind: str, config) -> str:
    """The short hash in the names of the files of a ``kind`` trained with ``config``.

    Parameters
    ----------
    kind : str
        A key of :data:`SOURCES`: ``"mlp"``, ``"numpy-cnn"``, ``"torch-cnn"`` or
        ``"keras-cnn"``.
    config : dataclass
        The recipe, a :class:`~dlfp.recipes.MLPConfig` or a
        :class:`~dlfp.recipes.CNNConfig`. The MLP's key also names the version of
        ``dlfp``, whose ``.npz`` format it is kept in.
    """
    if kind not in SOURCES:
        raise ValueError(
            f"unknown kind of kept model {kind!r}; use one of {', '.join(SOURCES)}."
        )
    settings = dataclasses.asdict(config)
    if kind == "mlp":
        from . import __version__

        settings = {**settings, "dlfp": __version__}
    return fingerprint(settings, SOURCES[kind], PACKAGES[kind])


def artifact_path(kind: str, config, suffix: str = ".npz") -> Path:
    """Where a chapter keeps what it trained: ``<artifacts>/<kind>-<key><suffix>``.

    The folder is :func:`artifacts_dir`; ``kind`` and ``config`` are as for
    :func:`key`. The frameworks' runs keep two files: the model (``.pt`` or
    ``.keras``) and its record (``.json``).
    """
    return artifacts_dir() / f"{kind}-{key(kind, config)}{suffix}"


# --- Part II: the MLP -----------------------------------------------------------------


def save_trained(
    model: Sequential,
    config: MLPConfig,
    history: History,
    train_seconds: float | None = None,
) -> Path:
    """Keep a trained MLP, with its configuration, history and training time (seconds
    of wall-clock time, when known), for later chapters and later builds.

    A complete run already kept under the same name (:func:`kept_mlp` returns it) is
    left as it is, as :func:`save_run` does: the same name means the same
    configuration, code and versions, so a chapter that loaded the kept run and saves
    it again writes nothing.
    """
    path = artifact_path("mlp", config)
    if kept_mlp(config) is not None:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    return model.save(
        path,
        config=dataclasses.asdict(config),
        history=history.as_dict(),
        train_seconds=train_seconds,
    )


def kept_mlp(config: MLPConfig) -> tuple[Sequential, History, float] | None:
    """The run of ``config`` that an earlier build kept, or None when there is none.

    A chapter that trains the MLP calls it first, so that it trains once per recipe:
    the model, its :class:`~dlfp.train.History` and the seconds its training took, as
    :func:`save_trained` kept them (a file without the time counts as none).
    """
    from .io import load
    from .train import History

    path = artifact_path("mlp", config)
    if not path.is_file():
        return None
    model = load(path)
    seconds = model.metadata.get("train_seconds")
    if seconds is None:
        return None
    return model, History(**model.metadata["history"]), float(seconds)


def trained_mlp(config: MLPConfig | None = None, *, verbose: bool = False):
    """The MLP trained with ``config`` (default: the book's ``MLPConfig()``): loaded
    from the artifacts folder when an earlier run saved it, else trained now and saved
    there.

    Returns
    -------
    (Sequential, dict)
        The model and the metadata saved with it: ``config``, ``history`` (the
        :class:`~dlfp.train.History` as a dict of lists) and ``train_seconds``.
    """
    from .io import load
    from .recipes import MLPConfig, train_mlp

    config = MLPConfig() if config is None else config
    path = artifact_path("mlp", config)
    if not path.is_file():
        start = time.perf_counter()
        model, history = train_mlp(config, verbose=verbose)
        save_trained(model, config, history, time.perf_counter() - start)
    model = load(path)
    return model, model.metadata


# --- Part III: the NumPy CNN ----------------------------------------------------------


def trained_cnn(
    config: CNNConfig | None = None, *, verbose: bool = False
) -> tuple[Sequential, dict]:
    """The dlfp CNN trained with ``config`` (default: ``CNNConfig()``) and its metadata.

    Loaded from the artifacts folder when an earlier run saved it; else trained now,
    evaluated once on the test set, and saved there (an ``.npz`` file, no pickle).

    Returns
    -------
    (Sequential, dict)
        The model and the metadata saved with it: ``config``, ``history`` (as
        :func:`dlfp.cnn.train_cnn` returns it), ``test_accuracy``, ``test_loss`` and
        ``train_seconds``.
    """
    from . import cnn
    from .io import load
    from .recipes import CNNConfig, load_mnist_for

    config = CNNConfig() if config is None else config
    path = artifact_path("numpy-cnn", config)
    if not path.is_file():
        data = load_mnist_for(config)
        start = time.perf_counter()
        model, history = cnn.train_cnn(config, data, verbose=verbose)
        seconds = time.perf_counter() - start
        test_loss, test_accuracy = model.evaluate(
            data.test.flat, data.test.labels, batch_size=1000
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(
            path,
            config=dataclasses.asdict(config),
            history=history,
            test_accuracy=test_accuracy,
            test_loss=test_loss,
            train_seconds=seconds,
        )
    model = load(path)
    return model, model.metadata


# --- Part III: the PyTorch and Keras CNNs ---------------------------------------------


def save_record(kind: str, config: CNNConfig, record: dict) -> Path:
    """Write a training run's record (history, test accuracy) as JSON, atomically."""
    path = artifact_path(kind, config, ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"config": dataclasses.asdict(config), **record}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json")
    with os.fdopen(fd, "w") as out:
        json.dump(record, out, indent=1)
    os.replace(tmp, path)
    return path


def load_record(kind: str, config: CNNConfig) -> dict | None:
    """The record a run with ``config`` saved, or None when there is none."""
    path = artifact_path(kind, config, ".json")
    return json.loads(path.read_text()) if path.is_file() else None


def save_run(
    backend: Backend,
    config: CNNConfig,
    model,
    history: dict,
    test_accuracy: float,
    **record,
) -> Path:
    """Keep a trained model and its record for later chapters; return the model's path.

    ``backend`` is :mod:`dlfp.frameworks.torch_cnn` or :mod:`dlfp.frameworks.keras_cnn`
    (any :class:`~dlfp.frameworks.backend.Backend`). The record holds the history, the
    test accuracy and whatever else is passed (``train_seconds``, for one). A run
    already kept under the same name is left as it is: the same name means the same
    configuration, code and package versions, so saving the run that :func:`kept_run`
    loaded changes nothing (a Keras model loaded for inference has lost its optimizer's
    state, which its file keeps).
    """
    path = artifact_path(backend.NAME, config, backend.SUFFIX)
    if _complete_record(backend, config) is not None:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    backend.save(model, path)
    save_record(
        backend.NAME,
        config,
        {"history": history, "test_accuracy": test_accuracy, **record},
    )
    return path


def kept_run(backend: Backend, config: CNNConfig) -> tuple[object, dict] | None:
    """The run of ``config`` that an earlier build kept, or None when there is none.

    A chapter that trains a framework's CNN calls it first, so that it trains once per
    recipe: the model loaded for inference and its record (``history``,
    ``test_accuracy``, ``train_seconds``; a record without the time counts as none).
    """
    record = _complete_record(backend, config)
    if record is None:
        return None
    path = artifact_path(backend.NAME, config, backend.SUFFIX)
    return backend.load(path, config), record


def _complete_record(backend: Backend, config: CNNConfig) -> dict | None:
    """The record of the kept run of ``config`` when its model file is there too and
    the record has the training time, else None."""
    record = load_record(backend.NAME, config)
    path = artifact_path(backend.NAME, config, backend.SUFFIX)
    if record is None or "train_seconds" not in record or not path.exists():
        return None
    return record


def trained_run(backend: Backend, config: CNNConfig, *, verbose: bool = False):
    """The model ``backend`` trained with ``config``, and its record.

    Loaded from the artifacts folder when an earlier chapter saved it; else trained now,
    evaluated once on the test set, and saved with :func:`save_run`.
    """
    from .recipes import load_mnist_for

    path = artifact_path(backend.NAME, config, backend.SUFFIX)
    if _complete_record(backend, config) is None:
        data = load_mnist_for(config)
        start = time.perf_counter()
        model, history = backend.train(config, data, verbose=verbose)
        seconds = time.perf_counter() - start
        logits = backend.predict_logits(model, data.test.images)
        accuracy = float((logits.argmax(axis=1) == data.test.labels).mean())
        save_run(backend, config, model, history, accuracy, train_seconds=seconds)
    return backend.load(path, config), load_record(backend.NAME, config)
