"""Small statistics the parts share: nearest-rank percentiles (no interpolation between samples) and ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100): a value that was actually measured."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median."""
    return float(statistics.median(values))


def ratio(value: float, reference: float) -> float | None:
    """value / reference, or None when the reference is zero."""
    return value / reference if reference else None


@dataclass(frozen=True)
class Latencies:
    """p50, p99 and max of one set of latencies, in seconds, and how many there were."""

    p50: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Latencies:
        """Summarize `values`."""
        return cls(percentile(values, 50), percentile(values, 99), max(values), len(values))

    @classmethod
    def median_of(cls, rounds: Sequence[Latencies]) -> Latencies:
        """Several rounds as one: the median of their p50s and p99s, the largest max, every sample counted."""
        return cls(
            median([r.p50 for r in rounds]),
            median([r.p99 for r in rounds]),
            max(r.max for r in rounds),
            sum(r.count for r in rounds),
        )
