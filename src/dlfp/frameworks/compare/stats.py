"""The statistics of the verdict: McNemar's test on two classifiers' predictions, the
seed runs' accuracies, and paired timing ratios with the rule that names a winner."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .rows import PYTORCH, TENSORFLOW, Row, check_devices


@dataclass(frozen=True)
class McNemar:
    """McNemar's test of two classifiers scored on the same examples.

    ``only_a`` (often called *b*) counts the examples that classifier A gets right and B
    wrong, ``only_b`` (*c*) the reverse. Under the null hypothesis that both have the
    same accuracy, each of the ``only_a + only_b`` discordant examples is equally
    likely to fall either way, so ``only_a`` is Binomial(only_a + only_b, 1/2).
    """

    both: int  #: right in both
    only_a: int  #: right in A only (b)
    only_b: int  #: right in B only (c)
    neither: int  #: wrong in both
    p_exact: float  #: two-sided exact binomial p-value
    chi2: float  #: (|b - c| - 1)^2 / (b + c), with the continuity correction
    p_chi2: float  #: its p-value, chi-square with one degree of freedom

    @property
    def discordant(self) -> int:
        return self.only_a + self.only_b

    @property
    def n(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither


def mcnemar_p_exact(b: int, c: int) -> float:
    """Two-sided exact p-value: ``2 P(X <= min(b, c))``, X ~ Binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers, one rounding at the division


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's test on two boolean arrays: is example i right for A, for B."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"McNemar's test needs two 1-D arrays over the same examples, not shapes "
            f"{a.shape} and {b.shape}."
        )
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    chi2 = (abs(only_a - only_b) - 1) ** 2 / n if n else 0.0
    if n and abs(only_a - only_b) < 1:
        chi2 = (
            0.0  # b = c: no evidence at all; the correction must not make it negative
        )
    return McNemar(
        both=int(np.sum(a & b)),
        only_a=only_a,
        only_b=only_b,
        neither=int(np.sum(~a & ~b)),
        p_exact=mcnemar_p_exact(only_a, only_b),
        chi2=float(chi2),
        p_chi2=math.erfc(math.sqrt(chi2 / 2)),  # P(chi2_1 > x) = P(|Z| > sqrt(x))
    )


def seed_accuracy(path: str | Path | None = None) -> dict[str, dict]:
    """Test accuracy over the recorded seed runs of each framework's recipe.

    :func:`dlfp.claims.load_runs` reads ``seeds.json``, installed with the package
    (written by ``benchmarks/seeds.py``); :func:`dlfp.claims.seed_summary` gives mean,
    spread and range. Keys: ``"PyTorch"`` and ``"TensorFlow"``.
    """
    from ...claims import load_runs, seed_summary

    return {
        PYTORCH: seed_summary(load_runs("torch-cnn", path)),
        TENSORFLOW: seed_summary(load_runs("keras-cnn", path)),
    }


def paired_ratio(a: Row, b: Row) -> dict:
    """Row ``a``'s time over row ``b``'s, round by round (both ran in every round).

    Returns ``median``, ``min`` and ``max`` of the per-round ratios: a ratio above 1
    means ``a`` is slower. Rows of the same task compare per step or per call.
    """
    if a.task != b.task:
        raise ValueError(f"cannot compare a {a.task} row with a {b.task} row")
    if not (a.available and b.available):
        raise ValueError("both rows must be available to be compared")
    check_devices([a, b])
    ratios = a.per_unit() / b.per_unit()
    return {
        "median": float(np.median(ratios)),
        "min": float(ratios.min()),
        "max": float(ratios.max()),
        "rounds": len(ratios),
    }


def winner(a: Row, b: Row) -> dict:
    """Which of two rows is faster, from their paired rounds.

    Returns ``faster`` (0 for ``a``, 1 for ``b``, None when the rounds do not settle
    it), ``factor`` (how many times faster, from the median ratio, at least 1),
    ``wins`` (rounds won by ``a`` and by ``b``), ``rounds`` and ``median`` (of the
    ratios ``a / b``). A row is faster when it was faster in every round, or in so
    many of them that a two-sided sign test (:func:`mcnemar_p_exact` on the counts)
    rejects, at the 5% level, that each row is equally likely to win a round.
    """
    r = paired_ratio(a, b)
    ratios = a.per_unit() / b.per_unit()
    wins = (int(np.sum(ratios < 1)), int(np.sum(ratios > 1)))
    n = r["rounds"]
    settled = n in wins or mcnemar_p_exact(*wins) < 0.05
    faster = None
    if settled and r["median"] != 1:
        faster = 0 if r["median"] < 1 else 1
    return {
        "faster": faster,
        "factor": max(r["median"], 1 / r["median"]),
        "wins": wins,
        "rounds": n,
        "median": r["median"],
    }
