"""Token length statistics of a data set, for the report and the length histogram."""

from __future__ import annotations

import math


def _percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile (a value that occurs in the data)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def token_stats(lengths: list[int], max_length: int) -> dict:
    """min / median / p95 / max token length, how many rows exceed max_length, and the lengths themselves."""
    ordered = sorted(lengths)
    n = len(ordered)
    if n == 0:
        median = 0
    elif n % 2:
        median = ordered[n // 2]
    else:
        median = (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return {
        "count": n,
        "min": ordered[0] if n else 0,
        "median": median,
        "p95": _percentile(ordered, 95),
        "max": ordered[-1] if n else 0,
        "mean": round(sum(ordered) / n, 1) if n else 0,
        "total_tokens": sum(ordered),
        "over_max": sum(1 for x in ordered if x > max_length),
        "max_length": max_length,
        "lengths": list(lengths),
    }
