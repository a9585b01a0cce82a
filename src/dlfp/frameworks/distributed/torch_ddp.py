"""A worker process of the book's CNN under PyTorch's DistributedDataParallel (DDP).

Run by :func:`dlfp.frameworks.distributed.launch`, one process per rank::

    python -m dlfp.frameworks.distributed.torch_ddp --rank 0 --world 2 \\
        --batch 128 --mode check --out FOLDER

The processes meet through a file in ``FOLDER`` (a ``FileStore``: the rendezvous opens
no port), exchange gradients with the ``gloo`` backend on the loopback interface
(``GLOO_SOCKET_IFNAME=lo``), and write ``rank-R.json`` in ``FOLDER``. ``--mode check``
compares one DDP step on the global batch with the one-process step
(:func:`one_process` against :func:`w_processes`), with each process's own batch
normalisation and with :class:`CPUSyncBatchNorm`; ``--mode time`` times steps, and an
all-reduce alone, in turns with a one-process run (:mod:`._turns`).

PyTorch's own :class:`torch.nn.SyncBatchNorm` refuses tensors on the CPU (in training,
with a process group running, its ``forward`` raises a ValueError unless the input is
on a CUDA, HPU, XPU or PrivateUse1 device),
so the synchronised layer here is written with two all-reduces whose gradient
PyTorch's autograd takes: the sums of eq. (21.3) forward, and the sums
of eq. (21.4) backward.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ...recipes import CNNConfig
from ..torch_cnn import CNN
from . import _turns

__all__ = [
    "CONFIG",
    "CHANGES",
    "global_batch",
    "one_process",
    "w_processes",
    "CPUSyncBatchNorm",
    "sync_batch_norm",
]

#: The book's CNN with dropout off: each process would draw its own masks.
CONFIG = CNNConfig(dropout=0.0)

#: What changes from one process to W, beyond the lines :func:`w_processes` changes.
CHANGES = (
    "start W processes (torchrun, or a launcher) and join a process group "
    "(init_process_group: backend, address, rank, world size)",
    "wrap the model in DistributedDataParallel, which all-reduces the gradients",
    "give each process its shard of the global batch",
    "batch norm: SyncBatchNorm on GPUs only; per-process statistics on the CPU",
)


def global_batch(batch: int, seed: int = 0):
    """The same global batch in every process: images (B, 1, 28, 28), labels (B,)."""
    rng = np.random.default_rng(seed)
    side = CONFIG.image_side
    images = rng.random((batch, 1, side, side), dtype=np.float32)
    labels = rng.integers(0, CONFIG.classes, batch)
    return torch.from_numpy(images), torch.from_numpy(labels)


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        model.parameters(), lr=CONFIG.lr, weight_decay=CONFIG.weight_decay
    )


def one_process(x, y, steps: int = 1) -> nn.Module:
    """``steps`` steps of the book's CNN on the global batch, in one process."""
    torch.manual_seed(CONFIG.seed)
    model = CNN(CONFIG)
    optimizer = _optimizer(model)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def w_processes(x, y, steps: int = 1, sync_bn: bool = False) -> nn.Module:
    """The same steps with DDP, this process taking its shard of the global batch."""
    torch.manual_seed(CONFIG.seed)
    model = CNN(CONFIG)
    if sync_bn:
        model = sync_batch_norm(model)
    model = DistributedDataParallel(model)  # broadcasts rank 0's weights
    optimizer = _optimizer(model)
    rank, world = dist.get_rank(), dist.get_world_size()
    n = len(x) // world
    x, y = x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces (mean) the gradients during backward
        optimizer.step()
    return model.module


class _AllReduceSum(torch.autograd.Function):
    """The sum over the processes; its gradient is the sum of the gradients."""

    @staticmethod
    def forward(ctx, tensor):
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """``BatchNorm2d`` with the statistics of the global batch, on any device.

    Forward: the global mean from all-reduced sums, then the global (biased) variance
    from all-reduced sums of squared deviations, eq. (21.3). Autograd
    differentiates through the all-reduces (:class:`_AllReduceSum`), which gives the
    backward pass of eq. (21.4). The running variance uses the global
    count, as in eq. (17.4).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims, shape = (0, 2, 3), (1, -1, 1, 1)
        count = _AllReduceSum.apply(x.new_tensor([x.numel() / x.shape[1]]))
        mean = _AllReduceSum.apply(x.sum(dims)) / count
        centred = x - mean.reshape(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / count
        with torch.no_grad():
            rho, n = self.momentum, count.item()
            self.running_mean.mul_(1 - rho).add_(rho * mean)
            self.running_var.mul_(1 - rho).add_(rho * var * n / (n - 1))
            self.num_batches_tracked.add_(1)
        z_hat = centred * torch.rsqrt(var + self.eps).reshape(shape)
        return z_hat * self.weight.reshape(shape) + self.bias.reshape(shape)


def sync_batch_norm(model: nn.Module) -> nn.Module:
    """``model`` with every ``BatchNorm2d`` replaced by a :class:`CPUSyncBatchNorm`
    holding the same parameters and statistics."""
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            sync = CPUSyncBatchNorm(child.num_features, child.eps, child.momentum)
            sync.load_state_dict(child.state_dict())
            setattr(model, name, sync)
        else:
            sync_batch_norm(child)
    return model


# --- The process --------------------------------------------------------------------


def _compare(ref: nn.Module, ddp: nn.Module) -> dict:
    """Largest differences of the parameters, gradients and statistics; the size of
    the step and the gradient they are measured against."""
    p0, p1 = list(ref.parameters()), list(ddp.parameters())
    g0 = torch.cat([p.grad.reshape(-1) for p in p0])
    g1 = torch.cat([p.grad.reshape(-1) for p in p1])
    buffers = [
        float((a - b).abs().max())
        for (name, a), (_, b) in zip(
            ref.state_dict().items(), ddp.state_dict().items(), strict=True
        )
        if "running" in name
    ]
    torch.manual_seed(CONFIG.seed)
    start = list(CNN(CONFIG).parameters())  # the initial weights, again
    diffs = torch.cat([(a - b).abs().reshape(-1) for a, b in zip(p0, p1, strict=True)])
    return {
        "param_diff": float(diffs.max()),
        # all but the 0.1 % largest: AdamW turns a rounding difference in a gradient
        # entry near zero into one of up to 2 lr, so the largest alone says little
        "param_diff_p999": float(torch.quantile(diffs.double(), 0.999)),
        "lr": CONFIG.lr,
        "grad_rel_diff": float((g1 - g0).norm() / g0.norm()),
        "stats_diff": max(buffers),
        "step_size": max(
            float((a - s).abs().max()) for a, s in zip(p0, start, strict=True)
        ),
    }


def _refusal() -> str:
    """What PyTorch's SyncBatchNorm says when given a CPU tensor in a process group."""
    layer = nn.SyncBatchNorm(2).train()
    try:
        layer(torch.zeros(2, 2, 3, 3))
    except ValueError as error:
        return str(error)
    return ""


def _timings(x, y, world: int, folder: Path, rounds: int, steps: int, timeout):
    """Seconds per step (and of an all-reduce alone), in turns with the other run."""
    torch.manual_seed(CONFIG.seed)
    model = CNN(CONFIG)
    if world > 1:
        model = DistributedDataParallel(model)
        rank, n = dist.get_rank(), len(x) // world
        x, y = x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]
    optimizer = _optimizer(model)
    params = sum(p.numel() for p in model.parameters())
    flat = torch.zeros(params)

    def step():
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def reduce():
        dist.all_reduce(flat)

    def warmup():  # the first steps allocate
        _turns.warm_up(step, reduce, world)

    def block():
        return _turns.time_block(step, reduce, steps, world)

    blocks = _turns.take_turns(
        folder, dist.get_rank() if world > 1 else 0, world, rounds, warmup, block,
        timeout,
    )  # fmt: skip
    out = {
        "step": [b["step"] for b in blocks],
        "threads": torch.get_num_threads(),
        "warmup": _turns.WARMUP,
        "parameters": params,
    }
    if world > 1:
        out["all_reduce"] = [b["all_reduce"] for b in blocks]
        # DDP's buckets of gradients, all-reduced each as soon as it is full: their
        # sizes in bytes (a private report of DDP's, hence the fallback).
        sizes = model._get_ddp_logging_data().get("bucket_sizes", "")
        out["bucket_bytes"] = [int(b) for b in str(sizes).split(",") if b.strip()]
        out["first_bucket_cap"] = int(getattr(dist, "_DEFAULT_FIRST_BUCKET_BYTES", 0))
    return out


def main(argv=None) -> None:
    args = _turns.worker_arguments(
        argv, __doc__.splitlines()[0], ports="unused: the workers meet in --out"
    )
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo on 127.0.0.1 only
    x, y = global_batch(args.batch)
    result: dict = {"rank": args.rank, "world": args.world}
    if args.world > 1 or args.mode == "check":
        dist.init_process_group(
            "gloo",
            init_method=f"file://{args.out.resolve()}/store",  # a FileStore: no port
            rank=args.rank,
            world_size=args.world,
            timeout=datetime.timedelta(seconds=args.timeout),
        )
    if args.rank == args.die:
        os._exit(3)  # a worker that dies: the tests' case
    if args.mode == "time":
        result.update(
            _timings(x, y, args.world, args.out, args.rounds, args.steps, args.timeout)
        )
    else:
        ref = one_process(x, y) if args.rank == 0 else None
        result["refusal"] = _refusal()
        result["batch_norm"] = "ours (CPUSyncBatchNorm): SyncBatchNorm refuses CPUs"
        for name, sync in (("local", False), ("sync", True)):
            model = w_processes(x, y, sync_bn=sync)
            if ref is not None:
                result[name] = _compare(ref, model)
        if ref is not None:
            result["matched"] = result["sync"]["grad_rel_diff"] < 1e-4
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    name = "solo" if args.mode == "time" and args.world == 1 else f"rank-{args.rank}"
    (args.out / f"{name}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
