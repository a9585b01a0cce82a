"""Trained models kept between chapters, under names that go stale with their inputs.

A chapter that inspects the network an earlier chapter trained loads it from the
*artifacts* folder instead of training it again: the folder named by
``DLFP_ARTIFACTS``, else ``~/.cache/dlfp/artifacts``. A kept model may be reused only
while everything that produced it is unchanged, so its file name hashes the recipe's
configuration, the source code that trains it, and the versions of the packages that
compute it (:func:`fingerprint`). Change any of them and the name changes: the old file
is never mistaken for a current one, and the model is trained again.

This module is the one place for every kept model, and it treats every recipe of
:data:`dlfp.recipes.RECIPES` alike: ``"mlp"`` (Part II's perceptron), ``"numpy-cnn"``
(the NumPy CNN), ``"torch-cnn"`` and ``"keras-cnn"`` (the frameworks' CNNs). A kept run
is two files named after the recipe: the model (``.npz``, ``.pt`` or ``.keras``) and a
JSON record beside it (the configuration, the :class:`~dlfp.train.History`, the
training time and, once measured, the test accuracy), written last. :func:`trained`
returns a recipe's :class:`Run`, training, testing and keeping it when no earlier build
kept it. A chapter that trains a model itself, to show the training, asks first for the
run an earlier build kept (:func:`kept`) and keeps its own (:func:`keep`), so that each
recipe trains once, not once per build or launch. :data:`SOURCES` and :data:`PACKAGES`
list what each recipe's numbers depend on; :func:`artifact_path` names its files. The
training code and its framework are imported only when a model must be trained or
loaded.
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
from .train import History

if TYPE_CHECKING:
    from .recipes import Recipe

__all__ = [
    "artifacts_dir",
    "fingerprint",
    "package_versions",
    "SOURCES",
    "PACKAGES",
    "key",
    "artifact_path",
    "Run",
    "keep",
    "kept",
    "trained",
    "load_record",
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
#: each recipe's kept run: how it is built, trained and evaluated, and its data.
#: ``tests/test_layout.py`` checks that every dlfp module the recipe's implementation
#: imports is listed.
#: The recipes, which every kind shares, and the data they read.
_RECIPES = (
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
#: The core that every recipe's modules import (the recipes package imports the MLP's,
#: which builds on it), whether or not it computes that recipe's numbers: listed whole,
#: so that no kept run outlives a change to code it loaded.
_CORE = (
    "train.py", "model.py", "io.py", "registry.py", "layers.py", "conv.py",
    "activations.py", "init.py", "optim.py", "losses.py",
    "artifacts.py",  # the kept record's format
)  # fmt: skip
SOURCES: dict[str, tuple[str, ...]] = {
    "mlp": (*_RECIPES, *_CORE, *DATA),
    "numpy-cnn": (*_RECIPES, *_CORE, "cnn.py", *DATA),
    "torch-cnn": (*_RECIPES, *_CORE, "frameworks/torch_cnn.py", *DATA),
    "keras-cnn": (
        *_RECIPES, *_CORE, "frameworks/keras_cnn.py", "frameworks/_quiet.py", *DATA,
    ),
}  # fmt: skip

#: The distributions whose versions change each kind's numbers.
PACKAGES: dict[str, tuple[str, ...]] = {
    "mlp": ("numpy",),
    "numpy-cnn": ("numpy",),
    "torch-cnn": ("numpy", "torch"),
    "keras-cnn": ("numpy", "tensorflow", "tensorflow-cpu", "keras"),
}


def key(recipe: Recipe) -> str:
    """The short hash in the names of the files of ``recipe``'s kept run.

    It hashes the configuration, the recipe's :data:`SOURCES` and :data:`PACKAGES`.
    The MLP's key also names the version of ``dlfp``, whose ``.npz`` format it is kept
    in.
    """
    settings = dataclasses.asdict(recipe.config)
    if recipe.name == "mlp":
        from . import __version__

        settings = {**settings, "dlfp": __version__}
    return fingerprint(settings, SOURCES[recipe.name], PACKAGES[recipe.name])


def artifact_path(recipe: Recipe, suffix: str | None = None) -> Path:
    """Where a run of ``recipe`` is kept: ``<artifacts>/<name>-<key><suffix>``.

    The folder is :func:`artifacts_dir`. The suffix is the model file's
    (``recipe.suffix``) unless another is given: ``".json"`` names the record.
    """
    suffix = recipe.suffix if suffix is None else suffix
    return artifacts_dir() / f"{recipe.name}-{key(recipe)}{suffix}"


@dataclasses.dataclass
class Run:
    """A trained model and what its training left: its history, the seconds of
    wall-clock time the training took and, once measured, its test accuracy.
    ``extra`` holds whatever else a chapter kept in the record (JSON values)."""

    model: object
    history: History
    train_seconds: float
    test_accuracy: float | None = None
    extra: dict = dataclasses.field(default_factory=dict)


def keep(recipe: Recipe, run: Run) -> Path:
    """Keep ``run`` for later chapters and later builds; return the model's path.

    The model is saved by the recipe's implementation, then the record (JSON, written
    atomically, last: a run is complete only once its record is there). A complete run
    already kept under the same name (:func:`kept` returns it) is left as it is: the
    same name means the same configuration, code and package versions, so a chapter
    that loaded the kept run and keeps it again writes nothing (a Keras model loaded
    for inference has lost its optimizer's state, which its file keeps).
    """
    path = artifact_path(recipe)
    if load_record(recipe) is not None and path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    recipe.save(run.model, path)
    _write_record(recipe, run)
    return path


def _write_record(recipe: Recipe, run: Run) -> None:
    record = {
        "config": dataclasses.asdict(recipe.config),
        "history": run.history.as_dict(),
        "train_seconds": run.train_seconds,
        "test_accuracy": run.test_accuracy,
        **run.extra,
    }
    path = artifact_path(recipe, ".json")
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json")
    with os.fdopen(fd, "w") as out:
        json.dump(record, out, indent=1)
    os.replace(tmp, path)


def load_record(recipe: Recipe) -> dict | None:
    """The record of ``recipe``'s kept run, or None when there is none."""
    path = artifact_path(recipe, ".json")
    return json.loads(path.read_text()) if path.is_file() else None


def kept(recipe: Recipe) -> Run | None:
    """The run of ``recipe`` that an earlier build kept, or None when there is none.

    A chapter that trains a model calls it first, so that each recipe trains once: the
    model loaded for inference, its history and training time, and its test accuracy
    when the run that kept it measured one.
    """
    record = load_record(recipe)
    path = artifact_path(recipe)
    if record is None or not path.exists():
        return None
    known = ("config", "history", "train_seconds", "test_accuracy")
    return Run(
        recipe.load(path),
        History.from_dict(record["history"]),
        float(record["train_seconds"]),
        record["test_accuracy"],
        {key: value for key, value in record.items() if key not in known},
    )


def trained(recipe: Recipe, *, verbose: bool = False) -> Run:
    """The run of ``recipe``, with its test accuracy.

    The run an earlier chapter or build kept, when there is one; else the recipe is
    trained now and kept. A run kept without its test accuracy is tested once, on the
    test set, and its record gains the accuracy.
    """
    run = kept(recipe)
    if run is not None and run.test_accuracy is not None:
        return run
    data = recipe.data()
    if run is None:
        start = time.perf_counter()
        model, history = recipe.train(data, verbose=verbose)
        run = Run(model, history, time.perf_counter() - start)
        run.test_accuracy = recipe.test(run.model, data.test)[1]
        keep(recipe, run)
    else:
        run.test_accuracy = recipe.test(run.model, data.test)[1]
        _write_record(recipe, run)
    return run
