"""What runs and what is recorded: the plan, one labelled setting per configuration,
and the row of measurements each setting gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...recipes import CNNConfig

#: The side of the square images, in pixels (MNIST's: 28).
SIDE = CNNConfig.image_side


PYTORCH, TENSORFLOW = "PyTorch", "TensorFlow"


FRAMEWORKS = (PYTORCH, TENSORFLOW)


#: The book's own CNN (:mod:`dlfp.cnn`), a third training row: NumPy alone, on the CPU.
DLFP = "dlfp (NumPy)"


#: The longest the process idles before a clock, in seconds: it stops earlier, once
#: the thread pools (OpenBLAS, OpenMP, ONNX Runtime) have stopped spinning
#: (:func:`dlfp.frameworks.compare.harness.settle`); the verdict chapter measures how
#: long they spin (:func:`dlfp.frameworks.compare.idle_cpu`), and every row records
#: each wait and what the process still burnt at its end.
PAUSE = 0.5


@dataclass(frozen=True)
class Plan:
    """How much of the experiment to run. :data:`FULL` and :data:`PAGE` are the two
    sizes used by ``benchmarks/cnn.py`` and by the verdict chapter."""

    train_steps: int | None = None  #: steps per timed block; None: one epoch
    #: timed blocks per training configuration (FULL's processes time 10 training
    #: rows, whose Williams design has 10 orders; TensorFlow's row with op determinism
    #: runs in processes of its own)
    train_rounds: int = 10
    train_warmup: int = 1  #: untimed blocks first (tracing, compiling)
    components: bool = True  #: also the rows that change one setting at a time
    torch_compile: bool = True  #: try torch.compile (training and inference)
    steps_per_execution: int = 10  #: Keras's best configuration
    infer_images: int = 1000  #: images of the batched inference call
    batch_rounds: int = 24  #: timed rounds of batched calls per inference configuration
    single_rounds: int = 24  #: timed rounds of single-image calls per configuration
    batch_calls: int = 2  #: consecutive batched calls per round, each timed
    #: consecutive single-image calls per round, each timed: a round of one
    #: sub-millisecond call would time a pool's wake-up more than the call
    single_calls: int = 25
    infer_warmup: int = 2
    onnx: bool = True  #: export both models to ONNX and time ONNX Runtime
    dlfp: bool = True  #: also train the book's NumPy CNN (:mod:`dlfp.cnn`), on the CPU
    pause: float = PAUSE  #: the longest idle before each clock (:data:`PAUSE`)
    torch_device: str = "cpu"  #: where PyTorch runs ("cpu" or "cuda")
    tf_device: str = "CPU"  #: where TensorFlow runs ("CPU" or "GPU")


FULL = Plan()


#: The verdict page: 10 steps per block, sized for a build on two cores (compiling for
#: torch.compile and XLA is much of its cost). The 7 training rows of its main
#: processes (TensorFlow's with op determinism runs in processes of its own) and its
#: 12 inference rows make Williams designs of 14 and 12 orders: each runs once.
PAGE = Plan(
    train_steps=10,
    train_rounds=14,
    components=False,
    batch_rounds=12,
    single_rounds=12,
    batch_calls=1,
    single_calls=20,
    infer_warmup=2,
)


@dataclass(frozen=True)
class Setting:
    """One labelled configuration of one framework.

    ``role`` places it: ``"default"`` (the framework left as it comes), ``"chapter"``
    (what its chapter trained with), ``"component"`` (one setting changed), ``"best"``
    (the fastest configuration the framework documents for a CPU), ``"bfloat16"``
    (the best configuration, computing in bfloat16, as the frameworks document for
    processors with AVX512-BF16 or AMX: it changes the numbers, so it is kept apart
    from the float32 rows), ``"onnx"`` (the exported model, run by ONNX Runtime).
    ``source`` cites the documentation of the settings.
    """

    framework: str
    label: str
    role: str
    options: dict = field(default_factory=dict, hash=False, compare=False)
    #: where the framework documents the setting (a page of its documentation, or
    #: the installed source that implements it)
    source: str = field(default="", hash=False, compare=False)


@dataclass
class Row:
    """One configuration's measurements, with the conditions they were taken under."""

    task: str  #: "training", "inference, batch" or "inference, one image"
    setting: Setting
    device: str  #: "cpu" or "gpu"
    unit: int  #: steps per block (training) or images per call (inference)
    seconds: list[float] = field(default_factory=list)  #: one per timed round
    calls: int = 1  #: inference: the calls in each timed round (one clock each)
    #: inference: every timed call's seconds, round after round (``calls`` per round)
    latencies: list[float] = field(default_factory=list)
    warmup_seconds: list[float] = field(default_factory=list)
    threads: dict = field(default_factory=dict)  #: the pools, after the last round
    #: the process-wide settings during the last round
    #: (:func:`dlfp.frameworks.compare.machine.global_state`)
    state: dict = field(default_factory=dict)
    error: str | None = None  #: why the row is unavailable
    max_logit_diff: float | None = None  #: inference: against the framework's default
    #: inference: the share of images whose predicted class is the default row's
    agreement: float | None = None
    #: CPU seconds per second the process burnt at the end of the wait before each
    #: timed clock (threads of the previous configuration still spinning)
    idle: list[float] = field(default_factory=list)
    waited: list[float] = field(default_factory=list)  #: each wait, in seconds
    #: which process timed each round (all 0 when one process ran them all)
    process: list[int] = field(default_factory=list)
    #: the rounds a comparison may use (None: all); :func:`~.table.fastest` keeps out
    #: the rounds on which it chose the row
    rounds: tuple[int, ...] | None = field(default=None, compare=False)

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
        """Seconds per step (training) or per call (inference: the round's mean
        call), one per round."""
        per = self.unit if self.task == "training" else self.calls
        return np.asarray(self.seconds) / per

    def latency(self, q: float = 50) -> float:
        """Inference: the ``q``-th percentile of the single calls' seconds, over every
        timed call of every round (``q=90``: the 90th percentile, the tail latency
        that MLPerf's single-stream scenario reports)."""
        if not self.latencies:
            raise ValueError(f"{self.label}: no single calls timed")
        return float(np.percentile(self.latencies, q))

    def median(self) -> float:
        return float(np.median(self.per_unit()))

    def warmup_ratio(self) -> float:
        """The first, untimed block or call (tracing and compiling included), in units
        of the median timed one (inference: of the median round's mean call)."""
        if self.task == "training":
            return self.warmup_seconds[0] / float(np.median(self.seconds))
        return self.warmup_seconds[0] / float(np.median(self.per_unit()))

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
            "source": self.setting.source,
            "seconds": [round(s, 6) for s in self.seconds],
            "calls": self.calls,
            "latencies": [round(s, 7) for s in self.latencies],
            "warmup_seconds": [round(s, 6) for s in self.warmup_seconds],
            "threads": self.threads,
            "state": self.state,
            "idle": [round(x, 4) for x in self.idle],
            "waited": [round(x, 4) for x in self.waited],
            "error": self.error,
            "process": self.process,
        }
        if self.max_logit_diff is not None:
            out["max_logit_diff"] = self.max_logit_diff
        if self.agreement is not None:
            out["agreement"] = self.agreement
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Row:
        """The row that :meth:`as_dict` wrote (``benchmarks/cnn.py`` pools them)."""
        setting = Setting(
            d["framework"], d["label"], d["role"], d["options"], d.get("source", "")
        )
        return cls(
            d["task"],
            setting,
            d["device"],
            d["unit"],
            seconds=list(d["seconds"]),
            calls=d.get("calls", 1),
            latencies=list(d.get("latencies", [])),
            warmup_seconds=list(d["warmup_seconds"]),
            threads=dict(d["threads"]),
            state=dict(d.get("state", {})),
            error=d["error"],
            max_logit_diff=d.get("max_logit_diff"),
            agreement=d.get("agreement"),
            idle=list(d.get("idle", [])),
            waited=list(d.get("waited", [])),
            process=list(d.get("process", [])),
        )


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


def _device_of(setting: Setting, plan: Plan) -> str:
    if setting.framework == DLFP:
        return "cpu"
    return plan.torch_device if setting.framework == PYTORCH else plan.tf_device
