"""The per-user cache folders of dlfp: where MNIST and the trained models are kept.

One function, :func:`cache_dir`, decides every such folder, so that the data and the
artifacts follow the same rule on every platform.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["cache_dir", "user_cache_base"]


def user_cache_base() -> Path:
    """The platform's per-user cache folder, without the ``dlfp`` part.

    ``%LOCALAPPDATA%`` on Windows, ``~/Library/Caches`` on macOS, and
    ``$XDG_CACHE_HOME`` or ``~/.cache`` elsewhere.
    """
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def cache_dir(name: str, env_var: str) -> Path:
    """The folder named by the environment variable ``env_var``, else ``dlfp/name`` in
    the per-user cache folder (:func:`user_cache_base`).

    Parameters
    ----------
    name : str
        The subfolder of the cache: ``"mnist"`` or ``"artifacts"``.
    env_var : str
        The environment variable that overrides it (``DLFP_DATA_DIR``,
        ``DLFP_ARTIFACTS``); blank counts as unset.

    Returns
    -------
    Path
        An absolute path when set by ``env_var`` (``~`` expanded); the folder need
        not exist yet.
    """
    configured = os.environ.get(env_var, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    return user_cache_base() / "dlfp" / name
