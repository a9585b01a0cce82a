"""Reading the rows: finding a row, saying which of two is faster (in one set of
processes or across two), and the table."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from .rows import DLFP, PYTORCH, TENSORFLOW, Row
from .stats import across_processes, paired_ratio, speed_verdict


def selection_rounds(row: Row) -> tuple[list[int], list[int]]:
    """The rounds on which :func:`fastest` chooses a row, and the rest, on which the
    chosen row is compared: the first process's rounds when several processes timed
    them, else the even-numbered rounds. Choosing the row with the lowest median and
    then comparing it on the same rounds would favour it (the winner's curse: the
    minimum of several noisy medians is biased low); fresh rounds are not."""
    n = len(row.seconds)
    if len(set(row.process)) > 1:
        first = [i for i in range(n) if row.process[i] == row.process[0]]
    else:
        first = list(range(0, n, 2))
    return first, [i for i in range(n) if i not in set(first)]


def fastest(
    rows: Sequence[Row], framework: str, task: str, *, onnx=False, bfloat16=False
) -> Row:
    """The available row of ``framework`` and ``task`` with the lowest median time on
    the selection rounds (:func:`selection_rounds`), as a copy whose comparisons
    (:func:`~.stats.paired_ratio`, :func:`~.stats.speed_verdict`) use only the other
    rounds. ONNX Runtime rows count only with ``onnx=True`` (they are not the
    framework), bfloat16 rows only with ``bfloat16=True`` (they compute other numbers
    than the float32 rows)."""
    skip = {"onnx"} - ({"onnx"} if onnx else set())
    skip |= set() if bfloat16 else {"bfloat16"}
    candidates = [
        r
        for r in rows
        if r.framework == framework
        and r.task == task
        and r.available
        and r.setting.role not in skip
    ]
    if not candidates:
        raise ValueError(f"no available {task} row for {framework}")
    choose, compare_on = selection_rounds(candidates[0])

    def chosen_median(row: Row) -> float:
        return float(np.median(row.per_unit()[choose]))

    return dataclasses.replace(
        min(candidates, key=chosen_median), rounds=tuple(compare_on)
    )


_RAISE = object()


def find(rows: Sequence[Row], framework: str, task: str, role: str, default=_RAISE):
    """The row of ``framework`` and ``task`` with the given role (the first one); when
    there is none, ``default`` if given, else :class:`KeyError`."""
    for r in rows:
        if r.framework == framework and r.task == task and r.setting.role == role:
            return r
    if default is not _RAISE:
        return default
    raise KeyError(f"no {task} row with role {role!r} for {framework}")


def by_label(rows: Sequence[Row], task: str, label: str) -> Row:
    """The row of ``task`` with this label (labels are those of the settings)."""
    for r in rows:
        if r.task == task and r.label == label:
            return r
    raise KeyError(f"no {task} row labelled {label!r}")


def through_reference(
    a_rows: Sequence[Row],
    b_rows: Sequence[Row],
    task: str = "training",
    role_a: str = "default",
    role_b: str = "default",
    framework: str = TENSORFLOW,
) -> dict | None:
    """``framework``'s row ``role_a`` of the processes that timed ``a_rows`` against
    its row ``role_b`` of the processes that timed ``b_rows`` (a setting that only
    another process can change, such as oneDNN's or TensorFlow's op determinism),
    each paired with PyTorch's default row of its own rounds, the reference that
    carries the comparison across the processes (:func:`.stats.across_processes`).

    The reference cancels what the two sets of processes do to both frameworks
    alike, not what differs between them for ``framework`` alone, such as the
    company of other configurations: the fair control holds the same rows as the
    other set, the one setting apart. Returns None where either row is missing or
    was unavailable; otherwise :func:`.stats.across_processes`'s dict, with the two
    rows' labels (``labels``) and each one's median paired ratio to its reference
    (``a_over_reference``, ``b_over_reference``)."""
    a, b = (
        find(a_rows, framework, task, role_a, None),
        find(b_rows, framework, task, role_b, None),
    )
    if a is None or b is None or not (a.available and b.available):
        return None
    ref_a, ref_b = (find(r, PYTORCH, task, "default") for r in (a_rows, b_rows))
    return {
        **across_processes(a, ref_a, b, ref_b),
        "labels": (a.label, b.label),
        "a_over_reference": paired_ratio(a, ref_a)["median"],
        "b_over_reference": paired_ratio(b, ref_b)["median"],
    }


def _interval(low: float, high: float, level: float = 0.95) -> str:
    if math.isinf(low) or math.isinf(high) or low == 0:
        return "no interval: too few rounds"
    return f"{_percent(level)} interval {low:.2f} to {high:.2f}"


def _percent(level: float) -> str:
    """A confidence level as the text says it: 95%, 99.5%, 99.64%."""
    return f"{100 * level:.4g}%"


def versus(
    a: Row, b: Row, names: tuple[str, str], verb: str = "ran", verdict=None
) -> str:
    """A clause that says which of two rows is faster, with the interval of the factor
    (:func:`speed_verdict`, or ``verdict`` when given: one of a family's, from
    :func:`~.stats.speed_verdicts`), that they are equally fast within 5%, or that the
    rounds do not settle it. For prose whose winner must follow the measurement:
    "PyTorch trained faster than TensorFlow, by a factor of 1.52 (95% interval 1.45 to
    1.60, ...)"."""
    v = speed_verdict(a, b) if verdict is None else verdict
    n, level = v["rounds"], 1 - v["alpha"]
    of = f"the median of {n} paired rounds"
    ratio_ci = _interval(v["low"], v["high"], level)
    if v["outcome"] == "equivalent":
        return (
            f"{names[0]} and {names[1]} {verb} equally fast within "
            f"{100 * (v['margin'] - 1):.0f}%: the ratio of their times was "
            f"{v['ratio']:.2f} ({ratio_ci}, {of})"
        )
    if v["outcome"] == "inconclusive":
        return (
            f"the rounds do not settle whether {names[0]} or {names[1]} {verb} faster: "
            f"the ratio of their times was {v['ratio']:.2f} "
            f"({ratio_ci}, {of}), neither wholly on one side "
            f"of 1 nor within {100 * (v['margin'] - 1):.0f}% of it"
        )
    faster, slower = names if v["faster"] == 0 else names[::-1]
    return (
        f"{faster} {verb} faster than {slower}, by a factor of {v['factor']:.2f} "
        f"({_interval(v['factor_low'], v['factor_high'], level)}, {of})"
    )


def _ms(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"


ROLES = {
    "default": "default",
    "chapter": "as in its chapter",
    "component": "one setting changed",
    "best": "best documented for a CPU",
    "bfloat16": "best documented, in bfloat16",
    "onnx": "exported",
}


def _ratio(x: float) -> str:
    return f"{x:.2f}" if 0.1 <= x < 100 else f"{x:.3g}"


def _threads_cell(row: Row) -> str:
    t = row.threads
    if row.setting.role == "onnx":
        return f"ORT {t.get('ort_intra_op', '?')}/{t.get('ort_inter_op', '?')}"
    if row.framework == DLFP:
        return f"BLAS {t.get('blas', '?')}"
    prefix = "torch" if row.framework == PYTORCH else "tf"
    intra, inter = (t.get(f"{prefix}_{pool}_op", "?") for pool in ("intra", "inter"))
    return f"{intra or 'auto'}/{inter or 'auto'}"  # TensorFlow's 0: it decides


#: The fewest rounds for which the table shows quartiles rather than the range.
QUARTILE_ROUNDS = 8


def _state_cell(row: Row) -> str:
    """The process-wide settings a row ran under that differ from the plain float32
    ones: determinism, subnormals flushed, oneDNN, XLA flags, a dtype policy."""
    st, on = row.state, []
    prefix = {PYTORCH: "torch", DLFP: None}.get(row.framework, "tf")
    if prefix is None or not st:
        return "—"
    if st.get("torch_deterministic" if prefix == "torch" else "tf_op_determinism"):
        on.append("deterministic")
    if st.get(f"{prefix}_flush_denormal"):
        on.append("FTZ")
    if prefix == "tf":
        on.append(f"oneDNN {'on' if st.get('tf_onednn') else 'off'}")
        if st.get("XLA_FLAGS") or st.get("TF_XLA_FLAGS"):
            on.append("XLA flags")
    else:
        if not st.get("torch_mkldnn", True):
            on.append("oneDNN off")
        if st.get("torch_matmul_precision", "highest") != "highest":
            on.append(f"matmul {st['torch_matmul_precision']}")
        if st.get("inductor_freezing"):
            on.append("freezing (global)")
    return ", ".join(on) or "—"


def table(rows: Sequence[Row], task: str):
    """The rows of one task as a :class:`dlfp.report.Table`.

    Columns: framework, configuration, device, threads (intra-op/inter-op), the
    process-wide state it ran under (:func:`_state_cell`), the time, the paired ratio
    to the framework's default row and to the fastest row of the task, and the
    warm-up (first block or call, compilation included) in units of a timed one.
    Training's time is the median per step with its interquartile range (with fewer
    than :data:`QUARTILE_ROUNDS` rounds, its range: quartiles of a handful of values
    would only interpolate between them); inference's is the median and the 90th
    percentile of every timed call (:meth:`Row.latency`).
    """
    from ...report import Table

    mine = [r for r in rows if r.task == task]
    available = [r for r in mine if r.available]
    best = min(available, key=Row.median) if available else None
    defaults = {r.framework: r for r in available if r.setting.role == "default"}
    training = task == "training"
    unit = "step" if training else "call"
    quartiles = all(len(r.seconds) >= QUARTILE_ROUNDS for r in available)
    body = []
    for r in mine:
        if not r.available:
            body.append(
                [
                    r.framework,
                    f"{r.label} ({ROLES[r.setting.role]})",
                    r.device,
                    _threads_cell(r),
                    _state_cell(r),
                    f"unavailable: {r.error}".replace("|", "/"),  # not a table rule
                    "—",
                    "—",
                    "—",
                ]
            )
            continue
        if training:
            q1, q3 = (
                r.quartiles() if quartiles else (r.per_unit().min(), r.per_unit().max())
            )
            time_cell = f"{_ms(r.median())} ({_ms(q1)}–{_ms(q3)})"
        else:
            time_cell = f"{_ms(r.latency(50))} / {_ms(r.latency(90))}"
        to_default = defaults.get(r.framework)
        body.append(
            [
                r.framework,
                f"{r.label} ({ROLES[r.setting.role]})",
                r.device,
                _threads_cell(r),
                _state_cell(r),
                time_cell,
                _ratio(paired_ratio(r, to_default)["median"]) if to_default else "—",
                _ratio(paired_ratio(r, best)["median"]),
                f"{r.warmup_ratio():.1f}" if r.warmup_seconds else "—",
            ]
        )
    time_header = (
        f"ms per step ({'IQR' if quartiles else 'range'})"
        if training
        else "ms per call: median / 90th percentile"
    )
    return Table(
        [
            "framework",
            "configuration",
            "device",
            "threads",
            "process state",
            time_header,
            "× default",
            "× fastest",
            f"first {'block' if unit == 'step' else 'call'}, × a timed one",
        ],
        body,
    )
