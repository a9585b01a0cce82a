"""The interleaving harness: every configuration runs once per round, in the order of
a Williams design (each configuration follows every other equally often), after a pause
long enough for the thread pools to stop spinning, with the garbage collector and the
frameworks' messages kept out of the clocks.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import time
import warnings
from collections.abc import Callable, Sequence

from .machine import _pools, global_state


def _reason(error: BaseException) -> str:
    """One line saying why a setting failed: the exception's type and first line."""
    text = str(error).strip().splitlines()
    first = next((line.strip() for line in text if line.strip()), "")
    return f"{type(error).__name__}: {first[:300]}" if first else type(error).__name__


@contextlib.contextmanager
def _quiet():
    """Silence Python warnings and the compilers' progress messages inside a block."""
    loggers = [logging.getLogger(n) for n in ("torch", "tf2onnx", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def williams(n: int) -> list[list[int]]:
    """A Williams design for ``n`` configurations: ``n`` running orders when ``n`` is
    even, ``2 n`` when it is odd. Over all of them every configuration runs in every
    position equally often, and immediately after every other configuration equally
    often (once for even ``n``, twice for odd), so that what one configuration leaves
    behind (a spinning thread pool, a warm cache) falls on all the others alike.

    The first order is ``0, 1, n-1, 2, n-2, ...``; the others add ``1, 2, ...`` to it,
    modulo ``n``; for odd ``n`` the reversed orders are added too.
    """
    if n <= 1:
        return [list(range(n))]
    first, low, high = [0], 1, n - 1
    for j in range(1, n):
        if j % 2:
            first, low = [*first, low], low + 1
        else:
            first, high = [*first, high], high - 1
    orders = [[(x + i) % n for x in first] for i in range(n)]
    if n % 2:
        orders += [order[::-1] for order in orders]
    return orders


#: The window over which :func:`settle` measures the process's CPU time, in seconds.
IDLE_WINDOW = 0.02

#: The CPU seconds per second below which :func:`settle` calls the process quiet.
QUIET = 0.05


def idle_cpu(
    work: Callable[[], object],
    pauses: Sequence[float] = (0.0, 0.01, 0.05, 0.2, 0.5),
    window: float = 0.1,
    repeats: int = 3,
) -> dict[float, float]:
    """How busy the process's idle threads stay after ``work``: for each pause, the CPU
    seconds the whole process burns per wall-clock second during ``window`` seconds
    that start ``pause`` seconds after ``work`` returns, while the calling thread
    sleeps (the median of ``repeats``). A value near 1 is one core kept busy by
    threads that spin while they wait for more work; 0 means they sleep."""
    out = {}
    for pause in pauses:
        values = []
        for _ in range(repeats):
            work()
            time.sleep(pause)
            cpu, wall = time.process_time(), time.perf_counter()
            time.sleep(window)
            values.append((time.process_time() - cpu) / (time.perf_counter() - wall))
        out[pause] = sorted(values)[len(values) // 2]
    return out


def settle(limit: float, window: float = IDLE_WINDOW, quiet: float = QUIET):
    """Idle until the process's threads are quiet, for at most ``limit`` seconds.

    Sleeps in windows of ``window`` seconds and measures, over each, the CPU seconds
    per second that the whole process burns (:func:`time.process_time`) while this
    thread sleeps; stops after the first window below ``quiet``, or once ``limit``
    seconds have passed. Returns ``(burnt, waited)``: the last window's value (NaN
    when ``limit`` is shorter than a window, which sleeps ``limit`` and measures
    nothing) and the seconds waited.
    """
    start = time.perf_counter()
    if limit < window:
        time.sleep(limit)
        return float("nan"), time.perf_counter() - start
    while True:
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(window)
        now = time.perf_counter()
        burnt = (time.process_time() - cpu) / (now - wall)
        if burnt < quiet or now - start + window > limit:
            return burnt, now - start


class Repeated:
    """A runner of ``calls`` consecutive calls of ``call`` per round, each timed on its
    own (in :attr:`times`): a round of one sub-millisecond call would time a thread
    pool's wake-up and the clock's resolution more than the call, which is why
    ``torch.utils.benchmark``'s ``blocked_autorange`` runs many calls per measurement.
    ``settings`` (a context manager factory: the row's process-wide settings) is
    passed on to :func:`_interleave`."""

    def __init__(self, call: Callable, calls: int, settings=contextlib.nullcontext):
        self.call, self.calls, self.settings = call, calls, settings
        self.times: list[float] = []

    def __call__(self, data) -> None:
        times, clock = [], time.perf_counter
        for _ in range(self.calls):
            start = clock()
            self.call(data)
            times.append(clock() - start)
        self.times = times


@contextlib.contextmanager
def _frozen():
    """Inside this block the garbage collector leaves alone every object that existed
    when it began (:func:`gc.freeze`), so that a collection walks only the newer ones:
    with both frameworks imported a full collection takes about a quarter of a second
    on a 2-core machine, and the rounds make one each. Nothing is frozen for good: the
    objects go back to the collector at the end (unless a caller froze them already)."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _interleave(rows, runners, rounds, warmup, data_for_round, pause, share=(0, 1)):
    """Run every available runner once per round, in the orders of :func:`williams`.

    Timed round ``j`` runs the configurations in order ``j`` of the design (cycling
    when there are more rounds than orders; the untimed warm-up rounds use the first
    orders too), so with a multiple of its length every configuration follows every
    other equally often. ``share=(i, n)`` runs only timed rounds ``i, i + n, ...`` (and
    all the warm-up rounds): process ``i`` of ``n`` that split the rounds between them
    (:mod:`.processes`), so that together they run the whole design.

    The garbage collector runs once per round, outside the clocks, and is off while a
    clock runs (as in :mod:`timeit`); those collections walk only what the rounds
    made (:func:`_frozen`); before each clock starts, the process idles until
    the threads a previous configuration left spinning are quiet, for at most ``pause``
    seconds (:func:`settle`), and records in the row's ``idle`` what the process burnt
    at the end of that wait, and in ``waited`` its length.

    A runner's ``settings`` attribute, when it has one, is a context manager that
    sets the row's process-wide settings (determinism, subnormals, ...) and restores
    them afterwards: it is entered before the clock starts and left after it stops,
    and the row records the state inside it (:func:`global_state`). A
    :class:`Repeated` runner's single calls go to the row's ``latencies`` (timed
    rounds) and its first call to ``warmup_seconds`` (warm-up rounds).
    """
    active = [i for i, row in enumerate(rows) if row.error is None]
    orders = williams(len(active))
    part, parts = share
    with _frozen():
        for r in [*range(warmup), *(warmup + j for j in range(part, rounds, parts))]:
            data = data_for_round(r)  # built before any clock starts
            gc.collect()
            order = orders[(r - warmup if r >= warmup else r) % len(orders)]
            for i in (active[j] for j in order):
                row = rows[i]
                if row.error is not None:
                    continue
                run = runners[i]
                settings = getattr(run, "settings", contextlib.nullcontext)
                try:
                    with _quiet(), settings():
                        idle, waited = settle(pause)
                        gc.disable()
                        try:
                            start = time.perf_counter()
                            run(data)
                            elapsed = time.perf_counter() - start
                        finally:
                            gc.enable()
                        row.state = global_state()
                except Exception as error:  # a setting that fails here: keep the reason
                    row.error, row.seconds, row.latencies = _reason(error), [], []
                    continue
                times = getattr(run, "times", None)
                if r < warmup:
                    row.warmup_seconds.append(times[0] if times else elapsed)
                else:
                    row.seconds.append(elapsed)
                    row.latencies.extend(times or [])
                    row.idle.append(idle)
                    row.waited.append(waited)
                row.threads = {**_pools(), **getattr(run, "threads", {})}
