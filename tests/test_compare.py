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
    batch_calls=1,
    single_calls=4,
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


def _half_tail(n, k):
    """P(Binomial(n, 1/2) <= k), by the definition."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


@pytest.mark.parametrize(
    ("n", "k", "coverage"),
    [(5, 0, 1.0), (6, 1, 0.96875), (10, 2, 0.978515625), (14, 3, 0.98706054)],
)
def test_the_median_interval_uses_the_right_order_statistics(n, k, coverage):
    assert compare.order_statistic_k(n) == k
    if k:  # k is the largest rank whose tail stays within 2.5%
        assert _half_tail(n, k - 1) <= 0.025 < _half_tail(n, k)
        ci = compare.median_ci(range(n))
        assert (ci["low"], ci["high"]) == (k - 1, n - k)
        assert ci["coverage"] == pytest.approx(coverage)
    else:  # fewer than six rounds: no 95% interval at all
        assert _half_tail(n, 0) > 0.025
        assert compare.median_ci(range(n))["low"] == -math.inf


@pytest.mark.parametrize("n", [6, 10, 14, 15, 18, 20, 36])
def test_the_speed_rule_calls_equal_rows_different_at_most_5_percent(n):
    k = compare.order_statistic_k(n)
    fpr = compare.false_positive_rate(n)
    assert fpr == pytest.approx(2 * _half_tail(n, k - 1))
    assert fpr <= 0.05
    # The same rate by simulation: two rows with the same distribution of times.
    rng = np.random.default_rng(n)
    trials, declared = 4000, 0
    for _ in range(trials):
        d = np.sort(rng.standard_normal(n))
        declared += d[k - 1] > 0 or d[n - k] < 0
    assert declared / trials == pytest.approx(fpr, abs=4 * math.sqrt(fpr / trials))
    assert compare.false_positive_rate(5) == 0.0  # no interval: never a verdict


def test_the_speed_verdict_has_four_outcomes_and_its_prose_follows_it():
    names = ("A", "B")
    base = [1.0 + 0.01 * i for i in range(14)]
    ref = _row("PyTorch", "cpu", seconds=base)

    def scaled(factors):
        return _row(
            "PyTorch",
            "cpu",
            seconds=[b * f for b, f in zip(base, factors, strict=True)],
        )

    slow = scaled([2.0 + 0.01 * i for i in range(14)])  # every ratio about 2
    v = compare.speed_verdict(slow, ref)
    assert v["outcome"] == "slower" and v["faster"] == 1
    assert v["low"] > 1 and v["factor"] == pytest.approx(v["ratio"])
    assert compare.versus(slow, ref, names, "trained").startswith(
        "B trained faster than A, by a factor of 2.0"
    )
    assert "95% interval" in compare.versus(slow, ref, names)
    fast = scaled([0.5] * 14)
    assert compare.speed_verdict(fast, ref)["outcome"] == "faster"
    assert compare.versus(fast, ref, names).startswith("A ran faster than B, by a ")
    # Ratios within 1 +- 2%, on both sides of 1: equivalent within 5%.
    same = scaled([1 + 0.02 * (-1) ** i for i in range(14)])
    assert compare.speed_verdict(same, ref)["outcome"] == "equivalent"
    assert compare.versus(same, ref, names).startswith(
        "A and B ran equally fast within 5%"
    )
    # Ratios spread from 0.8 to 1.2: neither side, nor within 5%.
    wide = scaled(np.linspace(0.8, 1.2, 14))
    assert compare.speed_verdict(wide, ref)["outcome"] == "inconclusive"
    assert compare.versus(wide, ref, names).startswith("the rounds do not settle")
    # Three rounds won every time, the old rule's winner: no interval, no verdict.
    three = _row("PyTorch", "cpu", seconds=(2.0, 4.0, 9.0))
    assert compare.speed_verdict(three, _row("PyTorch", "cpu"))["outcome"] == (
        "inconclusive"
    )


def test_a_williams_design_balances_positions_and_predecessors():
    harness = compare.harness
    for n in range(2, 11):
        orders = harness.williams(n)
        assert len(orders) == (n if n % 2 == 0 else 2 * n)
        assert all(sorted(order) == list(range(n)) for order in orders)
        for position in range(n):  # every row in every position equally often
            counts = np.bincount([o[position] for o in orders], minlength=n)
            assert len(set(counts)) == 1, (n, position)
        follows = np.zeros((n, n), int)  # follows[a, b]: b right after a
        for order in orders:
            for a, b in zip(order, order[1:], strict=False):
                follows[a, b] += 1
        off = follows[~np.eye(n, dtype=bool)]
        assert len(set(off)) == 1 and np.all(np.diag(follows) == 0), n
    assert harness.williams(1) == [[0]]


def test_the_rounds_run_in_the_designs_orders_after_a_measured_pause():
    seen = []

    def runner(i):
        return lambda data: seen.append(i)

    rows = [_row("PyTorch", "cpu", seconds=()) for _ in range(3)]
    compare.harness._interleave(
        rows, [runner(i) for i in range(3)], 6, 1, lambda r: None, 0.06
    )
    orders = compare.harness.williams(3)
    timed = seen[3:]
    assert [timed[3 * j : 3 * j + 3] for j in range(6)] == orders
    for row in rows:
        assert len(row.seconds) == 6 and len(row.warmup_seconds) == 1
        assert len(row.idle) == 6 and all(0 <= x < 5 for x in row.idle)
        assert all(0.02 <= w < 0.06 + 0.05 for w in row.waited)


def test_the_rounds_collect_only_what_they_made_and_unfreeze_after():
    import gc
    import weakref

    class Cycle:
        pass

    seen = []

    def runner(data):
        # garbage in a cycle made inside a round: the next round's collection frees it
        a, b = Cycle(), Cycle()
        a.other, b.other = b, a
        seen.append((weakref.ref(a), gc.get_freeze_count() > 0))

    assert gc.get_freeze_count() == 0
    row = _row("PyTorch", "cpu", seconds=())
    compare.harness._interleave([row], [runner], 3, 0, lambda r: None, 0.0)
    assert all(frozen for _, frozen in seen)  # the old objects were frozen meanwhile
    assert seen[0][0]() is None  # collected by the second round's collection
    assert gc.get_freeze_count() == 0  # and given back to the collector


def test_idle_cpu_measures_threads_that_stay_busy():
    import threading

    stop = threading.Event()

    def spin():  # a thread that keeps a core busy while the caller sleeps
        while not stop.is_set():
            pass

    def work():
        threading.Thread(target=spin, daemon=True).start()

    try:
        busy = compare.harness.idle_cpu(work, pauses=(0.0,), window=0.05, repeats=1)
    finally:
        stop.set()
    quiet = compare.harness.idle_cpu(lambda: None, pauses=(0.0,), window=0.05)
    # A spinning thread keeps a core (less on a loaded machine); nothing keeps none.
    assert busy[0.0] > 0.1 and quiet[0.0] < busy[0.0]


def test_settle_waits_for_spinning_threads_and_no_longer():
    import threading

    burnt, waited = compare.settle(0.5)  # nothing spins: one window
    assert burnt < compare.harness.QUIET and waited < 0.2
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        burnt, waited = compare.settle(0.15)  # never quiet: waits out the limit
    finally:
        stop.set()
        thread.join()
    assert burnt >= compare.harness.QUIET and 0.1 <= waited <= 0.2
    assert math.isnan(compare.settle(0.001)[0])  # shorter than a window: no measure


def test_a_row_written_out_reads_back_the_same():
    row = _row("PyTorch", "cpu", seconds=(1.0, 2.0))
    row.idle, row.threads = [0.0, 0.01], {"torch_intra_op": 2}
    back = compare.Row.from_dict(json.loads(json.dumps(row.as_dict())))
    assert back.as_dict() == row.as_dict() and back.setting == row.setting


def test_latency_percentiles_are_over_every_single_call():
    setting = compare.Setting("PyTorch", "x", "default")
    row = compare.Row(
        "inference, one image",
        setting,
        "cpu",
        unit=1,
        calls=4,
        seconds=[4.0, 8.0, 40.0],  # rounds of 4 calls: means 1, 2 and 10
        latencies=[1.0] * 4 + [2.0] * 4 + [1.0, 1.0, 1.0, 37.0],
    )
    assert list(row.per_unit()) == [1.0, 2.0, 10.0] and row.median() == 2.0
    assert row.latency(50) == 1.0  # 7 of the 12 calls took 1 s
    assert row.latency(90) == float(np.percentile(row.latencies, 90)) == 2.0
    assert row.latency(100) == 37.0
    back = compare.Row.from_dict(json.loads(json.dumps(row.as_dict())))
    assert back.latencies == row.latencies and back.calls == 4
    with pytest.raises(ValueError, match="no single calls"):
        _row("PyTorch", "cpu").latency(90)


def test_a_repeated_runner_times_each_call_and_feeds_the_row():
    calls = []
    rows = [_row("PyTorch", "cpu", seconds=(), task="inference, one image")]
    rows[0].calls = 5
    run = compare.harness.Repeated(calls.append, 5)
    compare.harness._interleave(rows, [run], 3, 1, lambda r: r, 0.0)
    assert calls == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5  # one warm-up round
    row = rows[0]
    assert len(row.seconds) == 3 and len(row.latencies) == 15
    assert len(row.warmup_seconds) == 1  # the first call of the warm-up round
    assert all(t >= 0 for t in row.latencies) and row.state is not None


def test_a_rows_settings_hold_inside_its_clock_and_are_restored_after():
    seen = []

    class Runner:
        @staticmethod
        def settings():
            return compare.training.torch_settings(True, flush_denormal=True)

        def __call__(self, data):
            seen.append(
                (
                    torch.are_deterministic_algorithms_enabled(),
                    compare.machine_state._torch_flushes(),
                )
            )

    before = (
        torch.are_deterministic_algorithms_enabled(),
        compare.machine_state._torch_flushes(),
    )
    row = _row("PyTorch", "cpu", seconds=())
    compare.harness._interleave([row], [Runner()], 2, 0, lambda r: r, 0.0)
    assert seen == [(True, True), (True, True)]
    assert row.state["torch_deterministic"] and row.state["torch_flush_denormal"]
    after = (
        torch.are_deterministic_algorithms_enabled(),
        compare.machine_state._torch_flushes(),
    )
    assert after == before


#: Run in a fresh process (TensorFlow's op determinism, once on, stays on): what the
#: library reads of it, what TensorFlow's private getter says (the truth, read here in
#: a test only), and what the rows do with it.
DETERMINISM_PROBE = """
import json, sys
import numpy as np
import torch
from dlfp.frameworks import keras_cnn, torch_cnn
from dlfp.frameworks import compare
from dlfp.frameworks.compare.training import tf_settings
from dlfp.recipes import CNNConfig
from tensorflow.python.framework import config as private

small = CNNConfig(channels=(4, 8), hidden=16)
plan = compare.Plan(infer_images=8, batch_rounds=2, single_rounds=2, batch_calls=1,
                    single_calls=2, infer_warmup=0, onnx=False, torch_compile=False,
                    components=False, pause=0.0)
images = np.zeros((8, 28, 28), np.float32)
def rows(settings):
    return compare.run_inference(torch_cnn.CNN(small).eval(),
                                 keras_cnn.build_model(small), images, plan, settings)
out = {"start": [compare.machine_state.tf_op_determinism(),
                 private.is_op_determinism_enabled()]}
if out["start"][0]:  # on from the start (TF_DETERMINISTIC_OPS)
    print(json.dumps(out))
    sys.exit()
defaults = [s for s in compare.inference_settings(plan) if s.role == "default"]
out["off"] = [r.state["tf_op_determinism"] for r in rows(defaults) if r.available]
with tf_settings(True):
    pass
out["on"] = [compare.machine_state.tf_op_determinism(),
             private.is_op_determinism_enabled()]
try:
    with tf_settings(False):
        pass
except compare.DeterminismError as error:
    out["tf_settings(False)"] = str(error)
try:
    rows(defaults)
except compare.DeterminismError as error:
    out["run_inference"] = str(error)
torch_only = [s for s in defaults if s.framework == "PyTorch"]
out["torch rows"] = [r.state["tf_op_determinism"] for r in rows(torch_only)]
print(json.dumps(out))
"""


def _probe(env_extra: dict) -> dict:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_DETERMINISTIC_OPS"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", **env_extra)
    done = subprocess.run(
        [sys.executable, "-c", DETERMINISM_PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tensorflows_op_determinism_is_read_without_its_private_api(keras_cnn):
    """TensorFlow 2.21 exports enable_op_determinism only: the library records what it
    turned on and reads TF_DETERMINISTIC_OPS, and agrees with TensorFlow's own private
    getter; rows that need it off refuse to run where it is on (no way back)."""
    out = _probe({})
    assert out["start"] == [False, False]
    assert out["off"] == [False] * 4  # both default rows ran, off (batch, one image)
    assert out["on"] == [True, True]
    for key in ("tf_settings(False)", "run_inference"):
        assert "cannot turn it off" in out[key] and "fresh process" in out[key], key
    assert out["torch rows"] == [True, True]  # PyTorch's rows run, and say so
    # TensorFlow's older switch, read at start: seen too.
    assert _probe({"TF_DETERMINISTIC_OPS": "1"})["start"] == [True, True]


def test_no_module_of_the_library_reads_tensorflows_private_api():
    from pathlib import Path

    import dlfp

    root = Path(dlfp.__file__).parent
    hits = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "tensorflow.python" in path.read_text() or "_pywrap" in path.read_text()
    ]
    assert hits == []


def test_tensorflow_rows_with_and_without_op_determinism_never_share_a_process(
    small_cnn_data,
):
    settings = [
        s
        for s in compare.training_settings(QUICK)
        if s.framework == "TensorFlow" and s.role in ("default", "chapter")
    ]
    assert {s.options["deterministic"] for s in settings} == {True, False}
    with pytest.raises(compare.DeterminismError, match="cannot share a process"):
        compare.run_training(SMALL_CNN, small_cnn_data, QUICK, settings)
    # By default a process times what it can: here, TensorFlow's rows without it.
    mine = compare.this_process(compare.training_settings(QUICK))
    assert [
        s for s in mine if s.framework == "TensorFlow" and s.role == "chapter"
    ] == []
    assert any(s.framework == "PyTorch" and s.role == "chapter" for s in mine)
    # What run_processes' workers keep, with determinism on or off.
    from dlfp.frameworks.compare.processes import kept

    everything = compare.training_settings(QUICK)
    on = kept(everything, ["PyTorch:default", "TensorFlow:*"], op_determinism=True)
    assert [(s.framework, s.role) for s in on] == [
        ("PyTorch", "default"),
        ("TensorFlow", "chapter"),
    ]
    with pytest.raises(ValueError, match="op_determinism=True"):
        kept(everything, ["TensorFlow:chapter"], op_determinism=False)
    assert all(
        not s.options.get("deterministic")
        for s in kept(everything, None)
        if s.framework == "TensorFlow"
    )


def test_every_setting_names_its_source_and_the_best_are_as_documented():
    for plan in (compare.PAGE, compare.FULL):
        train = compare.training_settings(plan)
        infer = compare.inference_settings(plan)
        for s in train + infer:
            if s.role in ("chapter", "component", "best", "bfloat16"):
                assert s.source, s.label
        labels = {(s.framework, s.label): s for s in train}
        k = plan.steps_per_execution
        spe = labels["TensorFlow", f"fit, {k} steps per execution"]
        xla = labels["TensorFlow", f"fit, XLA, {k} steps per execution"]
        assert spe.options["jit_compile"] == "auto" and spe.role == "best"
        assert xla.options["jit_compile"] is True
        (torch_best,) = [
            s for s in train if s.framework == "PyTorch" and s.role == "best"
        ]
        assert torch_best.options["compile"] and torch_best.options["compile_step"]
        (frozen,) = [s for s in infer if s.framework == "PyTorch" and s.role == "best"]
        assert frozen.options["compile_options"]["freezing"] is True
        assert frozen.options["compile_options"]["max_autotune"] is True
        assert {s.framework for s in infer if s.role == "bfloat16"} == {
            "PyTorch",
            "TensorFlow",
        }
        # Williams designs: whole designs of the rows the page's main processes time
        # (TensorFlow's row with op determinism runs in processes of its own)
        n_train = len(compare.this_process(train))
        assert n_train == len(train) - 1
        n_infer = len(infer)
        if plan is compare.PAGE:
            orders = len(compare.williams(n_train))
            assert plan.train_rounds % orders == 0, (n_train, plan.train_rounds)
            orders = len(compare.williams(n_infer))
            assert plan.batch_rounds % orders == 0 and plan.single_rounds % orders == 0


def test_machine_names_the_processor_cores_and_versions():
    info = compare.machine()
    assert info["cpu"] and info["cores"] >= 1
    assert "torch" in info["versions"] and "numpy" in info["versions"]


def test_seed_accuracy_pairs_the_independent_seeds_only(tmp_path):
    runs = [
        {
            "recipe": recipe,
            "seed": s,
            "threads": None,
            "onednn": None,
            "test_accuracy": acc,
            "n_test": 10000,
        }
        for recipe, accs in (
            ("torch-cnn", (0.990, 0.992, 0.991)),
            ("keras-cnn", (0.989, 0.990, 0.991)),
        )
        for s, acc in enumerate(accs)
    ]
    # Re-runs of seed 0 with one setting changed: reported, never pooled as seeds.
    runs += [
        {
            "recipe": "torch-cnn",
            "seed": 0,
            "threads": 1,
            "onednn": None,
            "test_accuracy": 0.999,
            "n_test": 10000,
        },
        {
            "recipe": "keras-cnn",
            "seed": 0,
            "threads": None,
            "onednn": 1,
            "test_accuracy": 0.980,
            "n_test": 10000,
        },
    ]
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps({"runs": runs}))
    summary = compare.seed_accuracy(path)
    assert summary["PyTorch"]["runs"] == 3
    assert summary["PyTorch"]["mean"] == pytest.approx(0.991)
    assert summary["TensorFlow"]["std"] == pytest.approx(0.001)
    pair = summary["paired"]
    # Differences 0.001, 0.002, 0.000: mean 0.001, sd 0.001, se 0.001 / sqrt(3).
    assert pair["seeds"] == [0, 1, 2] and pair["df"] == 2
    assert pair["mean"] == pytest.approx(0.001)
    assert pair["t"] == pytest.approx(math.sqrt(3))
    # t_{0.975, 2} = 4.302653
    half = 4.302653 * 0.001 / math.sqrt(3)
    assert pair["ci"] == pytest.approx((0.001 - half, 0.001 + half), abs=1e-8)
    # Sign flips of (1, 2, 0): sums -3..3; |sum| >= 3 for 4 of the 8 flips.
    assert pair["p_exact"] == 0.5 and pair["p_exact_min"] == 0.25
    moved = summary["perturbed"]
    assert [r["setting"] for r in moved["PyTorch"]] == ["1 thread"]
    assert moved["PyTorch"][0]["shift"] == pytest.approx(0.009)
    assert moved["TensorFlow"][0]["shift"] == pytest.approx(-0.009)


def test_t_quantiles_and_p_values_match_the_tables():
    # Student's t, two-sided 5%: 12.706 (1 df), 2.776 (4), 2.262 (9), 2.042 (30).
    for df, q in ((1, 12.7062), (4, 2.7764), (9, 2.2622), (30, 2.0423)):
        assert compare.t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)
    d = [0.0008, -0.0002, 0.0005, 0.0008, 0.0]  # PyTorch - Keras, seeds 0-4
    pair = compare.paired_seeds(
        [{"seed": i, "test_accuracy": 0.99 + x} for i, x in enumerate(d)],
        [{"seed": i, "test_accuracy": 0.99} for i in range(5)],
    )
    assert pair["t"] == pytest.approx(1.8454, abs=1e-4)
    assert pair["p_t"] == pytest.approx(0.1387, abs=1e-4)
    # |8 + 2 + 5 + 8 + 0| = 23 - 2 S >= 19 when the flipped set sums to S <= 2:
    # {}, {0}, {2}, {0, 2}, each side: 8 of 32.
    assert pair["p_exact"] == 0.25
    with pytest.raises(ValueError, match="two seeds"):
        compare.paired_seeds(
            [{"seed": 0, "test_accuracy": 1}], [{"seed": 0, "test_accuracy": 1}]
        )


def _exact_p(b: int, n: int) -> float:
    """McNemar's exact p-value by the definition, for the test of the threshold."""
    m = min(b, n - b)
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(m + 1)) / 2**n)


@pytest.mark.parametrize(
    ("n_disc", "threshold"), [(22, 12), (21, 11), (60, 18), (61, 17), (100, 22)]
)
def test_the_mcnemar_threshold_is_the_smallest_achievable_significant_split(
    n_disc, threshold
):
    assert compare.mcnemar_threshold(n_disc) == threshold
    # The split with that difference rejects; the next smaller achievable one does not.
    b = (n_disc - threshold) // 2
    assert _exact_p(b, n_disc) < 0.05 <= _exact_p(b + 1, n_disc)
    assert compare.mcnemar_threshold(5) is None  # 2 / 32 > 0.05: never significant


def test_mcnemar_power_is_an_exact_binomial_sum_that_grows_with_the_difference():
    n = 22  # rejects for |b - c| >= 12: b <= 5 or b >= 17
    for share in (0.5, 0.7, 0.9):
        exact = sum(
            math.comb(n, b) * share**b * (1 - share) ** (n - b)
            for b in range(n + 1)
            if abs(2 * b - n) >= 12
        )
        assert compare.mcnemar_power(n, share) == pytest.approx(exact, rel=1e-9)
    powers = [compare.mcnemar_power(60, 0.5 + i / 100) for i in range(51)]
    assert all(p <= q + 1e-12 for p, q in zip(powers, powers[1:], strict=False))
    detectable = compare.mcnemar_detectable(60)
    share = (1 + detectable / 60) / 2
    assert compare.mcnemar_power(60, share) == pytest.approx(0.8, abs=1e-6)
    assert detectable > compare.mcnemar_threshold(60)  # the threshold has < 80% power


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
        assert len(row.latencies) == 3 * row.calls
        assert row.latency(50) <= row.latency(90)
        # Every single call is inside its round's clock.
        assert sum(row.latencies) <= sum(row.seconds)
        if row.setting.role == "bfloat16":  # 8 bits of mantissa: about 3 digits
            assert row.max_logit_diff < 0.1 * max(1.0, row.max_logit_diff), row.label
        else:
            assert row.max_logit_diff < 1e-4, row.label
            assert row.agreement == 1.0, row.label
    best = compare.fastest(rows, "TensorFlow", "inference, batch")
    assert best.framework == "TensorFlow" and best.setting.role != "onnx"
    assert "90th percentile" in str(compare.table(rows, "inference, one image"))


@pytest.mark.mnist
def test_inference_rows_run_without_determinism_and_restore_the_process_state(
    small_cnn_data, keras_cnn
):
    """Review §2.6: every inference row runs with PyTorch's determinism off, whatever
    ran before, and leaves the process as it found it (TensorFlow's, which cannot be
    turned off, is checked by test_tensorflows_op_determinism_is_read_without_...)."""
    import keras

    torch.manual_seed(0)
    settings = [
        s
        for s in compare.inference_settings(QUICK)
        if s.role in ("default", "bfloat16") or s.label == "tf.function"
    ]
    before_torch = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        rows = compare.run_inference(
            torch_cnn.CNN(SMALL_CNN).eval(),
            keras_cnn.build_model(SMALL_CNN),
            small_cnn_data.test.images,
            QUICK,
            settings,
        )
        assert torch.are_deterministic_algorithms_enabled()  # restored
        assert keras.config.dtype_policy().name == "float32"  # bfloat16 stayed local
    finally:
        torch.use_deterministic_algorithms(before_torch)
    for row in rows:
        assert row.available, (row.label, row.error)
        assert row.state["torch_deterministic"] is False, row.label
        assert row.state["tf_op_determinism"] is False, row.label
        assert row.state["torch_flush_denormal"] is False, row.label
        assert row.state["keras_dtype_policy"] == "float32", row.label
        assert json.dumps(row.as_dict())


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
        if row.max_logit_diff is not None and row.setting.role != "bfloat16":
            assert row.max_logit_diff < 1e-4, row.label
    for task in ("training", "inference, batch", "inference, one image"):
        assert "× fastest" in str(compare.table(rows, task))
    # Freezing went to the best row's compilation only, not to the whole process.
    import torch._inductor.config as inductor

    assert inductor.freezing is False
    assert all(r.state.get("inductor_freezing") is not True for r in rows)


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
@pytest.mark.tf_determinism
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
