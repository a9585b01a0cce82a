"""Every layer, activation and loss against finite differences (float64) and PyTorch.

The layers are those of the registry, one example each from ``tests/zoo.py``: a new
layer type joins these checks when it is registered. Shapes and values are drawn from a
seeded generator per test case, so a failure is reproducible; each assertion message
prints "ours vs reference".
"""

from __future__ import annotations

import numpy as np
import pytest

from dlfp import activations, losses, registry
from dlfp.gradcheck import (
    check_layer,
    check_loss,
    check_model,
    numerical_gradient,
    rel_error,
)
from dlfp.layers import Dropout
from dlfp.model import mlp

from .zoo import example

TOL = 1e-6


def generic_point(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A batch whose entries have both signs, lie at least 0.05 from 0 (no ReLU kink)
    and differ by more than 100 finite-difference steps (no max-pooling tie)."""
    n = int(np.prod(shape))
    magnitudes = np.linspace(0.05, 2.0, n)  # distinct: at least 1.95 / n apart
    signs = rng.choice([-1.0, 1.0], size=n)
    return rng.permutation(signs * magnitudes).reshape(shape)


def layer_case(name: str, seed: int):
    """The zoo's ``name`` layer in float64 and a generic batch of the shape it takes."""
    rng = np.random.default_rng(seed)
    layer, X = example(name, rng, np.float64)
    return layer, generic_point(X.shape, rng), rng


def random_biases(model, rng) -> None:
    """Biases start at zero; a gradient check should test a generic point (and a zero
    bias after an all-zero ReLU row puts the next ReLU exactly on its kink)."""
    for layer in model.dense_layers:
        layer.params["b"][...] = 0.5 * rng.standard_normal(layer.n_out)


def case(seed: int):
    rng = np.random.default_rng(seed)
    B, n_in, n_out = rng.integers(1, 6), rng.integers(1, 7), rng.integers(1, 7)
    return rng, int(B), int(n_in), int(n_out)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", registry.LAYERS)
def test_layer_gradients(name, seed):
    """Every registered layer's backward against centred differences, for its input
    and every parameter (Dropout with the mask of its forward pass, batch normalisation
    with the batch's statistics: see :func:`dlfp.gradcheck.check_layer`)."""
    layer, X, rng = layer_case(name, seed)
    errors = check_layer(layer, X, rng)
    assert set(errors) == {"X", *layer.grads}
    for key, err in errors.items():
        assert err < TOL, f"{name} d{key}: relative error {err:.2e} (ours vs numerical)"


def test_dropout_gradient_uses_the_forward_mask():
    rng = np.random.default_rng(0)
    layer = Dropout(0.4, rng=rng)
    X = rng.standard_normal((50, 8))
    out = layer.forward(X, training=True)
    mask = out / X
    assert set(np.round(np.unique(mask), 12)) <= {0.0, round(1 / 0.6, 12)}
    R = rng.standard_normal(X.shape)
    numerical = numerical_gradient(lambda: float(np.sum(X * mask * R)), X)
    assert rel_error(layer.backward(R), numerical) < TOL
    # At inference dropout is the identity; in training the expectation is kept.
    np.testing.assert_array_equal(layer.forward(X), X)
    big = np.ones((2000, 50))
    assert abs(layer.forward(big, training=True).mean() - 1.0) < 0.02


LOSSES = {
    "mse": lambda rng, B, K: (rng.standard_normal((B, K)), rng.standard_normal((B, K))),
    "binary_cross_entropy_with_logits": lambda rng, B, K: (
        3 * rng.standard_normal((B, 1)),
        rng.integers(0, 2, (B, 1)).astype(float),
    ),
    "softmax_cross_entropy": lambda rng, B, K: (
        3 * rng.standard_normal((B, K + 1)),
        rng.integers(0, K + 1, B),
    ),
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradients(name, seed):
    rng, B, _, K = case(seed)
    Z, y = LOSSES[name](rng, B, K)
    err = check_loss(losses.get(name), Z, y)
    assert err < TOL, f"{name}: relative error {err:.2e} (ours vs numerical)"


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "leaky_relu"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_whole_network_gradients(depth, activation):
    rng = np.random.default_rng(10 * depth + len(activation))
    sizes = [5] + [int(rng.integers(3, 7)) for _ in range(depth - 1)] + [4]
    model = mlp(sizes, activation, rng=rng, dtype=np.float64)
    random_biases(model, rng)
    X = rng.standard_normal((6, 5))
    y = rng.integers(0, 4, 6)
    errors = check_model(model, X, y, losses.softmax_cross_entropy)
    assert len(errors) == 2 * depth
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOL, (
        f"depth {depth}, {activation}: {worst} off by {errors[worst]:.2e}"
    )


def test_gradient_check_catches_a_wrong_gradient():
    """The check has teeth: a layer with a deliberately wrong backward fails it."""

    class WrongTanh(activations.Tanh):
        def backward(self, dout):
            return dout * (1 - self._A)  # forgot the square

    rng = np.random.default_rng(0)
    errors = check_layer(WrongTanh(), rng.standard_normal((3, 4)), rng)
    assert errors["X"] > 1e-2


def test_l2_weight_decay_is_the_gradient_of_the_penalty():
    """Weight decay lambda adds exactly the gradient of (lambda / 2) ||W||^2 to dW."""
    from dlfp.optim import SGD

    rng = np.random.default_rng(1)
    model = mlp([4, 5, 3], "tanh", rng=rng, dtype=np.float64)
    X, y, lam = rng.standard_normal((7, 4)), rng.integers(0, 3, 7), 0.3

    def penalised() -> float:
        penalty = sum(np.sum(layer.params["W"] ** 2) for layer in model.dense_layers)
        return (
            losses.softmax_cross_entropy(model.forward(X), y)[0] + 0.5 * lam * penalty
        )

    before = [p.value.copy() for p in model.parameters()]
    numerical = [numerical_gradient(penalised, p.value) for p in model.parameters()]
    model.backward(losses.softmax_cross_entropy(model.forward(X, training=True), y)[1])
    SGD(model.parameters(), lr=1.0, weight_decay=lam).step()
    for p, old, num in zip(model.parameters(), before, numerical, strict=True):
        assert rel_error(old - p.value, num) < TOL, p.name


def test_stable_for_extreme_inputs():
    z = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = activations.sigmoid(z)
        p = activations.softmax(np.array([[1000.0, 0.0, -1000.0]]))
        loss, grad = losses.softmax_cross_entropy(
            np.array([[1000.0, 0.0, -1000.0]]), [2]
        )
        bce, _ = losses.binary_cross_entropy_with_logits(z, np.ones(5))
    np.testing.assert_allclose(
        s, [0, 9.357623e-14, 0.5, 1 - 9.357623e-14, 1], rtol=1e-6
    )
    np.testing.assert_allclose(p, [[1, 0, 0]], atol=1e-300)
    assert loss == pytest.approx(2000.0) and np.isfinite(grad).all()
    assert bce == pytest.approx(np.mean([1000, 30, np.log(2), 0, 0]), rel=1e-6)


# --- Against PyTorch autograd, float64 ----------------------------------------------

# Only these comparisons need PyTorch: each asks for the fixture, and skips without it;
# every check above runs with NumPy alone.


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed")


def torch_layers(torch) -> dict:
    """What each registered layer computes, in PyTorch: ``f(layer, X, params)`` with
    ``params`` the layer's trainable arrays as tensors."""
    F = torch.nn.functional
    return {
        "Dense": lambda layer, X, p: X @ p["W"] + p["b"],
        "Sigmoid": lambda layer, X, p: torch.sigmoid(X),
        "Tanh": lambda layer, X, p: torch.tanh(X),
        "ReLU": lambda layer, X, p: torch.relu(X),
        "LeakyReLU": lambda layer, X, p: F.leaky_relu(X, layer.alpha),
        "Softmax": lambda layer, X, p: torch.softmax(X, dim=1),
        "Conv2D": lambda layer, X, p: F.conv2d(
            X, p["K"], p.get("b"), stride=layer.stride, padding=layer.padding
        ),
        "BatchNorm2D": lambda layer, X, p: F.batch_norm(
            X, None, None, p["gamma"], p["beta"], training=True, eps=layer.eps
        ),
        "MaxPool2D": lambda layer, X, p: F.max_pool2d(X, layer.k, layer.stride),
        "Flatten": lambda layer, X, p: X.reshape(len(X), -1),
        "Reshape": lambda layer, X, p: X.reshape(len(X), *layer.shape),
    }


#: Registered layers that have no PyTorch function to compare with, and why.
NOT_COMPARED_WITH_PYTORCH = {
    "Dropout": "PyTorch draws its own random mask; "
    "test_dropout_gradient_uses_the_forward_mask checks ours",
}


def t64(a):
    import torch

    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", registry.LAYERS)
def test_layers_match_pytorch(torch, name, seed):
    if name in NOT_COMPARED_WITH_PYTORCH:
        pytest.skip(f"{name}: {NOT_COMPARED_WITH_PYTORCH[name]}")
    reference = torch_layers(torch).get(name)
    assert reference is not None, (
        f"{name} is registered: add its PyTorch function to torch_layers(), or say "
        "why it has none in NOT_COMPARED_WITH_PYTORCH"
    )
    layer, X, rng = layer_case(name, seed)
    ours = layer.forward(X, training=True)
    R = rng.standard_normal(ours.shape)
    dX = layer.backward(R)
    Xt = t64(X)
    params = {key: t64(layer.params[key]) for key in layer.grads}
    ref = reference(layer, Xt, params)
    (ref * torch.from_numpy(R)).sum().backward()
    np.testing.assert_allclose(
        ours,
        ref.detach().numpy(),
        rtol=1e-12,
        atol=1e-14,
        err_msg=f"{name} forward: ours vs PyTorch",
    )
    np.testing.assert_allclose(
        dX,
        Xt.grad.numpy(),
        rtol=1e-10,
        atol=1e-14,
        err_msg=f"{name} dX: ours vs PyTorch",
    )
    for key, tensor in params.items():
        np.testing.assert_allclose(
            layer.grads[key],
            tensor.grad.numpy(),
            rtol=1e-10,
            err_msg=f"{name} d{key}: ours vs PyTorch",
        )


def torch_losses(torch):
    F = torch.nn.functional
    return {
        "mse": F.mse_loss,
        "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
        "softmax_cross_entropy": F.cross_entropy,
    }


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", LOSSES)
def test_losses_match_pytorch(torch, name, seed):
    rng, B, _, K = case(seed)
    Z, y = LOSSES[name](rng, B, K)
    value, grad = losses.get(name)(Z, y)
    Zt = t64(Z)
    yt = torch.from_numpy(np.asarray(y))
    ref = torch_losses(torch)[name](Zt, yt)
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12), (
        f"{name}: {value} vs {ref.item()}"
    )
    np.testing.assert_allclose(
        grad,
        Zt.grad.numpy(),
        rtol=1e-10,
        atol=1e-15,
        err_msg=f"{name} gradient: ours vs PyTorch",
    )


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_whole_network_matches_pytorch(torch, depth):
    rng = np.random.default_rng(depth)
    sizes = [6] + [5] * (depth - 1) + [3]
    model = mlp(sizes, "tanh", rng=rng, dtype=np.float64)
    random_biases(model, rng)
    X, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    loss, dZ = losses.softmax_cross_entropy(model.forward(X, training=True), y)
    model.backward(dZ)
    params = [t64(p.value) for p in model.parameters()]
    h = torch.from_numpy(X)
    for i in range(depth):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < depth - 1:
            h = torch.tanh(h)
    ref = torch.nn.functional.cross_entropy(h, torch.from_numpy(y))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    for p, t in zip(model.parameters(), params, strict=True):
        np.testing.assert_allclose(
            p.grad,
            t.grad.numpy(),
            rtol=1e-9,
            atol=1e-15,
            err_msg=f"{p.name}: ours vs PyTorch",
        )
