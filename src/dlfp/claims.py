"""Claims that hold on a reader's machine: accuracy bounds with a measured margin.

A chapter that asserts "the network reaches at least a% on the test set" is executed on
every reader's machine, whose CPU and maths libraries round differently from the one the
recipe was tuned on. ``benchmarks/seeds.py`` trains each recipe from several seeds, and
again under settings that change the order of floating-point sums (one thread; oneDNN
off), and keeps every run's accuracy in ``seeds.json``, a data file of this package (so
that an installed ``dlfp``, on Binder or from a wheel, has it too). The rule:

    claim <= mean - 3 * max(s, se),        se = sqrt(p (1 - p) / n)

where ``mean`` and ``s`` are the mean and the sample standard deviation of the test
accuracies of those runs, and ``se`` is the binomial standard error of an accuracy ``p``
measured on ``n`` test images (the noise that one fixed test set adds on its own).

A chapter asks for its recipe's :class:`Claim` in one call, :func:`claim`, which reads
the runs once, checks the rule and this build's accuracy, and holds what the page shows:
the claim, the summary of the runs (:meth:`Claim.percent`) and their table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Claim",
    "claim",
    "ClaimError",
    "binomial_se",
    "claim_bound",
    "check_claim",
    "claim_for",
    "load_runs",
    "results_path",
    "seed_summary",
    "seed_table",
]

#: How many standard deviations below the mean a claim must sit.
MARGIN_SIGMAS = 3.0


class ClaimError(AssertionError):
    """A claim is above what the measured runs support, or the build fell below it."""


def results_path() -> Path:
    """The recorded seed runs: ``seeds.json`` in this package's folder (``src/dlfp`` in
    the repository), installed with the package."""
    return Path(__file__).resolve().parent / "seeds.json"


def load_runs(recipe: str, path: str | Path | None = None) -> list[dict]:
    """Every recorded run of ``recipe``, one of :data:`dlfp.recipes.RECIPES`
    (``"mlp"``, ``"numpy-cnn"``, ``"torch-cnn"``, ``"keras-cnn"``)."""
    from .recipes import RECIPES

    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; use one of {', '.join(RECIPES)}.")
    path = results_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No seed results at {path}: run python benchmarks/seeds.py {recipe} "
            "from the repository's root to measure them."
        )
    runs = [r for r in json.loads(path.read_text())["runs"] if r["recipe"] == recipe]
    if len(runs) < 2:
        raise ClaimError(
            f"{path} holds {len(runs)} run(s) of {recipe!r}; a spread needs at least "
            f"two: run python benchmarks/seeds.py {recipe}."
        )
    return runs


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` independent examples."""
    return math.sqrt(p * (1.0 - p) / n)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def seed_summary(runs: Sequence[dict], key: str = "test_accuracy") -> dict:
    """Mean, spread, margin and the highest claim the runs support.

    Returns
    -------
    dict
        ``runs``, ``mean``, ``std`` (sample), ``min``, ``max``, ``se`` (binomial, at the
        mean), ``margin`` (``3 * max(std, se)``) and ``bound`` (``mean - margin``).
    """
    values = [float(r[key]) for r in runs]
    mean, std = _mean_std(values)
    se = binomial_se(mean, int(runs[0]["n_test"]))
    margin = MARGIN_SIGMAS * max(std, se)
    return {
        "runs": len(values),
        "mean": mean,
        "std": std,
        "min": min(values),
        "max": max(values),
        "se": se,
        "margin": margin,
        "bound": mean - margin,
    }


def claim_bound(runs: Sequence[dict]) -> float:
    """The highest test accuracy a chapter may claim for the recipe behind ``runs``."""
    return seed_summary(runs)["bound"]


def claim_for(
    recipe: str, path: str | Path | None = None, step: float = 0.001
) -> float:
    """The claim a chapter makes for ``recipe``: its bound rounded down to ``step``
    (a tenth of a percentage point), from the recorded runs."""
    return _round_down(claim_bound(load_runs(recipe, path)), step)


def _round_down(bound: float, step: float = 0.001) -> float:
    return math.floor(bound / step + 1e-9) * step


def check_claim(claim: float, achieved: float, runs: Sequence[dict]) -> None:
    """Fail unless ``claim`` respects the margin rule and ``achieved`` reaches it."""
    bound = claim_bound(runs)
    if claim > bound:
        raise ClaimError(
            f"The claim {claim:.2%} is above {bound:.2%}, what the recorded runs "
            "support (mean - 3 sigma): lower it or improve the recipe."
        )
    if achieved < claim:
        raise ClaimError(
            f"This build reached {achieved:.2%}, below the claimed {claim:.2%}: the "
            "recipe or the data changed; rerun benchmarks/seeds.py and look."
        )


def _setting(run: dict) -> str:
    parts = []
    if run.get("threads") is not None:
        parts.append(f"{run['threads']} thread{'s' if run['threads'] > 1 else ''}")
    if run.get("onednn") is not None:
        parts.append(f"oneDNN {'on' if run['onednn'] else 'off'}")
    return ", ".join(parts) or "defaults"


def seed_table(runs: Sequence[dict]):
    """The runs as a table (seed, setting, validation and test accuracy in %), with a
    last row for the mean and the sample standard deviation."""
    from .report import Table

    ordered = sorted(runs, key=lambda r: (_setting(r) != "defaults", r["seed"]))
    rows = [
        [
            str(r["seed"]),
            _setting(r),
            f"{100 * r['val_accuracy']:.2f}",
            f"{100 * r['test_accuracy']:.2f}",
        ]
        for r in ordered
    ]
    val = seed_summary(runs, "val_accuracy")
    test = seed_summary(runs)
    rows.append(
        [
            "**all**",
            f"mean ± s over {len(runs)} runs",
            f"{100 * val['mean']:.2f} ± {100 * val['std']:.2f}",
            f"{100 * test['mean']:.2f} ± {100 * test['std']:.2f}",
        ]
    )
    return Table(["seed", "setting", "validation %", "test %"], rows)


@dataclass(frozen=True)
class Claim:
    """A recipe's claim and the recorded runs behind it (:func:`claim` builds one)."""

    recipe: str
    #: The claimed test accuracy (a fraction): the bound, rounded down to a tenth of a
    #: percentage point.
    value: float
    runs: tuple[dict, ...]
    #: :func:`seed_summary` of the runs' test accuracies.
    summary: dict

    def percent(self) -> dict[str, float | int]:
        """The summary in percentage points (``runs`` stays a count): what a page
        glues as ``mean``, ``std``, ``se``, ``margin``, ``bound``, ``min``, ``max``."""
        return {
            key: value if key == "runs" else 100 * value
            for key, value in self.summary.items()
        }

    def table(self):
        """The runs as a table: :func:`seed_table`."""
        return seed_table(self.runs)


def claim(
    recipe: str, achieved: float | None = None, path: str | Path | None = None
) -> Claim:
    """The claim of ``recipe`` (a name of :data:`dlfp.recipes.RECIPES`), checked.

    Reads the recipe's runs once (``seeds.json``, or ``path``), computes the claim
    (:func:`claim_for`) and, when ``achieved`` is given, fails with :class:`ClaimError`
    unless the claim respects the margin rule and ``achieved`` reaches it
    (:func:`check_claim`).
    """
    runs = load_runs(recipe, path)
    summary = seed_summary(runs)
    value = _round_down(summary["bound"])
    if achieved is not None:
        check_claim(value, achieved, runs)
    return Claim(recipe, value, tuple(runs), summary)
