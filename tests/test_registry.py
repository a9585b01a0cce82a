"""The one table of layer types: every registered layer saves and loads, and the model
files, the activation names and the PyTorch mirror all read it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlfp import activations, io, model, registry
from dlfp.layers import Dense, Dropout, Layer
from dlfp.model import Sequential

from .zoo import example


def one_layer_model(name: str, rng: np.random.Generator, dtype):
    """A model that holds a ``name`` layer (``tests/zoo.py``), and a batch it takes."""
    layer, X = example(name, rng, dtype)
    return Sequential([layer]), X


def test_the_registry_names_every_layer_by_its_class_name():
    assert all(name == kind.__name__ for name, kind in registry.LAYERS.items())
    assert all(issubclass(kind, Layer) for kind in registry.LAYERS.values())
    assert set(registry.ACTIVATIONS.values()) <= set(registry.LAYERS)
    for name in ("Dense", "Dropout", "ReLU", "Conv2D", "BatchNorm2D", "Flatten"):
        assert registry.layer_class(name) is not None
    assert registry.layer_class("Conv9D") is None
    assert registry.layer_name(activations.ReLU()) == "ReLU"
    assert registry.layer_name(Layer()) is None
    assert registry.layer_name(Sequential([])) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(registry.LAYERS))
def test_every_registered_layer_saves_and_loads(tmp_path, name, dtype):
    rng = np.random.default_rng(0)
    net, X = one_layer_model(name, rng, dtype)
    path = io.save(net, tmp_path / "one", kind=name)
    again = io.load(path)
    assert path.suffix == ".npz" and again.metadata == {"kind": name}
    [ours], [theirs] = net.layers, again.layers
    assert type(theirs) is type(ours) and theirs.config() == ours.config()
    for key, value in ours.params.items():
        assert theirs.params[key].dtype == value.dtype
        np.testing.assert_array_equal(theirs.params[key], value)
    np.testing.assert_array_equal(again.forward(X), net.forward(X))
    with np.load(path) as archive:
        spec = json.loads(str(archive["__spec__"]))
    assert spec["format"] == io.FORMAT and spec["version"] == io.FORMAT_VERSION
    assert [entry["type"] for entry in spec["layers"]] == [name]


def test_a_layer_outside_the_registry_is_not_saved(tmp_path):
    class Doubling(Layer):
        def forward(self, X, training=False):
            return 2 * X

    net = Sequential([Dense(2, 2, rng=np.random.default_rng(0)), Doubling()])
    with pytest.raises(TypeError) as err:
        net.save(tmp_path / "m.npz")
    text = str(err.value)
    assert "Doubling" in text and text.endswith(".") and "\n" not in text
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left


def test_activation_names_come_from_the_registry():
    for short, name in registry.ACTIVATIONS.items():
        assert type(activations.get(short)) is registry.LAYERS[name]
    with pytest.raises(ValueError, match="use one of sigmoid, tanh, relu, leaky_relu"):
        activations.get("swish")


def test_the_pytorch_mirror_reads_the_registry():
    torch = pytest.importorskip("torch")
    mirror = pytest.importorskip("dlfp.mirror")
    assert set(mirror.TORCH_EQUIVALENTS) <= set(registry.LAYERS)
    # Every registered layer has a PyTorch equivalent, but for the softmax, which
    # PyTorch folds into its cross-entropy.
    assert set(registry.LAYERS) - set(mirror.TORCH_EQUIVALENTS) == {"Softmax"}
    rng = np.random.default_rng(2)
    net = Sequential(
        [
            Dense(4, 5, rng=rng),
            activations.LeakyReLU(0.1),
            Dense(5, 5, rng=rng),
            activations.Tanh(),
            Dropout(0.2, rng=rng),
            Dense(5, 3, rng=rng),
            activations.Sigmoid(),
            Dense(3, 2, rng=rng),
            activations.ReLU(),
        ]
    )
    X = rng.random((6, 4)).astype(np.float32)
    ours = net.forward(X)
    theirs = mirror.to_torch(net).eval()(torch.from_numpy(X))
    np.testing.assert_allclose(theirs.detach().numpy(), ours, rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="no PyTorch equivalent"):
        mirror.to_torch(Sequential([activations.Softmax()]))


@pytest.mark.parametrize("name", list(registry.LAYERS))
def test_every_layer_with_a_pytorch_equivalent_is_mirrored_both_ways(name):
    """to_torch builds the module that computes what the layer computes, with its
    arrays; copy_from_torch reads the same table back into the layer."""
    torch = pytest.importorskip("torch")
    mirror = pytest.importorskip("dlfp.mirror")
    if name not in mirror.TORCH_EQUIVALENTS:
        pytest.skip(f"{name} has no PyTorch equivalent")
    net, X = one_layer_model(name, np.random.default_rng(4), np.float64)
    twin = mirror.to_torch(net).eval()
    with torch.no_grad():
        theirs = twin(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(theirs, net.forward(X), rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # new values in PyTorch's module, read back into dlfp
        for tensor in [*twin.parameters(), *twin.buffers()]:
            if tensor.is_floating_point():
                tensor.mul_(1.5).add_(0.25)
        theirs = twin(torch.from_numpy(X)).numpy()
    mirror.copy_from_torch(net, twin)
    np.testing.assert_allclose(theirs, net.forward(X), rtol=1e-12, atol=1e-12)
    if net.parameters():
        assert mirror.param_gap(net, twin) == 0


@pytest.mark.parametrize("name", list(registry.LAYERS))
def test_each_layer_states_its_own_facts(name):
    """The model asks a layer whether it keeps the shape of its input and which of its
    parameters decay; the file format asks it to rebuild itself. The facts must be
    true of the layer."""
    rng = np.random.default_rng(3)
    net, X = one_layer_model(name, rng, np.float64)
    (layer,) = net.layers
    if layer.keeps_shape:
        assert layer.forward(X, training=False).shape == X.shape, name
    assert set(layer.decayed) <= set(layer.grads), f"{name} decays a non-parameter"
    rebuilt = type(layer).from_config(layer.config(), dtype=np.float64, rng=rng)
    assert type(rebuilt) is type(layer) and rebuilt.config() == layer.config()
    assert {k: v.shape for k, v in rebuilt.params.items()} == {
        k: v.shape for k, v in layer.params.items()
    }


def test_the_model_and_the_file_format_name_no_layer_class():
    """io and model ask each layer for its facts; neither branches on a class (except
    ``Sequential.dense_layers``, whose point is to list the Dense layers)."""
    import ast
    import inspect

    def branches(node) -> bool:
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        if not names & set(registry.LAYERS):
            return False
        if isinstance(node, ast.Compare):
            return any(isinstance(op, ast.Is | ast.In) for op in node.ops)
        return (
            isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance"
        )

    for module in (io, model):
        tree = ast.parse(inspect.getsource(module))
        for function in ast.walk(tree):
            if (
                isinstance(function, ast.FunctionDef)
                and function.name == "dense_layers"
            ):
                function.body = []  # the one query by class
        checks = [ast.unparse(n) for n in ast.walk(tree) if branches(n)]
        assert not checks, f"{module.__name__} branches on layer classes: {checks}"
