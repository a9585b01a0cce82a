"""The training loop: mini-batch gradient descent with seeded shuffling.

One epoch visits every training example once, in an order drawn from the
``numpy.random.Generator`` passed in, so the same seed gives the same batches and the
same numbers on every machine. Each step is :func:`train_step`: forward pass, loss and
its gradient, backward pass, optimizer step. :func:`fit` runs the epochs of steps and
keeps the :class:`History`: it is the one training loop of dlfp, for Part II's MLP
(arrays, shuffled by :class:`Shuffled`) and Part III's CNN (a :class:`BatchSource`
that hands out the recipe's batches, with a learning rate set at every step). Every
implementation of the book's recipes, PyTorch's and Keras's too, returns a
:class:`History`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Protocol

import numpy as np

from .losses import softmax_cross_entropy
from .model import Sequential
from .optim import Optimizer

__all__ = [
    "History",
    "BatchSource",
    "Shuffled",
    "TrainingDivergedError",
    "train_step",
    "fit",
    "EarlyStopping",
    "batches",
    "epoch_line",
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
    mode. ``lr`` is the learning rate of the epoch's last step, ``seconds`` the
    wall-clock time of its training steps (validation excluded). ``step_loss`` holds the
    loss of every mini-batch, when the implementation records it. ``best_epoch`` is set
    only by early stopping: the epoch (counted from 1) whose weights the model was left
    with.

    Every implementation of the book's recipes returns one: :func:`fit` for dlfp, and
    the PyTorch and Keras trainers of :mod:`dlfp.frameworks`.
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
        """The history as plain lists, for JSON; :meth:`from_dict` reads it back."""
        return {
            k: list(v) if isinstance(v, list) else v for k, v in self.__dict__.items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> History:
        """The history that :meth:`as_dict` wrote; fields it lacks stay empty."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"a history has no field {sorted(unknown)[0]!r}; "
                f"use {', '.join(sorted(known))}."
            )
        return cls(**values)

    def add_epoch(
        self, loss: float, accuracy: float, lr: float, seconds: float
    ) -> None:
        """Record the training half of an epoch (validation comes after it)."""
        self.epoch.append(len(self.epoch) + 1)
        self.loss.append(float(loss))
        self.accuracy.append(float(accuracy))
        self.lr.append(float(lr))
        self.seconds.append(float(seconds))


class BatchSource(Protocol):
    """Where :func:`fit` takes its mini-batches: ``len(source)`` batches per epoch, and
    ``source.batch(epoch, i)`` the inputs and labels of batch ``i`` of ``epoch``, each
    asked for once, in order, just before its step. :class:`Shuffled` is one;
    :class:`dlfp.recipes.Batches` (through :class:`dlfp.cnn.Rows`) is another."""

    def __len__(self) -> int: ...

    def batch(self, epoch: int, i: int) -> tuple[np.ndarray, np.ndarray]: ...


class Shuffled:
    """The mini-batches of arrays (X, y), in an order drawn from ``rng`` every epoch
    (in their order when ``rng`` is None).

    The permutation of an epoch is drawn when its first batch is asked for, and each
    batch is then transformed by ``augment(X_batch, rng)`` when given: one generator, in
    the order the steps use it, so that a seed gives the same run on every machine.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        rng: np.random.Generator | None = None,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ):
        if augment is not None and rng is None:
            raise ValueError("augmentation draws from rng; pass a numpy Generator.")
        self.X, self.y, self.batch_size = X, y, batch_size
        self.rng, self.augment = rng, augment
        self._epoch, self._indices = -1, []

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def batch(self, epoch: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        if epoch != self._epoch:  # a new epoch: its order, drawn now
            self._epoch = epoch
            self._indices = list(batches(len(self.X), self.batch_size, self.rng))
        idx = self._indices[i]
        Xb, yb = self.X[idx], self.y[idx]
        if self.augment is not None:
            Xb = self.augment(Xb, self.rng)
        return Xb, yb


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
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
    *,
    optimizer: Optimizer,
    epochs: int,
    batch_size: int | None = None,
    rng: np.random.Generator | None = None,
    batches: BatchSource | None = None,
    loss: Callable = softmax_cross_entropy,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    validation_batch_size: int = 2048,
    lr_schedule: Callable[[int], float] | None = None,
    step_schedule: Callable[[int], float] | None = None,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    classification: bool = True,
    progress: bool = False,
    verbose: bool = False,
    patience: int | None = None,
) -> History:
    """Train ``model`` with mini-batch gradient descent: on (X, y), or on ``batches``.

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
    epochs : int
        Passes over the data.
    batch_size : int
        Examples per step (the last batch may be smaller); with (X, y).
    rng : numpy.random.Generator
        Shuffles the examples at the start of every epoch; with (X, y).
    batches : BatchSource, optional
        Instead of (X, y, batch_size, rng): where the mini-batches come from, already
        in the model's dtype and layout (the CNN's :class:`dlfp.recipes.Batches`).
    loss : callable
        ``loss(output, y_batch) -> (value, d_output)``.
    validation : (X_val, y_val), optional
        Evaluated after every epoch, ``validation_batch_size`` examples at a time.
    lr_schedule : callable, optional
        ``lr_schedule(epoch) -> learning rate``, applied at the start of each epoch.
    step_schedule : callable, optional
        ``step_schedule(t) -> learning rate``, applied before step ``t`` (counted from
        0 over the whole run).
    augment : callable, optional
        ``augment(X_batch, rng) -> X_batch``: a random transformation applied to every
        training mini-batch (for example :func:`dlfp.data.random_shift`), drawn from
        ``rng`` so that runs stay reproducible; with (X, y). Validation data are never
        augmented.
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
        If both or neither of (X, y) and ``batches`` are given, if (X, y) come without
        ``batch_size`` and ``rng``, or if ``patience`` is given without ``validation``
        or is not a positive integer.
    TrainingDivergedError
        If the loss of a mini-batch is NaN or infinite: the message names the epoch and
        suggests a smaller learning rate. With ReLU units and the stable cross-entropy,
        a learning rate that is merely too large seldom gets that far: the loss jumps,
        many units die, and it settles near log K, finite. Watch the curves too.
    """
    if batches is None:
        if X is None or y is None or batch_size is None or rng is None:
            raise ValueError(
                "fit needs X, y, batch_size and rng, or a batch source as batches=."
            )
        X = model.check_inputs(X, y if classification else None)
        batches = Shuffled(X, np.asarray(y), batch_size, rng, augment)
    elif X is not None or y is not None or augment is not None:
        raise ValueError(
            "give fit either arrays (X, y) or batches=, not both; a batch source "
            "augments its own batches."
        )
    if validation is not None:
        X_val, y_val = validation
        X_val = model.check_inputs(X_val, y_val if classification else None)
    stopping = None if patience is None else EarlyStopping(model, patience, validation)
    history = History()
    steps = len(batches)
    bar = _progress_bar(epochs * steps, progress)
    for epoch in range(epochs):
        if lr_schedule is not None:
            optimizer.lr = float(lr_schedule(epoch))
        start = time.perf_counter()
        total, correct, seen = 0.0, 0, 0
        for i in range(steps):
            if step_schedule is not None:
                optimizer.lr = float(step_schedule(epoch * steps + i))
            Xb, yb = batches.batch(epoch, i)
            try:
                value, out = train_step(model, loss, optimizer, Xb, yb)
            except TrainingDivergedError as error:
                bar.close()
                raise _diverged(error, optimizer.lr, epoch, i, steps) from None
            history.step_loss.append(value)
            seen += len(yb)
            total += value * len(yb)
            if classification:
                correct += int((out.argmax(axis=1) == yb).sum())
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}", refresh=False)
        history.add_epoch(
            total / seen,
            correct / seen if classification else math.nan,
            optimizer.lr,
            time.perf_counter() - start,
        )
        if validation is not None:
            val_loss, val_acc = model.evaluate(
                X_val,
                y_val,
                loss=loss,
                batch_size=validation_batch_size,
                classification=classification,
            )
            history.val_loss.append(val_loss)
            history.val_accuracy.append(val_acc)
        if verbose:
            print(epoch_line(history, epochs, classification), flush=True)
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


def epoch_line(
    history: History, epochs: int, classification: bool = True, index: int = -1
) -> str:
    """The line ``fit(verbose=True)`` prints after epoch ``index`` of ``history``
    (every implementation of the recipes prints it, PyTorch's and Keras's too)."""
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
        print(epoch_line(history, epochs, classification, index))
