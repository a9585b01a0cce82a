"""The training half of the experiment: the settings, one trainer per framework (and
the book's NumPy CNN), and the timed rounds."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np

from ...recipes import Batches, CNNConfig, learning_rate
from ...threads import limit_blas
from .harness import _interleave, _quiet, _reason
from .machine import _pools, threads
from .rows import (
    DLFP,
    FULL,
    PYTORCH,
    TENSORFLOW,
    Plan,
    Row,
    Setting,
    _device_kind,
    _device_of,
    check_devices,
)


def training_settings(plan: Plan = FULL) -> list[Setting]:
    """The training configurations, in the order of the table."""
    k = plan.steps_per_execution
    torch_rows = [
        Setting(
            PYTORCH,
            "eager, NCHW",
            "default",
            {"channels_last": False, "compile": False, "deterministic": False},
        ),
        Setting(
            PYTORCH,
            "channels-last, deterministic algorithms",
            "chapter",
            {"channels_last": True, "compile": False, "deterministic": True},
        ),
    ]
    if plan.components:
        torch_rows.append(
            Setting(
                PYTORCH,
                "channels-last",
                "component",
                {"channels_last": True, "compile": False, "deterministic": False},
            )
        )
    if plan.torch_compile:
        torch_rows.append(
            Setting(
                PYTORCH,
                "channels-last, torch.compile",
                "best",
                {"channels_last": True, "compile": True, "deterministic": False},
            )
        )
    keras_rows = [
        Setting(
            TENSORFLOW,
            'fit, jit_compile="auto" (no XLA on a CPU)',
            "default",
            {"jit_compile": "auto", "steps_per_execution": 1, "deterministic": False},
        ),
        Setting(
            TENSORFLOW,
            "fit, op determinism on",
            "chapter",
            {"jit_compile": "auto", "steps_per_execution": 1, "deterministic": True},
        ),
    ]
    if plan.components:
        keras_rows += [
            Setting(
                TENSORFLOW,
                "fit, XLA (jit_compile=True)",
                "component",
                {"jit_compile": True, "steps_per_execution": 1, "deterministic": False},
            ),
            Setting(
                TENSORFLOW,
                f"fit, {k} steps per execution",
                "component",
                {
                    "jit_compile": "auto",
                    "steps_per_execution": k,
                    "deterministic": False,
                },
            ),
        ]
    keras_rows.append(
        Setting(
            TENSORFLOW,
            f"fit, XLA, {k} steps per execution",
            "best",
            {"jit_compile": True, "steps_per_execution": k, "deterministic": False},
        )
    )
    dlfp_rows = []
    if plan.dlfp:
        dlfp_rows.append(Setting(DLFP, "NumPy and its BLAS, float32", "default", {}))
    return torch_rows + keras_rows + dlfp_rows


@contextlib.contextmanager
def _torch_determinism(on: bool):
    import torch

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(on, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@contextlib.contextmanager
def _tf_determinism(on: bool):
    # tf.config.experimental has enable_op_determinism only; this module holds both.
    from tensorflow.python.framework import config as tf_config

    before = tf_config.is_op_determinism_enabled()
    (tf_config.enable_op_determinism if on else tf_config.disable_op_determinism)()
    try:
        yield
    finally:
        if before:
            tf_config.enable_op_determinism()
        else:
            tf_config.disable_op_determinism()


class _TorchTrainer:
    """:func:`dlfp.frameworks.torch_cnn.train`'s model, optimizer and epoch of steps
    (:func:`~dlfp.frameworks.torch_cnn.train_epoch`), one block of batches per call,
    with a row's options."""

    def __init__(self, config: CNNConfig, total_steps: int, options: dict, device):
        import torch

        from .. import torch_cnn

        self.options, self.batch_size = options, config.batch_size
        self.dev = torch.device(device)
        self.layout = (
            torch.channels_last if options["channels_last"] else torch.contiguous_format
        )
        torch.manual_seed(config.seed)
        self.model = torch_cnn.CNN(config).to(self.dev, memory_format=self.layout)
        self.optimizer, self.schedule = torch_cnn.adamw(self.model, config, total_steps)
        self.forward = torch.compile(self.model) if options["compile"] else self.model

    def __call__(self, block: tuple[np.ndarray, np.ndarray]) -> None:
        import torch

        from ..torch_cnn import train_epoch

        with _torch_determinism(self.options["deterministic"]):
            loss, accuracy = train_epoch(
                self.model,
                self.optimizer,
                self.schedule,
                *block,
                self.batch_size,
                dev=self.dev,
                layout=self.layout,
                forward=self.forward,
            )
            if self.dev.type == "cuda":
                torch.cuda.synchronize()
        self.metrics = {"loss": loss, "accuracy": accuracy}


class _KerasTrainer:
    """:func:`dlfp.frameworks.keras_cnn.compiled`'s model, with a row's options, and
    ``fit`` on one block per call."""

    def __init__(self, config: CNNConfig, total_steps: int, options: dict, device):
        from .. import keras_cnn

        self.options, self.batch_size = options, config.batch_size
        self.device = f"/{device.upper()}:0"
        with (
            _tf_determinism(options["deterministic"]),
            keras_cnn.tf.device(self.device),
        ):
            self.model = keras_cnn.compiled(
                config,
                total_steps,
                jit_compile=options["jit_compile"],
                steps_per_execution=options["steps_per_execution"],
            )
        if options["jit_compile"] is True and not self.model.jit_compile:
            raise RuntimeError("Keras turned jit_compile=True off for this model.")

    def __call__(self, block: tuple[np.ndarray, np.ndarray]) -> None:
        from ..keras_cnn import tf

        images, labels = block
        with _tf_determinism(self.options["deterministic"]), tf.device(self.device):
            fitted = self.model.fit(
                images[..., None],
                labels,
                batch_size=self.batch_size,
                epochs=1,
                shuffle=False,
                verbose=0,
            )
        self.metrics = {k: float(v[-1]) for k, v in fitted.history.items()}


class _DlfpTrainer:
    """:func:`dlfp.cnn.train`'s model, optimizer and schedule, one block of batches per
    call of :func:`dlfp.train.fit`, in NumPy, with its BLAS on :func:`threads`
    threads."""

    def __init__(self, config: CNNConfig, total_steps: int, options: dict, device):
        from ...cnn import adamw, cnn

        if _device_kind(device) != "cpu":
            raise ValueError("dlfp computes with NumPy, on the CPU only.")
        self.config, self.total, self.step = config, total_steps, 0
        self.model = cnn(config, rng=np.random.default_rng(config.seed))
        self.optimizer = adamw(self.model, config)
        self.threads = {"blas": threads()}

    def __call__(self, block: tuple[np.ndarray, np.ndarray]) -> None:
        from ...train import Shuffled, fit

        images, labels = block
        rows = Shuffled(images.reshape(len(images), -1), labels, self.config.batch_size)
        first, total, config = self.step, self.total, self.config
        with limit_blas(self.threads["blas"]):
            history = fit(
                self.model,
                batches=rows,
                optimizer=self.optimizer,
                epochs=1,
                step_schedule=lambda t: learning_rate(first + t, total, config),
            )
        self.step += len(rows)
        self.metrics = {"loss": history.loss[-1], "accuracy": history.accuracy[-1]}


def _block(batches: Batches, epoch: int, steps: int | None):
    """The batches of one round, as two arrays: an epoch, or its first ``steps``."""
    if steps is None or steps >= len(batches):
        return batches.epoch(epoch)
    pairs = [batches.batch(epoch, i) for i in range(steps)]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def run_training(
    config: CNNConfig,
    data,
    plan: Plan = FULL,
    settings: Sequence[Setting] | None = None,
    share: tuple[int, int] = (0, 1),
) -> list[Row]:
    """Time every training configuration on the same batches, interleaved.

    Each configuration trains its own network from the recipe's initialisation; round
    ``r`` feeds all of them epoch ``r`` of :class:`Batches` (or its first
    ``plan.train_steps`` batches). Returns one :class:`Row` per configuration.
    ``share=(i, n)``: only this process's share of the timed rounds (see
    :func:`~dlfp.frameworks.compare.processes.run_processes`).
    """
    settings = training_settings(plan) if settings is None else list(settings)
    batches = Batches(data.train.images, data.train.labels, config)
    steps = len(batches)
    if plan.train_steps is not None:
        steps = min(steps, plan.train_steps)
    total = steps * (plan.train_warmup + plan.train_rounds)
    rows = [
        Row("training", s, _device_kind(_device_of(s, plan)), steps, threads=_pools())
        for s in settings
    ]
    check_devices(rows)  # before anything runs
    runners: list[Callable | None] = []
    for row in rows:
        kind = {PYTORCH: _TorchTrainer, TENSORFLOW: _KerasTrainer}.get(
            row.framework, _DlfpTrainer
        )
        try:
            with _quiet():
                runners.append(
                    kind(
                        config,
                        total,
                        row.setting.options,
                        _device_of(row.setting, plan),
                    )
                )
        except Exception as error:
            row.error = _reason(error)
            runners.append(None)
    _interleave(
        rows,
        runners,
        plan.train_rounds,
        plan.train_warmup,
        lambda r: _block(batches, r, plan.train_steps),
        plan.pause,
        share,
    )
    return rows
