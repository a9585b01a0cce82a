"""The book's CNN on several processes: PyTorch's DDP and TensorFlow's
MultiWorkerMirroredStrategy, launched and checked from one Python process.

:func:`launch` starts W worker processes (``python -m`` one of the two worker modules,
:mod:`.torch_ddp` or :mod:`.tf_multiworker`) on this machine, waits for them with a
time limit, and returns what each wrote as JSON in a temporary folder. A worker that
dies stops the others with an error that says which one and why; no process outlives
the call. :func:`timings` times one process against W, in turns.

Where the workers talk: PyTorch's meet through a file in that folder (a ``FileStore``:
no port for the rendezvous) and exchange gradients over gloo on the loopback interface
(``GLOO_SOCKET_IFNAME=lo``, so 127.0.0.1). TensorFlow's address each other as
127.0.0.1:port, but its gRPC server listens on that port on every interface of the
machine (TensorFlow has no setting for the address it binds), for as long as the run
lasts.

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
import socket
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from ...parallel import check_split
from .. import _spawn as spawn
from .._spawn import WorkerError, worker_env

__all__ = [
    "FRAMEWORKS",
    "DistributedRunError",
    "free_ports",
    "check_port",
    "launch",
    "timings",
    "lines_changed",
    "changed_lines",
    "run_checks",
    "kept_checks",
    "scalability_rows",
]

#: The worker module of each framework, under this package.
FRAMEWORKS = {"torch": "torch_ddp", "tensorflow": "tf_multiworker"}
HOST = "127.0.0.1"
#: What a worker's log says when its port was taken between the check and its start.
PORT_TAKEN = ("Address already in use", "Could not start gRPC server")


class DistributedRunError(WorkerError):
    """A worker process failed or did not finish in time; the others were stopped."""


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1, free now (the system picks them:
    bind to 0, every socket held open until all are chosen, so none repeats)."""
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]


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


def _ports(framework: str, workers: int, port: int | None) -> list[int]:
    """The TensorFlow workers' ports; none for PyTorch's, which meet through a file."""
    if framework == "torch":
        if port is not None:
            raise ValueError(
                "PyTorch's workers meet through a file and use no chosen port; "
                "leave port=None."
            )
        return []
    if port is None:
        return free_ports(workers)
    return [check_port(port + w) for w in range(workers)]


def _env(threads: int) -> dict:
    """The workers' environment (:func:`dlfp.frameworks._spawn.worker_env`), with gloo
    on the loopback interface."""
    return worker_env(threads, GLOO_SOCKET_IFNAME="lo")  # 127.0.0.1 only


def _command(framework, rank, world, batch, mode, folder, timeout, ports, extra):
    command = [
        sys.executable, "-m", f"{__name__}.{FRAMEWORKS[framework]}",
        "--rank", str(rank), "--world", str(world), "--batch", str(batch),
        "--mode", mode, "--out", folder, "--timeout", str(int(timeout)), *extra,
    ]  # fmt: skip
    if ports:
        command += ["--ports", ",".join(map(str, ports))]
    return command


def _port_taken(name: str, tail: str) -> str | None:
    if any(text in tail for text in PORT_TAKEN):
        return (
            f"{name} could not listen on its port, which another program took after "
            f"the launcher found it free ({tail}); run again, or pass port= a free "
            "port."
        )
    return None


def _run(runs, names, folder: str, timeout: float) -> None:
    """Start each ``(command, threads)`` of ``runs`` in ``folder`` and wait for all."""
    spawn.run(
        [(command, _env(threads)) for command, threads in runs],
        names,
        folder,
        timeout,
        error=DistributedRunError,
        explain=_port_taken,
    )


def launch(
    framework: str,
    *,
    workers: int = 2,
    batch: int = 128,
    port: int | None = None,
    threads: int = 1,
    timeout: float = 120.0,
    extra: tuple[str, ...] = (),
) -> list[dict]:
    """Check one data-parallel step of ``framework`` on ``workers`` processes against
    the one-process step on the same global batch; return each worker's JSON.

    Parameters
    ----------
    framework : {"torch", "tensorflow"}
    workers : int
        W, the processes (one replica each).
    batch : int
        The global batch, split into W equal shards (it must divide).
    port : int or None
        TensorFlow only: the first of W consecutive ports on 127.0.0.1; None lets the
        system pick free ones. PyTorch's workers meet through a file (None only).
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
    ports = _ports(framework, workers, port)
    with tempfile.TemporaryDirectory(prefix="dlfp-dist-") as folder:
        runs = [
            (
                _command(framework, r, workers, batch, "check", folder, timeout, ports,
                         extra),
                threads,
            )
            for r in range(workers)
        ]  # fmt: skip
        names = [f"worker {r} of {workers}" for r in range(workers)]
        _run(runs, names, folder, timeout)
        return [
            json.loads((Path(folder) / f"rank-{r}.json").read_text())
            for r in range(workers)
        ]


def timings(
    framework: str,
    *,
    workers: int = 2,
    batch: int = 128,
    rounds: int = 7,
    steps: int = 5,
    timeout: float = 180.0,
) -> dict:
    """Seconds per step of the global batch on one process with W threads against W
    processes with one thread each, in turns.

    The one process and the W processes start together, warm up (two steps each),
    then take ``rounds`` turns: the one process times ``steps`` steps while the others
    wait, then the W processes time ``steps`` data-parallel steps and an all-reduce of
    a gradient-sized array alone while it waits. Returns lists over the rounds:
    ``"solo"`` and ``"pair"`` (seconds per step; for the W processes the slowest
    worker's) and ``"all_reduce"`` (seconds), with ``"threads"`` (of the one process
    and of each of the W), ``"warmup"`` and ``"steps"``, and what the first of the W
    reported (``"buckets"``: PyTorch's gradient buckets).
    """
    if framework not in FRAMEWORKS:
        raise ValueError(
            f"unknown framework {framework!r}; use one of {', '.join(FRAMEWORKS)}."
        )
    check_split(batch, workers)
    ports = _ports(framework, workers, None)
    extra = ("--rounds", str(rounds), "--steps", str(steps))
    with tempfile.TemporaryDirectory(prefix="dlfp-dist-") as folder:
        runs = [
            (_command(framework, 0, 1, batch, "time", folder, timeout, [], extra),
             workers)
        ] + [
            (_command(framework, r, workers, batch, "time", folder, timeout, ports,
                      extra), 1)
            for r in range(workers)
        ]  # fmt: skip
        names = ["the one process"]
        names += [f"worker {r} of {workers}" for r in range(workers)]
        _run(runs, names, folder, timeout)
        solo = json.loads((Path(folder) / "solo.json").read_text())
        ranks = [
            json.loads((Path(folder) / f"rank-{r}.json").read_text())
            for r in range(workers)
        ]
    pair = [max(r["step"][i] for r in ranks) for i in range(rounds)]
    reduce = [max(r["all_reduce"][i] for r in ranks) for i in range(rounds)]
    return {
        **{k: v for k, v in ranks[0].items() if k not in ("step", "all_reduce")},
        "solo": solo["step"],
        "pair": pair,
        "all_reduce": reduce,
        "threads": [solo["threads"], *(r["threads"] for r in ranks)],
        "warmup": solo["warmup"],
        "steps": steps,
    }


# --- The verdict's row -------------------------------------------------------------


def _code(f) -> list[str]:
    """``f``'s lines of code, stripped, without its def line, blanks and comments."""
    lines = inspect.getsource(f).splitlines()[1:]
    return [
        line.strip()
        for line in lines
        if line.strip() and not line.strip().startswith(("#", '"""'))
    ]


def changed_lines(one, many) -> list[str]:
    """The lines of code that differ between ``one`` and ``many``: ``- `` for a line
    of ``one`` only, ``+ `` for a line of ``many`` only (blank and comment lines, and
    the def lines, left out)."""
    diff = difflib.ndiff(_code(one), _code(many))
    return [line for line in diff if line.startswith(("+ ", "- "))]


def lines_changed(one, many) -> int:
    """Lines of ``many``'s source that are new or changed against ``one``'s: the code
    it takes to go from one process to W (blank and comment lines not counted)."""
    return sum(1 for line in changed_lines(one, many) if line.startswith("+ "))


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
