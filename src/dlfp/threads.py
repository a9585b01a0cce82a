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

NumPy runs its own element-wise operations (ufuncs, copies) on one core. dlfp's layers
split their large element-wise passes over the batch into parts, which :func:`split`
runs on a small pool of threads kept for the purpose (NumPy lets other threads run
while it loops over a large array). Each part computes its numbers by the same
operations in the same order as the whole pass would, so the results are the same to
the last bit on any number of threads. The pool gets the same number of threads as
BLAS: ``DLFP_THREADS`` (else ``OMP_NUM_THREADS``), else one per available core; at one
thread every pass runs as a plain call and the pool is never started.
:func:`limit_elementwise` (and :func:`limit_blas` and :func:`limited`, which cap it
with BLAS) changes that for a block of code.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "available_cores",
    "requested_threads",
    "thread_settings",
    "set_pools",
    "limit_blas",
    "limited",
    "SPLIT_MIN_SIZE",
    "PARTS_PER_THREAD",
    "elementwise_threads",
    "limit_elementwise",
    "split",
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


@contextlib.contextmanager
def limit_blas(n: int):
    """A context manager: NumPy's BLAS on ``n`` threads inside the block (threadpoolctl,
    when installed; else as it is, one thread per core unless OMP_NUM_THREADS says
    less), and dlfp's element-wise passes too (:func:`limit_elementwise`)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        blas = contextlib.nullcontext()
    else:
        blas = threadpool_limits(limits=n, user_api="blas")
    with blas, limit_elementwise(n):
        yield


@contextlib.contextmanager
def limited(n: int | None):
    """NumPy's BLAS, dlfp's element-wise passes and PyTorch's intra-op pool on ``n``
    threads each inside the block, restored after it (None: as they are)."""
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


# --- dlfp's element-wise passes, split over the cores ---------------------------------

#: Passes over fewer numbers than this run as one plain call: below it, handing parts
#: to the pool costs more than a second core can save. (On the two-core machine that
#: builds the book a hand-off took some tens of microseconds, about what one core
#: takes to multiply 2^18 float32 numbers.)
SPLIT_MIN_SIZE = 1 << 18

#: Parts of a split pass per thread: a thread that finishes early, or that waits for a
#: core another process holds, leaves the parts it has not claimed to the others.
PARTS_PER_THREAD = 2

_limit: int | None = None  # set by limit_elementwise(): None follows the environment
_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()
_local = threading.local()  # .worker: this thread is one of the pool's


def elementwise_threads() -> int:
    """The threads that :func:`split` runs a large pass on: the limit of the innermost
    :func:`limit_elementwise` block, else ``DLFP_THREADS`` (else ``OMP_NUM_THREADS``),
    else one per available core."""
    if _limit is not None:
        return _limit
    return requested_threads() or available_cores()


@contextlib.contextmanager
def limit_elementwise(n: int | None):
    """dlfp's element-wise passes on ``n`` threads inside the block (1: each pass is one
    plain call, as NumPy alone runs it; None: as outside the block)."""
    global _limit
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(
            f"the number of threads must be a whole number >= 1, not {n!r}."
        )
    before = _limit
    if n is not None:
        _limit = n
    try:
        yield
    finally:
        _limit = before


def _mark_worker() -> None:
    _local.worker = True


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there."""
    global _pool, _pool_workers, _pool_lock
    _pool, _pool_workers, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _workers(n: int) -> ThreadPoolExecutor:
    """The pool, with room for ``n`` threads besides the caller's (each started when
    first needed)."""
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers < n:
            # A smaller pool is dropped, not shut down: a caller may still hold it, and
            # its threads end once it is garbage.
            _pool = ThreadPoolExecutor(
                max_workers=n, thread_name_prefix="dlfp-split", initializer=_mark_worker
            )
            _pool_workers = n
        return _pool


class _Parts:
    """The parts of one split pass, each claimed by whichever thread is free first: a
    thread that waits for a busy core leaves its parts to the others."""

    def __init__(self, work: Callable[[int, int], object], bounds: list[int]):
        self.work, self.bounds = work, bounds
        self.claimed, self.left = 0, len(bounds) - 1
        self.lock, self.done = threading.Lock(), threading.Event()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        """Claim and compute parts until none is left."""
        while True:
            with self.lock:
                i = self.claimed
                if i == len(self.bounds) - 1:
                    return
                self.claimed += 1
            try:
                self.work(self.bounds[i], self.bounds[i + 1])
            except BaseException as error:  # raised in the caller's thread by split
                self.errors.append(error)
            finally:
                with self.lock:
                    self.left -= 1
                    if not self.left:
                        self.done.set()


def split(work: Callable[[int, int], object], n: int, size: int) -> None:
    """Call ``work(start, stop)`` on consecutive parts ``[start, stop)`` of
    ``range(n)`` that together cover it, at once on :func:`elementwise_threads` threads
    (the caller's one of them).

    ``n`` is the length of the axis that the parts cut (the batch) and ``size`` the
    numbers the whole pass touches: under :data:`SPLIT_MIN_SIZE`, at one thread, and
    inside a part already running on the pool, ``work(0, n)`` runs as a plain call.
    Otherwise the axis is cut into :data:`PARTS_PER_THREAD` parts per thread, which the
    threads claim one at a time, and ``split`` returns once every part is computed.
    ``work`` must write only into its own part of any array it shares with the other
    parts. Every part runs in a copy of the caller's context (NumPy's ``errstate``
    included); an error raised by a part is raised here, once every part has stopped.
    """
    threads = 1 if size < SPLIT_MIN_SIZE else min(elementwise_threads(), n)
    if threads <= 1 or getattr(_local, "worker", False):
        work(0, n)
        return
    count = min(n, threads * PARTS_PER_THREAD)
    parts = _Parts(work, [n * i // count for i in range(count + 1)])
    pool = _workers(threads - 1)
    for _ in range(threads - 1):
        pool.submit(contextvars.copy_context().run, parts.run)
    parts.run()
    parts.done.wait()  # no part may still write once the caller returns (or raises)
    if parts.errors:
        raise parts.errors[0]
