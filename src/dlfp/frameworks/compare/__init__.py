"""PyTorch and TensorFlow/Keras measured under the same controlled conditions.

The verdict chapter (``ch-verdict``) runs this experiment in a reduced form when the
book is built, and ``benchmarks/cnn.py`` runs it in full. The rules it follows:

* **One process, interleaved, repeated.** Both frameworks run in this process, on the
  same device, with the same number of threads in each of their pools (set by
  :func:`set_threads`, recorded per row). Every configuration runs one *block* (a fixed
  number of training steps, or an epoch; one inference call) per *round*; the rounds
  repeat, the first ``warmup`` of them untimed (they pay for allocation, tracing and
  compilation), and the order of the configurations follows a Williams design
  (:func:`williams`), so that each runs in every position, and right after every other,
  equally often; before each clock the process idles until the thread pools have
  stopped spinning (:func:`settle`, at most ``pause`` seconds; :func:`idle_cpu`
  measures how long they spin).
* **The same work in every clock.** A training clock starts with the round's batches
  already built as NumPy arrays (indexing and augmentation by :class:`Batches`
  happen before any clock starts, for both frameworks) and stops when the last update
  is done; it covers the conversion to the framework's tensors, forward pass, loss,
  backward pass, AdamW update, learning-rate schedule and the running loss and
  accuracy, in both. No validation. An inference clock starts with the images as a
  NumPy array and stops with the logits as a NumPy array.
* **Default and best, labelled.** Each framework runs in its default configuration, in
  the configuration its chapter trained with, and in the fastest configuration its
  documentation recommends for a CPU, each setting with the page of documentation
  that recommends it (:attr:`Setting.source`); :func:`training_settings` and
  :func:`inference_settings` list them. A setting that does not work here is kept as an
  *unavailable* row with the reason, not dropped.
* **Global state set per row, and recorded.** A row's process-wide settings
  (determinism, subnormal flushing) are set around each of its clocks and restored
  after it; inference rows run with both frameworks' determinism off. TensorFlow's op
  determinism cannot be turned off once on, so TensorFlow's rows with it run in
  processes of their own (:func:`run_processes` with ``op_determinism=True``), and a
  process refuses to mix them with rows without it. Every row records the state it ran
  under (:func:`global_state`).
* **Many calls per inference round.** A round of an inference row makes several
  consecutive calls, each timed (:class:`Repeated`); the table reports the median and
  the 90th percentile of all of them.
* **Speeds as ratios.** A row's time is compared with another row's measured in the same
  rounds: :func:`paired_ratio` divides them round by round, and :func:`speed_verdict`
  names the faster row only when a distribution-free interval for the median ratio
  excludes 1 (or calls them equally fast when it lies within 5% of 1).

Accuracy is compared over the recorded seed runs, independent seeds only, paired by seed
(:func:`seed_accuracy`, from :mod:`dlfp.claims`) and, for the two trained models, with
McNemar's test on their predictions for the same test images (:func:`mcnemar`). The
size of each framework's code is counted by :func:`dlfp.report.count_lines`.

One concept per module: :mod:`.rows` (the plan, the settings and the rows of
measurements), :mod:`.machine` (the processor and the thread pools), :mod:`.harness`
(the interleaved rounds), :mod:`.training` and :mod:`.inference` (the two halves of the
experiment), :mod:`.stats` (McNemar's test, the seed runs, paired ratios and the speed
verdict), :mod:`.table` (reading the rows) and :mod:`.production` (the models outside
their training code: sizes, export round trips, cold starts and peak memory in fresh
processes; imported as ``compare.production``, since its fresh processes run it as
``python -m``). The names listed in ``__all__`` are importable from here.
"""

from __future__ import annotations

import importlib

from .._spawn import WorkerError
from .harness import Repeated, idle_cpu, settle, williams
from .inference import inference_settings, run_inference
from .machine import (
    global_state,
    machine,
    onednn,
    set_threads,
    tf_op_determinism,
    threads,
)
from .processes import run_processes, train_missing
from .rows import (
    DLFP,
    FRAMEWORKS,
    FULL,
    PAGE,
    PYTORCH,
    TENSORFLOW,
    DeviceMismatchError,
    Plan,
    Row,
    Setting,
    check_devices,
)
from .stats import (
    EQUIVALENCE,
    McNemar,
    across_processes,
    false_positive_rate,
    holm,
    independent,
    mcnemar,
    mcnemar_detectable,
    mcnemar_p_exact,
    mcnemar_power,
    mcnemar_threshold,
    median_ci,
    order_statistic_k,
    paired_ratio,
    paired_seeds,
    perturbations,
    seed_accuracy,
    shift_ci,
    sign_flip_p,
    sign_test_p,
    speed_verdict,
    speed_verdicts,
    t_quantile,
)
from .table import by_label, fastest, find, table, through_reference, versus
from .training import DeterminismError, run_training, this_process, training_settings

#: The module :mod:`.machine` (its name here is taken by :func:`machine`).
machine_state = importlib.import_module(".machine", __name__)

__all__ = [
    "FRAMEWORKS",
    "PYTORCH",
    "TENSORFLOW",
    "by_label",
    "DeviceMismatchError",
    "DLFP",
    "McNemar",
    "Plan",
    "FULL",
    "PAGE",
    "Row",
    "Setting",
    "check_devices",
    "fastest",
    "find",
    "inference_settings",
    "machine",
    "mcnemar",
    "mcnemar_p_exact",
    "paired_ratio",
    "run_inference",
    "run_training",
    "this_process",
    "DeterminismError",
    "seed_accuracy",
    "set_threads",
    "table",
    "threads",
    "training_settings",
    "versus",
    "speed_verdict",
    "idle_cpu",
    "settle",
    "williams",
    "Repeated",
    "global_state",
    "machine_state",
    "tf_op_determinism",
    "EQUIVALENCE",
    "false_positive_rate",
    "independent",
    "mcnemar_detectable",
    "mcnemar_power",
    "mcnemar_threshold",
    "median_ci",
    "order_statistic_k",
    "paired_seeds",
    "perturbations",
    "sign_flip_p",
    "sign_test_p",
    "holm",
    "t_quantile",
    "onednn",
    "run_processes",
    "train_missing",
    "speed_verdicts",
    "WorkerError",
    "across_processes",
    "through_reference",
    "shift_ci",
]
