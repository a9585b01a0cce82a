"""What keeps the book true on a reader's machine and the command line from losing work:
the margin rule for claims, caches keyed on code and versions, checked options and model
files, and a TensorFlow import that writes nothing to stderr."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dlfp import artifacts, claims, recipes
from dlfp.cli import main
from dlfp.model import ModelFileError, load, mlp
from dlfp.recipes import mlp as mlp_recipe

# --- The margin rule -----------------------------------------------------------------


def runs(*accuracies, n=10_000):
    return [{"test_accuracy": a, "n_test": n} for a in accuracies]


def test_the_bound_uses_the_larger_of_the_spread_and_the_binomial_error():
    # A tiny spread: the test set's own noise sets the margin.
    tight = claims.seed_summary(runs(0.9900, 0.9901, 0.9899))
    se = math.sqrt(0.99 * 0.01 / 10_000)
    assert tight["se"] == pytest.approx(se, rel=1e-3)
    assert tight["bound"] == pytest.approx(0.99 - 3 * se, abs=1e-6)
    # A wide spread: the seeds set it.
    wide = claims.seed_summary(runs(0.990, 0.994, 0.986))
    assert wide["std"] == pytest.approx(0.004)
    assert wide["bound"] == pytest.approx(0.990 - 3 * 0.004)


def test_a_claim_above_the_bound_or_above_the_build_fails():
    measured = runs(0.990, 0.991, 0.989)
    claims.check_claim(0.98, 0.985, measured)
    with pytest.raises(claims.ClaimError, match="above .* what the recorded runs"):
        claims.check_claim(0.989, 0.995, measured)
    with pytest.raises(claims.ClaimError, match="below the claimed"):
        claims.check_claim(0.98, 0.979, measured)


def test_a_claim_is_the_bound_rounded_down_to_a_tenth_of_a_point(tmp_path):
    path = tmp_path / "seeds.json"
    measured = [{"recipe": "mlp", **r} for r in runs(0.9910, 0.9930, 0.9920)]
    path.write_text(json.dumps({"runs": measured}))
    bound = claims.claim_bound(measured)  # 0.992 - 3 * 0.001 = 0.989
    assert bound == pytest.approx(0.989)
    assert claims.claim_for("mlp", path) == pytest.approx(0.989)
    measured[0]["test_accuracy"] = 0.9909
    path.write_text(json.dumps({"runs": measured}))
    assert claims.claim_for("mlp", path) == pytest.approx(0.988)


def test_seed_results_are_read_per_recipe_and_need_two_runs(tmp_path):
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps({"runs": [
        {"recipe": "mlp", "test_accuracy": 0.99, "n_test": 10},
        {"recipe": "mlp", "test_accuracy": 0.98, "n_test": 10},
        {"recipe": "torch-cnn", "test_accuracy": 0.99, "n_test": 10},
    ]}))  # fmt: skip
    assert len(claims.load_runs("mlp", path)) == 2
    with pytest.raises(claims.ClaimError, match="at least two"):
        claims.load_runs("torch-cnn", path)
    with pytest.raises(FileNotFoundError, match="benchmarks/seeds.py"):
        claims.load_runs("mlp", tmp_path / "none.json")


def test_the_repository_keeps_seed_results_for_every_asserted_recipe():
    for recipe in ("mlp", "torch-cnn", "keras-cnn"):
        measured = claims.load_runs(recipe)
        assert len({r["seed"] for r in measured}) >= 5, recipe
        assert any(r["threads"] == 1 for r in measured), recipe
    onednn = {r["onednn"] for r in claims.load_runs("keras-cnn")}
    assert {0, 1} <= onednn


# --- Caches that cannot go stale ------------------------------------------------------

TINY = recipes.MLPConfig(
    hidden=(8,), epochs=1, validation_size=100, subset=600, max_shift=0
)


@pytest.mark.mnist
def test_a_kept_model_is_retrained_when_code_or_versions_change(tmp_path, monkeypatch):
    monkeypatch.setenv("DLFP_ARTIFACTS", str(tmp_path / "artifacts"))
    trained = []
    real = mlp_recipe.train

    def counting(config, *args, **kwargs):
        trained.append(config)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(mlp_recipe, "train", counting)
    tiny = recipes.Recipe("mlp", TINY)
    artifacts.trained(tiny)
    artifacts.trained(tiny)
    assert len(trained) == 1, "an unchanged recipe must be loaded, not retrained"

    # Another version of NumPy computes other numbers: a new key, a new training.
    versions = artifacts.package_versions
    monkeypatch.setattr(
        artifacts,
        "package_versions",
        lambda packages: {**versions(packages), "numpy": "0.0-other"},
    )
    artifacts.trained(tiny)
    assert len(trained) == 2
    monkeypatch.setattr(artifacts, "package_versions", versions)

    # So does changed training code.
    code = tmp_path / "train.py"
    code.write_text("# the training loop\n")
    sources = (*artifacts.SOURCES["mlp"], str(code))
    monkeypatch.setitem(artifacts.SOURCES, "mlp", sources)
    artifacts.trained(tiny)
    artifacts.trained(tiny)
    code.write_text("# the training loop, changed\n")
    artifacts.trained(tiny)
    assert len(trained) == 4


def test_cnn_keys_cover_the_data_code_and_the_framework_versions(monkeypatch):
    torch_cnn, keras_cnn = recipes.recipe("torch-cnn"), recipes.recipe("keras-cnn")
    path = artifacts.artifact_path(torch_cnn)
    assert path == artifacts.artifact_path(torch_cnn) and path.suffix == ".pt"
    versions = artifacts.package_versions
    for package in ("torch", "numpy"):
        monkeypatch.setattr(
            artifacts,
            "package_versions",
            lambda names, p=package: {**versions(names), p: "0.0-other"},
        )
        assert artifacts.artifact_path(torch_cnn) != path, package
    monkeypatch.setattr(artifacts, "package_versions", versions)
    keras_path = artifacts.artifact_path(keras_cnn)
    monkeypatch.setattr(
        artifacts,
        "package_versions",
        lambda names: {**versions(names), "tensorflow-cpu": "0.0-other"},
    )
    assert artifacts.artifact_path(keras_cnn) != keras_path
    monkeypatch.setattr(artifacts, "package_versions", versions)
    # The data code is part of every framework's key: edit it, and the key changes.
    fake_data = artifacts.PACKAGE_ROOT / "data" / "mnist.py"
    real_read = type(fake_data).read_bytes

    def edited(self):
        text = real_read(self)
        return text + b"# edited" if self == fake_data else text

    monkeypatch.setattr(type(fake_data), "read_bytes", edited)
    assert artifacts.artifact_path(torch_cnn) != path


def test_every_kept_model_is_named_in_one_table(tmp_path, monkeypatch):
    """dlfp.artifacts lists, for every kind of kept model, the code and packages its
    numbers depend on; each kind's files are named after it, in the one folder."""
    monkeypatch.setenv("DLFP_ARTIFACTS", str(tmp_path))
    assert set(artifacts.PACKAGES) == set(artifacts.SOURCES)
    assert set(artifacts.SOURCES) == set(recipes.RECIPES)
    for kind in artifacts.SOURCES:  # every named source exists: fingerprint reads it
        path = artifacts.artifact_path(recipes.recipe(kind))
        assert path.parent == tmp_path and path.name.startswith(f"{kind}-")
        assert path.suffix == recipes.RECIPES[kind].suffix
    for kind in ("numpy-cnn", "torch-cnn", "keras-cnn"):  # the shared CNN code
        shared = {*artifacts._RECIPES, "optim.py"}
        assert shared <= set(artifacts.SOURCES[kind]), kind
    with pytest.raises(ValueError, match="unknown recipe 'torch'; use one of mlp, "):
        recipes.recipe("torch")
    with pytest.raises(TypeError, match="the recipe 'mlp' takes a MLPConfig"):
        recipes.Recipe("mlp", recipes.CNNConfig())


def test_fingerprint_reads_every_named_source(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    key = artifacts.fingerprint({"seed": 0}, [a, b], ["numpy"])
    assert key == artifacts.fingerprint({"seed": 0}, [a, b], ["numpy"])
    b.write_text("y = 3\n")
    assert key != artifacts.fingerprint({"seed": 0}, [a, b], ["numpy"])
    assert key != artifacts.fingerprint({"seed": 1}, [a, b], ["numpy"])


# --- The command line never loses work ------------------------------------------------


def one_sentence_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, f"{argv}: exit status {code}"
    assert err.startswith("dlfp: error: ") and "Traceback" not in err, err
    assert err.strip().endswith(".") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("kind", ["mlp", "numpy-cnn"])
@pytest.mark.parametrize(
    "options, message",
    [
        (["--epochs", "0"], "--epochs must be 1 or more"),
        (["--batch-size", "0"], "--batch-size must be 1 or more"),
        (["--batch-size", "-5"], "--batch-size must be 1 or more"),
        (["--subset", "5"], "--subset must be between 10"),
        (["--subset", "70000"], "--subset must be between 10"),
        (["--dropout", "1"], "--dropout must be in [0, 1)"),
        (["--lr", "0"], "--lr must be a positive finite number"),
        (["--lr", "nan"], "--lr must be a positive finite number, got nan"),
        (["--lr", "inf"], "--lr must be a positive finite number, got inf"),
        (["--dropout", "nan"], "--dropout must be in [0, 1)"),
        (["--output", "/nonexistent-folder/model.npz"], "does not exist"),
    ],
)
def test_bad_options_fail_before_any_training(
    capsys, monkeypatch, kind, options, message
):
    """Both recipes of the command line check their options before any data is read."""

    def never(*args, **kwargs):
        raise AssertionError("training started despite a bad option")

    monkeypatch.setattr("dlfp.recipes.Recipe.train", never)
    monkeypatch.setattr("dlfp.recipes.Recipe.data", never)
    err = one_sentence_error(capsys, ["train", kind, "--no-progress", *options])
    assert message in err


def test_a_run_that_diverges_ends_in_one_sentence_and_saves_nothing(
    capsys, monkeypatch, tmp_path
):
    from types import SimpleNamespace

    from dlfp.train import TrainingDivergedError

    def diverge(*args, **kwargs):
        raise TrainingDivergedError(
            "the loss became nan in epoch 1 (mini-batch 3 of 10) at learning rate 50; "
            "training diverged, so try a smaller learning rate.",
            loss=float("nan"),
        )

    labels = SimpleNamespace(labels=np.zeros(10, dtype=np.int64))
    data = SimpleNamespace(train=labels, validation=labels, test=labels)
    monkeypatch.setattr("dlfp.recipes.Recipe.data", lambda *a, **k: data)
    monkeypatch.setattr("dlfp.recipes.Recipe.train", diverge)
    output = tmp_path / "m.npz"
    code = main(["train", "mlp", "--no-progress", "--lr", "50", "-o", str(output)])
    err = capsys.readouterr().err
    assert code == 1 and not output.exists()
    assert err.startswith("dlfp: error: the loss became nan") and "Traceback" not in err
    assert err.count("\n") == 1 and err.count(". ") == 0, err  # one sentence
    assert err.strip().endswith("try a smaller learning rate; nothing was saved."), err


def saved_spec(tmp_path):
    model = mlp([3, 4, 2], rng=np.random.default_rng(0))
    path = model.save(tmp_path / "m.npz")
    with np.load(path) as archive:
        entries = {k: archive[k] for k in archive.files}
    return entries, json.loads(str(entries["__spec__"]))


def with_spec(tmp_path, name, entries, spec):
    path = tmp_path / name
    np.savez(path, **{**entries, "__spec__": np.array(json.dumps(spec))})
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda spec: [spec], "holds a list where a model's description"),
        (lambda spec: {k: v for k, v in spec.items() if k != "dtype"}, "which dtype"),
        (lambda spec: {**spec, "dtype": "float16"}, "names the dtype 'float16'"),
        (lambda spec: {**spec, "dtype": "no-such-type"}, "names the dtype"),
        (lambda spec: {**spec, "layers": []}, "describes no layers"),
        (
            lambda spec: {
                **spec,
                "layers": [{**spec["layers"][0], "units": 4}, *spec["layers"][1:]],
            },
            "layer 0 (Dense) has arguments",
        ),
        (
            lambda spec: {**spec, "layers": [{"type": "Conv9D"}]},
            "unknown type 'Conv9D'",
        ),
    ],
)
def test_damaged_model_files_fail_in_one_sentence(tmp_path, capsys, change, message):
    entries, spec = saved_spec(tmp_path)
    path = with_spec(tmp_path, "bad.npz", entries, change(spec))
    with pytest.raises(ModelFileError) as err:
        load(path)
    text = str(err.value)
    assert message in text and text.endswith(".") and "\n" not in text
    assert message in one_sentence_error(capsys, ["evaluate", str(path)])


# --- No framework noise ---------------------------------------------------------------


def test_tensorflow_writes_nothing_to_stderr():
    """A fresh process imports the Keras module, builds the CNN and runs it: stderr
    stays empty even when the environment asks TensorFlow for every log line and
    turns oneDNN on (whose banner other CPUs print)."""
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed")
    script = textwrap.dedent(
        """
        import numpy as np
        from dlfp.frameworks import keras_cnn
        from dlfp.recipes import CNNConfig
        model = keras_cnn.build_model(CNNConfig())
        logits = keras_cnn.predict_logits(model, np.zeros((4, 28, 28), np.float32))
        assert logits.shape == (4, 10)
        print("ok")
        """
    )
    env = {
        **__import__("os").environ,
        "TF_CPP_MIN_LOG_LEVEL": "0",
        "TF_ENABLE_ONEDNN_OPTS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert result.stderr == "", f"TensorFlow wrote to stderr:\n{result.stderr}"


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_recipe_is_frozen_plain_data(name):
    """A recipe is a frozen dataclass of plain values: its key (dlfp.artifacts) and the
    metadata saved with a model are built from dataclasses.asdict, and rebuild it."""
    config = recipes.recipe(name, seed=3).config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 4
    settings = dataclasses.asdict(config)
    assert json.loads(json.dumps(settings)) == {
        k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()
    }
    assert type(config)(**settings) == config and hash(config) == hash(
        type(config)(**settings)
    )


# --- NumPy alone ----------------------------------------------------------------------

#: The modules that exist to run a framework; every other one must import without it.
FRAMEWORK_MODULES = {
    "dlfp.mirror",
    "dlfp.frameworks.torch_cnn",
    "dlfp.frameworks.keras_cnn",
    "dlfp.frameworks._quiet",
    "dlfp.frameworks.compare",
    "dlfp.frameworks.distributed.torch_ddp",  # a DDP worker process
}


def test_dlfp_and_its_checks_need_numpy_alone():
    """In a process where PyTorch and TensorFlow cannot be imported, every other module
    of dlfp imports, and a gradient check of a network with dropout passes."""
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys

        class Blocked:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"torch", "tensorflow", "keras", "jax"}}:
                    raise ImportError(f"{{name}} is blocked in this test")

        sys.meta_path.insert(0, Blocked())
        import numpy as np
        import dlfp
        skip = {sorted(FRAMEWORK_MODULES)!r}
        names = [m.name for m in pkgutil.walk_packages(dlfp.__path__, "dlfp.")]
        for name in names:
            if name not in skip:
                importlib.import_module(name)
        from dlfp.gradcheck import check_model
        from dlfp.losses import softmax_cross_entropy
        from dlfp.model import mlp
        rng = np.random.default_rng(0)
        model = mlp([5, 6, 3], "tanh", dropout=0.5, rng=rng, dtype=np.float64)
        X, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
        worst = max(check_model(model, X, y, softmax_cross_entropy).values())
        assert worst < 1e-7, worst
        print(len(names))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 15  # the walk found the package's modules


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.6])
def test_gradient_check_of_a_network_with_dropout_uses_one_mask(rate):
    from dlfp.gradcheck import check_model
    from dlfp.losses import softmax_cross_entropy

    rng = np.random.default_rng(1)
    model = mlp([6, 7, 5, 3], "tanh", dropout=rate, rng=rng, dtype=np.float64)
    X, y = rng.standard_normal((9, 6)), rng.integers(0, 3, 9)
    errors = check_model(model, X, y, softmax_cross_entropy)
    assert max(errors.values()) < 1e-7, errors
    # The masks are drawn afresh again once the check is over.
    dropout = [layer for layer in model.layers if hasattr(layer, "reuse_mask")]
    assert all(not layer.reuse_mask for layer in dropout)
    if rate:
        first = model.forward(X, training=True)
        assert not np.array_equal(first, model.forward(X, training=True))
