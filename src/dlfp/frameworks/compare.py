"""PyTorch and TensorFlow/Keras measured under the same controlled conditions.

The verdict chapter (``ch-verdict``) runs this experiment in a reduced form when the
book is built, and ``benchmarks/cnn.py`` runs it in full. The rules it follows:

* **One process, interleaved, repeated.** Both frameworks run in this process, on the
  same device, with the same number of threads in each of their pools (set by
  :func:`set_threads`, recorded per row). Every configuration runs one *block* (a fixed
  number of training steps, or an epoch; one inference call) per *round*; the rounds
  repeat, the first ``warmup`` of them untimed (they pay for allocation, tracing and
  compilation), and the order of the configurations rotates from one round to the next,
  so that a slow moment of the machine falls on each of them in turn.
* **The same work in every clock.** A training clock starts with the round's batches
  already built as NumPy arrays (indexing and augmentation by :class:`Batches`
  happen before any clock starts, for both frameworks) and stops when the last update
  is done; it covers the conversion to the framework's tensors, forward pass, loss,
  backward pass, AdamW update, learning-rate schedule and the running loss and
  accuracy, in both. No validation. An inference clock starts with the images as a
  NumPy array and stops with the logits as a NumPy array.
* **Default and best, labelled.** Each framework runs in its default configuration, in
  the configuration its chapter trained with, and in the fastest configuration its
  documentation recommends for a CPU; :func:`training_settings` and
  :func:`inference_settings` list them. A setting that does not work here is kept as an
  *unavailable* row with the reason, not dropped.
* **Speeds as ratios.** A row's time is compared with another row's measured in the same
  rounds: :func:`paired_ratio` divides them round by round.

Accuracy is compared over the recorded seed runs (:func:`seed_accuracy`, from
:mod:`dlfp.claims`) and, for the two trained models, with McNemar's test on their
predictions for the same test images (:func:`mcnemar`). The size of each framework's
code is counted by :func:`count_lines`.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..recipes import Batches, CNNConfig, learning_rate
from ..threads import available_cores, requested_threads

#: The side of the square images, in pixels (MNIST's: 28).
SIDE = CNNConfig.image_side

__all__ = [
    "FRAMEWORKS",
    "PYTORCH",
    "TENSORFLOW",
    "by_label",
    "DeviceMismatchError",
    "DLFP",
    "McNemar",
    "Plan",
    "FULL",
    "PAGE",
    "Row",
    "Setting",
    "check_devices",
    "count_lines",
    "fastest",
    "find",
    "inference_settings",
    "machine",
    "mcnemar",
    "mcnemar_p_exact",
    "paired_ratio",
    "run_inference",
    "run_training",
    "seed_accuracy",
    "set_threads",
    "table",
    "threads",
    "training_settings",
    "versus",
    "winner",
]


# --- Code size ------------------------------------------------------------------------


def count_lines(*objects) -> int:
    """Lines of code of functions or classes: no blank lines, comments, docstrings."""
    import ast
    import inspect
    import textwrap

    total = 0
    for obj in objects:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
        docstrings = set()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                value = body[0].value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
        for number, line in enumerate(source.splitlines(), start=1):
            stripped = line.strip()
            if stripped and not stripped.startswith("#") and number not in docstrings:
                total += 1
    return total


PYTORCH, TENSORFLOW = "PyTorch", "TensorFlow"
FRAMEWORKS = (PYTORCH, TENSORFLOW)
#: The book's own CNN (:mod:`dlfp.cnn`), a third training row: NumPy alone, on the CPU.
DLFP = "dlfp (NumPy)"


# --- McNemar's test ------------------------------------------------------------------


@dataclass(frozen=True)
class McNemar:
    """McNemar's test of two classifiers scored on the same examples.

    ``only_a`` (often called *b*) counts the examples that classifier A gets right and B
    wrong, ``only_b`` (*c*) the reverse. Under the null hypothesis that both have the
    same accuracy, each of the ``only_a + only_b`` discordant examples is equally
    likely to fall either way, so ``only_a`` is Binomial(only_a + only_b, 1/2).
    """

    both: int  #: right in both
    only_a: int  #: right in A only (b)
    only_b: int  #: right in B only (c)
    neither: int  #: wrong in both
    p_exact: float  #: two-sided exact binomial p-value
    chi2: float  #: (|b - c| - 1)^2 / (b + c), with the continuity correction
    p_chi2: float  #: its p-value, chi-square with one degree of freedom

    @property
    def discordant(self) -> int:
        return self.only_a + self.only_b

    @property
    def n(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither


def mcnemar_p_exact(b: int, c: int) -> float:
    """Two-sided exact p-value: ``2 P(X <= min(b, c))``, X ~ Binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers, one rounding at the division


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's test on two boolean arrays: is example i right for A, for B."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"McNemar's test needs two 1-D arrays over the same examples, not shapes "
            f"{a.shape} and {b.shape}."
        )
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    chi2 = (abs(only_a - only_b) - 1) ** 2 / n if n else 0.0
    if n and abs(only_a - only_b) < 1:
        chi2 = (
            0.0  # b = c: no evidence at all; the correction must not make it negative
        )
    return McNemar(
        both=int(np.sum(a & b)),
        only_a=only_a,
        only_b=only_b,
        neither=int(np.sum(~a & ~b)),
        p_exact=mcnemar_p_exact(only_a, only_b),
        chi2=float(chi2),
        p_chi2=math.erfc(math.sqrt(chi2 / 2)),  # P(chi2_1 > x) = P(|Z| > sqrt(x))
    )


def seed_accuracy(path: str | Path | None = None) -> dict[str, dict]:
    """Test accuracy over the recorded seed runs of each framework's recipe.

    :func:`dlfp.claims.load_runs` reads ``seeds.json``, installed with the package
    (written by ``benchmarks/seeds.py``); :func:`dlfp.claims.seed_summary` gives mean,
    spread and range. Keys: ``"PyTorch"`` and ``"TensorFlow"``.
    """
    from ..claims import load_runs, seed_summary

    return {
        PYTORCH: seed_summary(load_runs("torch-cnn", path)),
        TENSORFLOW: seed_summary(load_runs("keras-cnn", path)),
    }


# --- The machine and its threads ------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The processor, the cores this process may use, and the versions that matter."""
    from importlib import metadata

    versions = {}
    for package in ("numpy", "torch", "tensorflow-cpu", "tensorflow", "keras"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    for package in ("onnxruntime", "onnxscript", "tf2onnx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    if "tensorflow-cpu" in versions:  # one of the two is installed; name it once
        versions["tensorflow"] = versions.pop("tensorflow-cpu")
    return {
        "cpu": _cpu_model(),
        "cores": available_cores(),
        "logical_cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        # Other processes' demand: a 1-minute load average above the cores means the
        # timings shared the processor with them.
        "load_average": round(os.getloadavg()[0], 2)
        if hasattr(os, "getloadavg")
        else None,
    }


def set_threads(n: int | None = None) -> dict:
    """Give every pool of PyTorch and TensorFlow ``n`` threads, and return what each
    pool reports afterwards. The default is :func:`threads`: ``DLFP_THREADS`` when set,
    else the cores this process may use (its CPU affinity).

    Both frameworks accept the inter-op setting only before their first parallel
    work, and TensorFlow its intra-op setting too; where that moment has passed, the
    pool keeps its size, and the returned settings (recorded in every row) show it.
    """
    n = threads() if n is None else n
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):
            if torch.get_num_interop_threads() != n:
                torch.set_num_interop_threads(n)
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        threading = tf.config.threading
        with contextlib.suppress(RuntimeError):
            if threading.get_intra_op_parallelism_threads() != n:
                threading.set_intra_op_parallelism_threads(n)
        with contextlib.suppress(RuntimeError):
            if threading.get_inter_op_parallelism_threads() != n:
                threading.set_inter_op_parallelism_threads(n)
    return _pools()


def threads() -> int:
    """The threads every pool gets: ``DLFP_THREADS`` (or ``OMP_NUM_THREADS``) when set,
    else :func:`dlfp.threads.available_cores`. ONNX Runtime's sessions get as many."""
    return requested_threads() or available_cores()


def _pools() -> dict:
    """The pools' sizes, as recorded in every row: :func:`dlfp.threads.thread_settings`
    without NumPy's BLAS, which neither framework uses (and which is slow to ask)."""
    settings = {"cores": available_cores()}
    for name in ("OMP_NUM_THREADS", "DLFP_THREADS", "TF_ENABLE_ONEDNN_OPTS"):
        if os.environ.get(name):
            settings[name] = os.environ[name]
    torch = sys.modules.get("torch")
    if torch is not None:
        settings["torch_intra_op"] = torch.get_num_threads()
        settings["torch_inter_op"] = torch.get_num_interop_threads()
    tf = sys.modules.get("tensorflow")
    if tf is not None:  # 0: TensorFlow picks, one thread per available core
        settings["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        settings["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    return settings


# --- What runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How much of the experiment to run. :data:`FULL` and :data:`PAGE` are the two
    sizes used by ``benchmarks/cnn.py`` and by the verdict chapter."""

    train_steps: int | None = None  #: steps per timed block; None: one epoch
    train_rounds: int = 3  #: timed blocks per training configuration
    train_warmup: int = 1  #: untimed blocks first (tracing, compiling)
    components: bool = True  #: also the rows that change one setting at a time
    torch_compile: bool = True  #: try torch.compile (training and inference)
    steps_per_execution: int = 10  #: Keras's best configuration
    infer_images: int = 1000  #: images of the batched inference call
    batch_rounds: int = 7  #: timed batched calls per inference configuration
    single_rounds: int = 31  #: timed single-image calls per configuration
    infer_warmup: int = 3
    onnx: bool = True  #: export both models to ONNX and time ONNX Runtime
    dlfp: bool = True  #: also train the book's NumPy CNN (:mod:`dlfp.cnn`), on the CPU
    pause: float = 0.01  #: seconds of idling before each clock starts
    torch_device: str = "cpu"  #: where PyTorch runs ("cpu" or "cuda")
    tf_device: str = "CPU"  #: where TensorFlow runs ("CPU" or "GPU")


FULL = Plan()
#: The verdict page: 20 steps per block, fewer calls, sized for a build on two cores
#: (compiling for torch.compile and XLA is most of its cost).
PAGE = Plan(
    train_steps=20,
    components=False,
    batch_rounds=5,
    single_rounds=15,
    infer_warmup=2,
)


@dataclass(frozen=True)
class Setting:
    """One labelled configuration of one framework.

    ``role`` places it: ``"default"`` (the framework left as it comes), ``"chapter"``
    (what its chapter trained with), ``"component"`` (one setting changed), ``"best"``
    (the fastest configuration the framework documents for a CPU), ``"onnx"`` (the
    exported model, run by ONNX Runtime).
    """

    framework: str
    label: str
    role: str
    options: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Row:
    """One configuration's measurements, with the conditions they were taken under."""

    task: str  #: "training", "inference, batch" or "inference, one image"
    setting: Setting
    device: str  #: "cpu" or "gpu"
    unit: int  #: steps per block (training) or images per call (inference)
    seconds: list[float] = field(default_factory=list)  #: one per timed round
    warmup_seconds: list[float] = field(default_factory=list)
    threads: dict = field(default_factory=dict)  #: the pools, after the last round
    error: str | None = None  #: why the row is unavailable
    max_logit_diff: float | None = None  #: inference: against the framework's default

    @property
    def framework(self) -> str:
        return self.setting.framework

    @property
    def label(self) -> str:
        return self.setting.label

    @property
    def available(self) -> bool:
        return self.error is None and bool(self.seconds)

    def per_unit(self) -> np.ndarray:
        """Seconds per step (training) or per call (inference), one per round."""
        return np.asarray(self.seconds) / (self.unit if self.task == "training" else 1)

    def median(self) -> float:
        return float(np.median(self.per_unit()))

    def warmup_ratio(self) -> float:
        """The first, untimed block or call (tracing and compiling included), in units
        of the median timed one."""
        return self.warmup_seconds[0] / float(np.median(self.seconds))

    def quartiles(self) -> tuple[float, float]:
        q1, q3 = np.percentile(self.per_unit(), [25, 75])
        return float(q1), float(q3)

    def as_dict(self) -> dict:
        out = {
            "task": self.task,
            "framework": self.framework,
            "label": self.label,
            "role": self.setting.role,
            "options": self.setting.options,
            "device": self.device,
            "unit": self.unit,
            "seconds": [round(s, 6) for s in self.seconds],
            "warmup_seconds": [round(s, 6) for s in self.warmup_seconds],
            "threads": self.threads,
            "error": self.error,
        }
        if self.max_logit_diff is not None:
            out["max_logit_diff"] = self.max_logit_diff
        return out


class DeviceMismatchError(ValueError):
    """Rows measured on different devices were about to be compared."""


def _device_kind(name: str) -> str:
    name = name.lower().split(":")[0].lstrip("/")
    return "gpu" if name in {"cuda", "gpu"} else name


def check_devices(rows: Sequence[Row]) -> str:
    """The one device all rows ran on; :class:`DeviceMismatchError` when they differ."""
    devices = {}
    for row in rows:
        devices.setdefault(_device_kind(row.device), []).append(
            f"{row.framework} {row.label}"
        )
    if len(devices) > 1:
        where = "; ".join(f"{d}: {', '.join(names)}" for d, names in devices.items())
        raise DeviceMismatchError(
            f"Refusing to compare runs on different devices ({where}): run both "
            "frameworks on the same device."
        )
    return next(iter(devices), "cpu")


def _reason(error: BaseException) -> str:
    """One line saying why a setting failed: the exception's type and first line."""
    text = str(error).strip().splitlines()
    first = next((line.strip() for line in text if line.strip()), "")
    return f"{type(error).__name__}: {first[:300]}" if first else type(error).__name__


@contextlib.contextmanager
def _quiet():
    """Silence Python warnings and the compilers' progress messages inside a block."""
    loggers = [logging.getLogger(n) for n in ("torch", "tf2onnx", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _interleave(rows, runners, rounds, warmup, data_for_round, pause):
    """Run every available runner once per round, in an order that rotates.

    The garbage collector runs once per round, outside the clocks, and is off while a
    clock runs (as in :mod:`timeit`); before each clock starts, the process sleeps for
    ``pause`` seconds, so that threads a previous configuration left spinning are idle.
    """
    active = [i for i, row in enumerate(rows) if row.error is None]
    for r in range(warmup + rounds):
        data = data_for_round(r)  # built before any clock starts
        gc.collect()
        shift = r % max(1, len(active))
        for i in active[shift:] + active[:shift]:
            row = rows[i]
            if row.error is not None:
                continue
            time.sleep(pause)
            gc.disable()
            try:
                with _quiet():
                    start = time.perf_counter()
                    runners[i](data)
                    elapsed = time.perf_counter() - start
            except Exception as error:  # a setting that fails here: keep the reason
                row.error, row.seconds = _reason(error), []
                continue
            finally:
                gc.enable()
            (row.warmup_seconds if r < warmup else row.seconds).append(elapsed)
            row.threads = {**_pools(), **getattr(runners[i], "threads", {})}


# --- Training -------------------------------------------------------------------------


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
    """``torch_cnn.train``'s loop, one block of batches per call, with options."""

    def __init__(self, config: CNNConfig, total_steps: int, options: dict, device):
        import torch

        from .torch_cnn import CNN

        self.options, self.batch_size = options, config.batch_size
        self.dev = torch.device(device)
        self.layout = (
            torch.channels_last if options["channels_last"] else torch.contiguous_format
        )
        torch.manual_seed(config.seed)
        self.model = CNN(config).to(self.dev, memory_format=self.layout)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=config.weight_decay,
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: learning_rate(step, total_steps, config) / config.lr,
        )
        self.forward = torch.compile(self.model) if options["compile"] else self.model

    def __call__(self, block: tuple[np.ndarray, np.ndarray]) -> None:
        import torch
        from torch import nn

        images, labels = block
        size = self.batch_size
        with _torch_determinism(self.options["deterministic"]):
            self.model.train()
            seen, loss_sum, correct = 0, 0.0, 0
            for i in range(0, len(labels), size):
                x = torch.from_numpy(images[i : i + size]).reshape(-1, 1, SIDE, SIDE)
                x = x.to(self.dev).contiguous(memory_format=self.layout)
                y = torch.from_numpy(labels[i : i + size]).to(self.dev)
                logits = self.forward(x)
                loss = nn.functional.cross_entropy(logits, y)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.schedule.step()
                seen += len(y)
                loss_sum += loss.item() * len(y)
                correct += int((logits.argmax(dim=1) == y).sum())
            if self.dev.type == "cuda":
                torch.cuda.synchronize()
        self.metrics = {"loss": loss_sum / seen, "accuracy": correct / seen}


class _KerasTrainer:
    """``keras_cnn.train``'s ``compile`` and ``fit``, one block per call of ``fit``."""

    def __init__(self, config: CNNConfig, total_steps: int, options: dict, device):
        from . import keras_cnn

        keras, tf = keras_cnn.keras, keras_cnn.tf
        self.options, self.batch_size = options, config.batch_size
        self.device = f"/{device.upper()}:0"
        with _tf_determinism(options["deterministic"]), tf.device(self.device):
            keras.utils.set_random_seed(config.seed)
            self.model = keras_cnn.build_model(config)
            self.model.compile(
                optimizer=keras.optimizers.AdamW(
                    learning_rate=keras_cnn.Schedule(total_steps, config),
                    weight_decay=config.weight_decay,
                    beta_1=0.9,
                    beta_2=0.999,
                    epsilon=1e-8,
                ),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
                jit_compile=options["jit_compile"],
                steps_per_execution=options["steps_per_execution"],
            )
        if options["jit_compile"] is True and not self.model.jit_compile:
            raise RuntimeError("Keras turned jit_compile=True off for this model.")

    def __call__(self, block: tuple[np.ndarray, np.ndarray]) -> None:
        from .keras_cnn import tf

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


def _blas_threads(n: int):
    """NumPy's BLAS on ``n`` threads inside the block (threadpoolctl, when installed;
    else as it is, which is one thread per core unless OMP_NUM_THREADS says less)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


class _DlfpTrainer:
    """:func:`dlfp.cnn.train_cnn`'s loop, one block of batches per call: the same
    network, AdamW and schedule, in NumPy, with its BLAS on :func:`threads` threads."""

    def __init__(self, config: CNNConfig, total_steps: int, options: dict, device):
        from ..cnn import cnn
        from ..optim import AdamW

        if _device_kind(device) != "cpu":
            raise ValueError("dlfp computes with NumPy, on the CPU only.")
        self.config, self.total, self.step = config, total_steps, 0
        self.model = cnn(config, rng=np.random.default_rng(config.seed))
        self.optimizer = AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.threads = {"blas": threads()}

    def __call__(self, block: tuple[np.ndarray, np.ndarray]) -> None:
        from ..losses import softmax_cross_entropy
        from ..train import train_step

        images, labels = block
        size = self.config.batch_size
        seen, loss_sum, correct = 0, 0.0, 0
        with _blas_threads(self.threads["blas"]):
            for i in range(0, len(labels), size):
                X = images[i : i + size].reshape(-1, SIDE * SIDE)
                y = labels[i : i + size]
                self.optimizer.lr = learning_rate(self.step, self.total, self.config)
                loss, logits = train_step(
                    self.model, softmax_cross_entropy, self.optimizer, X, y
                )
                self.step += 1
                seen += len(y)
                loss_sum += loss * len(y)
                correct += int((logits.argmax(axis=1) == y).sum())
        self.metrics = {"loss": loss_sum / seen, "accuracy": correct / seen}


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
) -> list[Row]:
    """Time every training configuration on the same batches, interleaved.

    Each configuration trains its own network from the recipe's initialisation; round
    ``r`` feeds all of them epoch ``r`` of :class:`Batches` (or its first
    ``plan.train_steps`` batches). Returns one :class:`Row` per configuration.
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
    )
    return rows


def _device_of(setting: Setting, plan: Plan) -> str:
    if setting.framework == DLFP:
        return "cpu"
    return plan.torch_device if setting.framework == PYTORCH else plan.tf_device


# --- Inference ------------------------------------------------------------------------


def inference_settings(plan: Plan = FULL) -> list[Setting]:
    """The ways of running each trained network, in the order of the table."""
    rows = [
        Setting(
            PYTORCH,
            "eager, NCHW, no_grad",
            "default",
            {"channels_last": False, "inference_mode": False, "compile": False},
        ),
        Setting(
            PYTORCH,
            "eager, channels-last, inference_mode",
            "component",
            {"channels_last": True, "inference_mode": True, "compile": False},
        ),
    ]
    if plan.torch_compile:
        rows.append(
            Setting(
                PYTORCH,
                "torch.compile, channels-last, inference_mode",
                "best",
                {"channels_last": True, "inference_mode": True, "compile": True},
            )
        )
    if plan.onnx:
        rows.append(
            Setting(PYTORCH, "ONNX Runtime (torch.onnx export)", "onnx", {"onnx": True})
        )
    rows += [
        Setting(TENSORFLOW, "predict", "default", {"call": "predict"}),
        Setting(TENSORFLOW, "eager call, model(x)", "component", {"call": "eager"}),
        Setting(TENSORFLOW, "tf.function", "component", {"call": "function"}),
        Setting(
            TENSORFLOW,
            "tf.function with XLA (jit_compile=True)",
            "best",
            {"call": "function", "jit_compile": True},
        ),
    ]
    if plan.onnx:
        rows.append(
            Setting(
                TENSORFLOW,
                "ONNX Runtime (Keras export via tf2onnx)",
                "onnx",
                {"onnx": True},
            )
        )
    return rows


class _OnnxRunner:
    """An ONNX Runtime session with as many threads as the frameworks' pools."""

    def __init__(self, path: Path, layout: tuple[int, ...]):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads()
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.name, self.layout = self.session.get_inputs()[0].name, layout
        self.threads = {"ort_intra_op": threads(), "ort_inter_op": threads()}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.name: x.reshape(-1, *self.layout)})[0]


def _torch_inference(model, options: dict, device: str, folder: Path):
    import copy

    import torch

    from . import torch_cnn

    model = model.eval()
    if options.get("onnx"):
        return _OnnxRunner(
            torch_cnn.export_onnx(model, folder / "torch"), (1, SIDE, SIDE)
        )
    dev = torch.device(device)
    layout = (
        torch.channels_last if options["channels_last"] else torch.contiguous_format
    )
    net = copy.deepcopy(model).to(dev, memory_format=layout)
    forward = torch.compile(net, dynamic=False) if options["compile"] else net
    context = torch.inference_mode if options["inference_mode"] else torch.no_grad

    def call(x: np.ndarray) -> np.ndarray:
        with context():
            t = torch.from_numpy(x).reshape(-1, 1, SIDE, SIDE).to(dev)
            return forward(t.contiguous(memory_format=layout)).cpu().numpy()

    return call


def _keras_inference(model, options: dict, device: str, folder: Path):
    from . import keras_cnn

    tf = keras_cnn.tf
    if options.get("onnx"):
        return _OnnxRunner(
            keras_cnn.export_onnx(model, folder / "keras"), (SIDE, SIDE, 1)
        )
    where = f"/{device.upper()}:0"
    how = options["call"]
    if how == "function":
        serve = tf.function(
            lambda t: model(t, training=False),
            input_signature=[tf.TensorSpec([None, SIDE, SIDE, 1], tf.float32)],
            jit_compile=options.get("jit_compile", False),
        )

    def call(x: np.ndarray) -> np.ndarray:
        with tf.device(where):
            if how == "predict":
                return model.predict(x[..., None], batch_size=len(x), verbose=0)
            if how == "eager":
                return np.asarray(model(x[..., None], training=False))
            return serve(tf.constant(x[..., None])).numpy()

    return call


def run_inference(
    torch_model,
    keras_model,
    images: np.ndarray,
    plan: Plan = FULL,
    settings: Sequence[Setting] | None = None,
) -> list[Row]:
    """Time every way of running the two networks, for a batch and for one image.

    ``images`` (n, 28, 28) float32: the batch is the first ``plan.infer_images``, the
    single image the first. Every row also records the largest difference between
    its logits and those of its framework's default row, on the same images.
    """
    settings = inference_settings(plan) if settings is None else list(settings)
    images = np.ascontiguousarray(images[: plan.infer_images], dtype=np.float32)
    tasks = {
        "inference, batch": (images, plan.batch_rounds),
        "inference, one image": (images[:1], plan.single_rounds),
    }
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        runners: list[Callable | None] = []
        probe = [
            Row("inference", s, _device_kind(_device_of(s, plan)), 1) for s in settings
        ]
        check_devices(probe)
        errors: list[str | None] = []
        for s in settings:
            model = torch_model if s.framework == PYTORCH else keras_model
            make = _torch_inference if s.framework == PYTORCH else _keras_inference
            try:
                with _quiet():
                    runners.append(
                        make(model, s.options, _device_of(s, plan), Path(tmp))
                    )
                errors.append(None)
            except Exception as error:
                runners.append(None)
                errors.append(_reason(error))
        for task, (x, rounds) in tasks.items():
            mine = [
                Row(
                    task,
                    s,
                    _device_kind(_device_of(s, plan)),
                    len(x),
                    error=e,
                    threads=_pools(),
                )
                for s, e in zip(settings, errors, strict=True)
            ]
            _interleave(
                mine, runners, rounds, plan.infer_warmup, lambda r, x=x: x, plan.pause
            )
            _logit_differences(mine, runners, x)
            rows += mine
    return rows


def _logit_differences(rows: list[Row], runners, x: np.ndarray) -> None:
    """Each available row's largest |logit difference| to its framework's default."""
    reference = {}
    with _quiet():
        outputs = [
            np.asarray(run(x)) if row.available else None
            for row, run in zip(rows, runners, strict=True)
        ]
    for row, out in zip(rows, outputs, strict=True):
        if row.setting.role == "default" and out is not None:
            reference[row.framework] = out
    for row, out in zip(rows, outputs, strict=True):
        if out is not None and row.framework in reference:
            row.max_logit_diff = float(np.max(np.abs(out - reference[row.framework])))


# --- Reading the rows -----------------------------------------------------------------


def paired_ratio(a: Row, b: Row) -> dict:
    """Row ``a``'s time over row ``b``'s, round by round (both ran in every round).

    Returns ``median``, ``min`` and ``max`` of the per-round ratios: a ratio above 1
    means ``a`` is slower. Rows of the same task compare per step or per call.
    """
    if a.task != b.task:
        raise ValueError(f"cannot compare a {a.task} row with a {b.task} row")
    if not (a.available and b.available):
        raise ValueError("both rows must be available to be compared")
    check_devices([a, b])
    ratios = a.per_unit() / b.per_unit()
    return {
        "median": float(np.median(ratios)),
        "min": float(ratios.min()),
        "max": float(ratios.max()),
        "rounds": len(ratios),
    }


def fastest(rows: Sequence[Row], framework: str, task: str, *, onnx=False) -> Row:
    """The available row of ``framework`` and ``task`` with the lowest median time;
    ONNX Runtime rows count only with ``onnx=True`` (they are not the framework)."""
    candidates = [
        r
        for r in rows
        if r.framework == framework
        and r.task == task
        and r.available
        and (onnx or r.setting.role != "onnx")
    ]
    if not candidates:
        raise ValueError(f"no available {task} row for {framework}")
    return min(candidates, key=Row.median)


_RAISE = object()


def find(rows: Sequence[Row], framework: str, task: str, role: str, default=_RAISE):
    """The row of ``framework`` and ``task`` with the given role (the first one); when
    there is none, ``default`` if given, else :class:`KeyError`."""
    for r in rows:
        if r.framework == framework and r.task == task and r.setting.role == role:
            return r
    if default is not _RAISE:
        return default
    raise KeyError(f"no {task} row with role {role!r} for {framework}")


def by_label(rows: Sequence[Row], task: str, label: str) -> Row:
    """The row of ``task`` with this label (labels are those of the settings)."""
    for r in rows:
        if r.task == task and r.label == label:
            return r
    raise KeyError(f"no {task} row labelled {label!r}")


def winner(a: Row, b: Row) -> dict:
    """Which of two rows is faster, from their paired rounds.

    Returns ``faster`` (0 for ``a``, 1 for ``b``, None when the rounds do not settle
    it), ``factor`` (how many times faster, from the median ratio, at least 1),
    ``wins`` (rounds won by ``a`` and by ``b``), ``rounds`` and ``median`` (of the
    ratios ``a / b``). A row is faster when it was faster in every round, or in so
    many of them that a two-sided sign test (:func:`mcnemar_p_exact` on the counts)
    rejects, at the 5% level, that each row is equally likely to win a round.
    """
    r = paired_ratio(a, b)
    ratios = a.per_unit() / b.per_unit()
    wins = (int(np.sum(ratios < 1)), int(np.sum(ratios > 1)))
    n = r["rounds"]
    settled = n in wins or mcnemar_p_exact(*wins) < 0.05
    faster = None
    if settled and r["median"] != 1:
        faster = 0 if r["median"] < 1 else 1
    return {
        "faster": faster,
        "factor": max(r["median"], 1 / r["median"]),
        "wins": wins,
        "rounds": n,
        "median": r["median"],
    }


def versus(a: Row, b: Row, names: tuple[str, str], verb: str = "ran") -> str:
    """A clause that says which of two rows is faster and by how much (:func:`winner`),
    or that the rounds do not settle it. For prose whose winner must follow the
    measurement: "PyTorch trained faster than TensorFlow, by a factor of 1.52 (...)"."""
    w = winner(a, b)
    n = w["rounds"]
    if w["faster"] is None:
        return (
            f"{names[0]} and {names[1]} {verb} equally fast within the noise: "
            f"{names[0]} was faster in {w['wins'][0]} of {n} paired rounds, and the "
            f"median ratio of their times was {w['median']:.2f}"
        )
    faster, slower = names if w["faster"] == 0 else names[::-1]
    wins = w["wins"][w["faster"]]
    where = "every one" if wins == n else f"{wins} of them"
    return (
        f"{faster} {verb} faster than {slower}, by a factor of {w['factor']:.2f} "
        f"(the median of {n} paired rounds; {faster} was faster in {where})"
    )


def _ms(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"


ROLES = {
    "default": "default",
    "chapter": "as in its chapter",
    "component": "one setting changed",
    "best": "best documented for a CPU",
    "onnx": "exported",
}


def _ratio(x: float) -> str:
    return f"{x:.2f}" if 0.1 <= x < 100 else f"{x:.3g}"


def _threads_cell(row: Row) -> str:
    t = row.threads
    if row.setting.role == "onnx":
        return f"ORT {t.get('ort_intra_op', '?')}/{t.get('ort_inter_op', '?')}"
    if row.framework == DLFP:
        return f"BLAS {t.get('blas', '?')}"
    prefix = "torch" if row.framework == PYTORCH else "tf"
    intra, inter = (t.get(f"{prefix}_{pool}_op", "?") for pool in ("intra", "inter"))
    return f"{intra or 'auto'}/{inter or 'auto'}"  # TensorFlow's 0: it decides


def table(rows: Sequence[Row], task: str):
    """The rows of one task as a :class:`dlfp.report.Table`.

    Columns: framework, configuration, device, threads (intra-op/inter-op), median time
    per step or per call with its interquartile range, the paired ratio to the
    framework's default row and to the fastest row of the task, and the warm-up (first
    block or call, compilation included) in units of a timed one.
    """
    from ..report import Table

    mine = [r for r in rows if r.task == task]
    available = [r for r in mine if r.available]
    best = min(available, key=Row.median) if available else None
    defaults = {r.framework: r for r in available if r.setting.role == "default"}
    unit = "step" if task == "training" else "call"
    body = []
    for r in mine:
        if not r.available:
            body.append(
                [
                    r.framework,
                    f"{r.label} ({ROLES[r.setting.role]})",
                    r.device,
                    _threads_cell(r),
                    f"unavailable: {r.error}".replace("|", "/"),  # not a table rule
                    "—",
                    "—",
                    "—",
                ]
            )
            continue
        q1, q3 = r.quartiles()
        to_default = defaults.get(r.framework)
        body.append(
            [
                r.framework,
                f"{r.label} ({ROLES[r.setting.role]})",
                r.device,
                _threads_cell(r),
                f"{_ms(r.median())} ({_ms(q1)}–{_ms(q3)})",
                _ratio(paired_ratio(r, to_default)["median"]) if to_default else "—",
                _ratio(paired_ratio(r, best)["median"]),
                f"{r.warmup_ratio():.1f}" if r.warmup_seconds else "—",
            ]
        )
    return Table(
        [
            "framework",
            "configuration",
            "device",
            "threads",
            f"ms per {unit} (IQR)",
            "× default",
            "× fastest",
            f"first {'block' if unit == 'step' else 'call'}, × a timed one",
        ],
        body,
    )
