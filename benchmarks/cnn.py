"""PyTorch and TensorFlow/Keras, measured under the same controlled conditions.

Runs :mod:`dlfp.frameworks.compare` in full: both frameworks in each process, on one
device, with the same threads in every pool; each training configuration (default, as
its chapter trains, one setting changed at a time, best documented for a CPU), and the
book's own NumPy CNN (:mod:`dlfp.cnn`, its BLAS on the same threads), trains the book's
CNN for one epoch (or ``--steps``) per round, the rounds interleaved and repeated (one
untimed warm-up round per process, then ``--rounds`` timed ones in all); then every way
of running the two trained networks (eager, compiled, ONNX Runtime) is timed on a batch
of 1,000 test images and on one image. Last, the accuracy: the recorded seed runs and
McNemar's test on the two trained models' test predictions.

``--processes N`` (default 3) splits the timed rounds between ``N`` fresh processes,
run one after the other (:func:`dlfp.frameworks.compare.run_processes`): a process's
own state (memory layout, what it compiled) then varies between the rounds, as it would
between two runs of a program. Each row's median per process is kept under
``"medians_per_process"``: where the processes disagree more than their rounds do, the
pooled interval (which treats all rounds alike) is too narrow. ``--onednn`` also times
TensorFlow with oneDNN's optimisations switched the other way, in as many processes
again, each row paired with PyTorch's default in its own rounds. TensorFlow's row with
op determinism (as its chapter trains) always runs in processes of its own, which turn
it on from the start (TensorFlow cannot turn it off), timed the same way
(``"tf_op_determinism"``).

Absolute times depend on the machine and on its load: read the ratios, which compare
rows measured in the same rounds. ``--page`` runs the reduced form the verdict chapter
runs at build (:data:`~dlfp.frameworks.compare.PAGE`: 10 steps per round, no
single-setting rows).

Every "faster" is decided by :func:`dlfp.frameworks.compare.speed_verdicts`: the median
of the per-round log-ratios with a distribution-free interval, all the summary's
comparisons as one family with Holm's correction; each framework's fastest row is
chosen on the first process's rounds and compared on the others'.

Run:  python benchmarks/cnn.py [--page] [--steps N] [--rounds 10] [--no-compile]
                               [--no-onnx] [--no-dlfp] [--untrained]
                               [--torch-device cpu|cuda] [--processes 3]
                               [--onednn] [--json results.json]
The last line printed is one JSON object: the machine, the plan, every row, the speed
verdicts, and ``dlfp_epoch_s`` and ``dlfp_over_torch`` (the NumPy CNN's epoch time, and
its speed verdict against PyTorch's default configuration, paired round by round).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from dlfp.frameworks import compare
from dlfp.recipes import CNNConfig, load_mnist_for

TASKS = ("training", "inference, batch", "inference, one image")


def accuracy(torch_model, keras_model, data) -> dict:
    """Seed runs (when recorded) and McNemar's test on the two trained models."""
    from dlfp.frameworks import keras_cnn, torch_cnn

    out: dict = {}
    try:
        out["seeds"] = compare.seed_accuracy()
    except (FileNotFoundError, AssertionError) as error:
        out["seeds"] = f"not recorded: {error}"
    correct_t = (
        torch_cnn.predict_logits(torch_model, data.test.images).argmax(1)
        == data.test.labels
    )
    correct_k = (
        keras_cnn.predict_logits(keras_model, data.test.images).argmax(1)
        == data.test.labels
    )
    out["test_accuracy"] = {
        compare.PYTORCH: float(correct_t.mean()),
        compare.TENSORFLOW: float(correct_k.mean()),
    }
    out["mcnemar"] = dataclasses.asdict(compare.mcnemar(correct_t, correct_k))
    return out


def dlfp_speed(rows, config, data) -> dict:
    """The NumPy CNN's training speed: its epoch time (median per step times the steps
    of an epoch) and its time over PyTorch's, round by round, against PyTorch's default
    row and its fastest row; None where the dlfp row did not run."""
    out: dict = {"dlfp_epoch_s": None, "dlfp_over_torch": None}
    row = compare.find(rows, compare.DLFP, "training", "default", default=None)
    if row is None or not row.available:
        return out
    steps = config.steps_per_epoch(len(data.train.labels))
    torch_default = compare.find(rows, compare.PYTORCH, "training", "default")
    torch_best = compare.fastest(rows, compare.PYTORCH, "training")
    out["dlfp_epoch_s"] = row.median() * steps
    out["dlfp_over_torch"] = compare.speed_verdict(row, torch_default)
    out["dlfp_over_torch_fastest"] = compare.speed_verdict(row, torch_best)
    return out


def summarise(rows) -> dict:
    """Per task: each framework's fastest row (chosen on the first process's rounds,
    compared on the others), and the speed verdicts, as one family with Holm's
    correction: the frameworks' fastest and default rows against each other, and each
    framework's fastest row against its default."""
    pairs, fastest = {}, {}
    for task in TASKS:
        best = {f: compare.fastest(rows, f, task) for f in compare.FRAMEWORKS}
        defaults = {f: compare.find(rows, f, task, "default") for f in best}
        fastest[task] = {f: r.label for f, r in best.items()}
        t, k = compare.PYTORCH, compare.TENSORFLOW
        pairs[f"{task}: tf_over_torch_fastest"] = (best[k], best[t])
        pairs[f"{task}: tf_over_torch_default"] = (defaults[k], defaults[t])
        for f in best:
            pairs[f"{task}: fastest_over_default, {f}"] = (best[f], defaults[f])
    return {"fastest": fastest, "verdicts": compare.speed_verdicts(pairs)}


def per_process(rows) -> dict:
    """Each row's median per process: where the processes disagree more than their
    rounds do, the pooled interval (which treats all rounds alike) is too narrow."""
    out = {}
    for row in rows:
        seconds, process = np.asarray(row.per_unit()), np.asarray(row.process)
        out[f"{row.task}: {row.framework}, {row.label}"] = [
            float(np.median(seconds[process == p])) if row.available else None
            for p in sorted(set(row.process))
        ]
    return out


def flipped_onednn(plan, processes: int, rows) -> dict:
    """TensorFlow's default and best rows with oneDNN's optimisations switched the
    other way (``TF_ENABLE_ONEDNN_OPTS``, read at import: fresh processes), each paired
    with PyTorch's default row timed in the same rounds; and oneDNN on against off for
    each, through that reference (:func:`dlfp.frameworks.compare.across_processes`)."""
    here = compare.onednn()
    flipped = compare.run_processes(
        plan,
        processes,
        keep=["PyTorch:default", "TensorFlow:default", "TensorFlow:best"],
        env={"TF_ENABLE_ONEDNN_OPTS": "0" if here else "1"},
    )
    out: dict = {"onednn_here": here, "on_over_off": {}}
    out["rows"] = [r.as_dict() for r in flipped]
    for task in TASKS:
        refs = {
            here: compare.find(rows, compare.PYTORCH, task, "default"),
            not here: compare.find(flipped, compare.PYTORCH, task, "default"),
        }
        for role in ("default", "best"):
            tf_rows = {
                here: compare.find(rows, compare.TENSORFLOW, task, role, None),
                not here: compare.find(flipped, compare.TENSORFLOW, task, role, None),
            }
            if all(r is not None and r.available for r in tf_rows.values()):
                out["on_over_off"][f"{task}: {tf_rows[True].label}"] = (
                    compare.across_processes(
                        tf_rows[True], refs[True], tf_rows[False], refs[False]
                    )
                )
    return out


def deterministic_tf(plan, processes: int, rows) -> dict:
    """TensorFlow's chapter row, op determinism on, in processes of its own (TensorFlow
    cannot turn it off again), paired with PyTorch's default in their rounds; and
    against TensorFlow's default through that reference
    (:func:`dlfp.frameworks.compare.across_processes`)."""
    det = compare.run_processes(
        plan,
        processes,
        tasks=["training"],
        keep=["PyTorch:default", "TensorFlow:chapter"],
        op_determinism=True,
    )
    t, k, task = compare.PYTORCH, compare.TENSORFLOW, "training"
    chapter = compare.find(det, k, task, "chapter")
    out: dict = {"rows": [r.as_dict() for r in det], "chapter_over_default": None}
    if chapter.available:
        out["chapter_over_default"] = compare.across_processes(
            chapter,
            compare.find(det, t, task, "default"),
            compare.find(rows, k, task, "default"),
            compare.find(rows, t, task, "default"),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--page", action="store_true", help="the verdict chapter's reduced form"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per round (default: an epoch)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds")
    parser.add_argument("--threads", type=int, default=None, help="threads per pool")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime")
    parser.add_argument(
        "--no-dlfp", action="store_true", help="skip the NumPy CNN's training row"
    )
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="time freshly initialised networks (skips the accuracy comparison)",
    )
    parser.add_argument("--torch-device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--tf-device", default="CPU", choices=("CPU", "GPU"))
    parser.add_argument("--json", type=Path, default=None, help="also write here")
    parser.add_argument(
        "--processes",
        type=int,
        default=3,
        help="split the timed rounds between this many fresh processes (1: this one)",
    )
    parser.add_argument(
        "--onednn",
        action="store_true",
        help="also time TensorFlow with oneDNN switched the other way (more processes)",
    )
    args = parser.parse_args()
    pools = compare.set_threads(args.threads)  # before either framework computes
    plan = compare.PAGE if args.page else compare.FULL
    changes = {"torch_device": args.torch_device, "tf_device": args.tf_device}
    if args.steps is not None:
        changes["train_steps"] = args.steps
    if args.rounds is not None:
        changes["train_rounds"] = args.rounds
    if args.no_compile:
        changes["torch_compile"] = False
    if args.no_onnx:
        changes["onnx"] = False
    if args.no_dlfp or args.torch_device != "cpu":  # NumPy has no GPU to join
        changes["dlfp"] = False
    plan = dataclasses.replace(plan, **changes)
    config = CNNConfig()
    data = load_mnist_for(config)
    if args.processes > 1 and args.untrained:
        sys.exit("--processes uses the kept models: leave out --untrained.")
    if not args.untrained:  # in a process of its own: Keras's turns determinism on
        compare.train_missing()
    if args.processes > 1:
        rows = compare.run_processes(plan, args.processes)
    else:
        try:
            rows = compare.run_training(config, data, plan)
        except compare.DeviceMismatchError as error:
            sys.exit(str(error))
    print(compare.table(rows, "training"), "\n", flush=True)

    from dlfp.frameworks import keras_cnn, torch_cnn

    if args.untrained:
        import torch

        torch.manual_seed(config.seed)
        torch_model, keras_model = (
            torch_cnn.CNN(config).eval(),
            keras_cnn.build_model(config),
        )
    else:  # the chapters' models, kept (trained above where they were not)
        from dlfp.artifacts import trained
        from dlfp.recipes import recipe

        torch_model = trained(recipe("torch-cnn")).model
        keras_model = trained(recipe("keras-cnn")).model
    if args.processes == 1:
        rows += compare.run_inference(torch_model, keras_model, data.test.images, plan)
    for task in TASKS[1:]:
        print(compare.table(rows, task), "\n", flush=True)

    summary = summarise(rows)
    result = {
        "machine": compare.machine(),
        "threads": pools,
        "plan": dataclasses.asdict(plan),
        "summary": summary,
        "accuracy": None
        if args.untrained
        else accuracy(torch_model, keras_model, data),
        "processes": args.processes,
        "medians_per_process": per_process(rows),
        "rows": [r.as_dict() for r in rows],
        **dlfp_speed(rows, config, data),
    }
    result["tf_op_determinism"] = deterministic_tf(plan, args.processes, rows)
    if args.onednn:
        result["onednn_flipped"] = flipped_onednn(plan, args.processes, rows)
    text = json.dumps(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
