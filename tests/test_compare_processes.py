"""The verdict's rounds in several processes, the family of speed statements (Holm),
and the fastest row compared on rounds that did not choose it."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

pytest.importorskip("torch", reason="PyTorch is not installed")
compare = pytest.importorskip("dlfp.frameworks.compare")
from dlfp.frameworks.compare import processes, stats  # noqa: E402
from dlfp.frameworks.compare.table import selection_rounds  # noqa: E402


def _row(label, seconds, *, framework="PyTorch", process=None, role="component"):
    setting = compare.Setting(framework, label, role)
    row = compare.Row("training", setting, "cpu", unit=1, seconds=list(seconds))
    row.process = list(process or [0] * len(seconds))
    return row


# --- The sign test and Holm's levels ------------------------------------------------


@pytest.mark.parametrize("n", [6, 9, 14, 18])
def test_the_sign_test_rejects_exactly_when_the_median_interval_excludes_0(n):
    """Over every pattern of signs of n values: p <= 5% if and only if the
    order-statistic interval of :func:`median_ci` lies on one side of 0."""
    for signs in itertools.product((-1, 1), repeat=n):
        d = np.array(signs) * (1 + np.arange(n) / n)
        ci = compare.median_ci(d)
        excludes = ci["low"] > 0 or ci["high"] < 0
        assert (stats.sign_test_p(d) <= 0.05) == excludes, signs


def test_the_sign_test_on_known_cases():
    assert stats.sign_test_p([1.0] * 6) == pytest.approx(2 / 64)
    assert stats.sign_test_p([1.0] * 5 + [-1.0]) == pytest.approx(2 * 7 / 64)
    assert stats.sign_test_p([0.0, 0.0]) == 1.0  # no information
    assert stats.sign_test_p([1, -1, 1, -1]) == 1.0  # capped at 1


def test_holm_steps_down_and_stops_at_the_first_failure():
    # m = 4: levels 0.0125, 0.0167, 0.025, 0.05 in the order of the p-values
    assert stats.holm([0.01, 0.04, 0.012, 0.02]) == pytest.approx(
        [0.0125, 0.05, 0.05 / 3, 0.025]
    )
    # 0.03 fails its level 0.025, so 0.04 is not tested at 0.05
    assert stats.holm([0.01, 0.04, 0.012, 0.03]) == pytest.approx(
        [0.0125, 0.0, 0.05 / 3, 0.0]
    )
    # the second smallest fails its level: nothing after it rejects either
    assert stats.holm([0.001, 0.02, 0.021, 0.022]) == pytest.approx(
        [0.0125, 0.0, 0.0, 0.0]
    )
    assert stats.holm([]) == []


def test_holm_keeps_the_family_wise_error_at_5_percent():
    """Ten true null hypotheses with uniform p-values: Holm rejects any of them in at
    most 5% of 20,000 families (Bonferroni's bound; uncorrected: about 40%)."""
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(20_000, 10))
    any_rejected = [any(stats.holm(list(row))) for row in p]
    assert np.mean(any_rejected) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 20_000)
    assert np.mean((p <= 0.05).any(axis=1)) > 0.35


def test_a_family_of_speed_verdicts_is_corrected():
    """One clear difference and several rows that differ by noise only: the clear
    one stays "slower" at its Holm level; the noise rows are never called different,
    and every verdict names the family's size and its own level."""
    rng = np.random.default_rng(1)
    n = 18
    base = _row("ref", np.exp(rng.normal(0, 0.02, n)))
    slow = _row("slow", np.asarray(base.seconds) * 1.5 * np.exp(rng.normal(0, 0.02, n)))
    pairs = {"slow": (slow, base)}
    for i in range(5):
        pairs[f"noise {i}"] = (
            _row(f"n{i}", np.asarray(base.seconds) * np.exp(rng.normal(0, 0.01, n))),
            base,
        )
    family = stats.speed_verdicts(pairs)
    assert family["slow"]["outcome"] == "slower"
    assert family["slow"]["alpha"] == pytest.approx(0.05 / 6)  # the smallest p
    assert all(v["family"] == 6 for v in family.values())
    assert all(
        family[f"noise {i}"]["outcome"] in ("equivalent", "inconclusive")
        for i in range(5)
    )
    # alone, at 5%, the same verdict: the correction only widens the intervals
    alone = compare.speed_verdict(slow, base)
    assert alone["outcome"] == "slower" and alone["high"] <= family["slow"]["high"]


# --- The fastest row, compared on fresh rounds ----------------------------------------


def test_the_fastest_row_is_chosen_on_some_rounds_and_compared_on_the_others():
    a = _row("a", [1.0, 5.0, 1.0, 5.0, 1.0, 5.0], process=[0, 0, 1, 1, 2, 2])
    b = _row("b", [2.0, 2.0, 2.0, 2.0, 2.0, 2.0], process=[0, 0, 1, 1, 2, 2])
    first, rest = selection_rounds(a)
    assert (first, rest) == ([0, 1], [2, 3, 4, 5])  # the first process chooses
    best = compare.fastest([a, b], "PyTorch", "training")
    assert best.label == "b" and best.rounds == (2, 3, 4, 5)  # median 2 < 3 there
    assert compare.paired_ratio(best, a)["rounds"] == 4
    one = _row("c", [1.0, 2.0, 3.0, 4.0])  # one process: even rounds choose
    assert selection_rounds(one) == ([0, 2], [1, 3])


def test_choosing_the_fastest_of_equal_rows_on_the_same_rounds_is_biased():
    """Five equally fast rows: the one with the lowest median on all rounds looks
    faster than its rival on those rounds (the winner's curse), but not on the rounds
    it was not chosen on."""
    rng = np.random.default_rng(2)
    same, fresh = [], []
    for _ in range(300):
        rows = [
            _row(f"r{i}", np.exp(rng.normal(0, 0.1, 12)), process=[0] * 6 + [1] * 6)
            for i in range(5)
        ]
        naive = min(rows, key=compare.Row.median)
        rival = rows[0] if naive is not rows[0] else rows[1]
        same.append(np.log(compare.paired_ratio(naive, rival)["median"]))
        chosen = compare.fastest(rows, "PyTorch", "training")
        other = next(r for r in rows if r.label != chosen.label)
        fresh.append(np.log(compare.paired_ratio(chosen, other)["median"]))
    # 300 trials: the standard error of either mean is about 0.004
    assert np.mean(same) < -0.025  # biased towards "faster"
    assert abs(np.mean(fresh)) < 0.015  # unbiased


def test_too_few_rounds_give_an_unbounded_interval_not_an_error():
    a, b = _row("a", [1.0, 1.0, 1.0]), _row("b", [2.0, 2.0, 2.0])
    for v in (compare.speed_verdict(a, b), compare.speed_verdict(b, a)):
        assert v["outcome"] == "inconclusive"
        assert v["factor_low"] == 0.0 or v["factor_high"] == math.inf
        assert "no interval: too few rounds" in compare.versus(a, b, ("A", "B"))


def test_rows_of_different_lengths_are_not_paired():
    with pytest.raises(ValueError, match="only rows timed in the same rounds"):
        compare.paired_ratio(_row("a", [1.0, 2.0]), _row("b", [1.0, 2.0, 3.0]))


# --- Several processes ----------------------------------------------------------------


def test_pooled_rows_keep_which_process_timed_each_round():
    one = [_row("a", [1.0, 2.0]).as_dict(), _row("b", [3.0, 4.0]).as_dict()]
    two = [_row("a", [5.0]).as_dict(), _row("b", [6.0]).as_dict()]
    two[1]["error"] = "RuntimeError: broke"
    rows = processes.pooled([one, two])
    assert rows[0].seconds == [1.0, 2.0, 5.0] and rows[0].process == [0, 0, 1]
    assert rows[1].error == "RuntimeError: broke" and not rows[1].available
    with pytest.raises(ValueError, match="ran different rows"):
        processes.pooled([one, two[:1]])


def test_a_process_takes_its_share_of_the_designs_rounds():
    """Three processes that split 14 timed rounds run each of the 14 orders of the
    design once between them, and each runs its own warm-up first."""
    seen = []

    def record(r):
        seen.append(r)
        return None

    rows = [_row(f"r{i}", []) for i in range(7)]
    runners = [lambda data: None] * 7
    for part in range(3):
        compare.harness._interleave(
            rows, runners, 14, 1, record, pause=0.0, share=(part, 3)
        )
    warmups = [r for r in seen if r == 0]
    timed = sorted(r for r in seen if r > 0)
    assert len(warmups) == 3 and timed == list(range(1, 15))
    assert len(rows[0].seconds) == 14


def test_onednn_follows_the_variable_then_the_processor(monkeypatch):
    machine = compare.machine_state  # the module (compare.machine is a function)
    assert compare.onednn({"TF_ENABLE_ONEDNN_OPTS": "0"}) is False
    assert compare.onednn({"TF_ENABLE_ONEDNN_OPTS": "1"}) is True
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2", "fma"})
    assert compare.onednn({}) is False
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2", "avx512_vnni"})
    assert compare.onednn({}) is True


@pytest.mark.slow
def test_onednn_agrees_with_what_tensorflow_says_at_import():
    """TensorFlow announces at import whether oneDNN's custom operations are on; our
    reading of the documented default must agree, with and without the variable."""
    import os
    import subprocess
    import sys

    pytest.importorskip("tensorflow")
    for value in (None, "0", "1"):
        env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
        if value is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = value
        env["TF_CPP_MIN_LOG_LEVEL"] = "0"
        log = subprocess.run(
            [sys.executable, "-c", "import tensorflow"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        ).stderr
        said = "oneDNN custom operations are on" in log
        assert said == compare.onednn(env), (value, log[-500:])


@pytest.mark.mnist
def _tiny(rounds: int):
    """A plan of training rounds of 2 steps, PyTorch's and TensorFlow's plain rows."""
    return compare.Plan(
        train_steps=2,
        train_rounds=rounds,
        components=False,
        torch_compile=False,
        onnx=False,
        dlfp=False,
        pause=0.0,
    )


def test_rounds_in_three_processes_pool_into_one_row_per_setting():
    """The training rounds of a tiny plan in three fresh processes, PyTorch only: each
    row holds every timed round once, each process's share, and the oneDNN variable
    reaches the processes."""
    plan = _tiny(rounds=4)
    rows = compare.run_processes(
        plan, 3, tasks=["training"], keep=["PyTorch:default", "PyTorch:chapter"]
    )
    assert [r.label for r in rows] == [
        s.label
        for s in compare.training_settings(plan)
        if s.framework == "PyTorch" and s.role in ("default", "chapter")
    ]
    for row in rows:
        assert row.available and len(row.seconds) == 4
        assert row.process == [0, 0, 1, 2]
    with pytest.raises(compare.WorkerError, match="process 1 of 1 exited"):
        compare.run_processes(plan, 1, tasks=["training"], keep=["PyTorch:nonsense:"])


def test_op_determinism_processes_time_tensorflows_chapter_row_with_it_on():
    """TensorFlow's op determinism cannot be turned off: its row runs in processes
    that turn it on from the start, which refuse rows that need it off."""
    pytest.importorskip("tensorflow")
    plan = _tiny(rounds=2)
    rows = compare.run_processes(
        plan,
        1,
        tasks=["training"],
        keep=["PyTorch:default", "TensorFlow:*"],
        op_determinism=True,
    )
    assert [(r.framework, r.setting.role) for r in rows] == [
        ("PyTorch", "default"),
        ("TensorFlow", "chapter"),
    ]
    for row in rows:
        assert row.available, row.error
        assert row.state["tf_op_determinism"] is True
    with pytest.raises(compare.WorkerError, match="op_determinism=False"):
        compare.run_processes(
            plan,
            1,
            tasks=["training"],
            keep=["TensorFlow:default"],
            op_determinism=True,
        )


# --- A setting read at import: rows in different processes ---------------------------


def test_the_mann_whitney_distribution_matches_the_tables():
    cdf = stats._mann_whitney_cdf(3, 3)
    assert cdf[0] == pytest.approx(1 / 20) and cdf[-1] == pytest.approx(1.0)
    # two-sided 5% critical values of U (the largest u with P(U <= u) <= 2.5%)
    for (m, n), critical in {(10, 10): 23, (8, 8): 13, (14, 14): 55}.items():
        cdf = stats._mann_whitney_cdf(m, n)
        assert cdf[critical] <= 0.025 < cdf[critical + 1], (m, n)


def test_the_shift_interval_covers_the_true_shift_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(400):
        ci = stats.shift_ci(rng.normal(0.3, 1, 9), rng.normal(0, 1, 9))
        hits += ci["low"] <= 0.3 <= ci["high"]
    assert 0.93 <= hits / 400 <= 0.995


def test_rows_of_different_processes_are_compared_through_their_references():
    """TensorFlow with oneDNN on and off, each against PyTorch's default in its own
    processes: a second set of processes that is 20% slower for every row does not
    make the setting look slower; a 1.5 times slower setting does."""
    rng = np.random.default_rng(4)

    def pair(factor, machine):
        ref = np.exp(rng.normal(0, 0.02, 12)) * machine
        row = ref * factor * np.exp(rng.normal(0, 0.02, 12))
        return _row("tf", row, framework="TensorFlow"), _row("torch", ref)

    on, ref_on = pair(1.0, 1.0)
    off, ref_off = pair(1.5, 1.2)
    v = stats.across_processes(off, ref_off, on, ref_on)
    assert v["outcome"] == "slower" and 1.4 < v["ratio"] < 1.6
    same, ref_same = pair(1.0, 1.2)
    v = stats.across_processes(same, ref_same, on, ref_on)
    assert v["outcome"] in ("equivalent", "inconclusive") and abs(v["ratio"] - 1) < 0.05


def test_through_reference_finds_the_rows_of_each_set_and_their_references():
    """The same comparison from whole sets of rows: TensorFlow's default of one set
    against its chapter row of another, each through the PyTorch default of its own
    set; None where a row is missing or could not run."""
    rng = np.random.default_rng(5)

    def one_set(role, factor, machine):
        ref = np.exp(rng.normal(0, 0.02, 12)) * machine
        tf = ref * factor * np.exp(rng.normal(0, 0.02, 12))
        other = ref * 3.0  # a row of the set that the comparison leaves alone
        return [
            _row("torch", ref, role="default"),
            _row("tf", tf, framework="TensorFlow", role=role),
            _row("tf, other", other, framework="TensorFlow", role="best"),
        ]

    control, det = one_set("default", 2.0, 1.0), one_set("chapter", 2.6, 1.3)
    v = compare.through_reference(det, control, "training", "chapter")
    assert v["outcome"] == "slower" and 1.2 < v["ratio"] < 1.4
    assert v["labels"] == ("tf", "tf") and v["rounds"] == (12, 12)
    assert 2.4 < v["a_over_reference"] < 2.8 and 1.9 < v["b_over_reference"] < 2.1
    assert compare.through_reference(det, control, "training") is None  # no default
    det[1].error = "unavailable here"
    assert compare.through_reference(det, control, "training", "chapter") is None


def test_a_worker_leaves_at_once_with_its_output_flushed_and_its_code():
    """exit_now skips the interpreter's teardown, but not what the worker printed
    (buffered, as it is when stdout is a pipe) nor its exit status; atexit handlers,
    part of the teardown, do not run."""
    import subprocess
    import sys

    code = (
        "import atexit, sys; from dlfp.frameworks._spawn import exit_now; "
        "atexit.register(lambda: print('teardown')); "
        "print('result', end=''); sys.stderr.write('log'); exit_now(3)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "result", "log")
