"""The inference half of the experiment: the settings, one runner per way of calling
a model (ONNX Runtime included), and the timed rounds."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .harness import Repeated, _interleave, _quiet, _reason
from .machine import _pools, threads
from .rows import (
    FULL,
    PYTORCH,
    SIDE,
    TENSORFLOW,
    Plan,
    Row,
    Setting,
    _device_kind,
    _device_of,
    check_devices,
)
from .training import _check_determinism, torch_settings

#: Where each framework documents the settings of its inference rows.
TORCH_INFERENCE_MODE = (
    "torch.inference_mode: docs.pytorch.org/docs/stable/generated/"
    "torch.autograd.grad_mode.inference_mode.html; channels-last: the performance "
    "tuning guide, docs.pytorch.org/tutorials/recipes/recipes/tuning_guide.html"
)
TORCH_MAX_AUTOTUNE = (
    "Inductor's freezing and max-autotune for CPU inference: the tutorial 'Using "
    "Max-Autotune Compilation on CPU for Better Performance', "
    "docs.pytorch.org/tutorials/prototype/max_autotune_on_CPU_tutorial.html (freezing "
    "only applies without autograd, torch/_inductor/compile_fx.py)"
)
TORCH_BF16 = (
    "torch.autocast(device_type='cpu', dtype=torch.bfloat16): "
    "docs.pytorch.org/docs/stable/amp.html (CPU ops that autocast to bfloat16)"
)
TF_FUNCTION = (
    "tf.function: tensorflow.org/guide/function; Model.predict runs a data pipeline "
    "and callbacks per call (keras.io/api/models/model_training_apis, predict: 'for "
    "small numbers of inputs ... use __call__')"
)
TF_XLA = "tf.function(jit_compile=True): openxla.org/xla/tf2xla"
KERAS_BF16 = (
    "the dtype policy 'mixed_bfloat16': tensorflow.org/guide/mixed_precision ('TPUs "
    "and supporting Intel CPUs can run operations in bfloat16 faster than float32')"
)

#: The options of ``torch.compile`` for the best PyTorch inference row: mode
#: "max-autotune" on a CPU (``torch._inductor.list_mode_options("max-autotune")`` in
#: PyTorch 2.13, less its CUDA graphs) and Inductor's freezing, passed to this
#: compilation only (``torch.compile`` applies ``options`` to its own compilations),
#: so the process-wide ``torch._inductor.config.freezing`` stays as it was.
MAX_AUTOTUNE_FROZEN = {
    "max_autotune": True,
    "coordinate_descent_tuning": True,
    "freezing": True,
}


def inference_settings(plan: Plan = FULL) -> list[Setting]:
    """The ways of running each trained network, in the order of the table, each with
    the source that documents it (:attr:`Setting.source`).

    PyTorch's best: channels-last, ``inference_mode``, ``torch.compile`` with
    Inductor's freezing and max-autotune, as its CPU tutorial does. Both frameworks'
    best way also runs in bfloat16 (role ``"bfloat16"``): this processor has
    AVX512-BF16, where both frameworks document it as faster.
    """
    eager = {"channels_last": True, "inference_mode": True, "compile": False}
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
            eager,
            TORCH_INFERENCE_MODE,
        ),
    ]
    if plan.torch_compile:
        rows.append(
            Setting(
                PYTORCH,
                "torch.compile, channels-last, inference_mode",
                "component",
                {**eager, "compile": True},
                TORCH_INFERENCE_MODE,
            )
        )
        frozen = {**eager, "compile": True, "compile_options": MAX_AUTOTUNE_FROZEN}
        rows += [
            Setting(
                PYTORCH,
                "torch.compile max-autotune, frozen, channels-last, inference_mode",
                "best",
                frozen,
                f"{TORCH_MAX_AUTOTUNE}; {TORCH_INFERENCE_MODE}",
            ),
            Setting(
                PYTORCH,
                "torch.compile max-autotune, frozen, autocast to bfloat16",
                "bfloat16",
                {**frozen, "bfloat16": True},
                f"{TORCH_MAX_AUTOTUNE}; {TORCH_BF16}",
            ),
        ]
    if plan.onnx:
        rows.append(
            Setting(PYTORCH, "ONNX Runtime (torch.onnx export)", "onnx", {"onnx": True})
        )
    rows += [
        Setting(TENSORFLOW, "predict", "default", {"call": "predict"}),
        Setting(
            TENSORFLOW,
            "eager call, model(x)",
            "component",
            {"call": "eager"},
            TF_FUNCTION,
        ),
        Setting(
            TENSORFLOW, "tf.function", "component", {"call": "function"}, TF_FUNCTION
        ),
        Setting(
            TENSORFLOW,
            "tf.function with XLA (jit_compile=True)",
            "best",
            {"call": "function", "jit_compile": True},
            f"{TF_FUNCTION}; {TF_XLA}",
        ),
        Setting(
            TENSORFLOW,
            "tf.function, mixed_bfloat16",
            "bfloat16",
            {"call": "function", "bfloat16": True},
            f"{TF_FUNCTION}; {KERAS_BF16}",
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


class _Runner:
    """One way of calling a model, with the process-wide settings it runs under: both
    frameworks' determinism off and PyTorch's subnormals kept (their defaults), set
    for every call and restored after it, so that no row depends on what ran before.
    TensorFlow's op determinism cannot be turned off: :func:`run_inference` checks it
    is off before any TensorFlow row runs (nothing turns it on during inference)."""

    def __init__(self, call: Callable, threads: dict | None = None):
        self.call = call
        if threads:
            self.threads = threads

    @contextlib.contextmanager
    def settings(self):
        import sys

        with contextlib.ExitStack() as stack:
            if "torch" in sys.modules:
                stack.enter_context(torch_settings(False))
            yield

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.call(x)


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

    from .. import torch_cnn

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
    forward = (
        torch.compile(net, dynamic=False, options=options.get("compile_options"))
        if options["compile"]
        else net
    )
    context = torch.inference_mode if options["inference_mode"] else torch.no_grad
    bf16 = options.get("bfloat16", False)

    def call(x: np.ndarray) -> np.ndarray:
        with context(), torch.autocast(dev.type, torch.bfloat16, enabled=bf16):
            t = torch.from_numpy(x).reshape(-1, 1, SIDE, SIDE).to(dev)
            out = forward(t.contiguous(memory_format=layout))
        return out.float().cpu().numpy()

    return call


def _keras_inference(model, options: dict, device: str, folder: Path):
    from .. import keras_cnn

    tf = keras_cnn.tf
    if options.get("onnx"):
        return _OnnxRunner(
            keras_cnn.export_onnx(model, folder / "keras"), (SIDE, SIDE, 1)
        )
    where = f"/{device.upper()}:0"
    how = options["call"]
    if options.get("bfloat16"):
        model = _mixed_bfloat16(model)
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
            return np.asarray(serve(tf.constant(x[..., None])), dtype=np.float32)

    return call


def _mixed_bfloat16(model):
    """A copy of a Keras model whose layers compute in bfloat16 and keep float32
    weights (the dtype policy ``"mixed_bfloat16"``), with the same weights. The
    global dtype policy is left as it was: the policy goes to each cloned layer."""
    import keras

    def clone(layer):
        config = {**layer.get_config(), "dtype": "mixed_bfloat16"}
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def run_inference(
    torch_model,
    keras_model,
    images: np.ndarray,
    plan: Plan = FULL,
    settings: Sequence[Setting] | None = None,
    share: tuple[int, int] = (0, 1),
) -> list[Row]:
    """Time every way of running the two networks, for a batch and for one image.

    ``images`` (n, 28, 28) float32: the batch is the first ``plan.infer_images``, the
    single image the first. A round of a row makes ``plan.batch_calls`` (or
    ``plan.single_calls``) consecutive calls, each timed (:class:`Repeated`), under
    the row's process-wide settings (:class:`_Runner`). Every row also records the
    largest difference between its logits and those of its framework's default row
    on the same images, and the share of images whose predicted class they share.
    ``share=(i, n)``: only this process's share of the timed rounds. Every row runs
    with both frameworks' determinism off: in a process where TensorFlow's is on
    (a Keras model trained here turns it on for good), TensorFlow's rows raise
    :class:`~.training.DeterminismError` before anything runs.
    """
    settings = inference_settings(plan) if settings is None else list(settings)
    _check_determinism(
        [s for s in settings if s.framework == TENSORFLOW and not s.options.get("onnx")]
    )
    images = np.ascontiguousarray(images[: plan.infer_images], dtype=np.float32)
    tasks = {
        "inference, batch": (images, plan.batch_rounds, plan.batch_calls),
        "inference, one image": (images[:1], plan.single_rounds, plan.single_calls),
    }
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        runners: list[_Runner | None] = []
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
                    call = make(model, s.options, _device_of(s, plan), Path(tmp))
                runners.append(_Runner(call, getattr(call, "threads", None)))
                errors.append(None)
            except Exception as error:
                runners.append(None)
                errors.append(_reason(error))
        for task, (x, rounds, calls) in tasks.items():
            mine = [
                Row(
                    task,
                    s,
                    _device_kind(_device_of(s, plan)),
                    len(x),
                    calls=calls,
                    error=e,
                    threads=_pools(),
                )
                for s, e in zip(settings, errors, strict=True)
            ]
            repeated = []
            for run in runners:
                if run is None:
                    repeated.append(None)
                    continue
                rep = Repeated(run, calls, run.settings)
                rep.threads = getattr(run, "threads", {})
                repeated.append(rep)
            _interleave(
                mine,
                repeated,
                rounds,
                plan.infer_warmup,
                lambda r, x=x: x,
                plan.pause,
                share,
            )
            _logit_differences(mine, runners, x)
            rows += mine
    return rows


def _logit_differences(rows: list[Row], runners, x: np.ndarray) -> None:
    """Each available row's largest |logit difference| to its framework's default, and
    the share of images whose predicted class is the default's."""
    reference = {}
    outputs = []
    for row, run in zip(rows, runners, strict=True):
        if not row.available:
            outputs.append(None)
            continue
        with _quiet(), run.settings():
            outputs.append(np.asarray(run(x), dtype=np.float32))
    for row, out in zip(rows, outputs, strict=True):
        if row.setting.role == "default" and out is not None:
            reference[row.framework] = out
    for row, out in zip(rows, outputs, strict=True):
        if out is not None and row.framework in reference:
            ref = reference[row.framework]
            row.max_logit_diff = float(np.max(np.abs(out - ref)))
            row.agreement = float(np.mean(out.argmax(1) == ref.argmax(1)))
