"""Optimizers, the model's input checks, the training loop, saving and loading."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlfp import optim, toy
from dlfp.activations import Tanh
from dlfp.layers import Dense
from dlfp.losses import mse, softmax_cross_entropy
from dlfp.model import ModelFileError, Sequential, load, mlp
from dlfp.recipes import CNNConfig, learning_rate
from dlfp.train import TrainingDivergedError, batches, fit, train_step


def spiral_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X, y = toy.spirals(300, rng, classes=3, noise=0.2, turns=1.0)
    return toy.train_test_split(X, y, 0.25, rng)


# --- Optimizers against PyTorch's, step by step -------------------------------------


def run_ours(kind, kwargs, steps, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    model = mlp([4, 5, 3], "tanh", rng=rng, dtype=np.float64)
    opt = optim.get(kind)(model.parameters(), **kwargs)
    grads = [
        [rng.standard_normal(p.value.shape) for p in model.parameters()]
        for _ in range(steps)
    ]
    start = [p.value.copy() for p in model.parameters()]
    for step in grads:
        for p, g in zip(model.parameters(), step, strict=True):
            p.grad[...] = g
        opt.step()
    return start, grads, [p.value for p in model.parameters()]


TORCH_OPTIMIZERS = {
    "sgd": ("SGD", {"lr": 0.1}, {"lr": 0.1}),
    "momentum": ("SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.9}),
    "nesterov": (
        "SGD",
        {"lr": 0.05, "momentum": 0.8, "nesterov": True},
        {"lr": 0.05, "momentum": 0.8, "nesterov": True},
    ),
    "adam": (
        "Adam",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-7},
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-7},
    ),
    "adam_l2": (
        "Adam",
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "weight_decay": 0.1},
    ),
    "sgd_l2": (
        "SGD",
        {"lr": 0.1, "weight_decay": 0.05},
        {"lr": 0.1, "weight_decay": 0.05},
    ),
    "adagrad": ("Adagrad", {"lr": 0.05, "eps": 1e-9}, {"lr": 0.05, "eps": 1e-9}),
    "adagrad_l2": (
        "Adagrad",
        {"lr": 0.05, "weight_decay": 0.1},
        {"lr": 0.05, "weight_decay": 0.1},
    ),
    "rmsprop": (
        "RMSprop",
        {"lr": 0.01, "beta2": 0.9, "eps": 1e-7},
        {"lr": 0.01, "alpha": 0.9, "eps": 1e-7},
    ),
    "rmsprop_l2": (
        "RMSprop",
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "weight_decay": 0.1},
    ),
}


@pytest.mark.parametrize("name", TORCH_OPTIMIZERS)
def test_optimizers_match_pytorch(name):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    torch_name, ours_kwargs, torch_kwargs = TORCH_OPTIMIZERS[name]
    kind = name.removesuffix("_l2")
    if kind == "nesterov":
        kind = "momentum"
    ours_kwargs = dict(ours_kwargs)
    if kind == "momentum":
        ours_kwargs.setdefault("nesterov", False)
    start, grads, ours = run_ours(kind, ours_kwargs, steps=7)
    params = [torch.tensor(v, requires_grad=True) for v in start]
    decay = torch_kwargs.pop("weight_decay", 0.0)
    groups = [
        {"params": params[0::2], "weight_decay": decay},  # weights decay
        {"params": params[1::2], "weight_decay": 0.0},
    ]  # biases do not
    opt = getattr(torch.optim, torch_name)(groups, **torch_kwargs)
    for step in grads:
        for p, g in zip(params, step, strict=True):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
    for i, (mine, theirs) in enumerate(zip(ours, params, strict=True)):
        np.testing.assert_allclose(
            mine,
            theirs.detach().numpy(),
            rtol=1e-12,
            atol=1e-14,
            err_msg=f"{name}, parameter {i}: ours vs PyTorch",
        )


def test_momentum_forms_agree():
    """PyTorch's v <- mu v + g, theta -= eta v equals the textbook v <- mu v - eta g."""
    start, grads, ours = run_ours("momentum", {"lr": 0.1, "momentum": 0.9}, steps=5)
    theta = [s.copy() for s in start]
    v = [np.zeros_like(s) for s in start]
    for step in grads:
        for i, g in enumerate(step):
            v[i] = 0.9 * v[i] - 0.1 * g
            theta[i] = theta[i] + v[i]
    for a, b in zip(ours, theta, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0.0}, "learning rate must be positive"),
        ({"lr": 0.1, "momentum": 1.0}, "momentum must be in"),
    ],
)
def test_optimizer_arguments_are_checked(kwargs, message):
    model = mlp([2, 2], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        optim.Momentum(model.parameters(), **kwargs)


def test_rmsprop_and_warmup_arguments_are_checked():
    model = mlp([2, 2], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="beta2 must be in"):
        optim.RMSProp(model.parameters(), lr=0.1, beta2=1.0)
    with pytest.raises(ValueError, match="at least one step"):
        optim.warmup_schedule(0.1, 0)
    with pytest.raises(ValueError, match="unknown optimizer 'adadelta'.*rmsprop"):
        optim.get("adadelta")


def test_adagrad_first_step_is_eta_per_coordinate_and_rmsprop_forgets():
    """AdaGrad's first step is eta sign(g); with a constant gradient its steps fall as
    1/sqrt(t) while RMSProp's settle at eta (a sum never forgets, an average does)."""
    theta = {k: np.zeros(3) for k in ("adagrad", "rmsprop")}
    grad = np.array([1e-3, 1.0, -50.0])
    opts = {
        "adagrad": optim.AdaGrad(
            [optim.Parameter(theta["adagrad"], grad, "t", False)], lr=0.1, eps=0
        ),
        "rmsprop": optim.RMSProp(
            [optim.Parameter(theta["rmsprop"], grad, "t", False)], lr=0.1, eps=0
        ),
    }
    steps = {k: [] for k in opts}
    for _ in range(2000):
        for k, opt in opts.items():
            before = theta[k].copy()
            opt.step()
            steps[k].append(np.abs(theta[k] - before))
    np.testing.assert_allclose(steps["adagrad"][0], 0.1)
    np.testing.assert_allclose(steps["adagrad"][99], 0.1 / np.sqrt(100))
    np.testing.assert_allclose(steps["rmsprop"][-1], 0.1, rtol=1e-6)


def test_warmup_schedule_rises_linearly_then_holds():
    rate = optim.warmup_schedule(0.2, 4)
    expected = [0.05, 0.1, 0.15, 0.2, 0.2, 0.2]
    assert [rate(t) for t in range(6)] == pytest.approx(expected)


def _eq_torch_schedule(step, total_steps, config):
    """Eq. (eq-torch-schedule) of the PyTorch chapter, written out as the book's numbers
    were first computed (the same floating-point operations)."""
    warm = max(1, round(config.warmup * total_steps))
    if step < warm:
        return config.lr * step / warm
    progress = (step - warm) / max(1, total_steps - warm)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _bits(values):
    return [float(v).hex() for v in values]


def test_the_cnn_schedule_is_eq_torch_schedule_bit_for_bit():
    """Every step of the book's CNN recipe (55,000 training images), and others: the
    warm-up, then half a cosine to 0, and 0 after the last step."""
    book = CNNConfig()
    runs = [(book, book.epochs * book.steps_per_epoch(55_000))]
    for warmup in (0.0, 0.15, 0.2, 0.5, 1.0):
        for total in (1, 2, 3, 7, 10, 100, 431, 1000):
            runs.append((CNNConfig(lr=0.01, warmup=warmup), total))
    for config, total in runs:
        steps = range(total + 2)  # one past the end: the rate stays at 0
        expected = _bits(_eq_torch_schedule(s, total, config) for s in steps)
        assert _bits(learning_rate(s, total, config) for s in steps) == expected
        rate = optim.warmup_cosine_schedule(config.lr, total, config.warmup)
        assert _bits(rate(s) for s in steps) == expected


# --- Errors at the model's door -----------------------------------------------------


@pytest.fixture
def model():
    return mlp([4, 8, 3], rng=np.random.default_rng(0))


def test_dense_layer_names_both_feature_counts():
    layer = Dense(784, 10, rng=np.random.default_rng(0))
    with pytest.raises(
        ValueError, match="expects 784 features per example but got 100"
    ):
        layer.forward(np.zeros((5, 100), np.float32))


@pytest.mark.parametrize(
    "X, y, message",
    [
        (
            np.zeros((5, 4)),
            np.array([0, 1, 2, 3, 1]),
            "labels must be integers from 0 to 2",
        ),
        (np.zeros((5, 4)), np.array([0, 1, -1, 2, 1]), "but y holds -1"),
        (np.zeros((5, 4)), np.array([0, 1, 2]), "X has 5 examples but y has 3 labels"),
        (np.full((5, 4), np.nan), np.zeros(5, int), "NaN or infinite"),
        (np.array([[0, 1, np.inf, 0]] * 5), np.zeros(5, int), "NaN or infinite"),
        (
            np.zeros((5, 3)),
            np.zeros(5, int),
            "expects 4 features per example but X has 3",
        ),
        (np.zeros((5, 2, 2)), np.zeros(5, int), r"X.reshape\(len\(X\), -1\)"),
        (np.zeros((5, 4)), np.zeros(5), "class labels must be integers"),
    ],
)
def test_bad_inputs_are_caught_at_the_door(model, X, y, message):
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=message) as err:
        fit(
            model,
            X,
            y,
            optimizer=opt,
            epochs=1,
            batch_size=2,
            rng=np.random.default_rng(0),
        )
    assert str(err.value).endswith(".") and "\n" not in str(err.value)


def test_train_step_is_one_step_of_eq_gd_update():
    """One step of eq. (eq-gd-update), theta <- theta - eta g, with g the gradient of
    the mini-batch loss (eq. (eq-gd-minibatch)) that a forward pass in training mode
    (dropout on) and backward give; it returns that loss and that output."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    model = mlp([4, 8, 3], "relu", dropout=0.5, rng=np.random.default_rng(1))
    twin = mlp([4, 8, 3], "relu", dropout=0.5, rng=np.random.default_rng(1))
    eta = 0.1
    sgd = optim.SGD(model.parameters(), lr=eta)
    for _ in range(3):
        value, out = train_step(model, softmax_cross_entropy, sgd, X, y)
        expected_out = twin.forward(X, training=True)
        expected, dout = softmax_cross_entropy(expected_out, y)
        twin.backward(dout, input_grad=False)
        for p in twin.parameters():
            p.value[...] -= eta * p.grad  # eq. (eq-gd-update)
        assert value == expected
        np.testing.assert_array_equal(out, expected_out)
        for p, q in zip(model.parameters(), twin.parameters(), strict=True):
            np.testing.assert_array_equal(p.value, q.value, err_msg=p.name)


def test_train_step_refuses_a_non_finite_loss_and_leaves_the_model():
    rng = np.random.default_rng(0)
    model = mlp([3, 4, 1], "relu", rng=rng)
    opt = optim.SGD(model.parameters(), lr=0.5)
    before = [p.value.copy() for p in model.parameters()]
    X = np.full((2, 3), np.inf, np.float32)
    with pytest.raises(TrainingDivergedError, match="smaller learning rate") as err:
        train_step(model, mse, opt, X, np.zeros((2, 1), np.float32))
    assert not math.isfinite(err.value.loss)
    assert str(err.value).endswith(".") and "\n" not in str(err.value)
    for p, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.value, b)


def test_diverging_loss_names_the_epoch_and_the_remedy():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 3)) * 100, rng.standard_normal((64, 1)) * 100
    model = mlp([3, 16, 1], "relu", rng=rng)
    opt = optim.SGD(model.parameters(), lr=10.0)
    with pytest.raises(
        TrainingDivergedError, match=r"in epoch \d+ .*smaller learning rate"
    ):
        fit(
            model,
            X,
            y,
            optimizer=opt,
            epochs=20,
            batch_size=16,
            rng=rng,
            loss=mse,
            classification=False,
        )


# --- The training loop --------------------------------------------------------------


def test_batches_cover_every_example_once():
    rng = np.random.default_rng(0)
    seen = np.concatenate(list(batches(103, 10, rng)))
    assert sorted(seen.tolist()) == list(range(103))
    assert [len(b) for b in batches(103, 10, None)][-1] == 3


def train_spirals(seed: int, hidden: list[int], epochs: int = 300, dtype=np.float32):
    X_tr, y_tr, X_te, y_te = spiral_data()
    rng = np.random.default_rng(seed)
    model = mlp([2, *hidden, 3], "relu", rng=rng, dtype=dtype)
    opt = optim.Adam(model.parameters(), lr=0.01)
    history = fit(
        model,
        X_tr,
        y_tr,
        optimizer=opt,
        epochs=epochs,
        batch_size=32,
        rng=rng,
        validation=(X_te, y_te),
    )
    return model, history, model.evaluate(X_te, y_te)[1]


def test_two_hidden_layers_solve_the_spirals_and_a_linear_model_cannot():
    _, history, deep = train_spirals(0, [64, 64])
    _, _, linear = train_spirals(0, [])
    assert deep >= 0.97, f"two hidden layers: test accuracy {deep:.3f}"
    assert linear < 0.60, f"linear model: test accuracy {linear:.3f}"
    assert history.loss[-1] < history.loss[0] / 5


def test_same_seed_same_numbers_and_dtypes():
    m1, h1, _ = train_spirals(3, [16], epochs=5)
    m2, h2, _ = train_spirals(3, [16], epochs=5)
    m3, h3, _ = train_spirals(4, [16], epochs=5)
    assert h1.step_loss == h2.step_loss and h1.step_loss != h3.step_loss
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    assert m1.dtype == np.float32
    m64, _, _ = train_spirals(3, [16], epochs=1, dtype=np.float64)
    assert all(p.value.dtype == np.float64 for p in m64.parameters())


def test_history_records_every_epoch():
    _, history, _ = train_spirals(0, [8], epochs=4)
    assert history.epoch == [1, 2, 3, 4]
    assert len(history.val_accuracy) == 4 and all(0 <= a <= 1 for a in history.accuracy)
    assert len(history.step_loss) == 4 * int(np.ceil(675 / 32))


def test_cosine_schedule_is_applied():
    rng = np.random.default_rng(0)
    X, y = toy.blobs(20, [[0, 0], [3, 3]], rng)
    model = mlp([2, 2], rng=rng)
    opt = optim.SGD(model.parameters(), lr=1.0)
    schedule = optim.cosine_schedule(0.5, 4)
    history = fit(
        model,
        X,
        y,
        optimizer=opt,
        epochs=4,
        batch_size=8,
        rng=rng,
        lr_schedule=schedule,
    )
    assert history.lr == pytest.approx(
        [
            0.5,
            0.5 * (1 + np.cos(np.pi / 4)) / 2,
            0.25,
            0.5 * (1 + np.cos(3 * np.pi / 4)) / 2,
        ]
    )


def test_progress_bar_and_verbose_output(capsys):
    rng = np.random.default_rng(0)
    X, y = toy.blobs(10, [[0, 0], [3, 3]], rng)
    model = mlp([2, 2], rng=rng)
    fit(
        model,
        X,
        y,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        batch_size=4,
        rng=rng,
        progress=True,
        verbose=True,
    )
    out = capsys.readouterr()
    assert "epoch   2/2" in out.out and "batch" in out.err


# --- Saving and loading -------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    model, _, acc = train_spirals(0, [16, 16], epochs=3)
    X_tr, y_tr, X_te, y_te = spiral_data()
    path = model.save(tmp_path / "spirals", test_accuracy=acc)
    assert path.suffix == ".npz"
    again = load(path)
    np.testing.assert_array_equal(
        again.predict_logits(X_te), model.predict_logits(X_te)
    )
    assert again.metadata == {"test_accuracy": acc}
    assert [type(layer).__name__ for layer in again.layers] == [
        type(layer).__name__ for layer in model.layers
    ]
    # Saved without pickle: NumPy can read it with pickling forbidden.
    with np.load(path, allow_pickle=False) as archive:
        assert "__spec__" in archive.files


def test_loading_something_else_fails_clearly(tmp_path):
    cases = {
        "missing.npz": None,
        "text.npz": b"not a zip archive at all",
        "other.npz": "arrays",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content == "arrays":
            np.savez(path, weights=np.zeros(3))
        elif content is not None:
            path.write_bytes(content)
        with pytest.raises(ModelFileError) as err:
            load(path)
        message = str(err.value)
        assert str(path) in message and message.endswith(".") and "\n" not in message


def test_loading_a_damaged_model_fails_clearly(tmp_path):
    model = mlp([3, 4, 2], rng=np.random.default_rng(0))
    path = model.save(tmp_path / "m.npz")
    with np.load(path) as archive:
        entries = {k: archive[k] for k in archive.files}
    entries["0.W"] = entries["0.W"][:2]
    np.savez(tmp_path / "cut.npz", **entries)
    with pytest.raises(ModelFileError, match=r"0.W should have shape \(3, 4\)"):
        load(tmp_path / "cut.npz")


def test_sequential_is_a_layer():
    rng = np.random.default_rng(0)
    inner = mlp([3, 4], rng=rng, dtype=np.float64)
    outer = Sequential([inner])
    X = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(outer.forward(X), inner.forward(X))


def test_a_nested_model_trains_saves_and_checks_every_parameter(tmp_path):
    """A Sequential among the layers of another contributes its layers: the optimizer,
    early stopping, saving and the gradient check see every parameter."""
    from dlfp.gradcheck import check_model

    rng = np.random.default_rng(0)
    inner = mlp([3, 5], "tanh", rng=rng, dtype=np.float64)  # Dense(3, 5) alone
    outer = Sequential([inner, Tanh(), Dense(5, 2, rng=rng, dtype=np.float64)])
    assert [p.name for p in outer.parameters()] == ["0.W", "0.b", "2.W", "2.b"]
    before = inner.layers[0].params["W"].copy()
    X, y = rng.standard_normal((8, 3)), rng.integers(0, 2, 8)
    optimizer = optim.SGD(outer.parameters(), lr=0.1)
    fit(outer, X, y, optimizer=optimizer, epochs=2, batch_size=4, rng=rng)
    assert not np.array_equal(inner.layers[0].params["W"], before), "inner not trained"
    errors = check_model(outer, X, y, softmax_cross_entropy)
    assert set(errors) == {"0.W", "0.b", "2.W", "2.b"} and max(errors.values()) < 1e-7
    loaded = load(outer.save(tmp_path / "nested.npz"))
    np.testing.assert_array_equal(loaded.forward(X), outer.forward(X))


def test_backward_without_input_gradient_gives_the_same_parameter_gradients():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((16, 6))
    model = mlp([6, 5, 3], rng=rng, dtype=np.float64)
    dZ = rng.standard_normal((16, 3))

    model.forward(X, training=True)
    dX = model.backward(dZ)
    full = [p.grad.copy() for p in model.parameters()]
    model.forward(X, training=True)
    assert model.backward(dZ, input_grad=False) is None
    assert dX.shape == X.shape
    for before, p in zip(full, model.parameters(), strict=True):
        np.testing.assert_array_equal(before, p.grad)


def test_a_backward_written_for_one_argument_still_works():
    """The contract before ``input_grad``: a layer whose ``backward`` takes ``dout``
    alone is still called, by a model and directly, and writes its gradients; with
    ``input_grad=False`` it returns None."""
    calls = []

    class Logged(Dense):
        def backward(self, dout):
            calls.append(len(dout))
            return super().backward(dout)

    rng = np.random.default_rng(4)
    layer = Logged(4, 3, rng=rng)
    model = Sequential([layer])
    model.forward(rng.standard_normal((5, 4)), training=True)
    model.backward(np.ones((5, 3)), input_grad=False)
    assert calls == [5]
    np.testing.assert_array_equal(layer.grads["b"], np.full(3, 5.0))  # sum over batch
    assert layer.backward(2 * np.ones((5, 3))).shape == (5, 4)
    assert layer.backward(np.ones((5, 3)), input_grad=False) is None
    assert calls == [5, 5, 5]
    np.testing.assert_array_equal(layer.grads["b"], np.full(3, 5.0))


# --- Early stopping -----------------------------------------------------------------


def overfitting_run(patience, epochs=60):
    """A wide network on 40 noisy moons: its validation loss turns up in 60 epochs."""
    rng = np.random.default_rng(0)
    X, y = toy.moons(40, rng, noise=0.35)
    X_val, y_val = toy.moons(200, rng, noise=0.35)
    model = mlp([2, 64, 64, 2], rng=np.random.default_rng(1))
    history = fit(
        model,
        X,
        y,
        optimizer=optim.Adam(model.parameters(), lr=0.02),
        epochs=epochs,
        batch_size=40,
        rng=np.random.default_rng(2),
        validation=(X_val, y_val),
        patience=patience,
    )
    return model, history, (X_val, y_val)


def test_early_stopping_keeps_the_best_weights_and_stops_after_patience():
    _, full, _ = overfitting_run(None)
    assert full.best_epoch is None and full.epoch == list(range(1, 61))  # every epoch
    best = int(np.argmin(full.val_loss)) + 1
    assert best < len(full.epoch) - 5, "the run no longer overfits: the test is void"
    model, history, (X_val, y_val) = overfitting_run(patience=5)
    assert history.best_epoch == best
    assert history.epoch[-1] == min(best + 5, 60)  # stopped after 5 epochs without gain
    assert history.val_loss == full.val_loss[: len(history.epoch)]  # the same run, cut
    val_loss, _ = model.evaluate(X_val, y_val)
    assert val_loss == pytest.approx(min(full.val_loss), rel=1e-6)  # the best weights
    assert history.as_dict()["best_epoch"] == best


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"patience": 3}, "early stopping watches the validation loss"),
        ({"patience": 0, "validation": True}, "patience must be a positive integer"),
        ({"patience": 2.5, "validation": True}, "patience must be a positive integer"),
    ],
)
def test_early_stopping_arguments_are_checked(kwargs, message):
    rng = np.random.default_rng(0)
    X, y = toy.blobs(10, [[0, 0], [3, 3]], rng)
    model = mlp([2, 2], rng=rng)
    if kwargs.pop("validation", False):
        kwargs["validation"] = (X, y)
    with pytest.raises(ValueError, match=message):
        fit(
            model,
            X,
            y,
            optimizer=optim.SGD(model.parameters(), lr=0.1),
            epochs=2,
            batch_size=4,
            rng=rng,
            **kwargs,
        )


def test_the_exact_binomial_test_matches_its_definition():
    from dlfp.metrics import binomial_p_value

    # 5 successes of 5 at p = 0.4: only that outcome is as unlikely, 0.4^5.
    assert binomial_p_value(5, 5, 0.4) == pytest.approx(0.4**5, rel=1e-12)
    # A fair coin: symmetric tails, and the middle is no evidence at all.
    assert binomial_p_value(2, 10, 0.5) == pytest.approx(2 * 56 / 1024, rel=1e-12)
    assert binomial_p_value(5, 10, 0.5) == 1.0
    with pytest.raises(ValueError, match="k must lie between 0 and n = 3"):
        binomial_p_value(4, 3, 0.5)
    with pytest.raises(ValueError, match="p must be a probability"):
        binomial_p_value(1, 3, 1.5)
