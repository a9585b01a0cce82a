"""The training half of the experiment: the settings, one trainer per framework (and
the book's NumPy CNN), and the timed rounds."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np

from ...recipes import Batches, CNNConfig, learning_rate
from ...threads import limit_blas
from .harness import _interleave, _quiet, _reason
from .machine import _pools, tf_op_determinism, threads
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

#: Where each framework documents the settings of its rows.
TORCH_COMPILE = (
    "torch.compile: docs.pytorch.org/docs/stable/generated/torch.compile.html; "
    "channels-last on CPUs: the performance tuning guide, "
    "docs.pytorch.org/tutorials/recipes/recipes/tuning_guide.html"
)
TORCH_OPTIMIZER = (
    "compiled optimizer step: docs.pytorch.org/tutorials/recipes/compiling_optimizer"
    ".html, with a schedule: .../recipes/compiling_optimizer_lr_scheduler.html (the "
    "rate held in a tensor)"
)
TORCH_DETERMINISM = (
    "torch.use_deterministic_algorithms: docs.pytorch.org/docs/stable/notes/"
    "randomness.html"
)
KERAS_COMPILE = (
    "Model.compile's jit_compile and steps_per_execution: keras.io/api/models/"
    "model_training_apis (steps_per_execution 'can greatly improve performance on "
    "TPUs or small models with a large Python overhead'); jit_compile='auto' turns "
    "XLA off on a CPU (keras/src/trainers/trainer.py, _resolve_auto_jit_compile)"
)
TF_DETERMINISM = (
    "tf.config.experimental.enable_op_determinism: tensorflow.org/api_docs/python/tf/"
    "config/experimental/enable_op_determinism ('may run slower')"
)


def _torch(label, role, source, channels_last, compile_, deterministic, step=False):
    return Setting(
        PYTORCH,
        label,
        role,
        {
            "channels_last": channels_last,
            "compile": compile_,
            "compile_step": step,
            "deterministic": deterministic,
        },
        source,
    )


def _keras(label, role, source, jit_compile, spe, deterministic=False):
    return Setting(
        TENSORFLOW,
        label,
        role,
        {
            "jit_compile": jit_compile,
            "steps_per_execution": spe,
            "deterministic": deterministic,
        },
        source,
    )


def training_settings(plan: Plan = FULL) -> list[Setting]:
    """The training configurations, in the order of the table, each with the source
    that documents it (:attr:`Setting.source`).

    PyTorch's best: channels-last, the model compiled by ``torch.compile`` (forward
    and, through AOTAutograd, backward) and the AdamW step compiled too
    (:func:`dlfp.frameworks.torch_cnn.compiled_update`), as Keras compiles its
    optimizer into its step; compiling the backward pass with the optimizer in one
    graph (compiled autograd) is experimental in PyTorch 2.13, so it is not used.
    TensorFlow's: several steps per execution without XLA, since Keras's own default
    turns XLA off on a CPU; the same with XLA is a row too (both on the page).
    """
    k = plan.steps_per_execution
    torch_rows = [
        _torch("eager, NCHW", "default", "", False, False, False),
        _torch(
            "channels-last, deterministic algorithms",
            "chapter",
            TORCH_DETERMINISM,
            True,
            False,
            True,
        ),
    ]
    if plan.components:
        torch_rows.append(
            _torch("channels-last", "component", TORCH_COMPILE, True, False, False)
        )
    if plan.torch_compile:
        if plan.components:
            torch_rows.append(
                _torch(
                    "channels-last, torch.compile (model only)",
                    "component",
                    TORCH_COMPILE,
                    True,
                    True,
                    False,
                )
            )
        torch_rows.append(
            _torch(
                "channels-last, torch.compile, compiled AdamW step",
                "best",
                f"{TORCH_COMPILE}; {TORCH_OPTIMIZER}",
                True,
                True,
                False,
                step=True,
            )
        )
    keras_rows = [
        _keras('fit, jit_compile="auto" (no XLA on a CPU)', "default", "", "auto", 1),
        _keras("fit, op determinism on", "chapter", TF_DETERMINISM, "auto", 1, True),
    ]
    if plan.components:
        keras_rows.append(
            _keras("fit, XLA (jit_compile=True)", "component", KERAS_COMPILE, True, 1)
        )
    keras_rows += [
        _keras(f"fit, {k} steps per execution", "best", KERAS_COMPILE, "auto", k),
        _keras(
            f"fit, XLA, {k} steps per execution", "component", KERAS_COMPILE, True, k
        ),
    ]
    dlfp_rows = []
    if plan.dlfp:
        dlfp_rows.append(Setting(DLFP, "NumPy and its BLAS, float32", "default", {}))
    return torch_rows + keras_rows + dlfp_rows


@contextlib.contextmanager
def torch_settings(deterministic: bool, flush_denormal: bool = False):
    """PyTorch's deterministic algorithms (warn-only, as in
    :func:`dlfp.frameworks.torch_cnn.train`) and subnormal flushing set for a block,
    and restored afterwards."""
    import torch

    from .machine import _torch_flushes

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        _torch_flushes(),
    )
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.set_flush_denormal(flush_denormal)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.set_flush_denormal(before[2])


class DeterminismError(RuntimeError):
    """TensorFlow rows that need op determinism off, in a process where it is on."""


_DETERMINISM_IS_ON = (
    "TensorFlow's op determinism is on in this process and TensorFlow cannot turn it "
    "off: run the rows without it in a fresh process (compare.run_processes)."
)


@contextlib.contextmanager
def tf_settings(deterministic: bool):
    """TensorFlow's op determinism as a row needs it: turned on (for the rest of the
    process: :func:`dlfp.frameworks.keras_cnn.enable_op_determinism`), or checked to
    be off. TensorFlow has no public way to turn it off, so a row without it in a
    process where it is on raises :class:`DeterminismError`."""
    on = tf_op_determinism()
    if deterministic and not on:
        from ..keras_cnn import enable_op_determinism

        enable_op_determinism()
    elif on and not deterministic:
        raise DeterminismError(_DETERMINISM_IS_ON)
    yield


def this_process(
    settings: Sequence[Setting], op_determinism: bool | None = None
) -> list[Setting]:
    """The settings a process can time as it stands: TensorFlow's rows whose op
    determinism is what the process has (``op_determinism``; None: this process's,
    :func:`~.machine.tf_op_determinism`), every other row. The others need processes
    of their own (:func:`run_processes`)."""
    on = tf_op_determinism() if op_determinism is None else op_determinism
    return [
        s
        for s in settings
        if s.framework != TENSORFLOW or bool(s.options.get("deterministic")) == on
    ]


def _check_determinism(settings: Sequence[Setting]) -> None:
    """Refuse TensorFlow rows that need op determinism both on and off, or off where
    it is on, before anything runs."""
    wanted = {
        bool(s.options.get("deterministic"))
        for s in settings
        if s.framework == TENSORFLOW
    }
    if wanted == {True, False}:
        raise DeterminismError(
            "TensorFlow's rows with op determinism and without it cannot share a "
            "process (TensorFlow cannot turn it off again): time each kind in "
            "processes of its own with compare.run_processes."
        )
    if wanted == {False} and tf_op_determinism():
        raise DeterminismError(_DETERMINISM_IS_ON)


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
        step = options.get("compile_step", False)
        self.optimizer, self.schedule = torch_cnn.adamw(
            self.model, config, total_steps, tensor_lr=step
        )
        self.forward = torch.compile(self.model) if options["compile"] else self.model
        self.update = torch_cnn.compiled_update(self.optimizer) if step else None

    def settings(self):
        return torch_settings(self.options["deterministic"])

    def __call__(self, block: tuple[np.ndarray, np.ndarray]) -> None:
        import torch

        from ..torch_cnn import train_epoch

        loss, accuracy = train_epoch(
            self.model,
            self.optimizer,
            self.schedule,
            *block,
            self.batch_size,
            dev=self.dev,
            layout=self.layout,
            forward=self.forward,
            update=self.update,
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
        with tf_settings(options["deterministic"]), keras_cnn.tf.device(self.device):
            self.model = keras_cnn.compiled(
                config,
                total_steps,
                jit_compile=options["jit_compile"],
                steps_per_execution=options["steps_per_execution"],
            )
        if options["jit_compile"] is True and not self.model.jit_compile:
            raise RuntimeError("Keras turned jit_compile=True off for this model.")

    def settings(self):
        return tf_settings(self.options["deterministic"])

    def __call__(self, block: tuple[np.ndarray, np.ndarray]) -> None:
        from ..keras_cnn import tf

        images, labels = block
        with tf.device(self.device):
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
    :func:`~dlfp.frameworks.compare.processes.run_processes`). By default, every
    setting of ``plan`` that this process can time (:func:`this_process`: TensorFlow's
    rows with op determinism run in processes of their own); ``settings`` that need
    TensorFlow's op determinism both on and off raise :class:`DeterminismError`.
    """
    if settings is None:
        settings = this_process(training_settings(plan))
    settings = list(settings)
    _check_determinism(settings)
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
