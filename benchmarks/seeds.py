"""Train each recipe the book asserts a result for, from several seeds and under
settings that mimic another machine, and keep every run's accuracy.

An accuracy claimed in the book must hold on a reader's machine, whose CPU and maths
libraries round differently from ours. This script measures how far a recipe's result
moves: it trains the recipe from ``--seeds`` (default 0 to 4) with this machine's
defaults, then seed 0 again with one BLAS / intra-op thread, and (Keras) with
TensorFlow's oneDNN kernels off (``TF_ENABLE_ONEDNN_OPTS=0``). Those settings change
the order of floating-point sums, as another CPU does. Every run is a fresh process,
since the settings take effect only before the libraries are imported.

Each run's validation and test accuracy is printed as one JSON line and written to
``src/dlfp/seeds.json``, kept in the repository and installed with the package (so the
chapters find it on Binder and from a wheel too); the chapters read that file and check
their claims against :func:`dlfp.claims.claim_bound`.

Run:  python benchmarks/seeds.py mlp numpy-cnn torch-cnn keras-cnn [--seeds 0 1 2 3 4]
      python benchmarks/seeds.py --summary      (the table, from the results file)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dlfp.recipes

RESULTS = Path(__file__).resolve().parents[1] / "src" / "dlfp" / "seeds.json"
#: The recipes by their one name (dlfp.recipes.RECIPES, which imports NumPy alone).
RECIPES = tuple(dlfp.recipes.RECIPES)
# With --subset: a quick check of the script, never recorded.
SMOKE = {"epochs": 1, "validation_size": 500}


def variants(recipe: str, seeds: list[int]) -> list[dict]:
    """The runs of one recipe: every seed at the defaults, then seed 0 perturbed."""
    runs = [{"seed": s, "threads": None, "onednn": None} for s in seeds]
    runs.append({"seed": seeds[0], "threads": 1, "onednn": None})
    if recipe == "keras-cnn":  # the default is on or off depending on the CPU: try both
        runs += [{"seed": seeds[0], "threads": None, "onednn": v} for v in (1, 0)]
    return runs


def run_one(
    recipe: str, seed: int, threads: int | None, onednn: int | None, subset=None
) -> dict:
    """Train one recipe in this process (the parent set the environment)."""
    import platform

    from dlfp.recipes import recipe as get_recipe
    from dlfp.threads import thread_settings

    start = time.perf_counter()
    smoke = SMOKE if subset else {}
    chosen = get_recipe(recipe, seed=seed, subset=subset, **smoke)
    data = chosen.data()
    model, history = chosen.train(data)
    test = chosen.test(model, data.test)[1]
    validation = history.val_accuracy[-1]
    return {
        "recipe": recipe,
        "seed": seed,
        "threads": threads,
        "onednn": onednn,
        "val_accuracy": round(float(validation), 6),
        "test_accuracy": round(float(test), 6),
        "n_test": int(len(data.test.labels)),
        "seconds": round(time.perf_counter() - start, 1),
        "settings": thread_settings(),
        "cpu": platform.processor() or platform.machine(),
    }


def environment(threads: int | None, onednn: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
        env["DLFP_THREADS"] = str(threads)
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = str(onednn)
    return env


def same_run(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in ("recipe", "seed", "threads", "onednn"))


def record(run: dict, path: Path = RESULTS) -> None:
    """Add a run to the results file (replacing an earlier run of the same settings)."""
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    runs = [r for r in runs if not same_run(r, run)] + [run]
    runs.sort(
        key=lambda r: (
            RECIPES.index(r["recipe"]),
            r["threads"] or 0,
            r["onednn"] if r["onednn"] is not None else 9,
            r["seed"],
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    os.replace(tmp, path)


def summary(path: Path = RESULTS) -> None:
    from dlfp.claims import seed_summary

    runs = json.loads(path.read_text())["runs"]
    for recipe in RECIPES:
        mine = [r for r in runs if r["recipe"] == recipe]
        if mine:
            print(json.dumps({"recipe": recipe, **seed_summary(mine)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", help=f"any of {', '.join(RECIPES)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--summary", action="store_true", help="print the summary")
    parser.add_argument(
        "--only-defaults", action="store_true", help="skip the perturbed runs"
    )
    parser.add_argument(
        "--only-perturbed",
        action="store_true",
        help="run only the perturbed settings of the first seed",
    )
    parser.add_argument(
        "--subset",
        type=int,
        default=None,
        help="a 1-epoch check on this many images; nothing is recorded",
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()

    for recipe in args.recipes:
        if recipe not in RECIPES:
            parser.error(f"unknown recipe {recipe!r}: choose from {', '.join(RECIPES)}")
    if args.child:  # one run, in a process whose environment the parent set
        recipe, seed, threads, onednn, subset = (
            None if a == "-" else a for a in args.child
        )
        run = run_one(
            recipe,
            int(seed),
            threads and int(threads),
            onednn and int(onednn),
            subset and int(subset),
        )
        print(json.dumps(run), flush=True)
        return
    if args.summary:
        summary()
        return
    for recipe in args.recipes:
        for v in variants(recipe, args.seeds):
            perturbed = v["threads"] is not None or v["onednn"] is not None
            if (args.only_defaults and perturbed) or (
                args.only_perturbed and not perturbed
            ):
                continue
            argv = [recipe, v["seed"], v["threads"], v["onednn"], args.subset]
            child = [
                sys.executable,
                __file__,
                "--child",
                *("-" if a is None else str(a) for a in argv),
            ]
            out = subprocess.run(
                child,
                env=environment(v["threads"], v["onednn"]),
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode:
                sys.exit(f"run {argv} failed:\n{out.stderr[-3000:]}")
            run = json.loads(out.stdout.strip().splitlines()[-1])
            if args.subset is None:
                record(run)
            print(json.dumps(run), flush=True)


if __name__ == "__main__":
    main()
