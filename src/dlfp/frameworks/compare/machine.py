"""The machine the experiment runs on, and the thread pools of both frameworks."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

from ...threads import available_cores, requested_threads, set_pools, thread_settings


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The processor, the cores this process may use, and the versions that matter."""
    from importlib import metadata

    versions = {}
    for package in ("numpy", "torch", "tensorflow-cpu", "tensorflow", "keras"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    for package in ("onnxruntime", "onnxscript", "tf2onnx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    if "tensorflow-cpu" in versions:  # one of the two is installed; name it once
        versions["tensorflow"] = versions.pop("tensorflow-cpu")
    return {
        "cpu": _cpu_model(),
        "cores": available_cores(),
        "logical_cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        # Other processes' demand: a 1-minute load average above the cores means the
        # timings shared the processor with them.
        "load_average": round(os.getloadavg()[0], 2)
        if hasattr(os, "getloadavg")
        else None,
    }


def set_threads(n: int | None = None) -> dict:
    """Give every pool of PyTorch and TensorFlow ``n`` threads
    (:func:`dlfp.threads.set_pools`), and return what each pool reports afterwards. The
    default is :func:`threads`: ``DLFP_THREADS`` when set, else the cores this process
    may use (its CPU affinity)."""
    set_pools(threads() if n is None else n)
    return _pools()


def threads() -> int:
    """The threads every pool gets: ``DLFP_THREADS`` (or ``OMP_NUM_THREADS``) when set,
    else :func:`dlfp.threads.available_cores`. ONNX Runtime's sessions get as many."""
    return requested_threads() or available_cores()


def _pools() -> dict:
    """The pools' sizes, as recorded in every row."""
    return thread_settings(blas=False)
