"""The book's CNN in TensorFlow with Keras 3: model, training, evaluation, saving.

The same architecture, initialisation, optimizer, schedule, batches and augmentation as
:mod:`dlfp.frameworks.torch_cnn`, written the Keras way: a functional model, ``compile``
and ``fit``, fed each epoch's batches as NumPy arrays. Keras stores images
channels-last, (N, 28, 28, 1), where PyTorch uses (N, 1, 28, 28). TensorFlow uses a GPU
when it sees one. The module implements the recipe ``"keras-cnn"`` and is a
:class:`~dlfp.frameworks.backend.Backend`, as the PyTorch one is. :func:`compiled` is
the one place the model is compiled: :func:`train` and the verdict's timed rounds both
call it.
"""

from __future__ import annotations

import time
from pathlib import Path

from ._quiet import import_tensorflow

tf = import_tensorflow()  # before Keras: silences TensorFlow's logs on every machine

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from ..data import MNIST  # noqa: E402
from ..recipes import Batches, CNNConfig, learning_rate, load_mnist_for  # noqa: E402
from ..train import History, epoch_line  # noqa: E402
from . import backend  # noqa: E402

__all__ = [
    "build_model",
    "Schedule",
    "EpochTimer",
    "compiled",
    "enable_op_determinism",
    "train",
    "evaluate",
    "predict_logits",
    "save",
    "load",
    "export_saved_model",
    "run_saved_model",
    "export",
    "EXPORTS",
    "export_onnx",
    "run_onnx",
    "NAME",
    "SUFFIX",
]

#: The side of the square images, in pixels (MNIST's: 28).
SIDE = CNNConfig.image_side

#: Whether :func:`enable_op_determinism` has run in this process (read by
#: :func:`dlfp.frameworks.compare.machine.tf_op_determinism`).
OP_DETERMINISM = False


def enable_op_determinism() -> None:
    """Turn TensorFlow's op determinism on for the rest of this process, and record it.

    ``tf.config.experimental.enable_op_determinism`` is TensorFlow's only public switch:
    TensorFlow 2.21 exports neither a getter nor a way back, so a process that turns it
    on keeps it, and the record kept here is how the library knows (:func:`train` turns
    it on through this function)."""
    global OP_DETERMINISM
    tf.config.experimental.enable_op_determinism()
    OP_DETERMINISM = True


def build_model(config: CNNConfig = CNNConfig()) -> keras.Model:
    """Convolution blocks and a classifier; input (N, 28, 28, 1), logits (N, 10) out."""

    def block(x, filters):
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=False, kernel_initializer="he_uniform"
        )(x)
        # PyTorch's defaults: running averages move 10% per step, eps = 1e-5.
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
        x = layers.ReLU()(x)
        return layers.MaxPooling2D(2)(x)

    inputs = keras.Input(shape=(config.image_side, config.image_side, 1))
    x = inputs
    for filters in config.channels:  # one block per entry
        x = block(x, filters)
    x = layers.Flatten()(x)
    x = layers.Dense(config.hidden, activation="relu", kernel_initializer="he_uniform")(
        x
    )
    x = layers.Dropout(config.dropout)(x)
    outputs = layers.Dense(config.classes, kernel_initializer="glorot_uniform")(x)
    return keras.Model(inputs, outputs, name="cnn")


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """:func:`dlfp.recipes.learning_rate` as a Keras schedule."""

    def __init__(self, total_steps: int, config: CNNConfig):
        self.total_steps, self.config = total_steps, config
        self.rates = tf.constant(
            [learning_rate(s, total_steps, config) for s in range(total_steps + 1)],
            tf.float32,
        )

    def __call__(self, step):
        return tf.gather(
            self.rates, tf.minimum(tf.cast(step, tf.int32), self.total_steps)
        )

    def get_config(self):
        return {"total_steps": self.total_steps}


class EpochTimer(keras.callbacks.Callback):
    """Records the wall-clock time of every training epoch, validation excluded (as the
    PyTorch loop does): the clock stops when ``fit`` starts the validation pass. One
    timer can serve several calls of ``fit``."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._stop = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._stop is None:
            self._stop = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        stop = self._stop if self._stop is not None else time.perf_counter()
        self.seconds.append(stop - self._start)


def compiled(
    config: CNNConfig,
    total_steps: int,
    *,
    jit_compile: bool | str = "auto",
    steps_per_execution: int = 1,
) -> keras.Model:
    """The network of ``config``, seeded and compiled with the recipe's AdamW and
    schedule over ``total_steps``, the cross-entropy of logits, and accuracy.

    ``jit_compile`` and ``steps_per_execution`` are passed to ``compile`` (Keras's
    defaults: ``"auto"``, which means no XLA on a CPU, and 1).
    """
    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=Schedule(total_steps, config),
            weight_decay=config.weight_decay,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-8,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def train(
    config: CNNConfig = CNNConfig(), data: MNIST | None = None, *, verbose: bool = False
) -> tuple[keras.Model, History]:
    """Train the CNN; return the model and its :class:`~dlfp.train.History`."""
    if data is None:
        data = load_mnist_for(config)
    enable_op_determinism()
    batches = Batches(data.train.images, data.train.labels, config)
    total = config.epochs * len(batches)
    model = compiled(config, total)
    # One call of fit per epoch, on that epoch's batches in order (shuffle=False): fit
    # slices the arrays into consecutive batches of batch_size, which are exactly
    # Batches' batches. initial_epoch numbers the epochs; the optimizer's step count,
    # and with it the schedule, carries on from one call to the next.
    timer, history = EpochTimer(), History()
    validation = (data.validation.images[..., None], data.validation.labels)
    for epoch in range(config.epochs):
        images, labels = batches.epoch(epoch)
        fitted = model.fit(
            images[..., None],  # channels last: (n, 28, 28, 1)
            labels,
            batch_size=config.batch_size,
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,
            validation_data=validation,
            callbacks=[timer],
            verbose=0,
        )
        last = (epoch + 1) * len(batches) - 1  # the epoch's last step
        metrics = {key: float(values[-1]) for key, values in fitted.history.items()}
        history.add_epoch(
            metrics["loss"],
            metrics["accuracy"],
            learning_rate(last, total, config),
            timer.seconds[-1],
        )
        history.val_loss.append(metrics["val_loss"])
        history.val_accuracy.append(metrics["val_accuracy"])
        if verbose:
            print(epoch_line(history, config.epochs), flush=True)
    return model, history


def evaluate(
    model: keras.Model, images: np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on a split."""
    logits = predict_logits(model, images)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return float(loss(labels, logits)), float((logits.argmax(axis=1) == labels).mean())


def predict_logits(model: keras.Model, images: np.ndarray, batch_size: int = 1000):
    """Logits for images of shape (n, 28, 28), as a NumPy array (n, 10)."""
    return np.concatenate(
        [
            np.asarray(model(images[i : i + batch_size, ..., None], training=False))
            for i in range(0, len(images), batch_size)
        ]
    )


def save(model: keras.Model, path: str | Path) -> Path:
    """Save the whole model (architecture and weights) in the ``.keras`` format."""
    path = Path(path).with_suffix(".keras")
    model.save(path)
    return path


def load(path: str | Path, config: CNNConfig | None = None) -> keras.Model:
    """Load a ``.keras`` file (it holds the architecture; ``config`` is not needed)."""
    return keras.models.load_model(path, compile=False)


# --- Export: models that run without this module's code -------------------------------


def export_saved_model(model: keras.Model, path: str | Path) -> Path:
    """Export a TensorFlow SavedModel (a folder): the serving graph and its weights, for
    TensorFlow Serving, TF Lite converters and ``tf.saved_model.load``."""
    path = Path(path)
    logger = tf.get_logger()  # in notebooks it reports each asset written, on stderr
    level = logger.level
    logger.setLevel("ERROR")
    try:
        model.export(str(path), format="tf_saved_model", verbose=False)
    finally:
        logger.setLevel(level)
    return path


def run_saved_model(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Logits from an exported SavedModel for images of shape (n, 28, 28)."""
    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(tf.constant(images[..., None], tf.float32)))


#: The formats of :func:`export`, with their files' suffixes.
EXPORTS = {"onnx": ".onnx", "litert": ".tflite"}


def export(model: keras.Model, path: str | Path, format: str) -> Path:
    """Save the model through ``model.export`` in ``format``, with the format's suffix:
    ``"onnx"``, which on the TensorFlow backend converts the serving graph with
    ``tf2onnx``, or ``"litert"``, a LiteRT flat buffer (``.tflite``) written by
    TensorFlow's converter (``tf.lite.TFLiteConverter``). The input stays
    channels-last, (n, 28, 28, 1), with any batch size."""
    import contextlib
    import io
    import logging
    import warnings

    from ._quiet import stderr_to_devnull

    if format not in EXPORTS:
        raise ValueError(
            f"format must be one of {', '.join(EXPORTS)}, not {format!r}: export "
            "another format with model.export."
        )
    path = Path(path).with_suffix(EXPORTS[format])
    # The converters report each step on their loggers and on both output streams (the
    # C++ ones on descriptor 2), and Keras's patch for NumPy 2 warns on import: none of
    # it concerns this model.
    loggers = [logging.getLogger("tf2onnx"), tf.get_logger()]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            stderr_to_devnull(),
        ):
            warnings.simplefilter("ignore")
            model.export(
                str(path),
                format=format,
                verbose=False,
                # Given, not inferred: a model loaded from a file has not been called.
                input_signature=[tf.TensorSpec([None, SIDE, SIDE, 1], tf.float32)],
            )
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    return path


def export_onnx(model: keras.Model, path: str | Path) -> Path:
    """:func:`export` to ONNX (``.onnx``), as the :class:`~.backend.Backend` asks."""
    return export(model, path, "onnx")


def run_onnx(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Logits from a saved ``.onnx`` model, run by ONNX Runtime, without TensorFlow."""
    return backend.onnx_logits(path, images[..., None].astype(np.float32))


# How this module's runs are filed in the artifacts folder (dlfp.artifacts).
NAME, SUFFIX = "keras-cnn", ".keras"
