"""dlfp.frameworks.compare.production: sizes, export round trips, and the fresh
processes that time a cold start and read peak memory."""

from __future__ import annotations

import sys
import zipfile

import numpy as np
import pytest

from dlfp.frameworks.compare import production

from .conftest import SMALL_CNN


def _logits(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 10)).astype(np.float32)


def test_size_on_disk_counts_a_file_and_every_file_of_a_folder(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 24)
    assert production.size_on_disk(tmp_path / "a.bin") == 1000
    assert production.size_on_disk(tmp_path) == 1024
    assert production.MIB == 1024 * 1024


def test_size_on_disk_of_nothing_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved model"):
        production.size_on_disk(tmp_path / "missing.pt")


def test_a_faithful_round_trip_agrees_exactly(tmp_path):
    reference = _logits()
    labels = reference.argmax(1)
    images = np.zeros((12, 28, 28), np.float32)

    def export(folder):
        np.save(folder / "logits.npy", reference)
        return folder / "logits.npy"

    trip = production.round_trip(
        "NumPy", "npy", export, lambda p, x: np.load(p), reference, images, labels,
        tmp_path / "out",
    )  # fmt: skip
    assert trip.available and trip.max_diff == 0.0 and trip.agree
    assert trip.accuracy == trip.reference_accuracy == 1.0
    assert trip.bytes == production.size_on_disk(tmp_path / "out") > 0
    assert trip.mib == trip.bytes / production.MIB


def test_a_round_trip_measures_a_difference_and_a_changed_prediction(tmp_path):
    reference = _logits()
    labels = reference.argmax(1)
    moved = reference.copy()
    moved[0] = 0.0
    moved[0, (labels[0] + 1) % 10] = 100.0  # image 0 now predicts another class

    def export(folder):
        np.save(folder / "logits.npy", moved)
        return folder / "logits.npy"

    trip = production.round_trip(
        "NumPy", "npy", export, lambda p, x: np.load(p), reference,
        np.zeros((12, 28, 28)), labels, tmp_path / "out",
    )  # fmt: skip
    assert trip.max_diff == pytest.approx(np.abs(moved - reference).max())
    assert not trip.agree
    assert trip.accuracy == pytest.approx(11 / 12) and trip.reference_accuracy == 1.0


def test_an_export_that_cannot_run_becomes_a_row_with_its_reason(tmp_path):
    def export(folder):
        raise ImportError("No module named 'openvino'")

    reference = _logits()
    trip = production.round_trip(
        "TensorFlow", "OpenVINO", export, None, reference, np.zeros((12, 28, 28)),
        reference.argmax(1), tmp_path / "out",
    )  # fmt: skip
    assert not trip.available and trip.mib is None
    assert trip.reason == "ImportError: No module named 'openvino'"
    row = production.unavailable("PyTorch", "ExecuTorch", "not installed here")
    assert not row.available and row.reason == "not installed here"
    assert production.missing("numpy", "no_such_module_dlfp") == ["no_such_module_dlfp"]


def test_bad_round_trip_input_gives_a_clear_error(tmp_path):
    reference = _logits()
    with pytest.raises(ValueError, match="one of each per image"):
        production.round_trip(
            "NumPy", "npy", None, None, reference, np.zeros((3, 28, 28)),
            reference.argmax(1), tmp_path / "a",
        )  # fmt: skip

    def export(folder):
        return folder

    with pytest.raises(ValueError, match="logits of shape"):
        production.round_trip(
            "NumPy", "npy", export, lambda p, x: np.zeros((12, 3)), reference,
            np.zeros((12, 28, 28)), reference.argmax(1), tmp_path / "b",
        )  # fmt: skip


def test_a_keras_file_is_counted_and_anything_else_refused(tmp_path):
    h5py = pytest.importorskip("h5py")
    weights = tmp_path / "model.weights.h5"
    with h5py.File(weights, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=np.zeros((3, 4)))
        f.create_dataset("optimizer/vars/0", data=np.zeros(25))
    keras_file = tmp_path / "m.keras"
    with zipfile.ZipFile(keras_file, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.write(weights, "model.weights.h5")
    assert production.keras_file_parts(keras_file) == {"layers": 12, "optimizer": 25}
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("a.txt", "a")
    with pytest.raises(ValueError, match="not a .keras file"):
        production.keras_file_parts(other)


def test_summarise_and_a_bad_job_or_command():
    assert production.summarise([3.0, 1.0, 2.0]) == {
        "median": 2.0, "min": 1.0, "max": 3.0,
    }  # fmt: skip
    with pytest.raises(ValueError, match="no values"):
        production.summarise([])
    with pytest.raises(ValueError, match="unknown runtime"):
        production.Job("x", "jax", "model.bin")
    with pytest.raises(ValueError, match="unknown layout"):
        production.Job("x", "onnxruntime", "model.onnx", "hwcn")
    with pytest.raises(SystemExit, match="usage"):
        production.main(["serve"])


@pytest.mark.skipif(sys.platform == "win32", reason="no peak-memory measure on Windows")
def test_peak_memory_is_measured_in_mib():
    peak = production.peak_rss_mib()
    assert peak is not None and 1 < peak < 1e6
    assert production.peak_rss_mib() >= peak  # a high-water mark only rises


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """A small untrained PyTorch CNN exported to ONNX, and images for it."""
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from dlfp.frameworks import torch_cnn

    folder = tmp_path_factory.mktemp("onnx")
    path = torch_cnn.export_onnx(torch_cnn.CNN(SMALL_CNN), folder / "cnn")
    images = np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)
    np.save(folder / "images.npy", images)
    return path, folder / "images.npy"


def test_a_cold_start_in_fresh_processes(tiny_onnx):
    path, images = tiny_onnx
    job = production.Job("ONNX Runtime", "onnxruntime", path, "nchw")
    runs = production.cold_starts([job], images, repeats=2, threads=1)["ONNX Runtime"]
    assert len(runs) == 2
    for run in runs:
        # The parent's clock covers the child's own clocks, and peak memory only rises.
        assert run["wall"] > run["import"] + run["load"] + run["predict"] > 0
        assert run["classes"] == 10 and run["frameworks"] == []  # ONNX Runtime alone
        assert 0 < run["rss_import"] <= run["rss_first"] <= run["rss_batch"]


def test_a_child_that_takes_too_long_is_stopped_and_named(tiny_onnx):
    path, images = tiny_onnx
    job = production.Job("slow", "onnxruntime", path)
    with pytest.raises(TimeoutError, match="infer onnxruntime"):
        production.cold_starts([job], images, repeats=1, timeout=0.001)
    with pytest.raises(ValueError, match="share a label"):
        production.cold_starts([job, job], images)
    with pytest.raises(FileNotFoundError):
        production.cold_starts(
            [production.Job("gone", "onnxruntime", "x.onnx")], images
        )


def test_a_child_that_fails_reports_its_error(tmp_path, tiny_onnx):
    _, images = tiny_onnx
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    job = production.Job("broken", "onnxruntime", broken)
    with pytest.raises(RuntimeError, match="failed"):
        production.cold_starts([job], images, repeats=1)


def test_a_torch_export_round_trip_on_a_tiny_model(tmp_path):
    pytest.importorskip("torch")
    from dlfp.frameworks import torch_cnn

    model = torch_cnn.CNN(SMALL_CNN).eval()
    images = np.random.default_rng(1).random((16, 28, 28), dtype=np.float32)
    reference = torch_cnn.predict_logits(model, images)
    trip = production.round_trip(
        "PyTorch", "torch.export (.pt2)",
        lambda d: torch_cnn.export_program(model, d / "cnn"), torch_cnn.run_program,
        reference, images, reference.argmax(1), tmp_path / "pt2",
    )  # fmt: skip
    assert trip.available and trip.agree and trip.max_diff < 1e-4
    assert trip.accuracy == trip.reference_accuracy == 1.0


def test_a_litert_round_trip_on_a_tiny_keras_model(tmp_path):
    pytest.importorskip("tensorflow")
    from dlfp.frameworks import keras_cnn

    model = keras_cnn.build_model(SMALL_CNN)
    images = np.random.default_rng(2).random((16, 28, 28), dtype=np.float32)
    reference = keras_cnn.predict_logits(model, images)
    notices = []
    trip = production.round_trip(
        "TensorFlow", "LiteRT", lambda d: keras_cnn.export(model, d / "cnn", "litert"),
        lambda p, x: production.run_litert(p, x, notices=notices), reference, images,
        reference.argmax(1), tmp_path / "lite",
    )  # fmt: skip
    assert trip.available and trip.agree and trip.max_diff < 1e-4
    assert (tmp_path / "lite" / "cnn.tflite").is_file()
    if production.litert_runtime() == "tf.lite.Interpreter":
        assert any("deprecated" in n for n in notices), notices


def test_training_memory_in_a_fresh_process(tmp_path):
    pytest.importorskip("torch")
    from dlfp.recipes import recipe

    batch = recipe("torch-cnn").config.batch_size
    rng = np.random.default_rng(3)
    images = rng.random((3 * batch, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 3 * batch)
    result = production.training_memory(
        ["torch-cnn"], images, labels, tmp_path, threads=1
    )["torch-cnn"]
    assert result["steps"] == 2 and result["seconds"] > 0
    assert 0 < result["rss_import"] < result["rss_train"]
