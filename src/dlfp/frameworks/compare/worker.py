"""One process's share of the verdict's timed rounds, written as JSON.

Started by :func:`dlfp.frameworks.compare.processes.run_processes` as ``python -m
dlfp.frameworks.compare.worker --plan JSON --tasks training inference --share i n --out
FILE [--keep framework:role ...] [--op-determinism]``; not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._spawn import exit_now


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True, help="the Plan's fields, as JSON")
    parser.add_argument(
        "--tasks", nargs="+", choices=("training", "inference"), required=True
    )
    parser.add_argument("--share", type=int, nargs=2, required=True)
    parser.add_argument("--keep", nargs="+", default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--op-determinism",
        action="store_true",
        help="TensorFlow's op determinism on from the start (there is no way back)",
    )
    args = parser.parse_args(argv)

    # TensorFlow first and quietly (keras_cnn does it), then the threads of every pool,
    # before either framework computes, as the verdict's page does.
    from .. import keras_cnn, torch_cnn  # noqa: F401
    from . import (
        Plan,
        inference_settings,
        run_inference,
        run_training,
        set_threads,
        training_settings,
    )
    from .machine import onednn
    from .processes import kept

    if args.op_determinism:
        keras_cnn.enable_op_determinism()
    set_threads()
    plan = Plan(**json.loads(args.plan))
    share = tuple(args.share)

    from ...recipes import CNNConfig, load_mnist_for, recipe

    config = CNNConfig()
    data = load_mnist_for(config)
    rows = []
    if "training" in args.tasks:
        settings = kept(training_settings(plan), args.keep, args.op_determinism)
        rows += run_training(config, data, plan, settings, share=share)
    if "inference" in args.tasks:
        from ...artifacts import kept as kept_run
        from .processes import MODELS

        runs = {name: kept_run(recipe(name)) for name in MODELS}
        if None in runs.values():
            raise SystemExit(
                "the chapters' models are not kept: run_processes trains them first."
            )
        models = [run.model for run in runs.values()]
        settings = kept(inference_settings(plan), args.keep, args.op_determinism)
        rows += run_inference(*models, data.test.images, plan, settings, share=share)
    out = {"rows": [row.as_dict() for row in rows], "onednn": onednn()}
    args.out.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
    exit_now()  # the results are out: skip the teardown
