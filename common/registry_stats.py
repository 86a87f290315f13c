"""Numbers read back from a ``prometheus_client`` registry: histogram summaries and labelled counter totals.

Latency quantiles are estimated from the histogram buckets by linear interpolation inside the bucket, the
method of Prometheus's ``histogram_quantile``; None without observations. Used by ``finsentry run``'s status
route (``finsentry/run_status.py``); any room may use it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry


def histogram_summary(registry: CollectorRegistry, name: str) -> dict[str, float | int | None]:
    """``{count, mean, p50, p95}`` of histogram ``name`` (seconds) in ``registry``; quantiles None when empty.

    >>> from prometheus_client import Histogram
    >>> r = CollectorRegistry()
    >>> h = Histogram("lat_seconds", "x", buckets=(0.1, 0.2, 0.4), registry=r)
    >>> for v in (0.05, 0.15, 0.15, 0.3):
    ...     h.observe(v)
    >>> s = histogram_summary(r, "lat_seconds")
    >>> s["count"], round(s["mean"], 4), round(s["p50"], 3), round(s["p95"], 3)  # p95: rank 3.8 in (0.2, 0.4]
    (4, 0.1625, 0.15, 0.36)
    """
    buckets: list[tuple[float, float]] = []
    count, total = 0.0, 0.0
    for family in registry.collect():
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name == f"{name}_count":
                count = sample.value
            elif sample.name == f"{name}_sum":
                total = sample.value
    buckets.sort()
    return {
        "count": int(count),
        "mean": total / count if count else None,
        "p50": quantile(0.5, buckets),
        "p95": quantile(0.95, buckets),
    }


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q``-quantile from cumulative ``(upper_bound, count)`` buckets, as Prometheus's ``histogram_quantile``.

    Linear interpolation inside the bucket that holds the rank (lower bound 0 for the first bucket); a rank in
    the ``+Inf`` bucket returns the largest finite bound. None without observations.

    >>> quantile(0.5, [(1.0, 2.0), (2.0, 4.0), (float("inf"), 4.0)])
    1.0
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower
            in_bucket = cumulative - below
            return lower + (upper - lower) * ((rank - below) / in_bucket if in_bucket else 1.0)
        lower, below = upper, cumulative
    return lower


def labelled_counts(registry: CollectorRegistry, name: str, label: str) -> dict[str, int]:
    """Non-zero values of counter ``name`` (``..._total`` samples) in ``registry`` by ``label``."""
    out: dict[str, int] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == f"{name}_total" and sample.value:
                out[sample.labels.get(label, "")] = int(sample.value)
    return out


__all__ = ["histogram_summary", "labelled_counts", "quantile"]
