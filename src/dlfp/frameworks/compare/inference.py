"""The inference half of the experiment: the settings, one runner per way of calling
a model (ONNX Runtime included), and the timed rounds."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .harness import _interleave, _quiet, _reason
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
    forward = torch.compile(net, dynamic=False) if options["compile"] else net
    context = torch.inference_mode if options["inference_mode"] else torch.no_grad

    def call(x: np.ndarray) -> np.ndarray:
        with context():
            t = torch.from_numpy(x).reshape(-1, 1, SIDE, SIDE).to(dev)
            return forward(t.contiguous(memory_format=layout)).cpu().numpy()

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
    share: tuple[int, int] = (0, 1),
) -> list[Row]:
    """Time every way of running the two networks, for a batch and for one image.

    ``images`` (n, 28, 28) float32: the batch is the first ``plan.infer_images``, the
    single image the first. Every row also records the largest difference between
    its logits and those of its framework's default row, on the same images.
    ``share=(i, n)``: only this process's share of the timed rounds.
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
                mine,
                runners,
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
