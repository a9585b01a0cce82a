"""The interleaving harness: every configuration runs once per round, in a rotating
order, with the garbage collector and the frameworks' messages kept out of the clocks.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import time
import warnings

from .machine import _pools


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


def _interleave(rows, runners, rounds, warmup, data_for_round, pause):
    """Run every available runner once per round, in an order that rotates.

    The garbage collector runs once per round, outside the clocks, and is off while a
    clock runs (as in :mod:`timeit`); before each clock starts, the process sleeps for
    ``pause`` seconds, so that threads a previous configuration left spinning are idle.
    """
    active = [i for i, row in enumerate(rows) if row.error is None]
    for r in range(warmup + rounds):
        data = data_for_round(r)  # built before any clock starts
        gc.collect()
        shift = r % max(1, len(active))
        for i in active[shift:] + active[:shift]:
            row = rows[i]
            if row.error is not None:
                continue
            time.sleep(pause)
            gc.disable()
            try:
                with _quiet():
                    start = time.perf_counter()
                    runners[i](data)
                    elapsed = time.perf_counter() - start
            except Exception as error:  # a setting that fails here: keep the reason
                row.error, row.seconds = _reason(error), []
                continue
            finally:
                gc.enable()
            (row.warmup_seconds if r < warmup else row.seconds).append(elapsed)
            row.threads = {**_pools(), **getattr(runners[i], "threads", {})}
