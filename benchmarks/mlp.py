"""Train the book's MLP with dlfp and with PyTorch on the CPU, in one process.

Both frameworks get the same architecture (the book's :class:`dlfp.recipes.MLPConfig`),
the same initial weights, the same mini-batches in the same order, the same optimizer
(Adam, constant learning rate) and the same number of threads. Epochs alternate between
the two, so that both see the same machine conditions; the reported time per epoch is
the median over the epochs.

Absolute times depend on the machine and its load; the ratio is the result:
``ratio = dlfp_epoch_s / torch_epoch_s`` (below 1: dlfp is faster).

Run:  python benchmarks/mlp.py [--epochs 3] [--threads 2]
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import dlfp
from dlfp import optim
from dlfp.data import load_mnist
from dlfp.losses import softmax_cross_entropy
from dlfp.mirror import to_torch
from dlfp.model import mlp
from dlfp.recipes import MLPConfig
from dlfp.train import batches, train_step


def dlfp_epoch(model, optimizer, X, y, order):
    for idx in order:
        train_step(model, softmax_cross_entropy, optimizer, X[idx], y[idx])


def torch_epoch(net, optimizer, X, y, order):
    net.train()
    for idx in order:
        index = torch.from_numpy(idx)
        loss = torch.nn.functional.cross_entropy(net(X[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def torch_accuracy(net, X, y) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(X).argmax(dim=1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = MLPConfig()
    data = load_mnist(validation_size=config.validation_size, seed=config.seed)
    X, y = data.train.flat, data.train.labels
    rng = np.random.default_rng(args.seed)
    model = mlp(
        [784, *config.hidden, 10], config.activation, dropout=config.dropout, rng=rng
    )
    net = to_torch(model)
    ours = optim.Adam(model.parameters(), lr=config.lr)
    theirs = torch.optim.Adam(net.parameters(), lr=config.lr)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    torch.set_num_threads(args.threads)

    times = {"dlfp": [], "torch": []}
    with threadpool_limits(limits=args.threads):
        warm = list(batches(len(X), config.batch_size, np.random.default_rng(99)))[:20]
        dlfp_epoch(model, ours, X, y, warm)
        torch_epoch(net, theirs, Xt, yt, warm)
        for _ in range(args.epochs):
            order = list(batches(len(X), config.batch_size, rng))  # the same for both
            start = time.perf_counter()
            dlfp_epoch(model, ours, X, y, order)
            times["dlfp"].append(time.perf_counter() - start)
            start = time.perf_counter()
            torch_epoch(net, theirs, Xt, yt, order)
            times["torch"].append(time.perf_counter() - start)
            ours_s, theirs_s = times["dlfp"][-1], times["torch"][-1]
            print(f"epoch: dlfp {ours_s:.2f}s  torch {theirs_s:.2f}s", flush=True)
        blas = [
            f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        ]
        X_test, y_test = data.test.flat, data.test.labels
        dlfp_acc = model.evaluate(X_test, y_test)[1]
        X_test_t, y_test_t = torch.from_numpy(X_test), torch.from_numpy(y_test)
        torch_acc = torch_accuracy(net, X_test_t, y_test_t)

    dlfp_s = statistics.median(times["dlfp"])
    torch_s = statistics.median(times["torch"])
    result = {
        "dlfp_epoch_s": round(dlfp_s, 3),
        "torch_epoch_s": round(torch_s, 3),
        "ratio": round(dlfp_s / torch_s, 3),
        "dlfp_test_acc": round(dlfp_acc, 4),
        "torch_test_acc": round(torch_acc, 4),
        "epochs": args.epochs,
        "threads": args.threads,
        "architecture": [784, *config.hidden, 10],
        "batch_size": config.batch_size,
        "numpy": np.__version__,
        "numpy_blas": blas,
        "torch": torch.__version__,
        "dlfp": dlfp.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
