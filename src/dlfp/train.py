"""The training loop: mini-batch gradient descent with seeded shuffling.

One epoch visits every training example once, in an order drawn from the
``numpy.random.Generator`` passed in, so the same seed gives the same batches and the
same numbers on every machine. Each step is: forward pass, loss and its gradient,
backward pass, optimizer step (the loop of the chapter on training).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .losses import softmax_cross_entropy
from .model import Sequential
from .optim import Optimizer

__all__ = ["History", "TrainingDivergedError", "fit", "batches"]


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite during training."""


@dataclass
class History:
    """Per-epoch records of a training run.

    ``loss`` and ``accuracy`` are running averages over the epoch's mini-batches, taken
    in training mode (with dropout on, before each step's update); ``val_loss`` and
    ``val_accuracy`` are measured on the validation set after the epoch, in inference
    mode. ``step_loss`` holds the loss of every mini-batch. ``best_epoch`` is set only
    by early stopping: the epoch (counted from 1) whose weights the model was left with.
    """

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    best_epoch: int | None = None

    def as_dict(self) -> dict[str, list | int | None]:
        return {
            k: list(v) if isinstance(v, list) else v for k, v in self.__dict__.items()
        }


def batches(n: int, batch_size: int, rng: np.random.Generator | None):
    """Index arrays of the mini-batches of one epoch; shuffled when ``rng`` is given."""
    order = np.arange(n) if rng is None else rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def fit(
    model: Sequential,
    X: np.ndarray,
    y: np.ndarray,
    *,
    optimizer: Optimizer,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    loss: Callable = softmax_cross_entropy,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    lr_schedule: Callable[[int], float] | None = None,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    classification: bool = True,
    progress: bool = False,
    verbose: bool = False,
    patience: int | None = None,
) -> History:
    """Train ``model`` on (X, y) with mini-batch gradient descent.

    Parameters
    ----------
    model : Sequential
        Trained in place.
    X : ndarray, shape (N, d)
        Inputs, one example per row; cast once to the model's dtype.
    y : ndarray, shape (N,) or (N, n_out)
        Integer labels for a classifier, else targets of the loss.
    optimizer : Optimizer
        Built from ``model.parameters()``.
    epochs, batch_size : int
        Passes over the data, and examples per step (the last batch may be smaller).
    rng : numpy.random.Generator
        Shuffles the examples at the start of every epoch.
    loss : callable
        ``loss(output, y_batch) -> (value, d_output)``.
    validation : (X_val, y_val), optional
        Evaluated after every epoch.
    lr_schedule : callable, optional
        ``lr_schedule(epoch) -> learning rate``, applied at the start of each epoch.
    augment : callable, optional
        ``augment(X_batch, rng) -> X_batch``: a random transformation applied to every
        training mini-batch (for example :func:`dlfp.data.random_shift`), drawn from
        ``rng`` so that runs stay reproducible. Validation data are never augmented.
    classification : bool
        Whether y holds class labels (checked, and accuracy recorded).
    progress : bool
        Show a tqdm progress bar over the mini-batches.
    verbose : bool
        Print one line per epoch.
    patience : int, optional
        Early stopping (eq. (10.6)): after every epoch, remember the weights if the
        validation loss is the lowest so far; stop once it has not improved for
        ``patience`` epochs in a row, or after ``epochs``, and leave the model with the
        remembered weights (``history.best_epoch``). Needs ``validation``. Without it
        (the default) the model keeps the weights of the last epoch.

    Returns
    -------
    History

    Raises
    ------
    ValueError
        If ``patience`` is given without ``validation``, or is not a positive integer.
    TrainingDivergedError
        If the loss of a mini-batch is NaN or infinite: the message names the epoch and
        suggests a smaller learning rate. With ReLU units and the stable cross-entropy,
        a learning rate that is merely too large seldom gets that far: the loss jumps,
        many units die, and it settles near log K, finite. Watch the curves too.
    """
    X = model.check_inputs(X, y if classification else None)
    y = np.asarray(y)
    if validation is not None:
        X_val, y_val = validation
        X_val = model.check_inputs(X_val, y_val if classification else None)
    if patience is not None:
        if validation is None:
            raise ValueError(
                "early stopping watches the validation loss; pass "
                "validation=(X_val, y_val) or leave patience unset."
            )
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive integer, got {patience!r}.")
        # Every array the model keeps (weights, biases, batch-norm statistics).
        state = [a for layer in model.layers for a in layer.params.values()]
        best_loss, best_state, waited = math.inf, None, 0
    history = History()
    n = len(X)
    steps_per_epoch = math.ceil(n / batch_size)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * steps_per_epoch, unit="batch", leave=False)
    for epoch in range(epochs):
        if lr_schedule is not None:
            optimizer.lr = float(lr_schedule(epoch))
        start = time.perf_counter()
        total, correct = 0.0, 0
        for step, idx in enumerate(batches(n, batch_size, rng)):
            Xb, yb = X[idx], y[idx]
            if augment is not None:
                Xb = augment(Xb, rng)
            # A diverging run overflows before its loss turns non-finite; the check
            # below reports that clearly, so NumPy's overflow warnings would be noise.
            with np.errstate(over="ignore", invalid="ignore"):
                out = model.forward(Xb, training=True)
                value, dout = loss(out, yb)
            if not math.isfinite(value):
                if bar is not None:
                    bar.close()
                raise TrainingDivergedError(
                    f"the loss became {value} in epoch {epoch + 1} (mini-batch "
                    f"{step + 1} of {steps_per_epoch}) at learning rate "
                    f"{optimizer.lr:g}; training diverged, so try a smaller learning "
                    "rate."
                )
            model.backward(dout, input_grad=False)  # dL/dX of the data: not needed
            optimizer.step()
            history.step_loss.append(value)
            total += value * len(idx)
            if classification:
                correct += int((out.argmax(axis=1) == yb).sum())
            if bar is not None:
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}", refresh=False)
        history.epoch.append(epoch + 1)
        history.loss.append(total / n)
        history.accuracy.append(correct / n if classification else math.nan)
        history.lr.append(optimizer.lr)
        history.seconds.append(time.perf_counter() - start)
        if validation is not None:
            val_loss, val_acc = model.evaluate(
                X_val, y_val, loss=loss, classification=classification
            )
            history.val_loss.append(val_loss)
            history.val_accuracy.append(val_acc)
        if verbose:
            line = f"epoch {epoch + 1:>3}/{epochs}  loss {total / n:.4f}"
            if classification:
                line += f"  acc {correct / n:.4f}"
            if validation is not None:
                line += f"  val_loss {history.val_loss[-1]:.4f}"
                if classification:
                    line += f"  val_acc {history.val_accuracy[-1]:.4f}"
            print(line + f"  ({history.seconds[-1]:.1f}s)")
        # Early stopping, eq. (10.6): remember the best weights, stop after patience.
        if patience is not None:
            if history.val_loss[-1] < best_loss:
                best_loss, waited = history.val_loss[-1], 0
                best_state = [a.copy() for a in state]
                history.best_epoch = epoch + 1
            else:
                waited += 1
                if waited >= patience:
                    break
    if bar is not None:
        bar.close()
    if patience is not None and best_state is not None:
        for array, best in zip(state, best_state, strict=True):
            array[...] = best  # in place: the optimizer holds these arrays
    return history
