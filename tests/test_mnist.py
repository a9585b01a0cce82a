"""Part II: the MNIST recipe, augmentation, agreement with PyTorch, the command line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlfp.cli import main
from dlfp.data import load_mnist, random_shift
from dlfp.model import load, mlp
from dlfp.recipes import MLPConfig, load_mnist_for
from dlfp.recipes.mlp import train as train_mlp

TINY = MLPConfig(hidden=(16,), epochs=1, validation_size=500, subset=3000, max_shift=1)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(validation_size=5000, seed=0)


@pytest.mark.mnist
def test_a_recipe_gets_the_split_it_names():
    config = MLPConfig(subset=2000, validation_size=500, seed=3)
    data = load_mnist_for(config)
    assert (len(data.train.labels), len(data.validation.labels)) == (1500, 500)
    same = load_mnist(subset=2000, validation_size=500, seed=3)
    np.testing.assert_array_equal(data.train.images, same.train.images)
    np.testing.assert_array_equal(data.validation.labels, same.validation.labels)


def test_random_shift_moves_whole_images():
    rng = np.random.default_rng(0)
    X = rng.random((50, 28, 28)).astype(np.float32)
    X[:, :2, :] = X[:, -2:, :] = X[:, :, :2] = X[:, :, -2:] = 0  # empty border
    shifted = random_shift(X, np.random.default_rng(1), max_shift=2)
    assert shifted.shape == X.shape and shifted.dtype == np.float32
    for original, moved in zip(X, shifted, strict=True):
        # Some shift (dy, dx) within +-2 maps the image exactly onto its shifted copy.
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(np.roll(original, (dy, dx), axis=(0, 1)), moved)
        ]
        assert len(matches) == 1
    flat = random_shift(X.reshape(50, -1), np.random.default_rng(1), max_shift=2)
    np.testing.assert_array_equal(flat, shifted.reshape(50, -1))  # same draws, flat
    assert not np.array_equal(shifted, random_shift(X, np.random.default_rng(2)))


@pytest.mark.mnist
def test_recipe_is_reproducible(mnist):
    small = load_mnist(validation_size=500, subset=3000, seed=0)
    m1, h1 = train_mlp(TINY)
    m2, h2 = train_mlp(TINY)
    assert h1.step_loss == h2.step_loss
    np.testing.assert_array_equal(
        m1.predict_logits(small.test.flat[:100]),
        m2.predict_logits(small.test.flat[:100]),
    )


# --- The same numbers as PyTorch ----------------------------------------------------


@pytest.mark.parametrize(
    "dtype, widths, dropout, n, rtol, weight_tol",
    [
        # float64: the two agree to rounding, in losses and in weights, for 50 steps
        (np.float64, [784, 64, 32, 10], 0.0, 3200, 1e-10, 1e-10),
        # with dropout: PyTorch's dropout applies the masks dlfp drew
        (np.float64, [784, 64, 10], 0.5, 1280, 1e-10, 1e-10),
        # float32: to float32 tolerance over 20 steps
        (np.float32, [784, 64, 10], 0.0, 1280, 1e-5, None),
    ],
)
@pytest.mark.mnist
def test_lockstep_with_pytorch(mnist, dtype, widths, dropout, n, rtol, weight_tol):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    from dlfp.mirror import lockstep, to_torch
    from dlfp.train import Shuffled

    rng = np.random.default_rng(0)
    model = mlp(widths, dropout=dropout, rng=rng, dtype=dtype)
    batches = Shuffled(mnist.train.flat[:n], mnist.train.labels[:n], 64, rng)
    result = lockstep(model, to_torch(model), batches, lr=1e-3)
    assert len(result.dlfp_loss) == len(result.param_gap) == n // 64
    np.testing.assert_allclose(
        result.dlfp_loss, result.torch_loss, rtol=rtol, err_msg="loss: ours vs PyTorch"
    )
    np.testing.assert_array_equal(result.epoch_gap, result.param_gap[-1:])
    if weight_tol is not None:
        assert result.epoch_gap[-1] < weight_tol


@pytest.mark.mnist
def test_torch_copy_has_the_same_outputs(mnist):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    from dlfp.mirror import to_torch

    model = mlp([784, 32, 10], "tanh", rng=np.random.default_rng(0))
    net = to_torch(model)
    X = mnist.test.flat[:256]
    with torch.no_grad():
        theirs = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(model.predict_logits(X), theirs, rtol=1e-5, atol=1e-6)


# --- The command line ---------------------------------------------------------------


@pytest.mark.mnist
def test_train_and_evaluate_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "small.npz"
    args = "train mlp --epochs 5 --lr 0.003 --hidden 32 --subset 3000 --dropout 0"
    code = main(
        [*args.split(), "--max-shift", "0", "--output", str(path), "--no-progress"]
    )
    out = capsys.readouterr().out
    assert code == 0 and path.is_file()
    assert "test accuracy:" in out and f"saved to {path}" in out
    accuracy = load(path).metadata["test_accuracy"]
    assert 0.8 < accuracy < 1.0
    assert main(["evaluate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy {accuracy:.2%}" in out and "confusion matrix" in out
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(rows) == 10  # one row per true digit


def test_command_line_errors_are_one_sentence(tmp_path, capsys, monkeypatch):
    bogus = tmp_path / "bogus.npz"
    bogus.write_text("not a model")
    assert main(["evaluate", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dlfp: error: ") and "Traceback" not in err
    assert err.strip().endswith(".") and err.count("\n") == 1
    monkeypatch.setenv("DLFP_MNIST_MIRRORS", "http://127.0.0.1:9/")
    code = main(
        [
            "--data-dir",
            str(tmp_path / "nothing"),
            "train",
            "mlp",
            "--epochs",
            "1",
            "--no-progress",
            "-o",
            str(tmp_path / "m.npz"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "DLFP_DATA_DIR" in err and "Traceback" not in err


def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "dlfp.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "train" in result.stdout
    # The console script sits beside the interpreter of the environment.
    script = shutil.which("dlfp", path=str(Path(sys.executable).parent))
    assert script is not None, "the 'dlfp' console script is not installed"
    result = subprocess.run([script, "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "{mlp,numpy-cnn}" in result.stdout
    for kind, option in (("mlp", "--hidden"), ("numpy-cnn", "--channels")):
        result = subprocess.run(
            [script, "train", kind, "--help"], capture_output=True, text=True
        )
        assert result.returncode == 0 and option in result.stdout, kind
        assert "--max-shift" in result.stdout
