"""Part III: the same CNN in PyTorch and in Keras."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

from dlfp import artifacts
from dlfp.frameworks import backend
from dlfp.recipes import Batches, CNNConfig, learning_rate
from dlfp.report import count_lines
from dlfp.train import History

from .conftest import SMALL_CNN

# What both frameworks share runs with NumPy alone; each PyTorch or Keras test asks for
# its framework through a fixture and skips when that framework is not installed.


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed")


@pytest.fixture(scope="module")
def torch_cnn(torch):
    return pytest.importorskip("dlfp.frameworks.torch_cnn")


@pytest.fixture(scope="module")
def keras_cnn():
    return pytest.importorskip("dlfp.frameworks.keras_cnn", reason="TensorFlow missing")


# --- What both share ----------------------------------------------------------------


def test_schedule_warms_up_then_decays_to_zero():
    config = CNNConfig(lr=0.01, warmup=0.2)
    rates = [learning_rate(s, 100, config) for s in range(101)]
    assert rates[0] == 0 and max(rates) == pytest.approx(0.01)
    assert np.argmax(rates) == 20 and rates[-1] == pytest.approx(0, abs=1e-12)
    assert all(a <= b for a, b in zip(rates[:20], rates[1:21], strict=True))
    assert all(a >= b for a, b in zip(rates[20:-1], rates[21:], strict=True))


def test_mnist_sizes_stay_out_of_the_artifact_key():
    """The image side and the class count are MNIST's, not the recipe's (ClassVars,
    not fields): the key of a kept model, made from ``dataclasses.asdict`` of its
    recipe (:func:`dlfp.artifacts.key`), changes with what the recipe chooses only."""
    config = CNNConfig(channels=(4, 8))
    assert {"image_side", "classes"}.isdisjoint(dataclasses.asdict(config))


# --- The backend protocol -----------------------------------------------------------


def test_every_backend_is_a_kind_of_kept_model():
    assert set(backend.BACKENDS) <= set(artifacts.SOURCES)
    with pytest.raises(ValueError, match="unknown backend 'torch'; use one of"):
        backend.get("torch")


def _fake_backend(**members):
    """A namespace with every member of the Backend protocol, some replaced."""

    def train(config, data=None, *, verbose=False):
        return None, History()

    def evaluate(model, images, labels):
        return 0.0, 0.0

    def predict_logits(model, images, batch_size=1000):
        return np.zeros((len(images), 10), np.float32)

    def save(model, path):
        return path

    def load(path, config=None):
        return None

    def export_onnx(model, path):
        return path

    def run_onnx(path, images):
        return predict_logits(None, images)

    everything = {
        "NAME": "fake-cnn",
        "SUFFIX": ".x",
        **{f.__name__: f for f in (train, evaluate, predict_logits, save, load)},
        **{f.__name__: f for f in (export_onnx, run_onnx)},
    }
    return types.SimpleNamespace(**{**everything, **members})


def test_check_says_what_a_backend_lacks():
    assert isinstance(_fake_backend(), backend.Backend)
    backend.check(_fake_backend())
    lacking = _fake_backend()
    del lacking.predict_logits
    assert not isinstance(lacking, backend.Backend)
    with pytest.raises(TypeError, match="lacks predict_logits"):
        backend.check(lacking)

    def stiff(config, data, verbose):  # verbose should be keyword-only
        return None, History()

    with pytest.raises(TypeError, match="train must take 'verbose'"):
        backend.check(_fake_backend(train=stiff))

    def more(model, path, fmt):  # an extra parameter without a default
        return path

    with pytest.raises(TypeError, match="parameter 'fmt'.*give it a default"):
        backend.check(_fake_backend(save=more))
    with pytest.raises(TypeError, match="needs a str SUFFIX"):
        backend.check(_fake_backend(SUFFIX=None))


def test_the_torch_module_is_a_backend(torch_cnn):
    assert isinstance(torch_cnn, backend.Backend)
    backend.check(torch_cnn)
    assert backend.get(torch_cnn.NAME) is torch_cnn


def test_the_keras_module_is_a_backend(keras_cnn):
    assert isinstance(keras_cnn, backend.Backend)
    backend.check(keras_cnn)
    assert backend.get(keras_cnn.NAME) is keras_cnn


@pytest.mark.mnist
def test_batches_are_identical_arrays_in_any_order(small_cnn_data):
    X, y = small_cnn_data.train
    a, b = Batches(X, y, SMALL_CNN), Batches(X, y, SMALL_CNN)
    late = b.batch(0, 5)  # asked for first, out of order
    for i in range(len(a)):
        images, labels = a.batch(0, i)
        if i == 5:
            np.testing.assert_array_equal(images, late[0])
    seen = np.concatenate([a.batch(1, i)[1] for i in range(len(a))])
    assert sorted(seen.tolist()) == sorted(y.tolist())  # every image once per epoch
    assert not np.array_equal(a.batch(0, 0)[0], a.batch(1, 0)[0])


def test_count_lines_skips_docstrings_comments_and_blanks():
    def f(x):
        """Doc.

        More doc.
        """
        # a comment

        return x + 1

    assert count_lines(f) == 2


# --- PyTorch ------------------------------------------------------------------------


def test_torch_output_shape_and_device(torch, torch_cnn):
    model = torch_cnn.CNN(SMALL_CNN)
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    assert torch_cnn.device().type in {"cpu", "cuda"}


def overfit_losses_torch(torch, torch_cnn, steps: int = 25):
    torch.manual_seed(0)
    model = torch_cnn.CNN(CNNConfig(dropout=0.0))
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((32, 1, 28, 28), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 10, 32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_torch_loss_falls_on_a_small_batch(torch, torch_cnn):
    losses = overfit_losses_torch(torch, torch_cnn)
    assert losses[-1] < 0.2 * losses[0], losses


@pytest.mark.mnist
def test_torch_training_is_deterministic(torch, torch_cnn, small_cnn_data):
    m1, h1 = torch_cnn.train(SMALL_CNN, small_cnn_data, dev=torch.device("cpu"))
    m2, h2 = torch_cnn.train(SMALL_CNN, small_cnn_data, dev=torch.device("cpu"))
    assert h1.loss == h2.loss
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.mnist
def test_torch_save_load_and_exports(torch, torch_cnn, tmp_path, small_cnn_data):
    model, _ = torch_cnn.train(SMALL_CNN, small_cnn_data, dev=torch.device("cpu"))
    images = small_cnn_data.test.images[:50]
    expected = torch_cnn.predict_logits(model, images)
    again = torch_cnn.load(torch_cnn.save(model, tmp_path / "w.pt"), SMALL_CNN)
    np.testing.assert_allclose(
        torch_cnn.predict_logits(again, images), expected, atol=1e-6
    )
    program = torch_cnn.export_program(model, tmp_path / "cnn")
    np.testing.assert_allclose(
        torch_cnn.run_program(program, images), expected, atol=1e-5
    )
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    onnx = torch_cnn.export_onnx(model, tmp_path / "cnn")
    np.testing.assert_allclose(torch_cnn.run_onnx(onnx, images), expected, atol=1e-4)


# --- Keras --------------------------------------------------------------------------


def test_keras_output_shape(keras_cnn):
    model = keras_cnn.build_model(SMALL_CNN)
    assert tuple(model(np.zeros((5, 28, 28, 1), np.float32)).shape) == (5, 10)


def trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize(
    "config", [CNNConfig(), SMALL_CNN, CNNConfig(channels=(8, 16, 16, 32), hidden=20)]
)
def test_both_frameworks_have_the_same_number_of_parameters(
    torch_cnn, keras_cnn, config
):
    ours = sum(p.numel() for p in torch_cnn.CNN(config).parameters() if p.requires_grad)
    assert trainable(keras_cnn.build_model(config)) == ours == config.parameter_count()


def test_keras_export_names_the_formats_it_knows(keras_cnn, tmp_path):
    model = keras_cnn.build_model(SMALL_CNN)
    with pytest.raises(ValueError, match="format must be one of onnx, litert"):
        keras_cnn.export(model, tmp_path / "cnn", "tflite")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_keras_loss_falls_on_a_small_batch(keras_cnn):
    import keras

    keras.utils.set_random_seed(0)
    model = keras_cnn.build_model(CNNConfig(dropout=0.0))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.random((32, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    losses = [float(model.train_on_batch(x, y)) for _ in range(25)]
    assert losses[-1] < 0.2 * losses[0], losses


@pytest.mark.mnist
@pytest.mark.tf_determinism
def test_keras_training_is_deterministic_and_exports(
    keras_cnn, small_cnn_data, tmp_path
):
    m1, h1 = keras_cnn.train(SMALL_CNN, small_cnn_data)
    m2, h2 = keras_cnn.train(SMALL_CNN, small_cnn_data)
    assert h1.loss == h2.loss
    for a, b in zip(m1.get_weights(), m2.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    images = small_cnn_data.test.images[:50]
    expected = keras_cnn.predict_logits(m1, images)
    again = keras_cnn.load(keras_cnn.save(m1, tmp_path / "cnn"))
    np.testing.assert_allclose(
        keras_cnn.predict_logits(again, images), expected, atol=1e-6
    )
    folder = keras_cnn.export_saved_model(m1, tmp_path / "saved")
    np.testing.assert_allclose(
        keras_cnn.run_saved_model(folder, images), expected, atol=1e-5
    )
