"""Data parallelism in NumPy (dlfp.parallel): the all-reduce, synchronised batch
normalisation and the data-parallel step against the one-process step (float64) and
against finite differences, and the errors a reader meets."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest

from dlfp import conv, parallel
from dlfp.activations import ReLU
from dlfp.gradcheck import numerical_gradient, rel_error
from dlfp.layers import Dense
from dlfp.losses import softmax_cross_entropy
from dlfp.model import Sequential
from dlfp.optim import SGD, AdamW
from dlfp.train import train_step


def small_cnn(rng) -> Sequential:
    kw = {"rng": rng, "dtype": np.float64}
    return Sequential(
        [
            conv.Reshape((1, 6, 6)),
            conv.Conv2D(1, 3, 3, padding=1, bias=False, init="he_uniform", **kw),
            conv.BatchNorm2D(3, dtype=np.float64),
            ReLU(),
            conv.MaxPool2D(2),
            conv.Flatten(),
            Dense(27, 4, init="glorot", **kw),
        ]
    )


def data(rng, B=12):
    return rng.standard_normal((B, 36)), rng.integers(0, 4, B)


@pytest.mark.parametrize("W", [1, 2, 3, 5])
def test_ring_all_reduce_is_the_sum_on_every_worker(W):
    rng = np.random.default_rng(W)
    arrays = [rng.standard_normal((7, 3)) for _ in range(W)]
    results, sent = parallel.ring_all_reduce(arrays)
    total = np.sum(arrays, axis=0)
    for r in results:
        np.testing.assert_allclose(r, total, rtol=1e-14, atol=1e-14)
        assert np.array_equal(r, results[0])  # bit for bit on every worker
    # every worker sends 2 (W - 1) chunks of about n / W entries
    assert sum(sent) == pytest.approx(W * parallel.ring_bytes(arrays[0].nbytes, W))
    mean, _ = parallel.ring_all_reduce(arrays, "mean")
    np.testing.assert_allclose(mean[0], total / W, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("W", [2, 3])
def test_sync_batch_norm_is_batch_norm_of_the_global_batch(W):
    """Forward, backward and running statistics of W synchronised shards equal one
    BatchNorm2D on the whole batch (float64, to rounding)."""
    rng = np.random.default_rng(0)
    Z = 2 * rng.standard_normal((2 * W, 3, 4, 5)) + 1
    G = rng.standard_normal(Z.shape)
    one = conv.BatchNorm2D(3, dtype=np.float64)
    one.params["gamma"][...] = rng.standard_normal(3)
    out = one.forward(Z, training=True)
    dZ = one.backward(G)
    group = parallel.Group(W, timeout=10)
    layers = [parallel.SyncBatchNorm2D.like(one, group, r) for r in range(W)]
    for layer in layers:  # the statistics from before the step
        layer.params["running_mean"][...] = 0
        layer.params["running_var"][...] = 1
    outs, grads = [None] * W, [None] * W
    Zs, Gs = np.split(Z, W), np.split(G, W)

    def work(r):
        outs[r] = layers[r].forward(Zs[r], training=True)
        grads[r] = layers[r].backward(Gs[r])

    run(work, W)
    np.testing.assert_allclose(np.concatenate(outs), out, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.concatenate(grads), dZ, rtol=0, atol=1e-13)
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(layers[0].params[key], one.params[key], atol=1e-13)
    for key in ("gamma", "beta"):  # the mean over workers is the global gradient
        np.testing.assert_allclose(layers[0].grads[key] * W, one.grads[key], atol=1e-12)


def run(work, W):
    threads = [threading.Thread(target=work, args=(r,)) for r in range(W)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)


def test_sync_batch_norm_against_finite_differences():
    """f = sum over workers of sum(R_w * y_w): each worker's input gradient, and W
    times its parameter gradient, are those of f."""
    rng = np.random.default_rng(1)
    W = 2
    Z = rng.standard_normal((4, 2, 3, 3))
    R = rng.standard_normal(Z.shape)
    group = parallel.Group(W, timeout=10)
    layers = [
        parallel.SyncBatchNorm2D(2, group=group, rank=r, dtype=np.float64)
        for r in range(W)
    ]
    gamma = rng.standard_normal(2)
    for layer in layers:
        layer.params["gamma"][...] = gamma
    Zs, Rs = np.split(Z, W), np.split(R, W)
    outs, grads = [None] * W, [None] * W

    def forward(r):
        outs[r] = layers[r].forward(Zs[r], training=True)

    def both(r):
        forward(r)
        grads[r] = layers[r].backward(Rs[r])

    def f():
        for layer in layers[1:]:  # one gamma, shared
            layer.params["gamma"][...] = layers[0].params["gamma"]
        run(forward, W)
        return float(sum(np.sum(o * r) for o, r in zip(outs, Rs, strict=True)))

    run(both, W)
    dZ = np.concatenate(grads)
    dgamma = layers[0].grads["gamma"] * W
    Zs_view = Zs
    num = np.concatenate([numerical_gradient(f, z) for z in Zs_view])
    assert rel_error(dZ, num) < 1e-8
    assert rel_error(dgamma, numerical_gradient(f, layers[0].params["gamma"])) < 1e-8


@pytest.mark.parametrize("W", [2, 4])
def test_data_parallel_step_is_the_one_process_step(W):
    rng = np.random.default_rng(2)
    model = small_cnn(rng)
    X, y = data(rng)
    one = copy.deepcopy(model)
    opt = AdamW(one.parameters(), lr=1e-2, weight_decay=1e-2)
    loss, _ = train_step(one, softmax_cross_entropy, opt, X, y)
    dp = parallel.DataParallel(
        model, W, lambda ps: AdamW(ps, lr=1e-2, weight_decay=1e-2)
    )
    dp_loss = dp.step(X, y, softmax_cross_entropy)
    assert dp_loss == pytest.approx(loss, abs=1e-14)
    for a, b in zip(dp.model.parameters(), one.parameters(), strict=True):
        np.testing.assert_allclose(a.grad, b.grad, rtol=0, atol=1e-13)
        np.testing.assert_allclose(a.value, b.value, rtol=0, atol=1e-12)
    for replica in dp.replicas[1:]:  # the copies stay equal, bit for bit
        for a, b in zip(replica.parameters(), dp.model.parameters(), strict=True):
            assert np.array_equal(a.value, b.value)


def test_local_batch_norm_takes_another_step():
    rng = np.random.default_rng(3)
    model = small_cnn(rng)
    X, y = data(rng)
    one = copy.deepcopy(model)
    train_step(one, softmax_cross_entropy, SGD(one.parameters(), lr=0.1), X, y)
    dp = parallel.DataParallel(model, 2, lambda ps: SGD(ps, lr=0.1), batch_norm="local")
    dp.step(X, y, softmax_cross_entropy)
    diff = max(
        np.abs(a.grad - b.grad).max()
        for a, b in zip(dp.model.parameters(), one.parameters(), strict=True)
    )
    assert diff > 1e-4  # a different function of the batch, not rounding


def test_data_parallel_gradient_against_finite_differences():
    """The all-reduced gradient is the gradient of the mean loss over the global
    batch, by centred differences of the one-process model."""
    rng = np.random.default_rng(4)
    model = small_cnn(rng)
    X, y = data(rng, 8)
    dp = parallel.DataParallel(model, 2, lambda ps: SGD(ps, lr=1e-300))
    dp.step(X, y, softmax_cross_entropy)
    ref = copy.deepcopy(model)

    def f():
        return softmax_cross_entropy(ref.forward(X, training=True), y)[0]

    for a, b in zip(dp.model.parameters(), ref.parameters(), strict=True):
        assert rel_error(a.grad, numerical_gradient(f, b.value)) < 1e-7


def test_a_batch_the_workers_cannot_split():
    rng = np.random.default_rng(5)
    X, y = data(rng, 10)
    with pytest.raises(
        ValueError, match="cannot be split into 4 equal shards; use a batch"
    ):
        parallel.shard(X, y, 4)
    dp = parallel.DataParallel(small_cnn(rng), 3, lambda ps: SGD(ps, lr=0.1))
    with pytest.raises(ValueError, match="multiple of 3"):
        dp.step(X, y, softmax_cross_entropy)
    with pytest.raises(ValueError, match="whole number"):
        parallel.shard(X, y, 0)


def test_a_worker_that_fails_stops_the_others():
    rng = np.random.default_rng(6)
    X, y = data(rng)
    dp = parallel.DataParallel(
        small_cnn(rng), 3, lambda ps: SGD(ps, lr=0.1), timeout=20
    )

    def broken(X, training=False):
        raise MemoryError("out of memory on this worker")

    dp.replicas[1].layers[1].forward = broken
    with pytest.raises(
        parallel.WorkerFailedError, match="worker 1 failed .*MemoryError"
    ):
        dp.step(X, y, softmax_cross_entropy)
