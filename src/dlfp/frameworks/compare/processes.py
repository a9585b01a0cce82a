"""The rounds spread over several fresh processes, and the settings that only a fresh
process can change.

One process is one sample of everything a process decides once: where its memory
lands, what its compilers produced, how its thread pools started. Rounds timed in one
process share all of it, so their spread understates the spread between two runs of a
program. :func:`run_processes` therefore starts ``n`` processes one after the other
(never at once: they would compete for the cores), each running its share of the
Williams design's timed rounds (rounds ``i, i + n, ...``; its own warm-up first), and
pools their rows, recording which process timed each round.

Some settings are read once, when a library loads: TensorFlow reads
``TF_ENABLE_ONEDNN_OPTS`` at import. Others cannot be undone: TensorFlow's op
determinism has a public switch on and none off. Such a setting is compared by running
processes that have it (``env``, ``op_determinism``), each with the rows it concerns
and a reference row (PyTorch's default) timed in the same rounds: within a process the
paired ratio to the reference is clean, and the reference carries the comparison
across processes (:func:`~.stats.across_processes`). :func:`~.machine.onednn` says what
TensorFlow does in a process with a given environment.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import _spawn as spawn
from .machine import threads
from .rows import Plan, Row
from .training import this_process

#: The chapters' trained models that the inference rows time.
MODELS = ("torch-cnn", "keras-cnn")


def pooled(results: Sequence[Sequence[dict]]) -> list[Row]:
    """The rows of several processes (each a list of :meth:`Row.as_dict`) as one list:
    each row's rounds, single calls, warm-ups, waits and process numbers concatenated
    in process order; the largest logit difference and the lowest agreement of any
    process; the first process's threads and state. A row that failed in any process
    stays failed, with that process's reason."""
    merged = [Row.from_dict(d) for d in results[0]]
    for row in merged:
        row.process = [0] * len(row.seconds)
    for i, rows in enumerate(results[1:], start=1):
        if [(d["task"], d["label"]) for d in rows] != [
            (r.task, r.label) for r in merged
        ]:
            raise ValueError("the processes ran different rows; run them all again.")
        for row, other in zip(merged, rows, strict=True):
            if other.get("calls", 1) != row.calls:
                raise ValueError(
                    f"{row.label!r} made {row.calls} and {other.get('calls', 1)} calls "
                    "per round in two processes; run them all with one plan."
                )
            row.seconds += other["seconds"]
            row.latencies += other.get("latencies", [])
            row.warmup_seconds += other["warmup_seconds"]
            row.idle += other["idle"]
            row.waited += other["waited"]
            row.process += [i] * len(other["seconds"])
            row.error = row.error or other["error"]
            if row.max_logit_diff is not None and other.get("max_logit_diff"):
                row.max_logit_diff = max(row.max_logit_diff, other["max_logit_diff"])
            if row.agreement is not None and other.get("agreement") is not None:
                row.agreement = min(row.agreement, other["agreement"])
    return merged


def run_processes(
    plan: Plan,
    processes: int = 3,
    *,
    tasks: Sequence[str] = ("training", "inference"),
    keep: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    op_determinism: bool = False,
    timeout: float = 900.0,
) -> list[Row]:
    """Run the experiment's ``tasks`` in ``processes`` fresh processes, one after the
    other, each its share of the timed rounds, and pool their rows (:func:`pooled`).

    ``keep``: only the settings named ``"framework:role"`` (``"TensorFlow:*"``: every
    role of TensorFlow's but ONNX Runtime's); None keeps them all. ``env``: variables
    set in every process (for instance ``TF_ENABLE_ONEDNN_OPTS``).
    ``op_determinism``: TensorFlow's op determinism on in every process from its start;
    a process times only TensorFlow's rows whose determinism matches its own (the
    others are left out, and naming one in ``keep`` is an error). Each process gets
    :func:`threads` threads per pool, as this one does, and ``timeout`` seconds; one
    that fails stops the run with its name and the end of its log. The inference rows
    use the chapters' kept models (:func:`train_missing` trains any that is missing,
    in a process of its own, first).
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1, not {processes}.")
    if "inference" in tasks:
        train_missing(MODELS, timeout)
    extra = dict(env or {})
    command = [
        sys.executable,
        "-m",
        f"{__package__}.worker",
        "--plan",
        json.dumps(dataclasses.asdict(plan)),
        "--tasks",
        *tasks,
    ]
    if keep is not None:
        command += ["--keep", *keep]
    if op_determinism:
        command.append("--op-determinism")
    results = []
    with tempfile.TemporaryDirectory(prefix="dlfp-verdict-") as folder:
        for i in range(processes):
            out = Path(folder) / f"process-{i}.json"
            share = ["--share", str(i), str(processes), "--out", str(out)]
            spawn.run(
                [([*command, *share], spawn.worker_env(threads(), **extra))],
                [f"process {i + 1} of {processes}"],
                folder,
                timeout,
            )
            results.append(json.loads(out.read_text())["rows"])
    return pooled(results)


def train_missing(names: Sequence[str] = MODELS, timeout: float = 3600.0) -> None:
    """Train and keep each of the recipes ``names`` that :mod:`dlfp.artifacts` does not
    keep yet, in a fresh process: training the Keras network turns TensorFlow's op
    determinism on for good, which no process that times rows may inherit."""
    from ...artifacts import artifact_path, load_record
    from ...recipes import recipe

    missing = [
        name
        for name in names
        if load_record(recipe(name)) is None or not artifact_path(recipe(name)).exists()
    ]
    if not missing:
        return
    code = (
        "from dlfp.artifacts import trained; from dlfp.recipes import recipe; "
        f"[trained(recipe(name)) for name in {missing!r}]"
    )
    with tempfile.TemporaryDirectory(prefix="dlfp-train-") as folder:
        spawn.run(
            [([sys.executable, "-c", code], spawn.worker_env(threads()))],
            [f"training {', '.join(missing)}"],
            folder,
            timeout,
        )


def kept(settings, keep: Sequence[str] | None, op_determinism: bool = False):
    """The settings that ``keep`` names (see :func:`run_processes`), in order, that a
    process with TensorFlow's op determinism ``op_determinism`` can time: a TensorFlow
    row whose determinism differs is left out where ``keep`` names it by wildcard (or
    is None), and is an error where ``keep`` names it by role."""
    matches = this_process(settings, op_determinism)
    if keep is None:
        return matches
    wanted = [tuple(k.split(":", 1)) for k in keep]
    named = [
        s
        for s in settings
        if any(s.framework == f and s.role == role for f, role in wanted)
    ]
    for s in named:
        if s not in matches:
            raise ValueError(
                f"{s.framework}:{s.role} needs TensorFlow's op determinism "
                f"{'on' if s.options.get('deterministic') else 'off'}, and these "
                "processes have it the other way: run it with op_determinism="
                f"{bool(s.options.get('deterministic'))}."
            )
    chosen = [
        s
        for s in matches
        if any(
            s.framework == framework
            and (s.role == role or (role == "*" and s.role != "onnx"))
            for framework, role in wanted
        )
    ]
    if not chosen:
        raise ValueError(
            f"no setting is named by {', '.join(keep)}; name them as framework:role, "
            "for instance PyTorch:default or TensorFlow:*."
        )
    return chosen
