"""Worker processes started from Python, waited for with a time limit, never left
behind: the data-parallel launcher (:mod:`dlfp.frameworks.distributed`) and the
verdict's rounds in several processes (:mod:`dlfp.frameworks.compare.processes`) both
start their workers here.

Each worker is ``python -m`` a module of this dlfp (its folder first on the path, so a
worker runs the same code as its caller), in its own process group, with its output in
a log file; a worker that fails stops the others, and the error names it and quotes the
end of its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn


def exit_now(code: int = 0) -> NoReturn:
    """End a worker at once, its results written: flush Python's streams and leave by
    :func:`os._exit`, skipping the interpreter's teardown (unloading both frameworks,
    joining their thread pools), which took about 1.8 s a worker on the 2-core build
    machine, paid in every worker that its caller waits for. A worker's results are
    in its files and on its standard output by then; nothing it leaves to that
    teardown is needed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class WorkerError(RuntimeError):
    """A worker process failed or did not finish in time; the others were stopped."""


def worker_env(threads: int | None, **extra: str) -> dict:
    """A worker's environment: this dlfp first on the path (so that it runs the same
    code as its caller, installed or not), ``threads`` threads in every maths library
    (``DLFP_THREADS``, ``OMP_NUM_THREADS``; None leaves them as they are), TensorFlow's
    C++ log quiet, and ``extra`` variables."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])  # the folder holding dlfp
    env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    if threads is not None:
        env["DLFP_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra)
    return env


def stop(procs) -> None:
    """Kill every process group of ``procs`` still running, and reap them all."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        p.wait()


def tail(log, lines: int = 3) -> str:
    """The last ``lines`` non-blank lines of an open log file, on one line."""
    log.flush()
    log.seek(0)
    text = [line for line in log.read().splitlines() if line.strip()]
    return " | ".join(text[-lines:]) or "no output"


def wait(
    procs,
    logs,
    timeout: float,
    names: Sequence[str],
    *,
    error: type[WorkerError] = WorkerError,
    explain: Callable[[str, str], str | None] | None = None,
    grace: float = 15.0,
) -> None:
    """Wait for every worker; on a failure give the others ``grace`` seconds to stop
    by themselves, then raise ``error``, naming the first worker that failed (not the
    lowest-numbered). ``explain(name, tail)`` may return a more specific message for a
    failure whose log says why."""
    deadline = time.monotonic() + timeout
    failed_at, first = None, None
    while any(p.poll() is None for p in procs):
        now = time.monotonic()
        failed = [r for r, p in enumerate(procs) if p.poll() not in (None, 0)]
        if failed and failed_at is None:
            failed_at, first = now, failed[0]
        if now > deadline or (failed_at is not None and now > failed_at + grace):
            break
        time.sleep(0.05)
    codes = [p.poll() for p in procs]
    if first is None:
        first = next((r for r, c in enumerate(codes) if c not in (None, 0)), None)
    if first is not None:
        end = tail(logs[first])
        message = explain(names[first], end) if explain else None
        raise error(
            message
            or f"{names[first]} exited with code {codes[first]} ({end}), and the "
            "other workers were stopped; fix that worker's error and run again."
        )
    if any(c is None for c in codes):
        waiting = [names[r] for r, c in enumerate(codes) if c is None]
        raise error(
            f"{', '.join(waiting)} were still running after {timeout:.0f} s and were "
            "stopped; give a longer timeout, or look for a worker that waits for "
            "another."
        )


def run(
    runs: Sequence[tuple[list[str], dict]],
    names: Sequence[str],
    folder: str | Path,
    timeout: float,
    **how,
) -> None:
    """Start each ``(command, env)`` of ``runs`` at once, in ``folder`` (so that no
    file of the caller's folder shadows a module), each in its own process group with
    its output in ``folder/log-i.txt``, and wait for all (:func:`wait`, which ``how``
    configures). No worker outlives the call."""
    procs, logs = [], []
    try:
        for i, (command, env) in enumerate(runs):
            log = open(Path(folder) / f"log-{i}.txt", "w+")  # noqa: SIM115
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=folder,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: killed as one
                )
            )
        wait(procs, logs, timeout, names, **how)
    finally:
        stop(procs)
        for log in logs:
            log.close()
