"""The validity horizon (docs/theory.md (6.5)) and the power-law fit written literally (independent of the package)."""

from __future__ import annotations

import math


def naive_sustained_horizon(steps: list[int], rels: list[float | None], t: float) -> int | None:
    """min{s_k : e(s_j) > t for every j >= k}, None if e(s_n) <= t; a None error counts as above t."""
    above = [r is None or r > t for r in rels]
    ks = [k for k in range(len(steps)) if all(above[k:])]
    return steps[min(ks)] if ks and above[-1] else None


def naive_power_law(x: list[float], y: list[float]) -> tuple[float, float]:
    """(α, C) minimising Σ (log y − log C − α log x)², by the normal equations written out."""
    u = [math.log(v) for v in x]
    w = [math.log(v) for v in y]
    n = len(u)
    mu, mw = sum(u) / n, sum(w) / n
    alpha = sum((a - mu) * (b - mw) for a, b in zip(u, w, strict=True)) / sum((a - mu) ** 2 for a in u)
    return alpha, math.exp(mw - alpha * mu)
