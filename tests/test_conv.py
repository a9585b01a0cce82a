"""The convolutional layers: fast against the loop references, finite differences and
PyTorch (float64), the one-sentence errors, and the layer contract they share.

Shapes come from seeded generators; each assertion message says "ours vs reference".
The PyTorch comparisons skip, one by one, where PyTorch is not installed.
"""

from __future__ import annotations

import contextlib
import inspect
import threading

import numpy as np
import pytest

from dlfp import activations, conv, losses, registry, threads
from dlfp.gradcheck import check_layer, check_model
from dlfp.layers import Dense, Dropout, Layer
from dlfp.model import Sequential, load
from dlfp.optim import SGD
from dlfp.train import fit

from .zoo import example

TOL = 1e-6

# (B, C_in, H, W, C_out, k, stride, padding, bias): odd sizes, strides that do not
# divide the input, kernels larger than the stride, and the book's 3 x 3 same padding.
GEOMETRIES = [
    (3, 2, 7, 6, 4, 3, 1, 1, True),
    (2, 3, 9, 8, 5, 3, 2, 0, False),
    (2, 1, 10, 11, 3, 4, 3, 2, True),
    (2, 2, 5, 5, 3, 2, 1, 0, True),
    (4, 1, 8, 8, 2, 3, 1, 1, False),
]


def conv_case(geometry, seed=0):
    B, C, H, W, C_out, k, s, p, bias = geometry
    rng = np.random.default_rng(seed)
    layer = conv.Conv2D(
        C, C_out, k, stride=s, padding=p, bias=bias, rng=rng, dtype=np.float64
    )
    if bias:
        layer.params["b"][...] = rng.standard_normal(C_out)
    return layer, rng.standard_normal((B, C, H, W)), rng


def distinct(rng, shape, gap=0.05):
    """Random values at least ``gap`` apart: no two entries of a pooling window tie,
    even after the finite differences' steps of 1e-5."""
    values = gap * rng.permutation(int(np.prod(shape))).astype(np.float64)
    return (values - values.mean()).reshape(shape)


# --- Fast layers against the loop references --------------------------------------


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv_layer_matches_the_loops(geometry):
    layer, A, rng = conv_case(geometry)
    K, s, p = layer.params["K"], layer.stride, layer.padding
    b = layer.params.get("b")
    Z = layer.forward(A, training=True)
    np.testing.assert_allclose(
        Z, conv.conv2d_loop(A, K, b, s, p), rtol=1e-12, atol=1e-12,
        err_msg="forward: ours vs loops",
    )  # fmt: skip
    np.testing.assert_allclose(
        conv.conv2d(A, K, b, s, p), conv.conv2d_loop(A, K, b, s, p), atol=1e-12
    )
    Delta = rng.standard_normal(Z.shape)
    dA = layer.backward(Delta)
    for name, (dK_ref, db_ref, dA_ref) in {
        "loops": conv.conv2d_backward_loop(A, K, Delta, s, p),
        "full convolution": conv.conv2d_backward(A, K, Delta, s, p),
    }.items():
        np.testing.assert_allclose(dA, dA_ref, atol=1e-12, err_msg=f"dA vs {name}")
        np.testing.assert_allclose(
            layer.grads["K"], dK_ref, atol=1e-12, err_msg=f"dK vs {name}"
        )
        if b is not None:
            np.testing.assert_allclose(layer.grads["b"], db_ref, atol=1e-12)


def test_stride_comes_before_padding_everywhere():
    """One positional order, (..., stride, padding), for every function that takes
    both: a call copied from one to another means the same geometry."""
    for function in (
        conv.conv2d_loop,
        conv.conv2d_backward_loop,
        conv.windows,
        conv.conv2d,
        conv.conv2d_backward,
    ):
        names = list(inspect.signature(function).parameters)
        assert names.index("stride") + 1 == names.index("padding"), function.__name__
    rng = np.random.default_rng(2)
    A, K = rng.standard_normal((2, 2, 9, 8)), rng.standard_normal((3, 2, 3, 3))
    Delta = rng.standard_normal((2, 3, 5, 4))  # stride 2, padding 1 on 9 x 8
    for ours, loops in zip(
        conv.conv2d_backward(A, K, Delta, 2, 1),
        conv.conv2d_backward_loop(A, K, Delta, 2, 1),
        strict=True,
    ):
        np.testing.assert_allclose(ours, loops, atol=1e-12)


def test_im2col_and_col2im_are_adjoint():
    """<im2col(A), C> = <A, col2im(C)>: col2im is the transpose of im2col's copy."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((2, 7, 6, 3))
    cols = conv.im2col(A, 3, 2)
    C = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * C), np.sum(A * conv.col2im(C, A.shape, 3, 2)))


# --- The fast routes against the straightforward ones (conv.FAST) --------------------


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_im2col_in_one_copy_is_im2col(geometry):
    """im2col_strided builds the very matrix of im2col's k^2 copies, also from a
    padded input that is not contiguous (a channels-last view of NCHW maps)."""
    B, C, H, W, _, k, s, p, _ = geometry
    A = np.random.default_rng(2).standard_normal((B, C, H + 2 * p, W + 2 * p))
    A_pad = A.transpose(0, 2, 3, 1)  # (B, H, W, C), not contiguous
    np.testing.assert_array_equal(
        conv.im2col_strided(A_pad, k, s), conv.im2col(A_pad, k, s)
    )


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_col2im_by_tap_is_col2im(geometry):
    """The window gradients computed tap by tap and added back: col2im's sum."""
    B, C, H, W, C_out, k, s, p, _ = geometry
    rng = np.random.default_rng(3)
    pad_shape = (B, H + 2 * p, W + 2 * p, C)
    rows = B * conv.output_size(H, k, s, p) * conv.output_size(W, k, s, p)
    D, K_mat = (
        rng.standard_normal((rows, C_out)),
        rng.standard_normal((k * k * C, C_out)),
    )
    K_taps = K_mat.reshape(k * k, C, C_out).transpose(0, 2, 1)
    np.testing.assert_allclose(
        conv.col2im_by_tap(np.matmul(D, K_taps), pad_shape, k, s),
        conv.col2im(D @ K_mat.T, pad_shape, k, s),
        rtol=1e-12,
        atol=1e-12,
    )


def _both_routes(layer, X, dout):
    """(forward, input gradient, parameter gradients) by the fast route and the
    straightforward one, from the same state."""
    results = []
    for straightforward in (False, True):
        twin = layer.__class__.__new__(layer.__class__)
        twin.__dict__ = {
            key: (
                {k: v.copy() for k, v in value.items()}
                if isinstance(value, dict)
                else value
            )
            for key, value in layer.__dict__.items()
        }
        with conv.straightforward() if straightforward else contextlib.nullcontext():
            out = twin.forward(X, training=True)
            dX = twin.backward(dout)
            inference = twin.forward(X, training=False)
        results.append((out, dX, inference, *twin.grads.values()))
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv_layer_routes_agree(geometry, dtype):
    """The fast route computes what the straightforward one does, to the last bits
    that BLAS may regroup (the per-tap products)."""
    layer, A, _ = conv_case(geometry)
    layer.params = {k: v.astype(dtype) for k, v in layer.params.items()}
    layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
    A = A.astype(dtype)
    out = layer.forward(A, training=False)
    dout = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    fast, straight = _both_routes(layer, A, dout)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    for ours, reference in zip(fast, straight, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (2, 16, 7, 7)])
def test_batch_norm_routes_agree_bit_for_bit(shape, dtype):
    """Rows of n_H n_W n_C with tiled vectors: the same products and sums, in the same
    order, as broadcasting over rows of n_C. Both channels-last and NCHW inputs."""
    rng = np.random.default_rng(5)
    layer = conv.BatchNorm2D(shape[1], dtype=dtype)
    layer.params["gamma"] = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    layer.params["beta"] = rng.standard_normal(shape[1]).astype(dtype)
    for X in (
        rng.standard_normal(shape).astype(dtype),  # NCHW in memory
        rng.standard_normal(shape)
        .astype(dtype)
        .transpose(0, 2, 3, 1)
        .copy()
        .transpose(0, 3, 1, 2),  # channels-last in memory
    ):
        dout = rng.standard_normal(shape).astype(dtype)
        fast, straight = _both_routes(layer, X, dout)
        for ours, reference in zip(fast, straight, strict=True):
            np.testing.assert_array_equal(ours, reference)


def test_straightforward_restores_the_fast_route():
    with pytest.raises(RuntimeError), conv.straightforward():
        assert not conv.FAST
        raise RuntimeError
    assert conv.FAST


@pytest.mark.parametrize("k, s, H, W", [(2, 2, 8, 8), (2, 2, 7, 7), (3, 2, 9, 8)])
def test_maxpool_layer_matches_the_loops(k, s, H, W):
    rng = np.random.default_rng(k + s + H)
    A = rng.standard_normal((2, 3, H, W))
    layer = conv.MaxPool2D(k, s)
    out = layer.forward(A, training=True)
    np.testing.assert_array_equal(out, conv.maxpool(A, k, s))
    G = rng.standard_normal(out.shape)
    np.testing.assert_allclose(layer.backward(G), conv.maxpool_backward(A, G, k, s))


def test_maxpool_sends_a_tie_to_the_first_maximum():
    A = np.zeros((1, 1, 2, 4))
    A[0, 0, :, 2:] = [[1.0, 3.0], [3.0, 3.0]]  # the second window ties three ways
    layer = conv.MaxPool2D(2)
    layer.forward(A, training=True)
    dA = layer.backward(np.array([[[[5.0, 7.0]]]]))
    expected = np.array([[[[5.0, 0, 0, 7.0], [0, 0, 0, 0]]]])
    np.testing.assert_array_equal(dA, expected)
    np.testing.assert_array_equal(
        conv.maxpool_backward(A, np.array([[[[5.0, 7.0]]]])), expected
    )


def pool_2x2_by_strided_views(A, D):
    """The three comparisons of ``conv._pool_2x2`` and the routing of
    ``conv._route_2x2``, written on strided views of the windows' entries: what the
    layer computed before it sorted the entries into rows of their own."""
    H2, W2 = 2 * (A.shape[1] // 2), 2 * (A.shape[2] // 2)
    a, b = A[:, 0:H2:2, 0:W2:2], A[:, 0:H2:2, 1:W2:2]
    c, d = A[:, 1:H2:2, 0:W2:2], A[:, 1:H2:2, 1:W2:2]
    top, bottom = np.maximum(a, b), np.maximum(c, d)
    out = np.maximum(top, bottom)
    in_top, left_in_top, left_in_bottom = top >= bottom, a >= b, c >= d
    dA = np.zeros_like(A, dtype=D.dtype)
    D_top = D * in_top
    D_bottom = D - D_top
    dA[:, 0:H2:2, 0:W2:2] = D_top * left_in_top
    dA[:, 0:H2:2, 1:W2:2] = D_top - dA[:, 0:H2:2, 0:W2:2]
    dA[:, 1:H2:2, 0:W2:2] = D_bottom * left_in_bottom
    dA[:, 1:H2:2, 1:W2:2] = D_bottom - dA[:, 1:H2:2, 0:W2:2]
    return out, dA


def bits(x):
    return np.ascontiguousarray(x).view(f"u{x.itemsize}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 8, 8, 16), (2, 7, 9, 3), (4, 6, 5, 1)])
@pytest.mark.parametrize("channels_last_maps", [True, False])
def test_2x2_pooling_keeps_every_bit_ties_and_signed_zeros_included(
    split_everything, dtype, shape, channels_last_maps
):
    """The 2 x 2 layer sorts the windows' entries into rows before comparing them
    (inside ``conv.straightforward()`` it compares strided views): the same outputs
    and gradients to the last bit (-0.0 against +0.0 included) as the comparisons on
    strided views, on any number of threads; ties go to the first entry in reading
    order, as in the general route (and in PyTorch)."""
    rng = np.random.default_rng(15)
    values = np.array([0.0, -0.0, 1.0, -1.0, 2.0], dtype)  # most windows tie
    A = rng.choice(values, shape)  # (B, H, W, C)
    D = rng.choice(values, (shape[0], shape[1] // 2, shape[2] // 2, shape[3]))
    D *= rng.standard_normal(D.shape).astype(dtype)
    X = A.transpose(0, 3, 1, 2)  # channels-last maps, as the layers pass them on
    if not channels_last_maps:
        X = np.ascontiguousarray(X)
    out_ref, dA_ref = pool_2x2_by_strided_views(A, D)

    def compute():
        layer = conv.MaxPool2D(2)
        out = layer.forward(X, training=True)
        return [out, layer.backward(D.transpose(0, 3, 1, 2))]

    for route in (contextlib.nullcontext, conv.straightforward):  # sorted or not
        for n in (1, 2, 3):
            with route():
                out, dA = on_threads(n, compute)
            assert out.dtype == dA.dtype == dtype
            expected = out_ref.transpose(0, 3, 1, 2)
            np.testing.assert_array_equal(bits(out), bits(expected))
            np.testing.assert_array_equal(bits(dA), bits(dA_ref.transpose(0, 3, 1, 2)))
    out_general, winner = conv._pool_windows(A, 2, 2, True)  # the general route
    dA_general = np.zeros_like(A)
    conv._route_windows(D, winner, dA_general, 2, 2)
    np.testing.assert_array_equal(out, out_general.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(dA, dA_general.transpose(0, 3, 1, 2))


def test_batch_norm_layer_matches_the_loops():
    rng = np.random.default_rng(2)
    Z = 2 * rng.standard_normal((4, 3, 5, 6)) + 1
    layer = conv.BatchNorm2D(3, dtype=np.float64)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    layer.params["gamma"][...], layer.params["beta"][...] = gamma, beta
    out = layer.forward(Z, training=True)
    ref, mean, var = conv.batch_norm_loop(Z, gamma, beta)
    np.testing.assert_allclose(out, ref, atol=1e-12, err_msg="forward: ours vs loops")
    G = rng.standard_normal(Z.shape)
    dZ = layer.backward(G)
    dZ_ref, dgamma, dbeta = conv.batch_norm_backward_loop(G, Z, gamma)
    np.testing.assert_allclose(dZ, dZ_ref, atol=1e-12, err_msg="dZ: compact vs paths")
    np.testing.assert_allclose(layer.grads["gamma"], dgamma, atol=1e-12)
    np.testing.assert_allclose(layer.grads["beta"], dbeta, atol=1e-12)
    # PyTorch's running averages: momentum 0.1, the unbiased variance (m = B H W).
    m = Z.size // 3
    np.testing.assert_allclose(layer.params["running_mean"], 0.1 * mean)
    np.testing.assert_allclose(
        layer.params["running_var"], 0.9 + 0.1 * var * m / (m - 1)
    )
    # At inference the running averages replace the batch's statistics.
    rm, rv = layer.params["running_mean"], layer.params["running_var"]
    expected = (Z - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5)
    expected = gamma[:, None, None] * expected + beta[:, None, None]
    np.testing.assert_allclose(layer.forward(Z), expected, atol=1e-12)


# --- Finite differences, float64 ---------------------------------------------------


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv_gradients(geometry):
    layer, A, rng = conv_case(geometry, seed=3)
    errors = check_layer(layer, A, rng)
    assert set(errors) == {"X", *layer.params}
    for key, err in errors.items():
        assert err < TOL, f"Conv2D{geometry} d{key}: {err:.2e} (ours vs numerical)"


@pytest.mark.parametrize("seed", range(3))
def test_batch_norm_gradients(seed):
    rng = np.random.default_rng(seed)
    layer = conv.BatchNorm2D(3, dtype=np.float64)
    layer.params["gamma"][...] = rng.standard_normal(3)
    layer.params["beta"][...] = rng.standard_normal(3)
    running = {k: layer.params[k].copy() for k in ("running_mean", "running_var")}
    errors = check_layer(layer, 3 * rng.standard_normal((3, 3, 4, 5)) + 1, rng)
    assert set(errors) == {"X", "gamma", "beta"}  # statistics have no gradient
    for key, err in errors.items():
        assert err < TOL, f"BatchNorm2D d{key}: {err:.2e} (ours vs numerical)"
    for key, value in running.items():  # put back after the check's training passes
        np.testing.assert_array_equal(layer.params[key], value)


@pytest.mark.parametrize("k, s", [(2, 2), (3, 2), (2, 1)])
def test_maxpool_gradients(k, s):
    rng = np.random.default_rng(k * 10 + s)
    errors = check_layer(conv.MaxPool2D(k, s), distinct(rng, (2, 3, 7, 6)), rng)
    assert errors["X"] < TOL, f"MaxPool2D({k}, {s}): {errors['X']:.2e}"


@pytest.mark.parametrize(
    "layer, shape",
    [(conv.Flatten(), (3, 2, 4, 5)), (conv.Reshape((2, 3, 4)), (3, 24))],
)
def test_reshaping_gradients(layer, shape):
    rng = np.random.default_rng(0)
    assert check_layer(layer, rng.standard_normal(shape), rng)["X"] < 1e-9


def small_cnn(rng, dtype=np.float64):
    """Two convolution blocks and a classifier, the book's CNN in miniature."""
    w = {"rng": rng, "dtype": dtype}
    return Sequential(
        [
            conv.Reshape((1, 8, 8)),
            conv.Conv2D(1, 3, 3, padding=1, bias=False, **w),
            conv.BatchNorm2D(3, dtype=dtype),
            activations.ReLU(),
            conv.MaxPool2D(2),
            conv.Conv2D(3, 4, 3, padding=1, bias=False, **w),
            conv.BatchNorm2D(4, dtype=dtype),
            activations.ReLU(),
            conv.MaxPool2D(2),
            conv.Flatten(),
            Dense(16, 6, init="he", **w),
            activations.ReLU(),
            Dropout(0.25, rng=rng),
            Dense(6, 3, **w),
        ]
    )


def test_a_bias_before_batch_norm_has_no_gradient():
    """Batch normalisation subtracts every constant added before it."""
    rng = np.random.default_rng(9)
    layers = [
        conv.Conv2D(2, 3, 3, rng=rng, dtype=np.float64),
        conv.BatchNorm2D(3, dtype=np.float64),
    ]
    model = Sequential(layers)
    out = model.forward(rng.standard_normal((4, 2, 5, 5)), training=True)
    model.backward(rng.standard_normal(out.shape))
    assert (
        np.abs(layers[0].grads["b"]).max() < 1e-12 * np.abs(layers[0].grads["K"]).max()
    )


def test_whole_cnn_gradients():
    rng = np.random.default_rng(4)
    model = small_cnn(rng)
    for layer in model.layers:  # a generic point: not gamma = 1, beta = 0, b = 0
        for key in ("gamma", "beta", "b"):
            if key in layer.grads:
                layer.params[key][...] += 0.3 * rng.standard_normal(
                    layer.params[key].shape
                )
    X, y = distinct(rng, (5, 64), gap=0.01), rng.integers(0, 3, 5)
    errors = check_model(model, X, y, losses.softmax_cross_entropy)
    assert len(errors) == 10  # K; gamma, beta; K; gamma, beta; W, b; W, b
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOL, f"{worst}: {errors[worst]:.2e} (ours vs numerical)"


# --- Against PyTorch, float64 --------------------------------------------------------


def tensor(torch, a):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv_matches_pytorch(geometry):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    F = torch.nn.functional
    layer, A, rng = conv_case(geometry, seed=5)
    Z = layer.forward(A, training=True)
    G = rng.standard_normal(Z.shape)
    dA = layer.backward(G)
    A_t, K_t = tensor(torch, A), tensor(torch, layer.params["K"])
    b_t = tensor(torch, layer.params["b"]) if layer.bias else None
    ref = F.conv2d(A_t, K_t, b_t, stride=layer.stride, padding=layer.padding)
    (ref * torch.from_numpy(G)).sum().backward()
    np.testing.assert_allclose(
        Z, ref.detach().numpy(), atol=1e-12, err_msg="Z: ours vs PyTorch"
    )
    np.testing.assert_allclose(
        dA, A_t.grad.numpy(), atol=1e-12, err_msg="dA: ours vs PyTorch"
    )
    np.testing.assert_allclose(
        layer.grads["K"], K_t.grad.numpy(), atol=1e-12, err_msg="dK: ours vs PyTorch"
    )
    if layer.bias:
        np.testing.assert_allclose(layer.grads["b"], b_t.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("k, s", [(2, 2), (3, 2), (2, 1)])
def test_maxpool_matches_pytorch_ties_included(k, s):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    rng = np.random.default_rng(k + s)
    A = np.maximum(rng.standard_normal((2, 3, 7, 9)), 0)  # after a ReLU: many ties at 0
    A[0, 0, :2, :2] = 1.5  # and a tie between positive values
    layer = conv.MaxPool2D(k, s)
    out = layer.forward(A, training=True)
    G = rng.standard_normal(out.shape)
    A_t = tensor(torch, A)
    ref = torch.nn.functional.max_pool2d(A_t, k, s)
    (ref * torch.from_numpy(G)).sum().backward()
    np.testing.assert_array_equal(out, ref.detach().numpy())
    # Exactly the same entries receive the gradients (where windows overlap, the sums
    # may be added in another order).
    np.testing.assert_allclose(layer.backward(G), A_t.grad.numpy(), rtol=1e-15)


def test_batch_norm_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    rng = np.random.default_rng(6)
    layer = conv.BatchNorm2D(4, dtype=np.float64)
    bn = torch.nn.BatchNorm2d(4, dtype=torch.float64)  # momentum 0.1, eps 1e-5
    for step in range(3):  # the running averages over several batches
        Z = (step + 1) * rng.standard_normal((5, 4, 3, 6)) + step
        Z_t = tensor(torch, Z)
        out = layer.forward(Z, training=True)
        ref = bn(Z_t)
        G = rng.standard_normal(Z.shape)
        (ref * torch.from_numpy(G)).sum().backward()
        dZ = layer.backward(G)
        np.testing.assert_allclose(out, ref.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(dZ, Z_t.grad.numpy(), atol=1e-12, err_msg="dZ")
        np.testing.assert_allclose(
            layer.grads["gamma"], bn.weight.grad.numpy(), atol=1e-12
        )
        np.testing.assert_allclose(
            layer.grads["beta"], bn.bias.grad.numpy(), atol=1e-12
        )
        bn.weight.grad = bn.bias.grad = None
        for ours, theirs in [
            ("running_mean", bn.running_mean),
            ("running_var", bn.running_var),
        ]:
            np.testing.assert_allclose(layer.params[ours], theirs.numpy(), rtol=1e-12)
    bn.eval()
    np.testing.assert_allclose(
        layer.forward(Z), bn(torch.from_numpy(Z)).detach().numpy(), atol=1e-12
    )


# --- Errors a reader will meet ------------------------------------------------------


def one_sentence(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message.endswith(".") and "\n" not in message, message
    return message


WRONG_INPUTS = {
    "channels": (conv.Conv2D(3, 4, 3), (2, 1, 8, 8), False, "expects 3 input channels"),
    "small": (conv.Conv2D(1, 4, 5, padding=1), (2, 1, 2, 2), False, "than the 5 x 5"),
    "no channel axis": (conv.Conv2D(1, 4, 3), (2, 8, 8), False, "X[:, None]"),
    "bn channels": (conv.BatchNorm2D(16), (2, 8, 5, 5), True, "expects 16 input"),
    "batch of one": (conv.BatchNorm2D(2), (1, 2, 5, 5), True, "at least two examples"),
    "pool": (conv.MaxPool2D(2), (2, 3, 1, 4), False, "than the 2 x 2 pooling window"),
    "reshape": (conv.Reshape((1, 28, 28)), (2, 100), False, "needs 784 values"),
}


@pytest.mark.parametrize("case", WRONG_INPUTS)
def test_wrong_inputs_get_one_sentence_that_says_what_to_do(case):
    layer, shape, training, words = WRONG_INPUTS[case]
    with pytest.raises(ValueError) as err:
        layer.forward(np.ones(shape, np.float32), training=training)
    assert words in one_sentence(err)


def test_batch_of_one_is_fine_at_inference():
    layer = conv.BatchNorm2D(2)
    assert layer.forward(np.ones((1, 2, 3, 3), np.float32)).shape == (1, 2, 3, 3)


def every_layer():
    """Every registered layer type (``tests/zoo.py``), the identity base class, and a
    whole model, which is itself a layer."""
    rng = np.random.default_rng(0)
    zoo = [example(name, rng, np.float32) for name in registry.LAYERS]
    return [
        *((layer, X.shape) for layer, X in zoo),
        (Layer(), (2, 4)),
        (small_cnn(rng, np.float32), (2, 64)),
    ]


@pytest.mark.parametrize("layer, shape", every_layer(), ids=lambda x: type(x).__name__)
def test_every_layer_keeps_the_contract(layer, shape):
    X = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    out = layer.forward(X)  # inference: nothing cached, so backward must refuse
    with pytest.raises(RuntimeError) as err:
        layer.backward(np.ones_like(out))
    assert "forward(X, training=True)" in one_sentence(err)
    out = layer.forward(X, training=True)
    dX = layer.backward(np.ones_like(out))
    assert dX.shape == X.shape
    grads = {k: g.copy() for k, g in layer.grads.items()}
    assert layer.backward(np.ones_like(out), input_grad=False) is None
    for key, value in grads.items():  # the parameters' gradients all the same
        np.testing.assert_array_equal(layer.grads[key], value)


def test_training_skips_the_gradients_nothing_needs():
    """Before the first layer with parameters, no backward runs at all."""
    calls = []

    class Logged(conv.Reshape):
        def backward(self, dout, input_grad=True):
            calls.append(input_grad)
            return super().backward(dout, input_grad)

    rng = np.random.default_rng(0)
    model = small_cnn(rng)
    model.layers[0] = Logged((1, 8, 8))
    X = rng.standard_normal((4, 64))
    out = model.forward(X, training=True)
    assert model.backward(np.ones_like(out), input_grad=False) is None
    assert calls == []
    assert model.backward(np.ones_like(out)).shape == X.shape and calls == [True]


# --- A CNN in the machinery that was built for the MLP ------------------------------


def test_a_cnn_saves_and_loads_without_pickle(tmp_path):
    rng = np.random.default_rng(7)
    model = small_cnn(rng, np.float32)
    X = rng.random((10, 64)).astype(np.float32)
    model.forward(X, training=True)  # running averages that differ from the start
    path = model.save(tmp_path / "cnn.npz", note="small")
    again = load(path)
    assert [type(layer) for layer in again.layers] == [
        type(layer) for layer in model.layers
    ]
    assert again.dtype == np.float32 and again.metadata == {"note": "small"}
    for ours, theirs in zip(model.layers, again.layers, strict=True):
        assert ours.config() == theirs.config()
        for key, value in ours.params.items():
            np.testing.assert_array_equal(theirs.params[key], value)
    np.testing.assert_array_equal(again.predict_logits(X), model.predict_logits(X))


def test_layers_with_a_custom_initialiser_save_and_load(tmp_path):
    """A function as initialiser is saved as "custom"; loading starts from zeros, puts
    the saved values in, and keeps the layer's initialiser named as it was saved."""

    def small(n_in, n_out, rng, dtype=np.float32):
        return rng.normal(0.0, 0.01, (n_in, n_out)).astype(dtype)

    rng = np.random.default_rng(1)
    model = Sequential(
        [
            conv.Reshape((1, 4, 4)),
            conv.Conv2D(1, 2, 3, padding=1, init=small, rng=rng),
            conv.Flatten(),
            Dense(32, 3, init=small, rng=rng),
        ]
    )
    X = rng.random((5, 16)).astype(np.float32)
    again = load(model.save(tmp_path / "custom.npz"))
    assert [layer.config().get("init") for layer in again.layers] == [
        None, "custom", None, "custom"
    ]  # fmt: skip
    np.testing.assert_array_equal(again.predict_logits(X), model.predict_logits(X))


def test_parameters_are_the_trained_arrays_and_filters_decay():
    model = small_cnn(np.random.default_rng(0))
    names = {p.name: p.decay for p in model.parameters()}
    assert "2.running_mean" not in names and names["2.gamma"] is False
    assert names["1.K"] is True and names["10.b"] is False and names["10.W"] is True
    assert model.num_parameters() == (9 * 3 + 2 * 3) + (27 * 4 + 2 * 4) + (
        16 * 6 + 6
    ) + (6 * 3 + 3)


def test_the_model_checks_image_inputs_at_the_door():
    rng = np.random.default_rng(0)
    model = small_cnn(rng, np.float32)  # starts with Reshape((1, 8, 8)): rows of 64
    with pytest.raises(ValueError, match=r"X.reshape\(len\(X\), -1\)") as err:
        model.check_inputs(np.zeros((3, 8, 8)))
    one_sentence(err)
    maps = Sequential(model.layers[1:])  # starts with the convolution: (B, 1, H, W)
    assert maps.input_shape == (1, None, None)
    assert maps.check_inputs(np.zeros((3, 1, 8, 8))).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="examples of shape") as err:
        maps.check_inputs(np.zeros((3, 2, 8, 8)))
    one_sentence(err)


def test_fit_trains_a_cnn_unchanged():
    rng = np.random.default_rng(8)
    model = small_cnn(rng, np.float32)
    X = rng.random((96, 64)).astype(np.float32)
    y = (X[:, :32].sum(axis=1) > X[:, 32:].sum(axis=1)).astype(int)
    history = fit(
        model, X, y, optimizer=SGD(model.parameters(), lr=0.1), epochs=8,
        batch_size=16, rng=rng, validation=(X, y),
    )  # fmt: skip
    assert history.loss[-1] < history.loss[0]


# --- Element-wise passes split over threads (dlfp.threads.split) ---------------------
#
# Each part of a split pass computes its numbers by the same operations in the same
# order as the whole pass: the results must agree to the last bit on 1, 2 and 3
# threads, with parts of unequal sizes (3 threads on odd batches), and with every pass
# split however small (SPLIT_MIN_SIZE = 0).


@pytest.fixture
def split_everything(monkeypatch):
    monkeypatch.setattr(threads, "SPLIT_MIN_SIZE", 0)
    monkeypatch.setattr(activations, "SPLIT_MIN_SIZE", 0)


def on_threads(n, compute):
    """compute() with dlfp's element-wise passes on n threads."""
    with threads.limit_elementwise(n):
        return compute()


def assert_same_bits(compute):
    reference = on_threads(1, compute)
    for n in (2, 3):
        for ours, theirs in zip(on_threads(n, compute), reference, strict=True):
            assert ours.dtype == theirs.dtype
            np.testing.assert_array_equal(ours, theirs)


def layer_pass(layer, X, seed=11):
    """Forward in training, the backward pass, and forward at inference, from a copy
    of ``layer``'s state: every array the layer returns or keeps."""

    def compute():
        twin = layer.__class__.__new__(layer.__class__)
        twin.__dict__ = {
            key: ({k: v.copy() for k, v in value.items()} if isinstance(value, dict)
                  else value)
            for key, value in layer.__dict__.items()
        }  # fmt: skip
        out = twin.forward(X, training=True)
        dout = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        dX = twin.backward(dout)
        inference = twin.forward(X, training=False)
        params = [twin.params[k] for k in sorted(getattr(twin, "params", {}))]
        grads = [twin.grads[k] for k in sorted(getattr(twin, "grads", {}))]
        return [out, dX, inference, *params, *grads]

    return compute


def channels_last(rng, shape, dtype):
    """Random maps (B, C, H, W) stored channels-last, as the layers pass them on."""
    B, C, H, W = shape
    return rng.standard_normal((B, H, W, C)).astype(dtype).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 16, 14, 14), (3, 3, 7, 9), (2, 4, 6, 6)])
def test_split_layers_agree_bit_for_bit(split_everything, shape, dtype):
    """Every layer of the book's CNN, split over 1, 2 and 3 threads: the same bits."""
    rng = np.random.default_rng(12)
    B, C, H, W = shape
    X = channels_last(rng, shape, dtype)
    bn = conv.BatchNorm2D(C, dtype=dtype)
    bn.params["gamma"][...] = rng.uniform(0.5, 2, C)
    bn.params["beta"][...] = rng.standard_normal(C)
    layers = [
        conv.Conv2D(C, 8, 3, padding=1, bias=False, rng=rng, dtype=dtype),
        conv.Conv2D(C, 5, 2, stride=2, rng=rng, dtype=dtype),
        bn,
        activations.ReLU(),
        conv.MaxPool2D(2),
        conv.MaxPool2D(3, 2),
    ]
    for layer in layers:
        assert_same_bits(layer_pass(layer, X))
    # A one-channel input takes im2col, not im2col_strided; NCHW maps too.
    one = conv.Conv2D(1, 4, 3, padding=1, rng=rng, dtype=dtype)
    assert_same_bits(layer_pass(one, rng.standard_normal((B, 1, H, W)).astype(dtype)))
    assert_same_bits(layer_pass(bn, rng.standard_normal(shape).astype(dtype)))


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_split_copies_agree_bit_for_bit(split_everything, geometry):
    B, C, H, W, C_out, k, s, p, _ = geometry
    rng = np.random.default_rng(13)
    A_pad = rng.standard_normal((B, H + 2 * p, W + 2 * p, C))
    rows = B * conv.output_size(H, k, s, p) * conv.output_size(W, k, s, p)
    dtaps = rng.standard_normal((k * k, rows, C))
    assert_same_bits(
        lambda: [conv.im2col(A_pad, k, s), conv.im2col_strided(A_pad, k, s)]
    )
    assert_same_bits(lambda: [conv.col2im_by_tap(dtaps, A_pad.shape, k, s)])


def book_cnn_run(steps, seed=14):
    """The book's CNN (CNNConfig's architecture) trained ``steps`` steps with AdamW
    on random images: the losses, the parameters and the statistics of its layers."""
    from dlfp.cnn import adamw, cnn
    from dlfp.recipes import CNNConfig
    from dlfp.train import train_step

    config = CNNConfig()
    rng = np.random.default_rng(seed)
    model = cnn(config, rng=np.random.default_rng(config.seed))
    optimizer = adamw(model, config)
    run = []
    for _ in range(steps):
        X = rng.random((32, 784), dtype=np.float32)
        y = rng.integers(0, 10, 32)
        run.append(np.float64(train_step(model, losses.softmax_cross_entropy,
                                         optimizer, X, y)[0]))  # fmt: skip
    run += [p.value for p in model.parameters()]
    run += [layer.params[k] for layer in model.layers for k in ("running_mean",
            "running_var") if k in getattr(layer, "params", {})]  # fmt: skip
    run.append(model.predict_logits(rng.random((64, 784), dtype=np.float32)))
    return run


def test_training_the_book_cnn_on_two_threads_changes_no_bit(split_everything):
    """20 training steps of the book's CNN (batches of 32, every pass split, however
    small) on one thread and on two: the same losses, parameters and running
    statistics, to the last bit."""
    one = on_threads(1, lambda: book_cnn_run(20))
    two = on_threads(2, lambda: book_cnn_run(20))
    for ours, theirs in zip(two, one, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_one_thread_never_starts_the_pool(monkeypatch):
    """DLFP_THREADS=1 (or OMP_NUM_THREADS=1): every pass is a plain call, no thread."""
    monkeypatch.setattr(threads, "_pool", None)
    monkeypatch.setattr(threads, "_pool_workers", 0)
    for name in ("DLFP_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv("DLFP_THREADS", raising=False)
        monkeypatch.setenv(name, "1")
        assert threads.elementwise_threads() == 1
        book_cnn_run(2)
        assert threads._pool is None
    monkeypatch.setenv("DLFP_THREADS", "2")
    assert threads.elementwise_threads() == 2
    with threads.limit_blas(1), threads.limit_elementwise(None):
        assert threads.elementwise_threads() == 1  # limit_blas caps the passes too
    with threads.limited(1):
        assert threads.elementwise_threads() == 1
    assert threads.elementwise_threads() == 2


def two_threads_meet():
    """A function that the first two parts to call it wait in until both are there: it
    makes a split pass run two parts at once (or fail after 20 s), whatever the load."""
    barrier, calls, lock = threading.Barrier(2, timeout=20), [], threading.Lock()

    def meet():
        with lock:
            calls.append(None)
            first_two = len(calls) <= 2
        if first_two:
            barrier.wait()

    return meet


def test_split_runs_small_passes_inline_and_large_ones_on_the_pool():
    calls, caller = [], threading.current_thread().name
    meet = two_threads_meet()

    def work(start, stop):
        meet()
        calls.append((start, stop, threading.current_thread().name))

    with threads.limit_elementwise(2):
        threads.split(
            lambda a, b: calls.append((a, b)), 128, threads.SPLIT_MIN_SIZE - 1
        )
        assert calls == [(0, 128)]
        calls.clear()
        threads.split(work, 128, threads.SPLIT_MIN_SIZE)
        parts = 2 * threads.PARTS_PER_THREAD
        assert sorted(c[:2] for c in calls) == [
            (128 * i // parts, 128 * (i + 1) // parts) for i in range(parts)
        ]
        assert {c[2] == caller for c in calls} == {True, False}  # caller and pool
        calls.clear()
        threads.split(lambda a, b: calls.append((a, b)), 1, 10**9)  # one example
        assert calls == [(0, 1)]


def test_split_parts_run_in_the_callers_errstate_and_raise_its_errors():
    seen, meet = [], two_threads_meet()

    def work(start, stop):
        meet()
        seen.append((np.geterr()["over"], threading.current_thread().name))
        if start > 0:
            raise ZeroDivisionError("from a later part")

    with threads.limit_elementwise(2), np.errstate(over="ignore"):
        with pytest.raises(ZeroDivisionError, match="later part"):
            threads.split(work, 4, threads.SPLIT_MIN_SIZE)
    assert len(seen) == 4 and {over for over, _ in seen} == {"ignore"}
    assert len({name for _, name in seen}) == 2  # the pool's thread too


def test_split_inside_a_part_runs_inline():
    inner_calls, meet = [], two_threads_meet()

    def outer(start, stop):
        meet()
        in_pool = threading.current_thread() is not threading.main_thread()
        threads.split(
            lambda a, b: inner_calls.append((in_pool, a, b)), 8, threads.SPLIT_MIN_SIZE
        )

    with threads.limit_elementwise(2):
        threads.split(outer, 2, threads.SPLIT_MIN_SIZE)
    assert (True, 0, 8) in inner_calls  # a part on the pool: its split is one call
    assert [c for c in inner_calls if c[0]] == [(True, 0, 8)]


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_limit_elementwise_wants_a_whole_number(n):
    with pytest.raises(ValueError, match="whole number"), threads.limit_elementwise(n):
        pass
