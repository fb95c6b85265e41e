"""The one verdict rule, applied by code to every claim of every method.

For a claim comparing arm M with arm B on metric X over seeds s = 1..n (paired by seed):

    d_s = X(M, s) - X(B, s)        if the claim says "higher"
    d_s = X(B, s) - X(M, s)        if the claim says "lower"
    e_s = d_s + margin             (margin > 0 only for "comparable to" claims)
    mean = avg(e_s),  se = std(e_s, ddof=1) / sqrt(n)

* untestable:   mode is not smoke and one of the claim's regime checks (`Regime`) failed or could not be
                measured: the run is outside the regime where the paper's effect can exist
* held:         n >= 3, mode is not smoke, and mean > 2 * se and mean > 0
* not_held:     n >= 3, mode is not smoke, and mean < -2 * se and mean < 0
* inconclusive: anything else (too few seeds, smoke mode, or |mean| within 2 standard errors)
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

VERDICTS = ("held", "not_held", "inconclusive", "untestable")
MIN_SEEDS = 3


def judge(claim, method_by_seed: Mapping[str, float], baseline_by_seed: Mapping[str, float], mode: str,
          regime: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Evidence and verdict for one claim; inputs map seed -> metric value.

    `regime` holds the claim's evaluated regime checks (`Regime.evaluate` results); a failed or unmeasured one
    makes the verdict *untestable* (outside smoke mode), whatever the evidence says.
    """
    seeds = sorted(set(method_by_seed) & set(baseline_by_seed), key=str)
    sign = 1.0 if claim.direction == "higher" else -1.0
    diffs = [sign * (method_by_seed[s] - baseline_by_seed[s]) for s in seeds]
    diffs = [d for d in diffs if math.isfinite(d)]
    n = len(diffs)
    shifted = [d + claim.margin for d in diffs]
    mean = sum(shifted) / n if n else float("nan")
    se = math.sqrt(sum((e - mean) ** 2 for e in shifted) / (n - 1) / n) if n >= 2 else float("nan")
    evidence = {
        "n": n,
        "method_mean": _mean([method_by_seed[s] for s in seeds]),
        "baseline_mean": _mean([baseline_by_seed[s] for s in seeds]),
        "diff_mean": _mean(diffs),
        "diff_se": se,
        "margin": claim.margin,
        "per_seed_diff": diffs,
    }
    failed = [r for r in regime if not r["passed"]]
    if mode == "smoke":
        verdict, reason = "inconclusive", "smoke mode is never conclusive"
    elif failed:
        verdict, reason = "untestable", "; ".join(_regime_reason(r) for r in failed)
    elif n < MIN_SEEDS:
        verdict, reason = "inconclusive", f"only {n} paired seed(s); the rule needs >= {MIN_SEEDS}"
    elif mean > 0 and mean > 2 * se:
        verdict, reason = "held", f"mean {_fmt(mean)} > 2 x SE ({_fmt(2 * se)}) in the claimed direction"
    elif mean < 0 and -mean > 2 * se:
        verdict, reason = "not_held", f"mean {_fmt(mean)} is beyond 2 x SE ({_fmt(2 * se)}) against the claim"
    else:
        verdict, reason = "inconclusive", f"mean {_fmt(mean)} within 2 x SE ({_fmt(2 * se)})"
    return {"evidence": evidence, "verdict": verdict, "reason": reason}


def _regime_reason(r: Mapping[str, Any]) -> str:
    if r["passed"] is None:
        return f"regime check {r['name']} could not be measured ({r['description']}): {r['why']}"
    return (f"regime check {r['name']} failed: measured {_fmt(r['value'])}, needs {r['op']} {_fmt(r['threshold'])} "
            f"({r['description']}): {r['why']}")


def _mean(xs):
    xs = [x for x in xs if math.isfinite(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def _fmt(x: float) -> str:
    return f"{x:.4g}"
