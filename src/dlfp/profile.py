"""Where a training step of the NumPy CNN spends its time, by kind of work.

:func:`profile_steps` runs steps of :func:`dlfp.cnn.train`'s recipe under
:mod:`cProfile` and adds up each function's own time under a label of
:data:`PROFILE_LABELS`: the matrix products of the convolutions and dense layers, the
copies of im2col and col2im, and the element-wise passes of batch normalisation,
pooling, ReLU, the loss and the optimizer. Chapter *The CNN in NumPy* shows the table.
"""

from __future__ import annotations

import cProfile
import pstats
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from . import conv
from .cnn import Rows, adamw, cnn
from .data import MNIST
from .layers import Layer
from .losses import softmax_cross_entropy
from .recipes import Batches, CNNConfig, load_mnist_for
from .train import train_step

__all__ = ["PROFILE_LABELS", "profile_steps"]

#: What each profiled function spends its time on, for :func:`profile_steps`.
PROFILE_LABELS = {
    ("conv.py", "im2col"): ("convolution: windows to rows (im2col)", "copy"),
    ("conv.py", "col2im"): ("convolution: rows back to pixels (col2im)", "copy"),
    ("conv.py", "im2col_strided"): ("convolution: windows to rows (im2col)", "copy"),
    ("conv.py", "col2im_by_tap"): ("convolution: rows back to pixels (col2im)", "copy"),
    ("conv.py", "forward", "Conv2D"): ("convolution: forward product", "product"),
    ("conv.py", "backward", "Conv2D"): ("convolution: backward products", "product"),
    ("conv.py", "_padded"): ("convolution: padding", "copy"),
    ("layers.py", "forward", "Dense"): ("dense: forward product", "product"),
    ("layers.py", "backward_params", "Dense"): ("dense: backward products", "product"),
    ("layers.py", "backward", "Dense"): ("dense: backward products", "product"),
    ("conv.py", "forward", "BatchNorm2D"): ("batch norm", "element-wise"),
    ("conv.py", "backward", "BatchNorm2D"): ("batch norm", "element-wise"),
    ("conv.py", "_column_sums"): ("batch norm", "element-wise"),
    ("conv.py", "_rows"): ("batch norm", "element-wise"),
    ("conv.py", "forward", "MaxPool2D"): ("max pooling", "element-wise"),
    ("conv.py", "backward", "MaxPool2D"): ("max pooling", "element-wise"),
    ("conv.py", "_pool_2x2"): ("max pooling", "element-wise"),
    ("conv.py", "_route_2x2"): ("max pooling", "element-wise"),
    ("conv.py", "_window_entries"): ("max pooling", "element-wise"),
    ("conv.py", "_runs_as_elements"): ("max pooling", "element-wise"),
    ("conv.py", "_pool_windows"): ("max pooling", "element-wise"),
    ("conv.py", "_route_windows"): ("max pooling", "element-wise"),
    ("activations.py", "forward"): ("ReLU", "element-wise"),
    ("activations.py", "backward"): ("ReLU", "element-wise"),
    ("layers.py", "forward", "Dropout"): ("dropout", "element-wise"),
    ("layers.py", "backward", "Dropout"): ("dropout", "element-wise"),
    ("losses.py", "softmax_cross_entropy"): ("loss", "element-wise"),
    ("optim.py", "update"): ("optimizer (AdamW)", "element-wise"),
    ("optim.py", "step"): ("optimizer (AdamW)", "element-wise"),
    # The parts that dlfp.threads.split runs, each counted with its layer's work.
    ("conv.py", "copy_windows"): ("convolution: windows to rows (im2col)", "copy"),
    ("conv.py", "add_taps"): ("convolution: rows back to pixels (col2im)", "copy"),
    ("conv.py", "pad"): ("convolution: padding", "copy"),
    ("conv.py", "_by_rows"): ("batch norm", "element-wise"),
    ("conv.py", "centre"): ("batch norm", "element-wise"),
    ("conv.py", "scale_and_shift"): ("batch norm", "element-wise"),
    ("conv.py", "standardise"): ("batch norm", "element-wise"),
    ("conv.py", "d_times_z_hat"): ("batch norm", "element-wise"),
    ("conv.py", "input_gradient"): ("batch norm", "element-wise"),
    ("conv.py", "pool_2x2"): ("max pooling", "element-wise"),
    ("conv.py", "route_2x2"): ("max pooling", "element-wise"),
    ("activations.py", "relu"): ("ReLU", "element-wise"),
    ("activations.py", "relu_gradient"): ("ReLU", "element-wise"),
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
    from . import activations, layers  # the modules whose classes are layers

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
    straightforward: bool = False,
) -> list[dict]:
    """Where a training step of the dlfp CNN spends its time, by kind of work.

    Runs ``warmup`` steps, then ``steps`` steps under :mod:`cProfile`, on the first
    batches of ``config``'s training run, and adds up each function's own time (not
    that of the functions it calls) under a label: the matrix products of the
    convolutions and dense layers, the copies of im2col and col2im, and the
    element-wise passes of batch normalisation, pooling, ReLU, the loss and the
    optimizer. With ``straightforward=True`` the layers take the straightforward
    routes of :func:`dlfp.conv.straightforward` (the same numbers): the profile
    "before" the speed-ups of :data:`dlfp.conv.FAST`.

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
    optimizer = adamw(model, config)
    batches = Rows(Batches(data.train.images, data.train.labels, config))
    inputs = [batches.batch(0, i % len(batches)) for i in range(warmup + steps)]
    profiler = cProfile.Profile()
    with conv.straightforward() if straightforward else nullcontext():
        for X, y in inputs[:warmup]:
            train_step(model, softmax_cross_entropy, optimizer, X, y)
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
