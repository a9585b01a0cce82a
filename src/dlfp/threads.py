"""How many threads the maths libraries use, and the one place that changes it.

A result computed with a different number of threads can differ in its last bits: the
sums are split and added in another order. The book's claims are measured with one and
with all of the machine's threads (``benchmarks/seeds.py``), and every timing records
the settings it ran under. ``DLFP_THREADS`` (else ``OMP_NUM_THREADS``), when set, caps
the threads of both pools (intra-op and inter-op) of PyTorch and TensorFlow when
:mod:`dlfp.frameworks` imports them (:func:`set_pools`); ``OMP_NUM_THREADS`` caps
NumPy's BLAS too, when set before NumPy is imported. Every other change of a thread
count in dlfp goes through this module too: :func:`set_pools` for the frameworks' pools,
:func:`limited` and :func:`limit_blas` for a block of code (``tests/test_layout.py``
checks that no other module sets one).
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = [
    "available_cores",
    "requested_threads",
    "thread_settings",
    "set_pools",
    "limit_blas",
    "limited",
]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), not all the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def requested_threads() -> int | None:
    """The thread count asked for by ``DLFP_THREADS``, else by ``OMP_NUM_THREADS``.

    None when neither is set: each library then picks its own (one per core).
    """
    for name in ("DLFP_THREADS", "OMP_NUM_THREADS"):
        text = os.environ.get(name, "").strip()
        if text:
            if not text.isdigit() or int(text) < 1:
                raise ValueError(
                    f"{name} must be a whole number of threads, 1 or more, "
                    f"not {text!r}."
                )
            return int(text)
    return None


def thread_settings(blas: bool = True) -> dict:
    """The threads of every pool loaded in this process, and the settings behind them.

    Only libraries already imported are asked, so calling this imports nothing heavy.
    ``blas=False`` leaves out NumPy's BLAS, which is slow to ask (the verdict records
    the frameworks' pools in every row, and neither framework uses NumPy's BLAS).
    """
    settings: dict = {"cores": available_cores()}
    for name in ("OMP_NUM_THREADS", "DLFP_THREADS", "TF_ENABLE_ONEDNN_OPTS"):
        if os.environ.get(name):
            settings[name] = os.environ[name]
    if blas:
        settings.update(_blas_pools())
    torch = sys.modules.get("torch")
    if torch is not None:
        settings["torch_intra_op"] = torch.get_num_threads()
        settings["torch_inter_op"] = torch.get_num_interop_threads()
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        threading = tf.config.threading
        # 0 means "TensorFlow decides": one thread per available core.
        settings["tf_intra_op"] = threading.get_intra_op_parallelism_threads()
        settings["tf_inter_op"] = threading.get_inter_op_parallelism_threads()
    return settings


def _blas_pools() -> dict:
    """NumPy's BLAS libraries and their threads, when threadpoolctl (an optional
    dependency, which the book and the tests install) can tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    return {
        "blas": [
            f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        ]
    }


def set_pools(n: int) -> None:
    """Give both pools (intra-op and inter-op) of PyTorch and of TensorFlow ``n``
    threads, for each of the two that this process has already imported.

    Both frameworks accept the inter-op setting only before their first parallel work,
    and TensorFlow its intra-op setting too; where that moment has passed, the pool
    keeps its size (:func:`thread_settings` shows what each pool has).
    """
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


def limit_blas(n: int):
    """A context manager: NumPy's BLAS on ``n`` threads inside the block (threadpoolctl,
    when installed; else as it is, one thread per core unless OMP_NUM_THREADS says
    less)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


@contextlib.contextmanager
def limited(n: int | None):
    """NumPy's BLAS and PyTorch's intra-op pool on ``n`` threads each inside the block,
    restored after it (None: as they are)."""
    if n is None:
        yield
        return
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with limit_blas(n):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(before)
