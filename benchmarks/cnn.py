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
pooled interval (which treats all rounds alike) is too narrow. With several processes,
the settings that only a fresh process can change are timed in sets of processes of
their own, each against a control set that times the same two rows (TensorFlow's and,
as the reference, PyTorch's default) as the machine has them: TensorFlow's op
determinism, as its chapter trains (TensorFlow cannot turn it off;
``"tf_op_determinism"``), and with ``--onednn`` oneDNN's optimisations switched the
other way (``"onednn_flipped"``). ``"company"`` compares the control with the main
processes: the same row, with and without every other configuration beside it.

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


#: What every set of processes that differs from another by one process-wide setting
#: times: TensorFlow's default (with op determinism on, its chapter row, which differs
#: from the default by that alone) and PyTorch's default, the reference that carries
#: the comparison across the processes.
SIDE = ["PyTorch:default", "TensorFlow:default"]


def _plain(v: dict | None) -> dict | None:
    """A comparison of :func:`dlfp.frameworks.compare.through_reference` as JSON."""
    return None if v is None else {**v, "labels": list(v["labels"])}


def side_sets(plan, processes: int, rows, onednn: bool) -> dict:
    """The settings that only a fresh process can change, each timed in ``processes``
    processes of its own against a control set of as many processes that time the same
    rows with the setting left as this machine has it (the same company, the one
    setting apart): TensorFlow's op determinism (training; TensorFlow can turn it on
    but not off), and with ``onednn`` its oneDNN optimisations switched the other way
    (``TF_ENABLE_ONEDNN_OPTS``, read at import; training and inference). Each through
    PyTorch's default (:func:`dlfp.frameworks.compare.through_reference`). Also the
    control against the main processes ``rows``: the same TensorFlow row, in other
    company (every other configuration beside it), which is what a comparison through
    the reference without a control would take for the setting's effect."""
    run = ["training", "inference"] if onednn else ["training"]
    tasks = TASKS if onednn else TASKS[:1]  # the rows' tasks
    control = compare.run_processes(plan, processes, tasks=run, keep=SIDE)
    det = compare.run_processes(
        plan,
        processes,
        tasks=["training"],
        keep=["PyTorch:default", "TensorFlow:chapter"],
        op_determinism=True,
    )
    out: dict = {
        "control_rows": [r.as_dict() for r in control],
        "company": {
            task: _plain(compare.through_reference(rows, control, task))
            for task in tasks
        },
        "tf_op_determinism": {
            "rows": [r.as_dict() for r in det],
            "chapter_over_default": _plain(
                compare.through_reference(det, control, "training", "chapter")
            ),
        },
    }
    if onednn:
        here = compare.onednn()
        flipped = compare.run_processes(
            plan,
            processes,
            tasks=run,
            keep=SIDE,
            env={"TF_ENABLE_ONEDNN_OPTS": "0" if here else "1"},
        )
        sets = {here: control, not here: flipped}  # oneDNN on: True
        out["onednn_flipped"] = {
            "onednn_here": here,
            "rows": [r.as_dict() for r in flipped],
            "on_over_off": {
                task: _plain(compare.through_reference(sets[True], sets[False], task))
                for task in tasks
            },
        }
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
    if args.processes > 1:
        result.update(side_sets(plan, args.processes, rows, args.onednn))
    text = json.dumps(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
