"""Import TensorFlow without the log lines it writes to stderr.

TensorFlow's C++ core logs at import and at its first operations: which CPU
instructions it was built for, whether oneDNN's kernels are on ("oneDNN custom
operations are on. You may see slightly different numerical results..."), and more,
depending on the processor. In a notebook those lines become cell output on the page.
This module is the one place that imports TensorFlow for :mod:`dlfp`; it sets the log
level before the import (the variables take effect only then) and turns Python-side
TensorFlow and absl logging down to errors, so chapters, the CLI, tests and benchmarks
all get the same quiet import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

__all__ = ["import_tensorflow", "stderr_to_devnull"]


@contextlib.contextmanager
def stderr_to_devnull():
    """Send file descriptor 2 (where C++ writes) to /dev/null for the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedding host)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow():
    """TensorFlow, imported quietly once, with ``DLFP_THREADS`` applied to its pools."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    # 3: fatal messages only (1 hides INFO, 2 WARNING too, 3 ERROR too). It overrides
    # a reader's own setting: the book's pages must be clean. Notices that absl prints
    # before TensorFlow's filter sees them still pass; the redirect below catches them.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with stderr_to_devnull():
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)
        tf.autograph.set_verbosity(0)
        with contextlib.suppress(ImportError):
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
        from ..threads import requested_threads, set_pools

        threads = requested_threads()
        if threads is not None:
            set_pools(threads)
    return tf
