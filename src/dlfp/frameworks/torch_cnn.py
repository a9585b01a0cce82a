"""The book's CNN in PyTorch: model, training loop, evaluation, saving, export.

Runs on a GPU when PyTorch sees one, else on the CPU; :func:`device` decides. The module
implements the recipe ``"torch-cnn"`` and is a
:class:`~dlfp.frameworks.backend.Backend`: code that takes either framework's module
calls only what that protocol lists.
:func:`train` is the one PyTorch training loop of the book: the verdict's timed rounds
and the seed runs call its pieces, :func:`adamw` and :func:`train_epoch`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data import MNIST
from ..recipes import Batches, CNNConfig, learning_rate, load_mnist_for
from ..threads import requested_threads, set_pools
from ..train import History, epoch_line
from . import backend

if (_threads := requested_threads()) is not None:  # DLFP_THREADS caps both pools
    set_pools(_threads)

__all__ = [
    "CNN",
    "device",
    "adamw",
    "compiled_update",
    "train_epoch",
    "train",
    "evaluate",
    "predict_logits",
    "save",
    "load",
    "export_program",
    "run_program",
    "export_onnx",
    "run_onnx",
    "NAME",
    "SUFFIX",
]

#: The side of the square images, in pixels (MNIST's: 28).
SIDE = CNNConfig.image_side


def device() -> torch.device:
    """The GPU when one is available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class CNN(nn.Module):
    """Convolution blocks and a classifier; input (N, 1, 28, 28), logits (N, 10) out."""

    def __init__(self, config: CNNConfig = CNNConfig()):
        super().__init__()
        blocks, c_in = [], 1
        for c_out in config.channels:  # one block per entry: conv, BN, ReLU, pool
            blocks += [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        side = config.feature_side()  # 28 halved once per block, rounded down
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * side * side, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.classes),
        )
        for m in self.modules():  # the same initialisation as the Keras model
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.classifier[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _tensor(
    images: np.ndarray,
    dev: torch.device,
    layout: torch.memory_format = torch.channels_last,
) -> torch.Tensor:
    # Logically NCHW, stored channels-last (NHWC), as the fast CPU convolutions want it.
    x = torch.from_numpy(images).reshape(-1, 1, SIDE, SIDE).to(dev)
    return x.contiguous(memory_format=layout)


@torch.no_grad()
def predict_logits(model: nn.Module, images: np.ndarray, batch_size: int = 1000):
    """Logits for images of shape (n, 28, 28), as a NumPy array (n, 10)."""
    model.eval()
    dev = next(model.parameters()).device
    out = [
        model(_tensor(images[i : i + batch_size], dev)).cpu().numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out)


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy and accuracy on a split."""
    logits = torch.from_numpy(predict_logits(model, images))
    target = torch.from_numpy(labels)
    loss = nn.functional.cross_entropy(logits, target).item()
    return loss, float((logits.argmax(dim=1) == target).double().mean())


def adamw(
    model: nn.Module, config: CNNConfig, total_steps: int, *, tensor_lr: bool = False
):
    """The recipe's optimizer and schedule for ``model``: AdamW, whose rate at step t
    is ``learning_rate(t, total_steps, config)``.

    ``tensor_lr=True`` holds the rate in a tensor, which the schedule updates in place:
    what a compiled optimizer step (:func:`compiled_update`) needs so that a new rate
    does not recompile it (PyTorch's recipe "Running the compiled optimizer with an LR
    scheduler", docs.pytorch.org/tutorials/recipes/compiling_optimizer_lr_scheduler).
    """
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=torch.tensor(config.lr) if tensor_lr else config.lr,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=config.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate(step, total_steps, config) / config.lr
    )
    return optimizer, schedule


def compiled_update(optimizer: torch.optim.Optimizer):
    """``optimizer.step`` compiled by ``torch.compile`` into fused kernels, as
    PyTorch's recipe "Compiling the optimizer with torch.compile"
    (docs.pytorch.org/tutorials/recipes/compiling_optimizer) does; with a schedule,
    build the optimizer with :func:`adamw`'s ``tensor_lr=True``. Pass it to
    :func:`train_epoch` as ``update``."""

    @torch.compile(fullgraph=False)
    def update():
        optimizer.step()

    return update


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    dev: torch.device,
    layout: torch.memory_format = torch.channels_last,
    forward=None,
    update=None,
) -> tuple[float, float]:
    """One step per consecutive ``batch_size`` slice of (images, labels); return the
    mean loss and accuracy of the steps, taken in training mode before each update.

    ``forward`` computes the logits (default: ``model``; ``torch.compile(model)``
    for one); ``update`` applies the gradients (default: ``optimizer.step``;
    :func:`compiled_update` for a compiled one).
    """
    forward = model if forward is None else forward
    update = optimizer.step if update is None else update
    model.train()
    seen, loss_sum, correct = 0, 0.0, 0
    for i in range(0, len(labels), batch_size):
        x = _tensor(images[i : i + batch_size], dev, layout)
        y = torch.from_numpy(labels[i : i + batch_size]).to(dev)
        logits = forward(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        update()
        schedule.step()
        seen += len(y)
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(dim=1) == y).sum())
    return loss_sum / seen, correct / seen


def train(
    config: CNNConfig = CNNConfig(),
    data: MNIST | None = None,
    *,
    dev: torch.device | None = None,
    verbose: bool = False,
) -> tuple[CNN, History]:
    """Train the CNN; return the model and its :class:`~dlfp.train.History`."""
    if data is None:
        data = load_mnist_for(config)
    dev = device() if dev is None else dev
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    model = CNN(config).to(dev, memory_format=torch.channels_last)
    batches = Batches(data.train.images, data.train.labels, config)
    total = config.epochs * len(batches)
    optimizer, schedule = adamw(model, config, total)
    history = History()
    for epoch in range(config.epochs):
        images, labels = batches.epoch(epoch)
        start = time.perf_counter()
        loss, accuracy = train_epoch(
            model, optimizer, schedule, images, labels, config.batch_size, dev=dev
        )
        last = (epoch + 1) * len(batches) - 1  # the epoch's last step
        rate = learning_rate(last, total, config)
        history.add_epoch(loss, accuracy, rate, time.perf_counter() - start)
        val_loss, val_acc = evaluate(
            model, data.validation.images, data.validation.labels
        )
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_acc)
        if verbose:
            print(epoch_line(history, config.epochs), flush=True)
    return model, history


def save(model: nn.Module, path: str | Path) -> Path:
    """Save the weights (the ``state_dict``: parameters and batch-norm statistics)."""
    path = Path(path)
    torch.save(model.state_dict(), path)
    return path


def load(path: str | Path, config: CNNConfig = CNNConfig()) -> CNN:
    """Rebuild the model from ``config`` and load saved weights into it (on the CPU)."""
    model = CNN(config)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


# --- Export: models that run without this module's code -------------------------------


def _example(batch: int = 2) -> torch.Tensor:
    return torch.zeros(batch, 1, SIDE, SIDE)


def export_program(model: nn.Module, path: str | Path) -> Path:
    """Save a ``torch.export`` program (``.pt2``): the traced graph and its weights,
    loadable by PyTorch without the class definition, for any batch size."""
    path = Path(path).with_suffix(".pt2")
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        model.eval().cpu(), (_example(),), dynamic_shapes={"x": {0: batch}}
    )
    torch.export.save(program, path)
    return path


def run_program(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Logits from a saved ``.pt2`` program for images of shape (n, 28, 28)."""
    module = torch.export.load(path).module()
    with torch.no_grad():
        return module(_tensor(images, torch.device("cpu"))).numpy()


def export_onnx(model: nn.Module, path: str | Path) -> Path:
    """Save the model in the ONNX format (``.onnx``), readable by ONNX Runtime and by
    other frameworks' importers; needs the ``onnx`` and ``onnxscript`` packages."""
    import contextlib
    import io
    import logging
    import warnings

    path = Path(path).with_suffix(".onnx")
    batch = torch.export.Dim("batch")
    # The exporter reports its progress, and the optional (torchvision) operators it
    # skipped, on stdout, stderr and the logging system: none of it concerns this model.
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.eval().cpu(),
                (_example(),),
                path,
                dynamo=True,
                dynamic_shapes={"x": {0: batch}},
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    return path


def run_onnx(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Logits from a saved ``.onnx`` model, run by ONNX Runtime (no PyTorch at all)."""
    return backend.onnx_logits(
        path, images.reshape(-1, 1, SIDE, SIDE).astype(np.float32)
    )


# How this module's runs are filed in the artifacts folder (dlfp.artifacts).
NAME, SUFFIX = "torch-cnn", ".pt"
