"""Synchronous data parallelism, simulated with NumPy: W workers, an all-reduce, and
synchronised batch normalisation.

A global batch of B examples is cut into W shards of B/W (:func:`shard`). Each worker
holds a copy of the model, runs forward and backward on its shard, and the workers
average their gradients with an all-reduce before each takes the same optimizer step,
so that the copies stay equal. The mean loss over the batch is the mean of the
shards' mean losses when the shards are equal, so the averaged gradient is the
gradient of the single process on the whole batch (eq. (21.2) of the chapter
*Data parallelism*): :class:`DataParallel` takes the same step as
:func:`dlfp.train.train_step`, to rounding.

Batch normalisation is the exception: each worker's layer standardises its shard
with the shard's statistics, a different function of the batch.
:class:`SyncBatchNorm2D` all-reduces the statistics in the forward pass and the two
sums of the backward pass (eq. (21.4)), which restores the single
process's step.

The workers are threads of this process, one per worker, that meet at every
all-reduce (:class:`Group`); a worker that fails stops the others there with its
error instead of leaving them waiting. :func:`ring_all_reduce` is the algorithm
that frameworks run between machines, with the bytes each worker sends.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable

import numpy as np

from .conv import BatchNorm2D
from .model import Sequential
from .optim import Optimizer

__all__ = [
    "check_split",
    "shard",
    "ring_all_reduce",
    "ring_bytes",
    "Group",
    "WorkerFailedError",
    "SyncBatchNorm2D",
    "DataParallel",
]


def check_split(batch: int, workers: int) -> int:
    """The shard size B / W, after checking that W workers can split B examples."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(
            f"the number of workers must be a whole number >= 1, got {workers!r}."
        )
    if batch < 1 or batch % workers:
        drop = (
            f", or drop its last {batch % workers} examples" if batch > workers else ""
        )
        raise ValueError(
            f"a global batch of {batch} examples cannot be split into {workers} equal "
            f"shards; use a batch that is a multiple of {workers} (for example "
            f"{max(workers, batch // workers * workers)}){drop}."
        )
    return batch // workers


def shard(X: np.ndarray, y: np.ndarray, workers: int):
    """Cut a global batch into ``workers`` equal, consecutive shards.

    Returns a list of ``workers`` pairs ``(X_w, y_w)`` of B / W examples each; worker
    w gets rows ``w B/W`` to ``(w + 1) B/W - 1``.
    """
    if len(y) != len(X):
        raise ValueError(
            f"X has {len(X)} examples but y has {len(y)}; pass matching arrays."
        )
    size = check_split(len(X), workers)
    return [
        (X[w * size : (w + 1) * size], y[w * size : (w + 1) * size])
        for w in range(workers)
    ]


def ring_bytes(nbytes: int, workers: int) -> float:
    """Bytes each worker sends (and receives) in a ring all-reduce of an array of
    ``nbytes`` bytes: 2 (W - 1) / W of it, eq. (21.5)."""
    return 2 * (workers - 1) / workers * nbytes


def ring_all_reduce(arrays: list[np.ndarray], op: str = "sum"):
    """The ring all-reduce of W arrays of one shape, one per worker, step by step.

    The flattened array is cut into W chunks. In W - 1 steps of *reduce-scatter*,
    worker w sends chunk (w - s) mod W to worker w + 1, which adds it to its own; after
    them worker w holds the full sum of chunk (w + 1) mod W. In W - 1 steps of
    *all-gather* each finished chunk travels W - 1 hops, reaching every other worker.
    Every worker sends one chunk per step, 2 (W - 1) chunks in all, whatever W.

    Returns ``(results, sent)``: the W reduced arrays (identical, bit for bit) and the
    bytes each worker sent. ``op`` is ``"sum"`` or ``"mean"``.
    """
    if op not in ("sum", "mean"):
        raise ValueError(f"op must be 'sum' or 'mean', got {op!r}.")
    W = len(arrays)
    if W == 0 or any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("pass one array per worker, all of the same shape.")
    shape = arrays[0].shape
    bufs = [np.array(a, copy=True).reshape(-1) for a in arrays]
    bounds = np.linspace(0, bufs[0].size, W + 1).astype(int)
    chunk = [slice(bounds[c], bounds[c + 1]) for c in range(W)]
    sent = [0] * W
    for s in range(W - 1):  # reduce-scatter
        messages = [
            (w, (w - s) % W, bufs[w][chunk[(w - s) % W]].copy()) for w in range(W)
        ]
        for w, c, data in messages:
            bufs[(w + 1) % W][chunk[c]] += data
            sent[w] += data.nbytes
    for s in range(W - 1):  # all-gather: worker w owns chunk (w + 1) mod W
        messages = [
            (w, (w + 1 - s) % W, bufs[w][chunk[(w + 1 - s) % W]].copy())
            for w in range(W)
        ]
        for w, c, data in messages:
            bufs[(w + 1) % W][chunk[c]] = data
            sent[w] += data.nbytes
    if op == "mean":
        for b in bufs:
            b /= W
    return [b.reshape(shape) for b in bufs], sent


class WorkerFailedError(RuntimeError):
    """A worker of a :class:`Group` failed, and the others stopped."""


class Group:
    """W workers (threads) that meet at every all-reduce.

    Each worker calls :meth:`all_reduce` with its own array; the call returns when
    all W have, with the reduction (the same array for every worker). A worker that
    raises calls :meth:`abort`, and the others leave their all-reduce with a
    :class:`WorkerFailedError` rather than waiting for it; ``timeout`` (seconds)
    bounds the wait for one that hangs.
    """

    def __init__(self, size: int, timeout: float = 60.0):
        self.size = int(size)
        self._slots: list = [None] * self.size
        self._results: list = [None] * self.size
        self._op = "sum"
        self._barrier = threading.Barrier(
            self.size, action=self._reduce, timeout=timeout
        )
        self.bytes_sent = [0] * self.size  #: by each worker, every all-reduce so far

    def _reduce(self) -> None:
        results, sent = ring_all_reduce(self._slots, self._op)
        self._results = results
        self.bytes_sent = [a + b for a, b in zip(self.bytes_sent, sent, strict=True)]

    def all_reduce(self, rank: int, array: np.ndarray, op: str = "sum") -> np.ndarray:
        """The sum (or mean) over the workers of ``array``, for worker ``rank``."""
        self._slots[rank] = array
        self._op = op
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            raise WorkerFailedError(
                f"worker {rank} stopped: another worker failed or did not reach the "
                "all-reduce in time; see that worker's error."
            ) from None
        return self._results[rank]

    def abort(self) -> None:
        """Release every worker waiting in :meth:`all_reduce`, with an error."""
        self._barrier.abort()


class SyncBatchNorm2D(BatchNorm2D):
    """Batch normalisation with the statistics of the global batch, for worker
    ``rank`` of ``group``: :class:`~dlfp.conv.BatchNorm2D`'s own code, whose every
    column sum is all-reduced.

    ``BatchNorm2D`` divides each of its sums by the local count n_BN: the mean and
    variance in ``forward``, the sums of dL/dy and of dL/dy times z-hat in
    ``backward`` (eq. (18.6)). Here each sum is replaced by the global
    sum times n_BN / n_global, so that every such quotient is the global one:
    eq. (21.3) in ``forward`` and eq. (21.4) in
    ``backward``. Those two backward sums are also the gradients of gamma and beta: each
    worker writes the global sum divided by W (n_BN / n_global = 1/W with equal shards),
    the same on every worker, which is already the gradient of the mean loss and which
    the all-reduce of the gradients (a mean) leaves as it is. The running variance is
    corrected with the global count.
    """

    def __init__(self, channels: int, *, group: Group, rank: int, **kwargs):
        super().__init__(channels, **kwargs)
        self.group, self.rank = group, int(rank)
        self._n_local = self._n_global = 0

    @classmethod
    def like(cls, layer: BatchNorm2D, group: Group, rank: int) -> SyncBatchNorm2D:
        """A synchronised copy of ``layer``: same settings and parameters."""
        sync = cls(
            layer.channels,
            group=group,
            rank=rank,
            momentum=layer.momentum,
            eps=layer.eps,
            dtype=layer.dtype,
        )
        for key, value in layer.params.items():
            sync.params[key][...] = value
        return sync

    def _column_sums(self, M: np.ndarray) -> np.ndarray:
        total = self.group.all_reduce(self.rank, super()._column_sums(M), "sum")
        return total * (len(M) / self._n_global)

    def _count(self, n_local: int) -> None:
        counts = self.group.all_reduce(self.rank, np.array([float(n_local)]), "sum")
        self._n_local, self._n_global = n_local, int(counts[0])

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if not training:
            return super().forward(X, training)
        self._count(X.shape[0] * X.shape[2] * X.shape[3])
        before = self.params["running_var"].copy()
        out = super().forward(X, training)
        _, inv_std = self._cache
        var = 1 / inv_std**2 - self.eps  # the global variance sigma_c^2
        n, rho = self._n_global, self.momentum  # eq. (17.4) with the global count
        self.params["running_var"][...] = (1 - rho) * before + rho * var * (n / (n - 1))
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        # The sums of the backward pass are all-reduced whether or not the input
        # gradient is wanted: every worker must join every all-reduce.
        return super().backward(dout, input_grad)


class DataParallel:
    """W copies of a model that take synchronous data-parallel steps.

    Parameters
    ----------
    model : Sequential
        Copied W times (it is not changed).
    workers : int
        W.
    make_optimizer : callable
        ``make_optimizer(parameters) -> Optimizer`` for each copy.
    batch_norm : {"sync", "local"}
        ``"sync"`` replaces every :class:`~dlfp.conv.BatchNorm2D` with a
        :class:`SyncBatchNorm2D` of the group; ``"local"`` keeps them, so that each
        worker normalises its shard with its own statistics (what a framework does
        unless told otherwise).
    timeout : float
        Seconds a worker waits for the others at an all-reduce.
    """

    def __init__(
        self,
        model: Sequential,
        workers: int,
        make_optimizer: Callable[[list], Optimizer],
        *,
        batch_norm: str = "sync",
        timeout: float = 60.0,
    ):
        if batch_norm not in ("sync", "local"):
            raise ValueError(
                f"batch_norm must be 'sync' or 'local', got {batch_norm!r}."
            )
        check_split(workers, workers)
        self.workers, self.batch_norm = workers, batch_norm
        self.group = Group(workers, timeout)
        self.replicas = []
        for rank in range(workers):
            layers = copy.deepcopy(model.layers)
            if batch_norm == "sync":
                layers = [
                    SyncBatchNorm2D.like(layer, self.group, rank)
                    if isinstance(layer, BatchNorm2D)
                    else layer
                    for layer in layers
                ]
            self.replicas.append(Sequential(layers))
        self.optimizers = [make_optimizer(r.parameters()) for r in self.replicas]

    @property
    def model(self) -> Sequential:
        """Worker 0's copy (every copy holds the same parameters)."""
        return self.replicas[0]

    def _worker(self, rank: int, X, y, loss, lr, out: list) -> None:
        model, optimizer = self.replicas[rank], self.optimizers[rank]
        try:
            value, dout = loss(model.forward(X, training=True), y)
            model.backward(dout, input_grad=False)
            params = model.parameters()
            flat = np.concatenate([p.grad.reshape(-1) for p in params])
            mean = self.group.all_reduce(rank, flat, "mean")  # eq. (21.2)
            start = 0
            for p in params:
                p.grad[...] = mean[start : start + p.grad.size].reshape(p.grad.shape)
                start += p.grad.size
            losses = self.group.all_reduce(rank, np.array([value]), "mean")
            if lr is not None:
                optimizer.lr = lr
            optimizer.step()
            out[rank] = float(losses[0])
        except BaseException as error:  # noqa: BLE001 (re-raised by step)
            out[rank] = error
            self.group.abort()

    def step(
        self, X: np.ndarray, y: np.ndarray, loss: Callable, lr: float | None = None
    ):
        """One synchronous step on the global batch ``(X, y)``: shard, forward and
        backward on every worker, all-reduce (mean) of the gradients, the optimizer's
        step on every copy. Returns the mean loss over the global batch."""
        shards = shard(X, y, self.workers)
        out: list = [None] * self.workers
        threads = [
            threading.Thread(
                target=self._worker, args=(w, *shards[w], loss, lr, out), daemon=True
            )
            for w in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        failed = [
            (w, e)
            for w, e in enumerate(out)
            if isinstance(e, BaseException) and not isinstance(e, WorkerFailedError)
        ]
        if failed:
            w, error = failed[0]
            raise WorkerFailedError(
                f"worker {w} failed ({type(error).__name__}: {error}), and the other "
                "workers stopped at their next all-reduce; fix that error and take the "
                "step again."
            ) from error
        if any(isinstance(e, BaseException) for e in out):
            raise next(e for e in out if isinstance(e, BaseException))
        return out[0]
