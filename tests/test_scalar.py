"""Reverse-mode differentiation of scalar graphs vs finite differences and PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlfp.scalar import Scalar


def neuron_loss(w1, w2, b, x1=0.7, x2=-1.3, y=1.0):
    """A sigmoid neuron and its squared error, built from every kind of operation."""
    z = w1 * x1 + w2 * x2 + b
    a = z.sigmoid() if isinstance(z, Scalar) else 1 / (1 + math.exp(-z))
    return (a - y) ** 2


def expression(x, y):
    """Uses x twice (the gradients of the two uses must add) and every other op."""
    if isinstance(x, Scalar):
        return ((x * y + x).tanh() + (x / y).exp() - (y**2).log() + (x - 3).relu()) * -1
    return -(math.tanh(x * y + x) + math.exp(x / y) - math.log(y**2) + max(x - 3, 0))


@pytest.mark.parametrize(
    "f, point",
    [
        (neuron_loss, (0.3, -0.8, 0.1)),
        (expression, (0.9, 1.7)),
        (expression, (3.5, -2.0)),
    ],
)
def test_gradients_match_finite_differences(f, point):
    inputs = [Scalar(v) for v in point]
    out = f(*inputs)
    out.backward()
    assert out.value == pytest.approx(f(*point), rel=1e-12)
    h = 1e-6
    for i, node in enumerate(inputs):
        up = list(point)
        down = list(point)
        up[i] += h
        down[i] -= h
        numerical = (f(*up) - f(*down)) / (2 * h)
        assert node.grad == pytest.approx(numerical, rel=1e-6, abs=1e-9), f"input {i}"


def test_gradients_match_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    point = (0.9, 1.7)
    ours = [Scalar(v) for v in point]
    expression(*ours).backward()
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in point]
    x, y = theirs
    out = -((x * y + x).tanh() + (x / y).exp() - (y**2).log() + torch.relu(x - 3))
    out.backward()
    for a, b in zip(ours, theirs, strict=True):
        assert a.grad == pytest.approx(b.grad.item(), rel=1e-12)


def test_backward_twice_gives_the_same_gradients():
    w = Scalar(0.5)
    out = w * w * w
    out.backward()
    out.backward()
    assert w.grad == pytest.approx(3 * 0.25)


def test_deep_graph_needs_no_recursion():
    x = Scalar(1.0)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001**5000)


def test_draw_graph():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlfp.plotting import draw_graph

    w = Scalar(0.5, label="w")
    out = (w * 2 + 1).tanh()
    out.backward()
    ax = draw_graph(out)
    texts = [t.get_text() for t in ax.texts if t.get_text()]
    assert any(t.startswith("w\n0.5") for t in texts)
    assert len(texts) == 4 and any(t.startswith("* 2\n") for t in texts)
    plt.close("all")
    assert np.isfinite(w.grad)
