"""The production half of the verdict: the trained models outside their training code.

What a deployed model costs is measured here, never assumed:

* **Size on disk** (:func:`size_on_disk`): a saved file, or a folder such as a
  SavedModel, in bytes; :func:`keras_file_parts` counts what a ``.keras`` file holds
  (the layers' weights, and the optimizer's state when it was saved after training).
* **Export round trips** (:func:`round_trip`): export a model, load the export in its
  runtime, run it on test images and compare its logits and its accuracy with the model
  in memory. An export that cannot run here (a package not installed, a format the
  backend refuses) becomes a :class:`RoundTrip` that says why, not a gap.
  :func:`dlfp.frameworks.keras_cnn.export` (format ``"litert"``) and :func:`run_litert`
  are the LiteRT route of a Keras model (TensorFlow's converter, then the LiteRT
  interpreter).
* **Cold start and peak memory**, each in a fresh Python process, spawned with
  ``sys.executable -m dlfp.frameworks.compare.production`` (:func:`main` is the child's
  side): :func:`cold_starts` times from the spawn to the first prediction, with several
  interleaved repeats of every :class:`Job`, and reads the child's peak resident memory
  after importing the runtime alone, after the first prediction and after a batch;
  :func:`training_memory` does the same for a short training run. The children read
  only local files and print only their JSON results; their standard error goes to a
  file, shown only when a child fails.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .._quiet import stderr_to_devnull
from .._spawn import exit_now, worker_env
from .rows import SIDE

__all__ = [
    "size_on_disk",
    "MIB",
    "keras_file_parts",
    "RoundTrip",
    "round_trip",
    "unavailable",
    "missing",
    "run_litert",
    "litert_runtime",
    "peak_rss_mib",
    "Job",
    "cold_starts",
    "training_memory",
    "summarise",
    "main",
]

#: Bytes in a mebibyte (2**20): sizes and memory are reported in MiB.
MIB = 2**20
#: How each runtime wants the images: channels first (PyTorch, and its ONNX export) or
#: channels last (Keras, its ONNX export and LiteRT).
LAYOUTS = {"nchw": (1, SIDE, SIDE), "nhwc": (SIDE, SIDE, 1)}


# --- Size on disk ---------------------------------------------------------------------


def size_on_disk(path: str | os.PathLike) -> int:
    """Bytes of the file at ``path``, or of every file under the folder ``path``."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    raise FileNotFoundError(f"no saved model at {path}: nothing to measure")


def keras_file_parts(path: str | os.PathLike) -> dict[str, int]:
    """How many numbers a ``.keras`` file holds, by the top-level group of its weights
    file: ``"layers"`` (the model's weights and batch-norm statistics) and, when the
    model was saved with its optimizer, ``"optimizer"`` (its state: AdamW's moment
    estimates and step counter)."""
    import io
    import zipfile

    import h5py  # installed with Keras, which writes these files with it

    with zipfile.ZipFile(path) as archive:
        if "model.weights.h5" not in archive.namelist():
            raise ValueError(f"{path} holds no model.weights.h5: not a .keras file")
        data = archive.read("model.weights.h5")

    def count(group) -> int:
        return sum(
            item.size if isinstance(item, h5py.Dataset) else count(item)
            for item in group.values()
        )

    with h5py.File(io.BytesIO(data), "r") as weights:
        return {name: count(weights[name]) for name in weights}


# --- Export round trips ---------------------------------------------------------------


@dataclasses.dataclass
class RoundTrip:
    """One export, loaded back and run: how far its logits are from the model's in
    memory, whether every predicted class agrees, the accuracy of both on the same
    labelled images, and the export's size. ``reason`` says why an unavailable export
    did not run."""

    framework: str
    name: str
    available: bool
    reason: str | None = None
    max_diff: float | None = None
    agree: bool | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    bytes: int | None = None

    @property
    def mib(self) -> float | None:
        return None if self.bytes is None else self.bytes / MIB


def unavailable(framework: str, name: str, reason: str) -> RoundTrip:
    """An export that did not run here, and why."""
    return RoundTrip(framework, name, False, reason)


def missing(*modules: str) -> list[str]:
    """The modules of ``modules`` that are not installed."""
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def round_trip(
    framework: str,
    name: str,
    export: Callable[[Path], Path],
    run: Callable[[Path, np.ndarray], np.ndarray],
    reference: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    folder: str | os.PathLike,
) -> RoundTrip:
    """Export into the new folder ``folder`` (``export(folder)`` returns what it wrote),
    run the export on ``images`` and compare with ``reference``, the logits of the model
    in memory for the same images.

    An export the installed packages cannot make or run (ImportError, or a ValueError
    or NotImplementedError from the exporter) is returned as unavailable, with the
    error's first line as the reason; any other error is raised.
    """
    if len(images) != len(labels) or len(images) != len(reference):
        raise ValueError(
            f"{len(images)} images, {len(labels)} labels and {len(reference)} "
            "reference logits: give one of each per image"
        )
    folder = Path(folder)
    folder.mkdir(parents=True)
    try:
        path = export(folder)
        logits = np.asarray(run(path, images))
    except (ImportError, ValueError, NotImplementedError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return unavailable(framework, name, f"{type(error).__name__}: {reason}")
    if logits.shape != reference.shape:
        raise ValueError(
            f"{framework} → {name}: logits of shape {logits.shape}, expected "
            f"{reference.shape}"
        )
    return RoundTrip(
        framework,
        name,
        True,
        max_diff=float(np.max(np.abs(logits - reference))),
        agree=bool(np.all(logits.argmax(1) == reference.argmax(1))),
        accuracy=float(np.mean(logits.argmax(1) == labels)),
        reference_accuracy=float(np.mean(reference.argmax(1) == labels)),
        bytes=size_on_disk(folder),
    )


# --- LiteRT: TensorFlow's converter and the LiteRT interpreter ------------------------


def litert_runtime() -> str:
    """The LiteRT interpreter that :func:`run_litert` uses: the ``ai_edge_litert``
    package when it is installed, else TensorFlow's ``tf.lite.Interpreter``."""
    if not missing("ai_edge_litert"):
        return "ai_edge_litert.interpreter.Interpreter"
    return "tf.lite.Interpreter"


def _interpreter(path: Path):
    """A LiteRT interpreter for ``path`` and the warnings its construction raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if litert_runtime().startswith("ai_edge_litert"):
            from ai_edge_litert.interpreter import Interpreter
        else:
            from .._quiet import import_tensorflow

            Interpreter = import_tensorflow().lite.Interpreter
        interpreter = Interpreter(model_path=str(path))
    return interpreter, [str(w.message).strip() for w in caught]


def run_litert(
    path: str | os.PathLike, images: np.ndarray, *, notices: list | None = None
) -> np.ndarray:
    """Logits from a ``.tflite`` model for images of shape (n, 28, 28), run by the
    LiteRT interpreter (:func:`litert_runtime`) on the whole batch at once. The
    warnings the interpreter raises (TensorFlow's deprecates ``tf.lite.Interpreter``)
    are appended to ``notices`` when it is given, and never printed."""
    x = np.ascontiguousarray(images.reshape(-1, SIDE, SIDE, 1), dtype=np.float32)
    with stderr_to_devnull():  # the interpreter announces its XNNPACK delegate
        interpreter, caught = _interpreter(Path(path))
        entry = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(entry["index"], list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(entry["index"], x)
        interpreter.invoke()
        logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    if notices is not None:
        notices.extend(caught)
    return np.array(logits)


# --- Fresh processes: cold start and peak memory --------------------------------------


def peak_rss_mib() -> float | None:
    """This process's peak resident memory so far, in MiB, or None where the platform
    offers no measure.

    On Linux it is the high-water mark of the process's own memory, ``VmHWM`` in
    ``/proc/self/status``. Not ``getrusage``'s ``ru_maxrss``: Linux carries that over
    from the parent's memory image through ``fork`` (or ``vfork``) and ``exec``, so a
    child spawned by a large notebook process would report the notebook's size.
    Elsewhere (macOS) it is ``ru_maxrss``, in bytes there.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kibibytes
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MIB if sys.platform == "darwin" else 1024)


@dataclasses.dataclass(frozen=True)
class Job:
    """One way of serving a saved model in a fresh process: ``runtime`` is
    ``"torch-cnn"`` or ``"keras-cnn"`` (the framework's module loads its saved file) or
    ``"onnxruntime"`` (ONNX Runtime alone, no framework), ``layout`` the image layout an
    ONNX model expects (``"nchw"`` or ``"nhwc"``)."""

    label: str
    runtime: str
    path: Path
    layout: str = "nchw"

    def __post_init__(self):
        if self.runtime not in ("torch-cnn", "keras-cnn", "onnxruntime"):
            raise ValueError(
                f"unknown runtime {self.runtime!r}: use 'torch-cnn', 'keras-cnn' or "
                "'onnxruntime'"
            )
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}: use 'nchw' or 'nhwc'")


def _child_env(threads: int | None) -> dict:
    """The children's environment: :func:`dlfp.frameworks._spawn.worker_env`, with
    Python's warnings off (a child prints only its JSON results)."""
    return worker_env(threads, PYTHONWARNINGS="ignore")


def _spawn(args: Sequence[str], threads: int | None, timeout: float, lines: int):
    """Run ``python -m dlfp.frameworks.compare.production *args``; return the wall
    seconds from the spawn to each of the first ``lines`` JSON lines it prints, and
    the lines, parsed."""
    import selectors

    command = [sys.executable, "-m", __name__, *args]
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            env=_child_env(threads),
        )
        stamps, results, buffer = [], [], b""
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            while len(results) < lines:
                left = start + timeout - time.perf_counter()
                if left <= 0 or not selector.select(left):
                    child.kill()
                    child.wait()
                    raise TimeoutError(
                        f"{' '.join(args)}: no result after {timeout:.0f} s; stopped"
                    )
                chunk = os.read(child.stdout.fileno(), 65536)
                if not chunk:
                    break  # the child ended
                buffer += chunk
                while b"\n" in buffer and len(results) < lines:
                    line, buffer = buffer.split(b"\n", 1)
                    stamps.append(time.perf_counter() - start)
                    results.append(json.loads(line))
        try:
            code = child.wait(timeout=max(1.0, start + timeout - time.perf_counter()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            raise TimeoutError(f"{' '.join(args)}: did not exit; stopped") from None
        child.stdout.close()
        if code != 0 or len(results) < lines:
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(
                f"{' '.join(args)} failed (exit status {code}):\n" + "\n".join(tail)
            )
    return stamps, results


def cold_starts(
    jobs: Sequence[Job],
    images: str | os.PathLike,
    *,
    repeats: int = 3,
    threads: int | None = None,
    timeout: float = 120.0,
) -> dict[str, list[dict]]:
    """Each job, ``repeats`` times, each time in a fresh process, the jobs interleaved
    (round r runs them in an order rotated by r). ``images`` is a ``.npy`` file of
    images (n, 28, 28): the child predicts the first one, then all of them.

    Returns, by job label, one dict per repeat: ``wall`` (seconds from the spawn to the
    first prediction, as this process saw it), the child's own ``import``, ``load`` and
    ``predict`` seconds, the ``frameworks`` (PyTorch, TensorFlow) it had imported by
    then, and its peak resident memory in MiB after importing the runtime
    (``rss_import``), after the first prediction (``rss_first``) and after the batch
    (``rss_batch``).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    labels = [job.label for job in jobs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two jobs share a label: {labels}")
    for job in jobs:
        size_on_disk(job.path)  # a clear error now for a missing file
    out = {job.label: [] for job in jobs}
    for r in range(repeats):
        shift = r % len(jobs)
        for job in [*jobs[shift:], *jobs[:shift]]:
            args = ["infer", job.runtime, str(job.path), str(images), job.layout]
            (first, _), (timed, batch) = _spawn(args, threads, timeout, 2)
            out[job.label].append(
                {"wall": first, **timed, "rss_batch": batch["rss_batch"]}
            )
    return out


def training_memory(
    runtimes: Sequence[str],
    images: np.ndarray,
    labels: np.ndarray,
    folder: str | os.PathLike,
    *,
    threads: int | None = None,
    timeout: float = 180.0,
) -> dict[str, dict]:
    """Train each runtime's network (``"torch-cnn"``, ``"keras-cnn"``) for one epoch on
    ``images`` and ``labels`` (the last ``batch_size`` of them kept for its validation
    pass), with the framework's own ``train`` and the recipe's configuration, once each
    in a fresh process. Returns, by runtime, the child's peak resident memory in MiB
    after importing the framework (``rss_import``) and after training (``rss_train``),
    the training's ``seconds`` and its ``steps``."""
    path = Path(folder) / "train.npz"
    np.savez(path, images=images.astype(np.float32), labels=labels.astype(np.int64))
    out = {}
    for runtime in runtimes:
        _, (result,) = _spawn(["train", runtime, str(path)], threads, timeout, 1)
        out[runtime] = result
    return out


def summarise(values: Sequence[float]) -> dict[str, float]:
    """Median, minimum and maximum of ``values`` (plain floats)."""
    if len(values) == 0:
        raise ValueError("nothing to summarise: no values")
    return {
        "median": float(np.median(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


# --- The child's side -----------------------------------------------------------------


def _emit(result: dict) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def _infer(runtime: str, path: str, images_path: str, layout: str) -> None:
    t0 = time.perf_counter()
    if runtime == "onnxruntime":
        import onnxruntime

        from ...threads import requested_threads

        def load(p):
            options = onnxruntime.SessionOptions()
            if (n := requested_threads()) is not None:
                options.intra_op_num_threads = options.inter_op_num_threads = n
            return onnxruntime.InferenceSession(
                p, options, providers=["CPUExecutionProvider"]
            )

        def predict(session, x):
            name = session.get_inputs()[0].name
            x = x.reshape(-1, *LAYOUTS[layout]).astype(np.float32)
            return session.run(None, {name: x})[0]

    else:
        from ...recipes import recipe
        from .. import backend

        module = backend.get(runtime)  # imports the framework

        def load(p):
            return module.load(p, recipe(runtime).config)

        def predict(model, x):
            return module.predict_logits(model, x)

    t1 = time.perf_counter()
    rss_import = peak_rss_mib()
    images = np.load(images_path)
    model = load(path)
    t2 = time.perf_counter()
    logits = predict(model, images[:1])
    t3 = time.perf_counter()
    _emit(
        {
            "import": t1 - t0,
            "load": t2 - t1,
            "predict": t3 - t2,
            "classes": int(np.asarray(logits).shape[-1]),
            "frameworks": [m for m in ("torch", "tensorflow") if m in sys.modules],
            "rss_import": rss_import,
            "rss_first": peak_rss_mib(),
        }
    )
    predict(model, images)
    _emit({"rss_batch": peak_rss_mib()})


def _train(runtime: str, data_path: str) -> None:
    import dataclasses as dc

    from ...data import MNIST, Split
    from ...recipes import recipe
    from .. import backend

    module = backend.get(runtime)  # imports the framework
    rss_import = peak_rss_mib()
    arrays = np.load(data_path)
    images, labels = arrays["images"], arrays["labels"]
    config = dc.replace(recipe(runtime).config, epochs=1)
    held = config.batch_size  # the validation pass of `train` needs some images
    if len(images) <= held:
        raise ValueError(f"{len(images)} images: give more than {held} to train on")
    data = MNIST(
        Split(images[:-held], labels[:-held]),
        Split(images[-held:], labels[-held:]),
        Split(images[:0], labels[:0]),
    )
    start = time.perf_counter()
    module.train(config, data)
    _emit(
        {
            "seconds": time.perf_counter() - start,
            "steps": config.steps_per_epoch(len(images) - held),
            "rss_import": rss_import,
            "rss_train": peak_rss_mib(),
        }
    )


def main(argv: Sequence[str] | None = None) -> None:
    """The child's side: ``infer RUNTIME MODEL IMAGES.npy LAYOUT`` or
    ``train RUNTIME DATA.npz``; prints its results as JSON lines."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["infer"] and len(args) == 5:
        _infer(*args[1:])
    elif args[:1] == ["train"] and len(args) == 3:
        _train(*args[1:])
    else:
        raise SystemExit(
            "usage: python -m dlfp.frameworks.compare.production "
            "infer RUNTIME MODEL IMAGES.npy LAYOUT | train RUNTIME DATA.npz"
        )


if __name__ == "__main__":
    main()
    exit_now()  # the results are out: skip the teardown
