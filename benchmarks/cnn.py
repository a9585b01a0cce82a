"""PyTorch and TensorFlow/Keras, measured under the same controlled conditions.

Runs :mod:`dlfp.frameworks.compare` in full: both frameworks in this one process, on
one device, with the same threads in every pool; each training configuration (default,
as its chapter trains, one setting changed at a time, best documented for a CPU), and
the book's own NumPy CNN (:mod:`dlfp.cnn`, its BLAS on the same threads), trains the
book's CNN for one epoch per round, the rounds interleaved and repeated (one
untimed warm-up round, then ``--rounds`` timed ones); then every way of running the
two trained networks (eager, compiled, ONNX Runtime) is timed on a batch of 1,000 test
images and on one image. Last, the accuracy: the recorded seed runs (mean, spread) and
McNemar's test on the two trained models' test predictions.

Absolute times depend on the machine and on its load: read the ratios, which compare
rows measured in the same rounds. ``--page`` runs the reduced form the verdict chapter
runs at build (20 steps per round, no single-setting rows).

Every "faster" is decided by :func:`dlfp.frameworks.compare.speed_verdict`: the median
of the per-round log-ratios with a distribution-free 95% interval (at least 10 rounds
per comparison in :data:`~dlfp.frameworks.compare.FULL`). ``--processes N`` runs the
whole experiment in ``N`` fresh processes, one after the other, and pools their rounds
(each row's median per process is kept too, under ``"medians_per_process"``): a
process's own state (memory layout, what it compiled) then varies between the rounds,
as it would between two runs of a program. The pooled interval treats all rounds as
independent, so where the processes disagree more than their rounds do, read the
per-process medians as well.

Run:  python benchmarks/cnn.py [--page] [--steps N] [--rounds 10] [--no-compile]
                               [--no-onnx] [--no-dlfp] [--untrained]
                               [--torch-device cpu|cuda] [--processes 3]
                               [--json results.json]
The last line printed is one JSON object: the machine, the plan, every row, the speed
verdicts, and ``dlfp_epoch_s`` and ``dlfp_over_torch`` (the NumPy CNN's epoch time, and
its speed verdict against PyTorch's default configuration, paired round by round).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
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
    """Per task: each framework's fastest row, and the speed verdicts (with their
    intervals) between the frameworks' fastest and default rows, and of each
    framework's fastest row against its default."""
    summary = {}
    for task in TASKS:
        best = {f: compare.fastest(rows, f, task) for f in compare.FRAMEWORKS}
        defaults = {f: compare.find(rows, f, task, "default") for f in best}
        summary[task] = {
            "fastest": {f: r.label for f, r in best.items()},
            "tf_over_torch_fastest": compare.speed_verdict(
                best[compare.TENSORFLOW], best[compare.PYTORCH]
            ),
            "tf_over_torch_default": compare.speed_verdict(
                defaults[compare.TENSORFLOW], defaults[compare.PYTORCH]
            ),
            "fastest_over_default": {
                f: compare.speed_verdict(best[f], defaults[f]) for f in best
            },
        }
    return summary


def pooled(results: list[dict]) -> list:
    """The rows of several processes' results as one list of rows: each row's rounds
    (and warm-ups, and idle measurements) concatenated in process order. A row that
    failed in any process stays failed, with that process's reason."""
    merged = [compare.Row.from_dict(row) for row in results[0]["rows"]]
    for result in results[1:]:
        for row, other in zip(merged, result["rows"], strict=True):
            if (row.task, row.label) != (other["task"], other["label"]):
                raise ValueError("the processes ran different rows; rerun them all")
            row.seconds += other["seconds"]
            row.warmup_seconds += other["warmup_seconds"]
            row.idle += other.get("idle", [])
            row.waited += other.get("waited", [])
            row.error = row.error or other["error"]
    return merged


def processes(argv: list[str], n: int, json_path: Path | None = None) -> None:
    """Run this script ``n`` times, in fresh processes, and report the pooled rows."""
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for i in range(n):
            out = Path(tmp) / f"process-{i}.json"
            print(f"process {i + 1} of {n}", flush=True)
            subprocess.run(
                [sys.executable, __file__, *argv, "--json", str(out)], check=True
            )
            results.append(json.loads(out.read_text()))
    rows = pooled(results)
    for task in TASKS:
        print(compare.table(rows, task), "\n", flush=True)
    medians = {
        f"{row['task']}: {row['framework']}, {row['label']}": [
            float(np.median(r["rows"][i]["seconds"]))
            if r["rows"][i]["seconds"]
            else None
            for r in results
        ]
        for i, row in enumerate(results[0]["rows"])
    }
    result = {
        "machine": results[0]["machine"],
        "plan": results[0]["plan"],
        "processes": n,
        "medians_per_process": medians,
        "summary": summarise(rows),
        "accuracy": results[0]["accuracy"],
        "rows": [r.as_dict() for r in rows],
    }
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


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
        default=1,
        help="run the experiment in this many fresh processes and pool the rounds",
    )
    args = parser.parse_args()
    if args.processes > 1:
        argv, skip = [], False
        for a in sys.argv[1:]:  # the same options, one process each
            if skip:
                skip = False
            elif a in ("--processes", "--json"):
                skip = True
            elif not a.startswith(("--processes=", "--json=")):
                argv.append(a)
        processes(argv, args.processes, args.json)
        return

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
    else:  # the chapters' models: loaded, or trained now (minutes)
        from dlfp.artifacts import trained
        from dlfp.recipes import recipe

        torch_model = trained(recipe("torch-cnn")).model
        keras_model = trained(recipe("keras-cnn")).model
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
        "rows": [r.as_dict() for r in rows],
        **dlfp_speed(rows, config, data),
    }
    text = json.dumps(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
