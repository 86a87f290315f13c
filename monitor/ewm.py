"""Exponentially weighted mean and variance over event time: the baseline statistic of the spike detector.

An observation ``x`` made at time ``t`` (seconds) with weight ``w`` counts ``w * 2 ** (-(T - t) / half_life)``
at a later time ``T``: its influence halves every ``half_life`` seconds of event time, however many
observations arrive meanwhile. The mean and variance are the weighted ones over all observations so far
(normalised by the sum of weights, as pandas' ``ewm(adjust=True)`` does), so a fresh statistic is not
biased towards its first value. Weighted power sums make each update O(1):

* ``count = sum(d)``, ``weight = sum(d * w)``, ``mean = sum(d * w * x) / weight``,
* ``var = sum(d * w * x**2) / weight - mean**2`` (the biased weighted variance; clamped at 0).

With unit weights and equally spaced times this equals ``pandas.Series.ewm(halflife=h, times=t).mean()`` and
``.ewm(alpha=1 - 2 ** (-dt / h)).var(bias=True)`` (``tests/monitor/test_ewm.py`` checks both). Reference:
the EWMA control chart of S. W. Roberts, "Control chart tests based on geometric moving averages",
Technometrics 1(3), 1959; weighted incremental moments as in T. Finch, "Incremental calculation of weighted
mean and variance", University of Cambridge, 2009.
"""

from __future__ import annotations

import math


class EWMeanVar:
    """Time-decayed weighted mean and variance (river-style: ``update`` then read ``mean`` / ``var``).

    Args:
        half_life: seconds after which an observation's weight has halved (> 0).

    >>> s = EWMeanVar(half_life=60.0)
    >>> s.update(1.0, t=0.0).update(3.0, t=60.0).mean  # the first value now weighs 1/2: (0.5*1 + 3) / 1.5
    2.3333333333333335
    >>> round(s.var, 6)  # (0.5*1 + 9) / 1.5 - mean**2
    0.888889
    >>> s.count, s.weight
    (1.5, 1.5)
    """

    __slots__ = ("half_life", "t", "count", "weight", "_sx", "_sxx")

    def __init__(self, half_life: float) -> None:
        if not half_life > 0:
            raise ValueError(f"half_life must be > 0 seconds, got {half_life}")
        self.half_life = float(half_life)
        self.t: float | None = None
        self.count = 0.0
        self.weight = 0.0
        self._sx = 0.0
        self._sxx = 0.0

    def decay_to(self, t: float) -> None:
        """Age the sums to time ``t`` (seconds) without adding an observation; ``t`` before the last one is ignored."""
        if self.t is None:
            self.t = t
            return
        if t > self.t:
            d = 2.0 ** (-(t - self.t) / self.half_life)
            self.count *= d
            self.weight *= d
            self._sx *= d
            self._sxx *= d
            self.t = t

    def update(self, x: float, t: float, w: float = 1.0) -> EWMeanVar:
        """Add observation ``x`` made at time ``t`` (seconds; not before the previous one) with weight ``w`` >= 0."""
        self.decay_to(t)
        self.count += 1.0
        self.weight += w
        self._sx += w * x
        self._sxx += w * x * x
        return self

    def update_many(self, x: float, t_first: float, step: float, k: int, w: float = 1.0) -> EWMeanVar:
        """Add ``k`` equal observations ``x`` (weight ``w``) at ``t_first, t_first + step, ...`` in O(1).

        Equal, up to rounding, to ``k`` calls of :meth:`update`: the newest weighs ``w``, the one before
        ``w * d``, ... with ``d = 2 ** (-step / half_life)``, so they add ``w * (1 - d**k) / (1 - d)``.

        >>> a, b = EWMeanVar(120.0), EWMeanVar(120.0)
        >>> _ = a.update(5.0, t=0.0).update_many(0.0, t_first=60.0, step=60.0, k=30)
        >>> _ = b.update(5.0, t=0.0)
        >>> for i in range(30):
        ...     _ = b.update(0.0, t=60.0 * (i + 1))
        >>> abs(a.mean - b.mean) < 1e-12 and abs(a.var - b.var) < 1e-12 and abs(a.count - b.count) < 1e-12
        True
        """
        if k <= 0:
            return self
        self.decay_to(t_first + step * (k - 1))
        d = 2.0 ** (-step / self.half_life)
        g = float(k) if d == 1.0 else (1.0 - d**k) / (1.0 - d)
        self.count += g
        self.weight += w * g
        self._sx += w * x * g
        self._sxx += w * x * x * g
        return self

    @property
    def mean(self) -> float | None:
        """Weighted mean, or None before any weight."""
        return self._sx / self.weight if self.weight > 0 else None

    @property
    def var(self) -> float | None:
        """Biased weighted variance (>= 0), or None before any weight."""
        if self.weight <= 0:
            return None
        m = self._sx / self.weight
        return max(self._sxx / self.weight - m * m, 0.0)

    @property
    def std(self) -> float | None:
        """Square root of :attr:`var`, or None before any weight."""
        v = self.var
        return None if v is None else math.sqrt(v)

    @property
    def mean_weight(self) -> float | None:
        """Decayed average weight per observation (``weight / count``), or None before any observation."""
        return self.weight / self.count if self.count > 0 else None

    def get(self) -> dict[str, float | None]:
        """``{mean, var, std, weight, count, t}`` as plain floats (None where undefined)."""
        return {
            "mean": self.mean,
            "var": self.var,
            "std": self.std,
            "weight": self.weight,
            "count": self.count,
            "t": self.t,
        }
