"""The book's CNN on several processes: PyTorch's DDP and TensorFlow's
MultiWorkerMirroredStrategy, launched and checked from one Python process.

:func:`launch` starts W worker processes (``python -m`` one of the two worker modules,
:mod:`.torch_ddp` or :mod:`.tf_multiworker`) that talk over 127.0.0.1 only, on ports
that the operating system reports free, waits for them with a time limit, and returns
what each wrote as JSON in a temporary folder. A worker that dies stops the others
with an error that says which one and why; no process outlives the call.

:func:`scalability_rows` is the verdict's row: for each framework, the lines that
change between its one-process and its W-process step, and whether the W-process step
matched the one-process step, from the run that the chapter *Data parallelism* kept
(or from a fresh run, about half a minute, when none is kept).
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ...parallel import check_split

__all__ = [
    "FRAMEWORKS",
    "DistributedRunError",
    "free_port",
    "check_port",
    "launch",
    "lines_changed",
    "run_checks",
    "kept_checks",
    "scalability_rows",
]

#: The worker module of each framework, under this package.
FRAMEWORKS = {"torch": "torch_ddp", "tensorflow": "tf_multiworker"}
HOST = "127.0.0.1"


class DistributedRunError(RuntimeError):
    """A worker process failed or did not finish in time; the others were stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the system picks it: bind to 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def check_port(port: int) -> int:
    """``port``, after checking that nothing on 127.0.0.1 listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            raise ValueError(
                f"port {port} on {HOST} is in use; pass port=None to let the system "
                "pick a free one, or choose another port."
            ) from None
    return port


def _env(threads: int) -> dict:
    """The workers' environment: this dlfp first on the path, ``threads`` threads."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[3])  # the folder holding dlfp
    env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env["DLFP_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        p.wait()


def launch(
    framework: str,
    *,
    workers: int = 2,
    batch: int = 128,
    mode: str = "check",
    port: int | None = None,
    threads: int = 1,
    timeout: float = 120.0,
    extra: tuple[str, ...] = (),
) -> list[dict]:
    """Run ``workers`` processes of ``framework``'s worker module; return their JSON.

    Parameters
    ----------
    framework : {"torch", "tensorflow"}
    workers : int
        W, the processes (one replica each).
    batch : int
        The global batch, split into W equal shards (it must divide).
    mode : {"check", "time"}
        ``"check"``: one data-parallel step against the one-process step on the same
        global batch; ``"time"``: seconds per step, and of an all-reduce alone.
    port : int or None
        The first port on 127.0.0.1 (TensorFlow uses W consecutive ones); None lets
        the system pick free ones.
    threads : int
        Threads of each worker's maths library.
    timeout : float
        Seconds for the whole run; workers still running then are killed.
    """
    if framework not in FRAMEWORKS:
        raise ValueError(
            f"unknown framework {framework!r}; use one of {', '.join(FRAMEWORKS)}."
        )
    check_split(batch, workers)
    if port is None:
        ports = [free_port() for _ in range(workers)]
    else:
        ports = [check_port(port + w) for w in range(workers)]
    module = f"{__name__}.{FRAMEWORKS[framework]}"
    with tempfile.TemporaryDirectory(prefix="dlfp-dist-") as folder:
        procs, logs = [], []
        try:
            for rank in range(workers):
                log = open(Path(folder) / f"log-{rank}.txt", "w+")  # noqa: SIM115
                logs.append(log)
                command = [
                    sys.executable, "-m", module, "--rank", str(rank),
                    "--world", str(workers), "--ports", ",".join(map(str, ports)),
                    "--batch", str(batch), "--mode", mode, "--out", folder,
                    "--timeout", str(int(timeout)), *extra,
                ]  # fmt: skip
                procs.append(
                    subprocess.Popen(
                        command,
                        env=_env(threads),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own group: killed as one
                    )
                )
            _wait(procs, logs, timeout)
        finally:
            _stop(procs)
            for log in logs:
                log.close()
        results = []
        for rank in range(workers):
            path = Path(folder) / f"rank-{rank}.json"
            results.append(json.loads(path.read_text()))
    return results


def _tail(log, lines: int = 3) -> str:
    log.flush()
    log.seek(0)
    text = [line for line in log.read().splitlines() if line.strip()]
    return " | ".join(text[-lines:]) or "no output"


def _wait(procs, logs, timeout: float, grace: float = 15.0) -> None:
    """Wait for every worker; on a failure give the others ``grace`` seconds to stop
    by themselves, then raise, naming the first worker that failed."""
    deadline = time.monotonic() + timeout
    failed_at, first = None, None
    while any(p.poll() is None for p in procs):
        now = time.monotonic()
        failed = [r for r, p in enumerate(procs) if p.poll() not in (None, 0)]
        if failed and failed_at is None:
            failed_at, first = now, failed[0]  # the first to fail, not the lowest
        if now > deadline or (failed_at is not None and now > failed_at + grace):
            break
        time.sleep(0.05)
    codes = [p.poll() for p in procs]
    if first is None:
        first = next((r for r, c in enumerate(codes) if c not in (None, 0)), None)
    if first is not None:
        raise DistributedRunError(
            f"worker {first} of {len(procs)} exited with code {codes[first]} "
            f"({_tail(logs[first])}), and the other workers were stopped; fix that "
            "worker's error and run again."
        )
    if any(c is None for c in codes):
        waiting = [r for r, c in enumerate(codes) if c is None]
        raise DistributedRunError(
            f"workers {waiting} were still running after {timeout:.0f} s and were "
            "stopped; give a longer timeout, or look for a worker that waits for "
            "another."
        )


# --- The verdict's row -------------------------------------------------------------


def lines_changed(one, many) -> int:
    """Lines of ``many``'s source that are new or changed against ``one``'s: the code
    it takes to go from one process to W (blank and comment lines not counted)."""

    def code(f):
        lines = inspect.getsource(f).splitlines()[1:]  # without the def line
        return [
            line.strip()
            for line in lines
            if line.strip() and not line.strip().startswith(("#", '"""'))
        ]

    diff = difflib.ndiff(code(one), code(many))
    return sum(1 for line in diff if line.startswith("+ "))


def run_checks(workers: int = 2, batch: int = 128, timeout: float = 180.0) -> dict:
    """Both frameworks' checks of one data-parallel step, as one JSON-ready dict."""
    from importlib import import_module

    out = {}
    for framework, name in FRAMEWORKS.items():
        start = time.perf_counter()
        ranks = launch(framework, workers=workers, batch=batch, timeout=timeout)
        worker = import_module(f"{__name__}.{name}")
        out[framework] = {
            **ranks[0],
            "seconds": time.perf_counter() - start,
            "lines_changed": lines_changed(worker.one_process, worker.w_processes),
            "changes": list(worker.CHANGES),
        }
    return out


def _record_path(workers: int, batch: int) -> Path:
    from ...artifacts import artifacts_dir, fingerprint

    here = Path(__file__).resolve().parent
    sources = [here / f"{n}.py" for n in (*FRAMEWORKS.values(), "__init__")]
    packages = ("numpy", "torch", "tensorflow", "tensorflow-cpu", "keras")
    key = fingerprint({"workers": workers, "batch": batch}, sources, packages)
    return artifacts_dir() / f"data-parallel-{key}.json"


def kept_checks(workers: int = 2, batch: int = 128) -> dict:
    """The checks kept by an earlier run with these settings, else run and kept now."""
    path = _record_path(workers, batch)
    if path.is_file():
        return json.loads(path.read_text())
    record = run_checks(workers, batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json")
    with os.fdopen(fd, "w") as out:
        json.dump(record, out, indent=1)
    os.replace(tmp, path)
    return record


def scalability_rows(workers: int = 2, batch: int = 128) -> list[dict]:
    """One row per framework for the verdict: lines changed from one process to W,
    what changes, and whether the W-process step matched the one-process step."""
    record = kept_checks(workers, batch)
    return [
        {
            "framework": framework,
            "workers": workers,
            "lines_changed": r["lines_changed"],
            "changes": r["changes"],
            "batch_norm": r["batch_norm"],
            "matched": r["matched"],
            "max_param_diff": r["sync"]["param_diff"],
        }
        for framework, r in record.items()
    ]
