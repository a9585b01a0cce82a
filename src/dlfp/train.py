"""The training loop: mini-batch gradient descent with seeded shuffling.

One epoch visits every training example once, in an order drawn from the
``numpy.random.Generator`` passed in, so the same seed gives the same batches and the
same numbers on every machine. Each step is :func:`train_step`: forward pass, loss and
its gradient, backward pass, optimizer step. :func:`fit` runs the epochs of steps and
keeps the :class:`History`; the CNN of Part III and the benchmarks call
:func:`train_step` directly.
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

__all__ = [
    "History",
    "TrainingDivergedError",
    "train_step",
    "fit",
    "EarlyStopping",
    "batches",
    "print_log",
]


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite during training; ``loss`` holds its value."""

    def __init__(self, message: str, *, loss: float = math.nan):
        super().__init__(message)
        self.loss = loss


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


def train_step(
    model: Sequential,
    loss: Callable,
    optimizer: Optimizer,
    X: np.ndarray,
    y: np.ndarray,
) -> tuple[float, np.ndarray]:
    """One step of mini-batch gradient descent: forward, loss, backward, update.

    Parameters
    ----------
    model : Sequential
        Updated in place.
    loss : callable
        ``loss(output, y) -> (value, d_output)``, e.g.
        :func:`~dlfp.losses.softmax_cross_entropy`.
    optimizer : Optimizer
        Built from ``model.parameters()``; its ``lr`` is the rate of this step.
    X : ndarray, shape (B, d) (or the model's input shape)
        The mini-batch, already in the model's dtype.
    y : ndarray, shape (B,) or (B, n_out)
        Its labels or targets.

    Returns
    -------
    (float, ndarray)
        The loss of the batch and the model's output, shape (B, n_out), both computed
        in training mode before the update.

    Raises
    ------
    TrainingDivergedError
        If the loss is NaN or infinite; the model is left as it was before the step.
    """
    # A diverging run overflows before its loss turns non-finite; the check below
    # reports that clearly, so NumPy's overflow warnings would be noise.
    with np.errstate(over="ignore", invalid="ignore"):
        out = model.forward(X, training=True)
        value, dout = loss(out, y)
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"the loss became {value} at learning rate {optimizer.lr:g}; training "
            "diverged, so try a smaller learning rate.",
            loss=value,
        )
    model.backward(dout, input_grad=False)  # dL/dX of the data: not needed
    optimizer.step()
    return value, out


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
    stopping = None if patience is None else EarlyStopping(model, patience, validation)
    history = History()
    n = len(X)
    steps_per_epoch = math.ceil(n / batch_size)
    bar = _progress_bar(epochs * steps_per_epoch, progress)
    for epoch in range(epochs):
        if lr_schedule is not None:
            optimizer.lr = float(lr_schedule(epoch))
        start = time.perf_counter()
        total, correct = 0.0, 0
        for step, idx in enumerate(batches(n, batch_size, rng)):
            Xb, yb = X[idx], y[idx]
            if augment is not None:
                Xb = augment(Xb, rng)
            try:
                value, out = train_step(model, loss, optimizer, Xb, yb)
            except TrainingDivergedError as error:
                bar.close()
                raise _diverged(
                    error, optimizer.lr, epoch, step, steps_per_epoch
                ) from None
            history.step_loss.append(value)
            total += value * len(idx)
            if classification:
                correct += int((out.argmax(axis=1) == yb).sum())
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
            print(_epoch_line(history, epochs, classification))
        if stopping is not None and stopping.should_stop(history):
            break
    bar.close()
    if stopping is not None:
        stopping.restore()
    return history


class EarlyStopping:
    """Early stopping, eq. (10.6): ``fit(..., patience=q)`` asks one after every epoch.

    It remembers the weights of the epoch with the lowest validation loss so far, says
    when ``patience`` epochs in a row have not improved on it, and at the end writes the
    remembered weights back into the model.

    Parameters
    ----------
    model : Sequential
        The model being trained; its arrays are copied and restored in place.
    patience : int
        Epochs without improvement after which training stops (q, at least 1).
    validation : (X_val, y_val) or None
        Must be given: early stopping watches the validation loss.
    """

    def __init__(self, model: Sequential, patience: int, validation) -> None:
        _check_patience(patience, validation)
        self.patience = patience
        # Every array the model keeps (weights, biases, batch-norm statistics).
        self.state = [a for layer in model.layers for a in layer.params.values()]
        self.best_loss, self.best_state, self.waited = math.inf, None, 0

    def should_stop(self, history: History) -> bool:
        """Whether to stop after the epoch just recorded in ``history``."""
        if history.val_loss[-1] < self.best_loss:
            self.best_loss, self.waited = history.val_loss[-1], 0
            self.best_state = [a.copy() for a in self.state]
            history.best_epoch = history.epoch[-1]
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self) -> None:
        """Write the best weights back into the model's own arrays."""
        if self.best_state is None:
            return
        for array, best in zip(self.state, self.best_state, strict=True):
            array[...] = best  # in place: the optimizer holds these arrays


def _check_patience(patience, validation) -> None:
    """Refuse early stopping without a validation set, or with a patience below 1."""
    if validation is None:
        raise ValueError(
            "early stopping watches the validation loss; pass "
            "validation=(X_val, y_val) or leave patience unset."
        )
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be a positive integer, got {patience!r}.")


class _NoBar:
    """What ``fit`` calls on its progress bar, doing nothing: no bar was asked for."""

    def update(self) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, show: bool):
    """A tqdm bar over ``total`` mini-batches when ``show`` is true (tqdm is imported
    only then), else a bar that does nothing."""
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="batch", leave=False)


def _diverged(
    error: TrainingDivergedError, lr: float, epoch: int, step: int, steps: int
) -> TrainingDivergedError:
    """``error`` again, its message naming the epoch and mini-batch it happened in."""
    return TrainingDivergedError(
        f"the loss became {error.loss} in epoch {epoch + 1} (mini-batch "
        f"{step + 1} of {steps}) at learning rate {lr:g}; training "
        "diverged, so try a smaller learning rate.",
        loss=error.loss,
    )


def _epoch_line(
    history: History, epochs: int, classification: bool, index: int = -1
) -> str:
    """The line ``fit(verbose=True)`` prints after epoch ``index`` of ``history``."""
    epoch = history.epoch[index]
    line = f"epoch {epoch:>3}/{epochs}  loss {history.loss[index]:.4f}"
    if classification:
        line += f"  acc {history.accuracy[index]:.4f}"
    if history.val_loss:
        line += f"  val_loss {history.val_loss[index]:.4f}"
        if classification:
            line += f"  val_acc {history.val_accuracy[index]:.4f}"
    return line + f"  ({history.seconds[index]:.1f}s)"


def print_log(history: History, epochs: int | None = None) -> None:
    """Print the lines that ``fit(verbose=True)`` printed during the run of ``history``
    (a run kept from an earlier build shows its log this way)."""
    epochs = len(history.epoch) if epochs is None else epochs
    classification = not any(math.isnan(a) for a in history.accuracy)
    for index in range(len(history.epoch)):
        print(_epoch_line(history, epochs, classification, index))
