"""The book's CNN in dlfp alone: the architecture, training, and where time goes.

The network is the one :class:`dlfp.recipes.CNNConfig` describes, which Part III
also trains in PyTorch and Keras; :func:`cnn` builds it from the layers of
:mod:`dlfp.conv`. :func:`train_cnn` trains it on the same augmented mini-batches
(:class:`dlfp.recipes.Batches`) with the same schedule
(:func:`dlfp.recipes.learning_rate`) and the same optimizer as the PyTorch version,
:class:`dlfp.optim.AdamW`, so the two runs differ only in the arithmetic; each step is
:func:`dlfp.train.train_step`, as in the MLP's ``fit``. The store of kept models keeps
the trained network for later chapters (:func:`dlfp.artifacts.trained_cnn`).

The model takes rows of 784 pixels, like the perceptrons of Part II: its first layer,
``Reshape((1, 28, 28))``, views each row as a one-channel image. Everything that feeds
an MLP (``fit``, ``evaluate``, ``dlfp evaluate``) therefore feeds it too.

Nothing here imports PyTorch; the comparisons with it live in :mod:`dlfp.cnn_torch`.
"""

from __future__ import annotations

import cProfile
import math
import pstats
import time
from pathlib import Path

import numpy as np

from . import conv
from .activations import ReLU
from .data import MNIST
from .layers import Dense, Dropout, Layer
from .losses import softmax_cross_entropy
from .model import Sequential
from .optim import AdamW
from .recipes import Batches, CNNConfig, learning_rate, load_mnist_for
from .train import train_step

__all__ = ["cnn", "train_cnn", "profile_steps"]


def cnn(
    config: CNNConfig = CNNConfig(),
    *,
    rng: np.random.Generator | None = None,
    dtype=np.float32,
) -> Sequential:
    """The network of ``config``, initialised as PyTorch's :class:`~dlfp.frameworks.
    torch_cnn.CNN` is: He-uniform filters and hidden weights, a Glorot-uniform output
    layer, zero biases, batch normalisation starting at gamma = 1, beta = 0.

    ``rng`` draws the initial weights, in order from the input, and then the dropout
    masks of training.
    """
    rng = np.random.default_rng(config.seed) if rng is None else rng
    weights = {"init": "he_uniform", "rng": rng, "dtype": dtype}
    layers: list[Layer] = [conv.Reshape((1, config.image_side, config.image_side))]
    c_in = 1
    for c_out in config.channels:  # one block per entry: conv, BN, ReLU, pool
        layers += [
            conv.Conv2D(c_in, c_out, 3, padding=1, bias=False, **weights),
            conv.BatchNorm2D(c_out, dtype=dtype),
            ReLU(),
            conv.MaxPool2D(2),
        ]
        c_in = c_out
    side = config.feature_side()
    layers += [
        conv.Flatten(),
        Dense(c_in * side * side, config.hidden, **weights),
        ReLU(),
        Dropout(config.dropout, rng=rng),
        Dense(config.hidden, config.classes, init="glorot", rng=rng, dtype=dtype),
    ]
    return Sequential(layers)


def train_cnn(
    config: CNNConfig = CNNConfig(),
    data: MNIST | None = None,
    *,
    dtype=np.float32,
    verbose: bool = False,
    progress: bool = False,
) -> tuple[Sequential, dict[str, list]]:
    """Train the CNN of ``config`` with dlfp, exactly as the PyTorch chapter does.

    The batches are :class:`~dlfp.recipes.Batches` of ``config`` (the same arrays
    PyTorch sees), the rate at step t is ``learning_rate(t, total, config)``, and the
    optimizer is :class:`AdamW` with decay on every parameter. The generator seeded
    with ``config.seed`` draws the initial weights and then the dropout masks.

    Returns
    -------
    (Sequential, dict)
        The model, and its history: per epoch ``loss`` and ``accuracy`` (running, in
        training mode), ``val_loss`` and ``val_accuracy`` (after the epoch), ``seconds``
        (training time of the epoch); per step ``step_loss``.
    """
    if data is None:
        data = load_mnist_for(config)
    model = cnn(config, rng=np.random.default_rng(config.seed), dtype=dtype)
    optimizer = AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    batches = Batches(data.train.images, data.train.labels, config)
    total = config.epochs * len(batches)
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "step_loss")
    history: dict[str, list] = {key: [] for key in keys}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="batch", leave=False)
    for epoch in range(config.epochs):
        start = time.perf_counter()
        seen, loss_sum, correct = 0, 0.0, 0
        for i in range(len(batches)):
            images, labels = batches.batch(epoch, i)
            optimizer.lr = learning_rate(epoch * len(batches) + i, total, config)
            X = images.reshape(len(images), -1).astype(dtype, copy=False)
            loss, logits = train_step(
                model, softmax_cross_entropy, optimizer, X, labels
            )
            history["step_loss"].append(loss)
            seen += len(labels)
            loss_sum += loss * len(labels)
            correct += int((logits.argmax(axis=1) == labels).sum())
            if bar is not None:
                bar.update()
        history["seconds"].append(time.perf_counter() - start)
        history["loss"].append(loss_sum / seen)
        history["accuracy"].append(correct / seen)
        if len(data.validation.labels):
            val_loss, val_acc = model.evaluate(
                data.validation.flat, data.validation.labels, batch_size=1000
            )
        else:
            val_loss, val_acc = math.nan, math.nan
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_acc)
        if verbose:
            print(
                f"epoch {epoch + 1}/{config.epochs}  loss {loss_sum / seen:.4f}  "
                f"val_acc {val_acc:.4f}  ({history['seconds'][-1]:.1f}s)",
                flush=True,
            )
    if bar is not None:
        bar.close()
    return model, history


# --- Where the time goes --------------------------------------------------------------

#: What each profiled function spends its time on, for :func:`profile_steps`.
PROFILE_LABELS = {
    ("conv.py", "im2col"): ("convolution: windows to rows (im2col)", "copy"),
    ("conv.py", "col2im"): ("convolution: rows back to pixels (col2im)", "copy"),
    ("conv.py", "forward", "Conv2D"): ("convolution: forward product", "product"),
    ("conv.py", "backward", "Conv2D"): ("convolution: backward products", "product"),
    ("conv.py", "_padded"): ("convolution: padding", "copy"),
    ("layers.py", "forward", "Dense"): ("dense: forward product", "product"),
    ("layers.py", "backward_params", "Dense"): ("dense: backward products", "product"),
    ("layers.py", "backward", "Dense"): ("dense: backward products", "product"),
    ("conv.py", "forward", "BatchNorm2D"): ("batch norm", "element-wise"),
    ("conv.py", "backward", "BatchNorm2D"): ("batch norm", "element-wise"),
    ("conv.py", "_column_sums"): ("batch norm", "element-wise"),
    ("conv.py", "forward", "MaxPool2D"): ("max pooling", "element-wise"),
    ("conv.py", "backward", "MaxPool2D"): ("max pooling", "element-wise"),
    ("conv.py", "_pool_2x2"): ("max pooling", "element-wise"),
    ("conv.py", "_route_2x2"): ("max pooling", "element-wise"),
    ("conv.py", "_pool_windows"): ("max pooling", "element-wise"),
    ("conv.py", "_route_windows"): ("max pooling", "element-wise"),
    ("activations.py", "forward"): ("ReLU", "element-wise"),
    ("activations.py", "backward"): ("ReLU", "element-wise"),
    ("layers.py", "forward", "Dropout"): ("dropout", "element-wise"),
    ("layers.py", "backward", "Dropout"): ("dropout", "element-wise"),
    ("losses.py", "softmax_cross_entropy"): ("loss", "element-wise"),
    ("optim.py", "update"): ("optimizer (AdamW)", "element-wise"),
    ("optim.py", "step"): ("optimizer (AdamW)", "element-wise"),
    ("cnn.py", "step"): ("optimizer (AdamW)", "element-wise"),
}


def _profile_label(filename: str, function: str, first_line: int, owners) -> tuple:
    name = Path(filename).name
    owner = owners.get((name, first_line))
    for key in ((name, function, owner), (name, function)):
        if key in PROFILE_LABELS:
            return PROFILE_LABELS[key]
    return ("everything else (Python, reshapes, bookkeeping)", "other")


def _method_owners() -> dict[tuple[str, int], str]:
    """(file name, first line) of every layer method -> its class, to tell apart the
    ``forward`` of Conv2D from that of BatchNorm2D in a profile."""
    from . import activations, layers

    owners = {}
    for module in (conv, layers, activations):
        for cls_name, cls in vars(module).items():
            if isinstance(cls, type) and issubclass(cls, Layer):
                for attr in ("forward", "backward", "backward_params"):
                    func = cls.__dict__.get(attr)
                    func = getattr(func, "__wrapped__", func)
                    if func is not None and hasattr(func, "__code__"):
                        code = func.__code__
                        key = (Path(code.co_filename).name, code.co_firstlineno)
                        owners[key] = cls_name
    return owners


def profile_steps(
    config: CNNConfig = CNNConfig(),
    data: MNIST | None = None,
    *,
    steps: int = 20,
    warmup: int = 3,
) -> list[dict]:
    """Where a training step of the dlfp CNN spends its time, by kind of work.

    Runs ``warmup`` steps, then ``steps`` steps under :mod:`cProfile`, on the first
    batches of ``config``'s training run, and adds up each function's own time (not
    that of the functions it calls) under a label: the matrix products of the
    convolutions and dense layers, the copies of im2col and col2im, and the
    element-wise passes of batch normalisation, pooling, ReLU, the loss and the
    optimizer.

    Returns
    -------
    list of dict
        One per label, largest first: ``label``, ``kind`` (``"product"``,
        ``"copy"``, ``"element-wise"`` or ``"other"``), ``seconds`` (per step) and
        ``share`` (of the profiled time).
    """
    if data is None:
        data = load_mnist_for(config)
    model = cnn(config, rng=np.random.default_rng(config.seed))
    optimizer = AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    batches = Batches(data.train.images, data.train.labels, config)
    inputs = [batches.batch(0, i % len(batches)) for i in range(warmup + steps)]
    inputs = [(images.reshape(len(images), -1), labels) for images, labels in inputs]
    for X, y in inputs[:warmup]:
        train_step(model, softmax_cross_entropy, optimizer, X, y)
    profiler = cProfile.Profile()
    profiler.enable()
    for X, y in inputs[warmup:]:
        train_step(model, softmax_cross_entropy, optimizer, X, y)
    profiler.disable()
    owners = _method_owners()
    stats = pstats.Stats(profiler).stats
    totals: dict[tuple[str, str], float] = {}

    def label(entry) -> tuple[str, str]:
        filename, line, function = entry
        return _profile_label(filename, function, line, owners)

    for entry, (_, _, own_time, _, callers) in stats.items():
        if entry[0] == "~":  # a NumPy function or method: its caller's work
            for caller, (_, _, time_from_caller, _) in callers.items():
                key = label(caller)
                totals[key] = totals.get(key, 0.0) + time_from_caller
        else:  # own time: the time in the function itself, callees excluded
            key = label(entry)
            totals[key] = totals.get(key, 0.0) + own_time
    everything = sum(totals.values())
    rows = [
        {
            "label": label,
            "kind": kind,
            "seconds": seconds / steps,
            "share": seconds / everything,
        }
        for (label, kind), seconds in totals.items()
    ]
    return sorted(rows, key=lambda row: row["seconds"], reverse=True)
