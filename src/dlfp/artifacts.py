"""Trained models kept between chapters, under names that go stale with their inputs.

A chapter that inspects the network an earlier chapter trained loads it from the
*artifacts* folder instead of training it again: the folder named by
``DLFP_ARTIFACTS``, else ``~/.cache/dlfp/artifacts``. A kept model may be reused only
while everything that produced it is unchanged, so its file name hashes the recipe's
configuration, the source code that trains it, and the versions of the packages that
compute it (:func:`fingerprint`). Change any of them and the name changes: the old file
is never mistaken for a current one, and the model is trained again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path

from .cache import cache_dir

__all__ = ["artifacts_dir", "fingerprint", "package_versions"]

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
