"""Part III's CNN in dlfp: the architecture, AdamW, training, the artifacts folder,
step-for-step agreement with PyTorch, and the profile and speed functions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dlfp import conv
from dlfp.artifacts import trained
from dlfp.cnn import cnn
from dlfp.cnn import train as train_cnn
from dlfp.layers import Parameter
from dlfp.optim import AdamW
from dlfp.profile import profile_steps
from dlfp.recipes import CNNConfig, Recipe, load_mnist_for

#: A small version of the recipe: two narrow blocks, 2,000 training images, one epoch.
TINY = CNNConfig(
    channels=(8, 16), hidden=32, epochs=1, batch_size=32, subset=2200,
    validation_size=200,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_data():
    return load_mnist_for(TINY)


def test_dlfp_cnn_needs_neither_pytorch_nor_tensorflow():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['tensorflow'] = None\n"
        "import dlfp.cnn, dlfp.conv, dlfp.model\n"
        "print(dlfp.cnn.cnn().num_parameters())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == CNNConfig().parameter_count()


def test_the_network_is_the_one_the_config_describes():
    config = CNNConfig()
    model = cnn(config)
    kinds = [type(layer).__name__ for layer in model.layers]
    block = ["Conv2D", "BatchNorm2D", "ReLU", "MaxPool2D"]
    assert kinds == ["Reshape", *block * len(config.channels), "Flatten", "Dense"] + [
        "ReLU", "Dropout", "Dense",
    ]  # fmt: skip
    assert model.num_parameters() == config.parameter_count()  # eq. (eq-torch-params)
    X = np.zeros((2, 784), np.float32)
    assert model.predict_logits(X).shape == (2, 10)
    # The network starts from what PyTorch's does: He-uniform filters, variance 2/n_in.
    K = model.layers[9].params["K"]  # the last block's filters, 64 x 32 x 3 x 3
    assert abs(K.std() - np.sqrt(2 / (32 * 9))) < 0.05 * np.sqrt(2 / (32 * 9))


def test_adamw_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((4, 3)), rng.standard_normal(3)]
    grads = [np.zeros_like(v) for v in values]
    pairs = enumerate(zip(values, grads, strict=True))
    params = [Parameter(v, g, str(i), i == 0) for i, (v, g) in pairs]
    ours = AdamW(params, lr=0.01, weight_decay=0.1)
    tensors = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    theirs = torch.optim.AdamW(tensors, lr=0.01, weight_decay=0.1)
    for step in range(6):
        rate = 0.01 * (step + 1) / 6  # a schedule changes the rate between steps
        ours.lr = theirs.param_groups[0]["lr"] = rate
        for g, t in zip(grads, tensors, strict=True):
            g[...] = rng.standard_normal(g.shape)
            t.grad = torch.from_numpy(g.copy())
        ours.step()
        theirs.step()
    for v, t in zip(values, tensors, strict=True):  # biases decay too, as in PyTorch
        np.testing.assert_allclose(v, t.detach().numpy(), rtol=1e-12)


def test_adamw_can_decay_weights_only():
    value, grad = np.ones(3), np.zeros(3)
    optimizer = AdamW(
        [Parameter(value, grad, "b", False)], lr=0.1, weight_decay=0.5, decay_all=False
    )
    optimizer.step()
    np.testing.assert_array_equal(value, np.ones(3))


@pytest.mark.mnist
def test_training_is_reproducible_and_learns(tiny_data):
    model, history = train_cnn(TINY, tiny_data)
    _, again = train_cnn(TINY, tiny_data)
    assert history.step_loss == again.step_loss
    steps = TINY.steps_per_epoch(len(tiny_data.train.labels))
    assert len(history.step_loss) == steps and len(history.val_accuracy) == 1
    assert history.val_accuracy[0] > 0.5  # ten classes: chance is 0.1


@pytest.mark.mnist
def test_the_kept_cnn_keeps_its_batch_norm_statistics(tmp_path, monkeypatch, tiny_data):
    """The kept run (tests/test_artifacts.py) holds the running statistics too."""
    monkeypatch.setenv("DLFP_ARTIFACTS", str(tmp_path))
    recipe = Recipe("numpy-cnn", TINY)
    model = trained(recipe).model
    assert 0.5 < trained(recipe).test_accuracy <= 1  # the second call loads the run
    again = recipe.load(next(tmp_path.glob("numpy-cnn-*.npz")))
    X = tiny_data.test.flat[:50]
    np.testing.assert_array_equal(model.predict_logits(X), again.predict_logits(X))
    assert isinstance(again.layers[2], conv.BatchNorm2D)
    assert not np.all(again.layers[2].params["running_var"] == 1)  # statistics kept


@pytest.mark.mnist
def test_the_profile_names_products_and_copies(tiny_data):
    rows = profile_steps(TINY, tiny_data, steps=2, warmup=1)
    labels = {row["label"]: row for row in rows}
    assert "convolution: forward product" in labels
    assert "convolution: windows to rows (im2col)" in labels
    assert labels["convolution: windows to rows (im2col)"]["kind"] == "copy"
    assert sum(row["share"] for row in rows) == pytest.approx(1.0)
    assert all(row["seconds"] >= 0 for row in rows)
    assert [row["seconds"] for row in rows] == sorted(
        (row["seconds"] for row in rows), reverse=True
    )


# --- Against PyTorch ------------------------------------------------------------------


@pytest.mark.mnist
def test_copied_weights_give_pytorchs_outputs(tiny_data):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    from dlfp.frameworks.torch_cnn import CNN
    from dlfp.mirror import copy_from_torch

    net = CNN(TINY).double().eval()
    model = cnn(TINY, dtype=np.float64)
    copy_from_torch(model, net)
    X = tiny_data.test.flat[:64].astype(np.float64)
    with torch.no_grad():
        side = TINY.image_side
        theirs = net(torch.from_numpy(X).reshape(-1, 1, side, side)).numpy()
    np.testing.assert_allclose(model.predict_logits(X), theirs, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="same CNNConfig"):
        copy_from_torch(cnn(CNNConfig()), net)


@pytest.mark.parametrize(
    "dtype, steps, rtol",
    [
        # float64: the two agree to rounding, step after step
        (np.float64, 6, 1e-10),
        # float32: within float32's rounding, which batch normalisation amplifies and
        # Adam turns into differences of whole steps for the smallest gradients
        (np.float32, 20, 1e-2),
    ],
)
@pytest.mark.mnist
def test_lockstep_with_pytorch(tiny_data, dtype, steps, rtol):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    from dlfp.cnn import Rows
    from dlfp.mirror import cnn_twins, lockstep
    from dlfp.recipes import Batches, learning_rate

    config = CNNConfig(batch_size=32, subset=2200, validation_size=200)
    batches = Batches(tiny_data.train.images, tiny_data.train.labels, config)
    total = config.epochs * len(batches)
    model, net = cnn_twins(config, dtype)
    result = lockstep(
        model,
        net,
        Rows(batches, dtype),
        steps=steps,
        optimizer="adamw",
        lr=config.lr,
        weight_decay=config.weight_decay,
        schedule=lambda step: learning_rate(step, total, config),
        threads=1,
    )
    assert len(result.dlfp_loss) == len(result.param_gap) == steps
    np.testing.assert_allclose(
        result.dlfp_loss, result.torch_loss, rtol=rtol, err_msg="loss: ours vs PyTorch"
    )
    if dtype == np.float64:
        assert result.param_gap[-1] < 1e-10


@pytest.mark.mnist
def test_speed_ratio_times_both_in_one_process(tiny_data):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    from dlfp.frameworks.speed import speed_ratio

    result = speed_ratio(TINY, tiny_data, steps=2, rounds=2, warmup=1, threads=1)
    assert result["threads"] == 1 and len(result["dlfp_rounds_s"]) == 2
    per_round = np.divide(result["dlfp_rounds_s"], result["torch_rounds_s"])
    assert result["ratio"] == pytest.approx(float(np.median(per_round)))
    assert result["verdict"]["rounds"] == 2  # paired round by round


# --- The command line ---------------------------------------------------------------


@pytest.mark.mnist
def test_train_cnn_and_evaluate_on_the_command_line(tmp_path, capsys):
    from dlfp.cli import main
    from dlfp.model import load

    path = tmp_path / "cnn.npz"
    argv = (
        "train numpy-cnn --epochs 3 --subset 3000 --channels 8,16 --hidden 32 --lr 0.01"
    )
    assert main([*argv.split(), "--no-progress", "--output", str(path)]) == 0
    out = capsys.readouterr().out
    assert "training the CNN (8, 16) + 32 on 2,700 images" in out
    assert "test accuracy:" in out and f"saved to {path}" in out
    model = load(path)
    assert any(isinstance(layer, conv.Conv2D) for layer in model.layers)
    assert model.metadata["config"]["channels"] == [8, 16]
    accuracy = model.metadata["test_accuracy"]
    assert 0.7 < accuracy <= 1.0  # far above chance (0.1) after three short epochs
    assert main(["evaluate", str(path)]) == 0
    assert f"test accuracy {accuracy:.2%}" in capsys.readouterr().out


def test_train_cnn_refuses_a_zero_channel_count(capsys):
    from dlfp.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", "numpy-cnn", "--channels", "16,0"])
    assert exit_.value.code == 2
    assert "channel counts must be positive" in capsys.readouterr().err
