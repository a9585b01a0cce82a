"""The controlled comparison of PyTorch and Keras (dlfp.frameworks.compare)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from dlfp.recipes import Batches

from .conftest import SMALL_CNN

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
compare = pytest.importorskip("dlfp.frameworks.compare")
torch_cnn = pytest.importorskip("dlfp.frameworks.torch_cnn")

#: A few steps per block, no compiler: the experiment's logic in seconds.
QUICK = compare.Plan(
    train_steps=3,
    train_rounds=3,
    train_warmup=1,
    components=False,
    torch_compile=False,
    steps_per_execution=3,
    infer_images=40,
    batch_rounds=3,
    single_rounds=3,
    infer_warmup=1,
    onnx=False,
    pause=0.0,
)


@pytest.fixture(scope="module")
def keras_cnn():
    return pytest.importorskip("dlfp.frameworks.keras_cnn", reason="TensorFlow missing")


# --- McNemar's test -----------------------------------------------------------------


def _pairs(both, only_a, only_b, neither):
    """Two 'correct' arrays with the given counts of the four kinds of example."""
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return np.array(a), np.array(b)


def test_mcnemar_on_a_hand_worked_case():
    # b = 6 right only for A, c = 16 right only for B: 22 discordant examples.
    # Exact: 2 P(X <= 6), X ~ Binomial(22, 1/2)
    #   = 2 (1 + 22 + 231 + 1540 + 7315 + 26334 + 74613) / 2^22 = 220112 / 4194304.
    # Chi-square with continuity correction: (|6 - 16| - 1)^2 / 22 = 81 / 22.
    result = compare.mcnemar(*_pairs(59, 6, 16, 80))
    counts = (result.both, result.only_a, result.only_b, result.neither)
    assert counts == (59, 6, 16, 80)
    assert result.n == 161 and result.discordant == 22
    assert result.p_exact == 220112 / 4194304  # 0.05248...
    assert result.chi2 == pytest.approx(81 / 22)
    # P(chi2_1 > 81/22) = P(|Z| > 1.9188) = 0.0550
    assert result.p_chi2 == pytest.approx(0.05501, abs=5e-5)
    assert compare.mcnemar(*_pairs(59, 16, 6, 80)).p_exact == result.p_exact


def test_mcnemar_edge_cases():
    equal = compare.mcnemar(*_pairs(10, 3, 3, 2))
    assert equal.p_exact == 1.0 and equal.chi2 == 0.0 and equal.p_chi2 == 1.0
    none = compare.mcnemar(*_pairs(10, 0, 0, 2))
    assert none.p_exact == 1.0 and none.p_chi2 == 1.0
    # 1 against 9: 2 (1 + 10) / 1024
    assert compare.mcnemar_p_exact(1, 9) == 22 / 1024
    with pytest.raises(ValueError, match="same examples"):
        compare.mcnemar(np.ones(3, bool), np.ones(4, bool))


# --- Devices, threads, the machine --------------------------------------------------


def _row(framework, device, seconds=(1.0, 2.0, 3.0), task="training"):
    setting = compare.Setting(framework, f"{framework} on {device}", "default")
    return compare.Row(task, setting, device, unit=2, seconds=list(seconds))


def test_rows_on_different_devices_are_never_compared():
    cpu_torch, gpu_tf = _row("PyTorch", "cpu"), _row("TensorFlow", "gpu")
    assert compare.check_devices([cpu_torch, _row("TensorFlow", "CPU")]) == "cpu"
    assert compare.check_devices([_row("PyTorch", "cuda"), gpu_tf]) == "gpu"
    with pytest.raises(compare.DeviceMismatchError, match="^Refusing to compare"):
        compare.check_devices([cpu_torch, gpu_tf])
    with pytest.raises(compare.DeviceMismatchError):
        compare.paired_ratio(cpu_torch, gpu_tf)


@pytest.mark.mnist
def test_the_experiment_refuses_mixed_devices_before_running(small_cnn_data):
    plan = dataclasses.replace(QUICK, torch_device="cuda")
    with pytest.raises(compare.DeviceMismatchError, match="different devices"):
        compare.run_training(SMALL_CNN, small_cnn_data, plan)


def test_paired_ratio_divides_round_by_round():
    a = _row("PyTorch", "cpu", seconds=(2.0, 4.0, 9.0))
    b = _row("PyTorch", "cpu", seconds=(1.0, 2.0, 3.0))
    ratio = compare.paired_ratio(a, b)
    assert ratio == {"median": 2.0, "min": 2.0, "max": 3.0, "rounds": 3}


def test_the_winner_in_prose_follows_the_measurement():
    slow = _row("PyTorch", "cpu", seconds=(2.0, 4.0, 9.0))
    fast = _row("PyTorch", "cpu", seconds=(1.0, 2.0, 3.0))
    names = ("A", "B")
    assert compare.versus(slow, fast, names, "trained").startswith(
        "B trained faster than A, by a factor of 2.00"
    )
    assert compare.versus(fast, slow, names).startswith("A ran faster than B, by a")
    mixed = _row("PyTorch", "cpu", seconds=(0.5, 3.0, 3.5))  # ratios 0.5, 1.5, 1.17
    assert compare.versus(mixed, fast, names) == (
        "A and B ran equally fast within the noise: A was faster in 1 of 3 paired "
        "rounds, and the median ratio of their times was 1.17"
    )
    # Many rounds: 9 of 10 is a sign test's p = 0.021, a winner; 8 of 10 (p = 0.11)
    # is not.
    ten = _row("PyTorch", "cpu", seconds=[1.0] * 10)
    nine = _row("PyTorch", "cpu", seconds=[0.5] * 9 + [2.0])
    eight = _row("PyTorch", "cpu", seconds=[0.5] * 8 + [2.0] * 2)
    assert compare.versus(nine, ten, names).startswith(
        "A ran faster than B, by a factor"
    )
    assert "A was faster in 9 of them" in compare.versus(nine, ten, names)
    assert "equally fast" in compare.versus(eight, ten, names)


def test_machine_names_the_processor_cores_and_versions():
    info = compare.machine()
    assert info["cpu"] and info["cores"] >= 1
    assert "torch" in info["versions"] and "numpy" in info["versions"]


def test_seed_accuracy_summarises_each_framework(tmp_path):
    runs = [
        {"recipe": recipe, "seed": s, "test_accuracy": acc, "n_test": 10000}
        for recipe, accs in (
            ("torch-cnn", (0.99, 0.992)),
            ("keras-cnn", (0.991, 0.989)),
        )
        for s, acc in enumerate(accs)
    ]
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps({"runs": runs}))
    summary = compare.seed_accuracy(path)
    assert summary["PyTorch"]["mean"] == pytest.approx(0.991)
    assert summary["TensorFlow"]["std"] == pytest.approx(0.002 / math.sqrt(2))
    assert summary["PyTorch"]["runs"] == 2


# --- The experiment, on a tiny configuration ----------------------------------------


@pytest.mark.mnist
def test_training_rows_are_timed_interleaved_and_record_their_settings(
    small_cnn_data, keras_cnn
):
    # No compilers: XLA's compile alone takes longer than a fast test should
    # (test_every_setting_runs_or_says_why runs them).
    by_role = {(s.framework, s.role): s for s in compare.training_settings(QUICK)}
    settings = [
        by_role["PyTorch", "default"],
        by_role["PyTorch", "chapter"],
        by_role["TensorFlow", "default"],
        compare.Setting(
            "TensorFlow",
            "3 steps per execution",
            "component",
            {"jit_compile": False, "steps_per_execution": 3, "deterministic": False},
        ),
    ]
    rows = compare.run_training(SMALL_CNN, small_cnn_data, QUICK, settings)
    assert [r.setting for r in rows] == settings
    for row in rows:
        assert row.available, row.error
        assert len(row.seconds) == 3 and len(row.warmup_seconds) == 1
        assert row.unit == 3 and row.device == "cpu"
        # Both frameworks' pools, in every row (TensorFlow's 0: it picks the size).
        for pool in ("torch_intra_op", "torch_inter_op", "tf_intra_op", "tf_inter_op"):
            assert isinstance(row.threads[pool], int), pool
        assert row.threads["cores"] >= 1
        assert json.dumps(row.as_dict())  # every row can be written out
    ratio = compare.paired_ratio(rows[-1], rows[2])
    assert ratio["rounds"] == 3 and ratio["min"] <= ratio["median"] <= ratio["max"]
    text = str(compare.table(rows, "training"))
    assert "3 steps per execution" in text and "× default" in text


@pytest.mark.mnist
def test_a_setting_that_fails_becomes_an_unavailable_row(small_cnn_data, monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", no_compiler)
    settings = [
        s for s in compare.training_settings(QUICK) if s.framework == "PyTorch"
    ] + [
        compare.Setting(
            "PyTorch",
            "best: channels-last, torch.compile",
            "best",
            {"channels_last": True, "compile": True, "deterministic": False},
        )
    ]
    rows = compare.run_training(SMALL_CNN, small_cnn_data, QUICK, settings)
    assert [r.available for r in rows] == [True, True, False]
    assert rows[-1].error == "RuntimeError: no C++ compiler found"
    assert "unavailable: RuntimeError" in str(compare.table(rows, "training"))
    assert compare.fastest(rows, "PyTorch", "training") in rows[:2]


@pytest.mark.mnist
def test_inference_rows_compute_the_same_logits(small_cnn_data, keras_cnn):
    torch.manual_seed(0)
    torch_model = torch_cnn.CNN(SMALL_CNN).eval()
    keras_model = keras_cnn.build_model(SMALL_CNN)
    rows = compare.run_inference(
        torch_model, keras_model, small_cnn_data.test.images, QUICK
    )
    tasks = {r.task for r in rows}
    assert tasks == {"inference, batch", "inference, one image"}
    for row in rows:
        assert row.available, (row.label, row.error)
        assert len(row.seconds) == 3 and len(row.warmup_seconds) == 1
        assert row.unit == (40 if row.task == "inference, batch" else 1)
        assert row.max_logit_diff < 1e-4, row.label
    best = compare.fastest(rows, "TensorFlow", "inference, batch")
    assert best.framework == "TensorFlow" and best.setting.role != "onnx"


@pytest.mark.mnist
@pytest.mark.slow
def test_every_setting_runs_or_says_why(small_cnn_data, keras_cnn):
    """The full list of settings (compilers, ONNX export), on the tiny network."""
    plan = dataclasses.replace(QUICK, torch_compile=True, onnx=True, components=True)
    rows = compare.run_training(SMALL_CNN, small_cnn_data, plan)
    torch.manual_seed(0)
    rows += compare.run_inference(
        torch_cnn.CNN(SMALL_CNN).eval(),
        keras_cnn.build_model(SMALL_CNN),
        small_cnn_data.test.images,
        plan,
    )
    assert {r.setting.role for r in rows} >= {"default", "chapter", "best", "onnx"}
    for row in rows:
        assert row.available or row.error, row.label
        if row.max_logit_diff is not None:
            assert row.max_logit_diff < 1e-4, row.label
    for task in ("training", "inference, batch", "inference, one image"):
        assert "× fastest" in str(compare.table(rows, task))


# --- The experiment trains what the chapters train ----------------------------------


@pytest.mark.mnist
def test_the_chapter_setting_trains_exactly_as_torch_cnn_train(small_cnn_data):
    model, _ = torch_cnn.train(SMALL_CNN, small_cnn_data, dev=torch.device("cpu"))
    batches = Batches(
        small_cnn_data.train.images, small_cnn_data.train.labels, SMALL_CNN
    )
    options = {"channels_last": True, "compile": False, "deterministic": True}
    trainer = compare.training._TorchTrainer(SMALL_CNN, len(batches), options, "cpu")
    trainer(batches.epoch(0))
    for key, value in model.state_dict().items():
        assert torch.equal(value, trainer.model.state_dict()[key]), key


@pytest.mark.mnist
def test_the_chapter_setting_trains_exactly_as_keras_cnn_train(
    small_cnn_data, keras_cnn
):
    model, _ = keras_cnn.train(SMALL_CNN, small_cnn_data)
    batches = Batches(
        small_cnn_data.train.images, small_cnn_data.train.labels, SMALL_CNN
    )
    options = {"jit_compile": "auto", "steps_per_execution": 1, "deterministic": True}
    trainer = compare.training._KerasTrainer(SMALL_CNN, len(batches), options, "CPU")
    trainer(batches.epoch(0))
    for ours, theirs in zip(trainer.model.weights, model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.mnist
def test_the_dlfp_row_trains_exactly_as_its_chapter(small_cnn_data):
    from dlfp import cnn

    model, _ = cnn.train(SMALL_CNN, small_cnn_data)
    batches = Batches(
        small_cnn_data.train.images, small_cnn_data.train.labels, SMALL_CNN
    )
    trainer = compare.training._DlfpTrainer(SMALL_CNN, len(batches), {}, "cpu")
    trainer(batches.epoch(0))
    for ours, theirs in zip(
        trainer.model.parameters(), model.parameters(), strict=True
    ):
        np.testing.assert_array_equal(ours.value, theirs.value)


@pytest.mark.mnist
def test_the_dlfp_row_joins_the_same_rounds_on_the_cpu_only(small_cnn_data):
    settings = [
        s
        for s in compare.training_settings(QUICK)
        if s.role == "default" and s.framework in ("PyTorch", compare.DLFP)
    ]
    assert [s.framework for s in settings] == ["PyTorch", compare.DLFP]
    rows = compare.run_training(SMALL_CNN, small_cnn_data, QUICK, settings)
    for row in rows:
        assert row.available and len(row.seconds) == 3, row.error
    assert rows[1].threads["blas"] >= 1 and "BLAS" in str(
        compare.table(rows, "training")
    )
    assert compare.paired_ratio(rows[1], rows[0])["rounds"] == 3
    no_dlfp = dataclasses.replace(QUICK, dlfp=False)
    assert compare.DLFP not in {s.framework for s in compare.training_settings(no_dlfp)}
    on_gpu = dataclasses.replace(QUICK, torch_device="cuda")
    with pytest.raises(compare.DeviceMismatchError):
        compare.run_training(SMALL_CNN, small_cnn_data, on_gpu, settings)
