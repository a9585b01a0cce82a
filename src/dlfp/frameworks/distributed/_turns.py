"""Turns between the processes of :func:`dlfp.frameworks.distributed.timings`, taken
through files in the folder they share: the one process ("solo") times a block of
steps while the W processes ("pair") wait, then the other way round, ``rounds`` times.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def worker_arguments(
    argv: Sequence[str] | None, description: str, ports: str = ""
) -> argparse.Namespace:
    """The command line every worker process takes: what
    :func:`dlfp.frameworks.distributed.launch` writes (``ports`` documents
    ``--ports``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world", type=int, required=True)
    parser.add_argument("--ports", default="", help=ports or None)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--mode", choices=("check", "time"), default="check")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--die", type=int, default=-1, help="this rank exits at once")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    return parser.parse_args(argv)


#: Steps each process takes before the first turn (allocations, tracing).
WARMUP = 2


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"waited {timeout:.0f} s for {path.name}: the other processes of the "
                "timing stopped or are too slow; give a longer timeout."
            )
        time.sleep(0.01)  # rare wake-ups: the timed side keeps the cores


def _mark(path: Path) -> None:
    path.with_suffix(".tmp").write_text("")
    path.with_suffix(".tmp").replace(path)


def take_turns(
    folder: Path,
    rank: int,
    world: int,
    rounds: int,
    warmup: Callable[[], None],
    block: Callable[[], dict],
    timeout: float,
) -> list[dict]:
    """Warm up, then time ``block`` in turns; ``world == 1`` is the one process."""
    folder = Path(folder)
    solo = world == 1
    warmup()
    if solo:
        _mark(folder / "ready-solo")
        _wait_for(folder / "ready-pair", timeout)
    else:
        _done(folder, "ready-pair", rank, world, timeout)
        _wait_for(folder / "ready-solo", timeout)
    results = []
    for i in range(rounds):
        if solo:
            if i:
                _wait_for(folder / f"pair-{i - 1}", timeout)
            results.append(block())
            _mark(folder / f"solo-{i}")
        else:
            _wait_for(folder / f"solo-{i}", timeout)
            results.append(block())
            _done(folder, f"pair-{i}", rank, world, timeout)
    return results


def warm_up(step: Callable[[], object], reduce: Callable[[], object], world: int):
    """:data:`WARMUP` steps, then one all-reduce when there are W processes."""
    for _ in range(WARMUP):
        step()
    if world > 1:
        reduce()


def time_block(
    step: Callable[[], object], reduce: Callable[[], object], steps: int, world: int
) -> dict:
    """Seconds per step over ``steps`` steps, and, with W processes, per all-reduce of
    the gradient's size alone."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    out = {"step": (time.perf_counter() - start) / steps}
    if world > 1:
        start = time.perf_counter()
        for _ in range(steps):
            reduce()
        out["all_reduce"] = (time.perf_counter() - start) / steps
    return out


def _done(folder: Path, name: str, rank: int, world: int, timeout: float) -> None:
    """Mark ``name`` once every one of the W processes has reached it."""
    _mark(folder / f"{name}-{rank}")
    if rank == 0:
        for r in range(1, world):
            _wait_for(folder / f"{name}-{r}", timeout)
        _mark(folder / name)
