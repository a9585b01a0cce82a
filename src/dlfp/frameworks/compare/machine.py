"""The machine the experiment runs on, and the thread pools of both frameworks."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Mapping
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


#: A float32 subnormal (the smallest normal float32 is about 1.2e-38): an arithmetic
#: operation on it returns 0 where the processor flushes subnormals to zero.
SUBNORMAL = 1e-39


def _torch_flushes() -> bool:
    import torch

    return float(torch.tensor(SUBNORMAL) * 1.0) == 0.0


def _tf_flushes() -> bool:
    import tensorflow as tf

    return float(tf.constant(SUBNORMAL) * tf.constant(1.0)) == 0.0


def tf_op_determinism(env: Mapping[str, str] | None = None) -> bool:
    """Whether TensorFlow's op determinism is on in this process, read without
    TensorFlow's private modules (``env``: this process's environment by default).

    TensorFlow 2.21 exports ``tf.config.experimental.enable_op_determinism`` and no
    getter. It is on where the library turned it on
    (:func:`dlfp.frameworks.keras_cnn.enable_op_determinism`, which the Keras chapter's
    ``train`` calls, records it), or where the process started with
    ``TF_DETERMINISTIC_OPS`` set to ``1`` or ``true`` (TensorFlow's older switch, still
    read at start). A direct call of TensorFlow's function from other code is not seen:
    the experiment's processes make none."""
    value = (os.environ if env is None else env).get("TF_DETERMINISTIC_OPS", "")
    if value.strip().lower() in ("1", "true"):
        return True
    keras_cnn = sys.modules.get("dlfp.frameworks.keras_cnn")
    return bool(getattr(keras_cnn, "OP_DETERMINISM", False))


#: The processor features with which TensorFlow's Linux x86 packages turn oneDNN's
#: optimisations on by default (TensorFlow 2.9 release notes: "CPUs with
#: neural-network-focused hardware features such as AVX512_VNNI, AVX512_BF16, AMX, and
#: others"), as Linux's /proc/cpuinfo names them.
ONEDNN_FEATURES = (
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def cpu_flags() -> set[str]:
    """The processor's feature flags, from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def onednn(env: Mapping[str, str] | None = None) -> bool:
    """Whether TensorFlow's oneDNN optimisations are on in a process started with
    ``env`` (default: this one's): ``TF_ENABLE_ONEDNN_OPTS`` when it is set ("0" or
    "false" turns them off, anything else on), else on when the processor has one of
    :data:`ONEDNN_FEATURES` (the packages' documented default on Linux x86)."""
    value = (os.environ if env is None else env).get("TF_ENABLE_ONEDNN_OPTS")
    if value is not None:
        return value.strip().lower() not in ("0", "false")
    return bool(cpu_flags() & set(ONEDNN_FEATURES))


def global_state() -> dict:
    """The process-wide settings that change what a clock measures, for every framework
    already imported (nothing is imported here): every row records them, as they were
    when its last round ran.

    PyTorch: deterministic algorithms (and their warn-only mode), whether a float32
    subnormal is flushed to zero (``torch.set_flush_denormal``, which has no getter:
    probed by multiplying one), oneDNN (``torch.backends.mkldnn.enabled``), the float32
    matmul precision, and Inductor's process-wide ``freezing`` flag (a row that
    freezes passes it to its own compilation instead). TensorFlow: op determinism,
    oneDNN, the same subnormal probe, and XLA's environment variables. Keras: the
    global dtype policy.
    """
    state: dict = {}
    for name in (
        "TF_ENABLE_ONEDNN_OPTS",
        "TF_DETERMINISTIC_OPS",
        "XLA_FLAGS",
        "TF_XLA_FLAGS",
    ):
        if os.environ.get(name):
            state[name] = os.environ[name]
    torch = sys.modules.get("torch")
    if torch is not None:
        state["torch_deterministic"] = torch.are_deterministic_algorithms_enabled()
        state["torch_deterministic_warn_only"] = (
            torch.is_deterministic_algorithms_warn_only_enabled()
        )
        state["torch_flush_denormal"] = _torch_flushes()
        state["torch_mkldnn"] = bool(torch.backends.mkldnn.enabled)
        state["torch_matmul_precision"] = torch.get_float32_matmul_precision()
        inductor = sys.modules.get("torch._inductor.config")
        if inductor is not None:
            state["inductor_freezing"] = bool(inductor.freezing)
    if sys.modules.get("tensorflow") is not None:
        state["tf_op_determinism"] = tf_op_determinism()
        state["tf_onednn"] = onednn()
        state["tf_flush_denormal"] = _tf_flushes()
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "config"):
        state["keras_dtype_policy"] = keras.config.dtype_policy().name
    return state
