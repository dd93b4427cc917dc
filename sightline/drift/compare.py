"""Distribution comparisons: Kolmogorov-Smirnov for numeric features, PSI for the class mix."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy.stats import ks_2samp

EPS = 1e-4


def ks_score(baseline: Sequence[float], recent: Sequence[float]) -> float:
    """The KS statistic D (0 = same distribution, 1 = disjoint)."""
    return float(ks_2samp(np.asarray(baseline), np.asarray(recent)).statistic)


def relative_shift(baseline: Sequence[float], recent: Sequence[float]) -> float:
    """|mean change| relative to the baseline mean: KS alone flags tiny shifts of narrow distributions."""
    base = float(np.mean(baseline))
    change = abs(float(np.mean(recent)) - base)
    return change / max(abs(base), 1e-9)


def _proportions(counts: Counter[str], keys: list[str]) -> np.ndarray:
    total = sum(counts.values())
    if total == 0:
        return np.full(len(keys), 1.0 / max(len(keys), 1))
    return np.array([counts.get(k, 0) / total for k in keys])


def psi(baseline: Counter[str], recent: Counter[str]) -> tuple[float, float]:
    """Population stability index over classes, and the total variation distance (the effect size)."""
    keys = sorted(set(baseline) | set(recent))
    if not keys:
        return 0.0, 0.0
    p = np.clip(_proportions(baseline, keys), EPS, None)
    q = np.clip(_proportions(recent, keys), EPS, None)
    value = float(np.sum((q - p) * np.log(q / p)))
    tvd = 0.5 * float(np.abs(_proportions(baseline, keys) - _proportions(recent, keys)).sum())
    return (value if math.isfinite(value) else 0.0), tvd
