"""The machine the experiment runs on, and the thread pools of both frameworks."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from pathlib import Path

from ...threads import available_cores, requested_threads


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
    """Give every pool of PyTorch and TensorFlow ``n`` threads, and return what each
    pool reports afterwards. The default is :func:`threads`: ``DLFP_THREADS`` when set,
    else the cores this process may use (its CPU affinity).

    Both frameworks accept the inter-op setting only before their first parallel
    work, and TensorFlow its intra-op setting too; where that moment has passed, the
    pool keeps its size, and the returned settings (recorded in every row) show it.
    """
    n = threads() if n is None else n
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):
            if torch.get_num_interop_threads() != n:
                torch.set_num_interop_threads(n)
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        threading = tf.config.threading
        with contextlib.suppress(RuntimeError):
            if threading.get_intra_op_parallelism_threads() != n:
                threading.set_intra_op_parallelism_threads(n)
        with contextlib.suppress(RuntimeError):
            if threading.get_inter_op_parallelism_threads() != n:
                threading.set_inter_op_parallelism_threads(n)
    return _pools()


def threads() -> int:
    """The threads every pool gets: ``DLFP_THREADS`` (or ``OMP_NUM_THREADS``) when set,
    else :func:`dlfp.threads.available_cores`. ONNX Runtime's sessions get as many."""
    return requested_threads() or available_cores()


def _pools() -> dict:
    """The pools' sizes, as recorded in every row: :func:`dlfp.threads.thread_settings`
    without NumPy's BLAS, which neither framework uses (and which is slow to ask)."""
    settings = {"cores": available_cores()}
    for name in ("OMP_NUM_THREADS", "DLFP_THREADS", "TF_ENABLE_ONEDNN_OPTS"):
        if os.environ.get(name):
            settings[name] = os.environ[name]
    torch = sys.modules.get("torch")
    if torch is not None:
        settings["torch_intra_op"] = torch.get_num_threads()
        settings["torch_inter_op"] = torch.get_num_interop_threads()
    tf = sys.modules.get("tensorflow")
    if tf is not None:  # 0: TensorFlow picks, one thread per available core
        settings["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        settings["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    return settings
