"""The statistics of the verdict: McNemar's test on two classifiers' predictions (and
what it can detect), the seed runs' accuracies compared seed by seed, and paired timing
ratios with the interval and the rule that name a winner."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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


def _binomial_pmf(n: int, k: int, p: float) -> float:
    """P(X = k), X ~ Binomial(n, p), through logarithms (no overflow for large n)."""
    if p in (0.0, 1.0):
        return float(k == (n if p == 1.0 else 0))
    log = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    return math.exp(log)


def _half_tail(n: int, k: int) -> float:
    """P(X <= k), X ~ Binomial(n, 1/2), exact up to the final division."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2**n


def mcnemar_threshold(n_disc: int, alpha: float = 0.05) -> int | None:
    """The smallest difference ``|b - c|`` of a split of ``n_disc`` discordant examples
    that McNemar's exact test (:func:`mcnemar_p_exact`) calls significant at ``alpha``;
    None when no split is (too few discordant examples).

    Only differences of the parity of ``n_disc`` can occur (``b + c = n_disc``), so the
    splits tried are ``b = (n_disc - D) / 2`` for ``D = n_disc mod 2, ... + 2, ...``.
    """
    for diff in range(n_disc % 2, n_disc + 1, 2):
        b = (n_disc - diff) // 2
        if mcnemar_p_exact(b, n_disc - b) < alpha:
            return diff
    return None


def mcnemar_power(n_disc: int, share: float, alpha: float = 0.05) -> float:
    """The probability that McNemar's exact test rejects at ``alpha`` when each of the
    ``n_disc`` discordant examples falls A's way with probability ``share``
    (``b ~ Binomial(n_disc, share)``), summed exactly over the rejected splits."""
    threshold = mcnemar_threshold(n_disc, alpha)
    if threshold is None:
        return 0.0
    power = sum(
        _binomial_pmf(n_disc, b, share)
        for b in range(n_disc + 1)
        if abs(2 * b - n_disc) >= threshold
    )
    return min(1.0, power)  # the sum of rounded terms can pass 1 by an ulp or two


def mcnemar_detectable(
    n_disc: int, power: float = 0.8, alpha: float = 0.05
) -> float | None:
    """The true difference, in examples, that McNemar's exact test detects with
    probability ``power``: ``n_disc (2 s - 1)`` for the smallest share ``s >= 1/2`` of
    the ``n_disc`` discordant examples going one way at which :func:`mcnemar_power`
    reaches ``power`` (found by bisection: the power grows with ``s``). None when even
    ``s = 1`` does not reach it."""
    if mcnemar_power(n_disc, 1.0, alpha) < power:
        return None
    low, high = 0.5, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (
            (mid, high) if mcnemar_power(n_disc, mid, alpha) < power else (low, mid)
        )
    return n_disc * (2 * high - 1)


# --- Accuracy over seeds ------------------------------------------------------------


def independent(runs: Sequence[dict]) -> list[dict]:
    """The runs of independent seeds: those with the default threads and oneDNN setting.
    The others re-run seed 0 with one setting changed (:mod:`dlfp.claims` keeps them
    for its margin, which must cover another machine); they are not new seeds."""
    return [r for r in runs if r.get("threads") is None and r.get("onednn") is None]


def _t_cdf(t: float, df: int) -> float:
    """P(T <= t), T Student's t with ``df`` degrees of freedom (Simpson's rule on the
    density, accurate far beyond the digits printed)."""
    if t < 0:
        return 1.0 - _t_cdf(-t, df)
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(
        df * math.pi
    )
    steps = 4000  # even

    def density(x):
        return c * (1 + x * x / df) ** (-(df + 1) / 2)

    h = t / steps
    total = density(0.0) + density(t)
    total += sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 0.5 + total * h / 3


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (bisection)."""
    if not 0.5 <= q < 1:
        raise ValueError(f"t_quantile takes 0.5 <= q < 1, not {q}.")
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < q:
        low, high = high, 2 * high
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, df) < q else (low, mid)
    return (low + high) / 2


def sign_flip_p(differences: Sequence[float]) -> float:
    """The exact two-sided p-value of the paired permutation (sign-flip) test: the share
    of the ``2**n`` ways of flipping the signs of the differences whose sum is at least
    as far from 0 as the observed sum. Under the null hypothesis that the two sides are
    exchangeable within each pair, every flip is equally likely."""
    d = [float(x) for x in differences]
    observed = abs(sum(d))
    scale = sum(abs(x) for x in d) or 1.0
    count = 0
    for signs in range(2 ** len(d)):
        total = sum(x if signs >> i & 1 else -x for i, x in enumerate(d))
        count += abs(total) >= observed - 1e-9 * scale
    return count / 2 ** len(d)


def paired_seeds(
    runs_a: Sequence[dict],
    runs_b: Sequence[dict],
    key: str = "test_accuracy",
    level: float = 0.95,
) -> dict:
    """Two recipes' accuracies compared seed by seed, over their independent seeds.

    A seed fixes the data split and the mini-batches (:class:`dlfp.recipes.Batches`)
    for every implementation, so the runs of one seed are a pair, and the differences
    ``a - b`` within the pairs are what varies. Returns ``seeds`` (the shared seeds),
    ``differences``, ``n``, ``mean`` (of the differences), ``std``, ``se``, ``df``,
    ``t`` (the paired t statistic), ``p_t`` (its two-sided p-value), ``ci`` (the
    ``level`` interval for the mean difference, from Student's t with ``df`` degrees
    of freedom), ``p_exact`` (:func:`sign_flip_p`, which assumes no normality) and
    ``p_exact_min`` (the smallest p-value that test can give with ``n`` pairs).
    """
    a = {r["seed"]: float(r[key]) for r in independent(runs_a)}
    b = {r["seed"]: float(r[key]) for r in independent(runs_b)}
    seeds = sorted(a.keys() & b.keys())
    if len(seeds) < 2:
        raise ValueError(
            f"a paired comparison needs two seeds run by both recipes, not {seeds}."
        )
    d = np.array([a[s] - b[s] for s in seeds])
    n = len(d)
    mean, std = float(d.mean()), float(d.std(ddof=1))
    se = std / math.sqrt(n)
    q = t_quantile(0.5 + level / 2, n - 1)
    t = mean / se if se > 0 else math.copysign(math.inf, mean) if mean else 0.0
    p_t = 2 * (1 - _t_cdf(abs(t), n - 1)) if math.isfinite(t) else 0.0
    return {
        "seeds": seeds,
        "differences": d.tolist(),
        "n": n,
        "mean": mean,
        "std": std,
        "se": se,
        "df": n - 1,
        "t": t,
        "p_t": float(p_t),
        "ci": (mean - q * se, mean + q * se),
        "level": level,
        "p_exact": sign_flip_p(d),
        "p_exact_min": 2 / 2**n,
    }


def perturbations(runs: Sequence[dict], key: str = "test_accuracy") -> list[dict]:
    """The re-runs of a seed with one setting changed (one thread; oneDNN on or off),
    each with how far it moved that seed's accuracy (``shift``, run minus the seed's
    independent run): what a machine-like change does to one seed, not another seed."""
    from ...claims import _setting

    base = {r["seed"]: float(r[key]) for r in independent(runs)}
    return [
        {
            "seed": r["seed"],
            "setting": _setting(r),
            "accuracy": float(r[key]),
            "shift": float(r[key]) - base[r["seed"]],
        }
        for r in runs
        if r not in independent(runs) and r["seed"] in base
    ]


def seed_accuracy(path: str | Path | None = None) -> dict:
    """PyTorch's and Keras's recipes compared over their recorded seed runs.

    Reads ``seeds.json`` (:func:`dlfp.claims.load_runs`; written by
    ``benchmarks/seeds.py``). Returns, under ``"PyTorch"`` and ``"TensorFlow"``, the
    summary (:func:`dlfp.claims.seed_summary`) of each recipe's *independent* seeds;
    under ``"paired"``, :func:`paired_seeds` (PyTorch minus Keras, seed by seed); and
    under ``"perturbed"``, each framework's re-runs of a seed with one setting changed
    (:func:`perturbations`), which are reported, not pooled with the seeds.
    """
    from ...claims import load_runs, seed_summary

    runs = {
        PYTORCH: load_runs("torch-cnn", path),
        TENSORFLOW: load_runs("keras-cnn", path),
    }
    out: dict = {name: seed_summary(independent(r)) for name, r in runs.items()}
    out["paired"] = paired_seeds(runs[PYTORCH], runs[TENSORFLOW])
    out["perturbed"] = {name: perturbations(r) for name, r in runs.items()}
    return out


# --- Speed --------------------------------------------------------------------------


def _paired(a: Row, b: Row) -> np.ndarray:
    """The per-round ratios ``t_a / t_b``, over the rounds both rows may use (their
    ``rounds``; all when neither restricts them), after the checks: same task, both
    available, one device, the same number of rounds."""
    if a.task != b.task:
        raise ValueError(f"cannot compare a {a.task} row with a {b.task} row")
    if not (a.available and b.available):
        raise ValueError("both rows must be available to be compared")
    check_devices([a, b])
    ta, tb = a.per_unit(), b.per_unit()
    if len(ta) != len(tb):
        raise ValueError(
            f"{a.label!r} and {b.label!r} ran {len(ta)} and {len(tb)} rounds: only "
            "rows timed in the same rounds can be paired."
        )
    use = set(range(len(ta)))
    for row in (a, b):
        if row.rounds is not None:
            use &= set(row.rounds)
    index = sorted(use)
    if not index:
        raise ValueError("the two rows share no round that a comparison may use.")
    return ta[index] / tb[index]


def paired_ratio(a: Row, b: Row) -> dict:
    """Row ``a``'s time over row ``b``'s, round by round (both ran in every round).

    Returns ``median``, ``min`` and ``max`` of the per-round ratios: a ratio above 1
    means ``a`` is slower. Rows of the same task compare per step or per call; a row
    chosen by :func:`~dlfp.frameworks.compare.fastest` is compared on the rounds that
    did not choose it.
    """
    ratios = _paired(a, b)
    return {
        "median": float(np.median(ratios)),
        "min": float(ratios.min()),
        "max": float(ratios.max()),
        "rounds": len(ratios),
    }


def order_statistic_k(n: int, alpha: float = 0.05) -> int:
    """The rank ``k`` of the distribution-free ``1 - alpha`` interval for a median from
    ``n`` values, ``[x_(k), x_(n-k+1)]``: the largest ``k`` with
    ``P(Binomial(n, 1/2) <= k - 1) <= alpha / 2``; 0 when none exists (fewer than six
    values at 5%), and the interval is then unbounded."""
    k = 0
    while k + 1 <= (n + 1) // 2 and _half_tail(n, k) <= alpha / 2:
        k += 1
    return k


def median_ci(values: Sequence[float], alpha: float = 0.05) -> dict:
    """A distribution-free confidence interval for the median of ``values`` (independent
    draws from a continuous distribution), from their order statistics
    (:func:`order_statistic_k`). Returns ``low``, ``high``, ``k`` and ``coverage``
    (its exact level, ``1 - 2 P(Binomial(n, 1/2) <= k - 1)``, at least
    ``1 - alpha``)."""
    x = sorted(float(v) for v in values)
    n, k = len(x), order_statistic_k(len(x), alpha)
    if k == 0:
        return {"low": -math.inf, "high": math.inf, "k": 0, "coverage": 1.0}
    return {
        "low": x[k - 1],
        "high": x[n - k],
        "k": k,
        "coverage": 1 - 2 * _half_tail(n, k - 1),
    }


def false_positive_rate(n: int, alpha: float = 0.05) -> float:
    """How often :func:`speed_verdict` calls one of two equally fast rows faster or
    slower, with ``n`` paired rounds: with a true median log-ratio of 0, the interval
    misses 0 when ``x_(k) > 0`` or ``x_(n-k+1) < 0``, each with probability
    ``P(Binomial(n, 1/2) <= k - 1)``, exactly."""
    k = order_statistic_k(n, alpha)
    return 2 * _half_tail(n, k - 1) if k else 0.0


#: Two rows are "equally fast" when the interval of their ratio lies within this
#: factor either way (5%).
EQUIVALENCE = 1.05


def speed_verdict(
    a: Row, b: Row, margin: float = EQUIVALENCE, alpha: float = 0.05
) -> dict:
    """Is row ``a`` faster than row ``b``, from their paired rounds?

    Each round gives ``d = log(t_a / t_b)``. The estimate of the ratio is
    ``exp(median d)``, with the distribution-free interval of :func:`median_ci` (level
    at least ``1 - alpha``), turned back into ratios. The ``outcome``: ``"faster"``
    (the whole interval below 1: ``a`` is faster), ``"slower"`` (the whole interval
    above 1), ``"equivalent"`` (the interval within ``[1/margin, margin]``), else
    ``"inconclusive"``. Also ``ratio``, ``low``, ``high``, ``coverage``, ``rounds``,
    ``faster`` (0 for ``a``, 1 for ``b``, None) and ``factor`` (how many times
    faster the faster row is, at least 1), with ``factor_low``, ``factor_high``.
    """
    d = np.log(_paired(a, b))
    ci = median_ci(d, alpha)
    ratio = math.exp(float(np.median(d)))
    return {
        **_outcome(ratio, math.exp(ci["low"]), math.exp(ci["high"]), margin),
        "coverage": ci["coverage"],
        "rounds": len(d),
        "p": sign_test_p(d),
        "alpha": alpha,
    }


def _outcome(ratio: float, low: float, high: float, margin: float) -> dict:
    """The four outcomes of a ratio of times with its interval ``[low, high]``, and
    the factor of the faster row (at least 1) with its interval."""
    if high < 1:
        outcome, faster = "faster", 0
    elif low > 1:
        outcome, faster = "slower", 1
    elif 1 / margin < low and high < margin:
        outcome, faster = "equivalent", None
    else:
        outcome, faster = "inconclusive", None
    flip = ratio > 1  # the factor is the faster row's: at least 1
    return {
        "outcome": outcome,
        "faster": faster,
        "ratio": ratio,
        "low": low,
        "high": high,
        "margin": margin,
        "factor": ratio if flip else 1 / ratio,
        "factor_low": low if flip else 1 / high,
        "factor_high": high if flip else (1 / low if low > 0 else math.inf),
    }


def sign_test_p(d: Sequence[float]) -> float:
    """The exact two-sided sign test of a median 0 for the values ``d`` (zeros
    dropped): ``2 P(Binomial(n, 1/2) <= min(#positive, #negative))``, at most 1. It
    rejects at level ``alpha`` exactly when :func:`median_ci`'s interval excludes 0."""
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    low = int(min((d > 0).sum(), (d < 0).sum()))
    return min(1.0, 2 * _half_tail(len(d), low))


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm's step-down levels for a family of tests: each test's own level, so that
    the chance of any false rejection in the family stays at most ``alpha``.

    Sorted by p-value, the i-th smallest (from 0) is tested at ``alpha / (m - i)``
    while every smaller one was rejected; from the first that is not, no test of the
    family rejects, and its level and all later ones are 0 (never rejects)."""
    m = len(pvalues)
    levels = [0.0] * m
    for i, j in enumerate(sorted(range(m), key=lambda j: pvalues[j])):
        level = alpha / (m - i)
        if pvalues[j] > level:
            break
        levels[j] = level
    return levels


def speed_verdicts(
    pairs: Mapping[str, tuple[Row, Row]],
    margin: float = EQUIVALENCE,
    alpha: float = 0.05,
) -> dict[str, dict]:
    """:func:`speed_verdict` for a family of comparisons, ``name: (a, b)``, with
    Holm's correction (:func:`holm`): a page that states many comparisons calls any
    two equally fast rows different at most ``alpha`` of the time, all statements
    together. A comparison the family does not reject is decided at the family-wise
    level ``alpha / m`` (a wider interval: equivalent, or inconclusive). Each verdict
    also gives ``family`` (m) and ``alpha`` (its level)."""
    first = {name: speed_verdict(a, b, margin, alpha) for name, (a, b) in pairs.items()}
    names = list(first)
    levels = holm([first[n]["p"] for n in names], alpha)
    out = {}
    for name, level in zip(names, levels, strict=True):
        a, b = pairs[name]
        verdict = speed_verdict(a, b, margin, level or alpha / len(names))
        if not level and verdict["outcome"] in ("faster", "slower"):
            verdict["outcome"], verdict["faster"] = "inconclusive", None
        out[name] = {**verdict, "family": len(names)}
    return out


def _mann_whitney_cdf(m: int, n: int) -> list[float]:
    """``P(U <= u)`` for ``u = 0 .. m n`` under no shift: the exact distribution of
    the Mann-Whitney statistic (pairs ``(x_i, y_j)`` with ``x_i > y_j``) for samples of
    sizes ``m`` and ``n``, by counting (``N(m, n, u) = N(m - 1, n, u - n) +
    N(m, n - 1, u)``)."""
    counts = [
        [[1] if i == 0 or j == 0 else [] for j in range(n + 1)] for i in range(m + 1)
    ]
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            size = i * j + 1
            a, b = counts[i - 1][j], counts[i][j - 1]
            counts[i][j] = [
                (a[u - j] if 0 <= u - j < len(a) else 0) + (b[u] if u < len(b) else 0)
                for u in range(size)
            ]
    total = math.comb(m + n, m)
    cdf, running = [], 0
    for c in counts[m][n]:
        running += c
        cdf.append(running / total)
    return cdf


def shift_ci(x: Sequence[float], y: Sequence[float], alpha: float = 0.05) -> dict:
    """The Hodges-Lehmann estimate of the shift between two independent samples
    (the median of all differences ``x_i - y_j``) and its distribution-free interval
    ``[D_(c), D_(mn + 1 - c)]`` from the sorted differences, with ``c`` the largest
    rank with ``P(U <= c - 1) <= alpha / 2`` (the exact Mann-Whitney distribution).
    The interval is unbounded when no such ``c`` exists (too few values)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    d = np.sort(np.subtract.outer(x, y).ravel())
    cdf = _mann_whitney_cdf(len(x), len(y))
    c = 0
    while c + 1 <= (len(d) + 1) // 2 and cdf[c] <= alpha / 2:
        c += 1
    low, high = (d[c - 1], d[len(d) - c]) if c else (-math.inf, math.inf)
    return {"shift": float(np.median(d)), "low": float(low), "high": float(high)}


def across_processes(
    a: Row, ref_a: Row, b: Row, ref_b: Row, margin: float = EQUIVALENCE
) -> dict:
    """Row ``a`` against row ``b`` when they ran in different processes (a setting
    read at import, such as oneDNN's), each paired with a reference row of its own
    rounds (``ref_a``, ``ref_b``: the same configuration in both sets of processes).

    The per-round log-ratios ``log(a / ref_a)`` and ``log(b / ref_b)`` are two
    independent samples; their shift (:func:`shift_ci`) estimates ``log`` of ``a``'s
    time over ``b``'s, the reference cancelling what the two sets of processes do to
    every row alike. Returns the outcome as :func:`speed_verdict` names it, with
    ``ratio``, ``low``, ``high``, ``rounds`` (both samples' sizes), ``faster`` and the
    ``factor`` of the faster row with its interval."""
    x, y = np.log(_paired(a, ref_a)), np.log(_paired(b, ref_b))
    ci = shift_ci(x, y)
    ratio, low, high = (math.exp(ci[k]) for k in ("shift", "low", "high"))
    return {
        **_outcome(ratio, low, high, margin),
        "rounds": (len(x), len(y)),
        "alpha": 0.05,
    }
