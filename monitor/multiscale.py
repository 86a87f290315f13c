"""Negative-spike detection per aggregate key over several time scales at once (the aggregator's detector).

Why several scales: a busy wire (thousands of items a day) shows a sell-off within an hour; a feed of a few
dozen items a day needs a day to hold enough stories to say anything. Rather than asking the user which window
fits their stream, every key is watched over each scale of ``monitor.spike.scales_seconds`` (default one hour
and one day) with its own baselines; a scale speaks only when its window holds enough stories, so a quiet key is
judged by the day and a busy one by the hour, with *one* spike state per key.

Per closed bucket of a key (bucket end ``t``, seconds of event time, UTC) and per scale of ``w`` seconds:

1. **Counts.** ``n`` = distinct stories and ``k`` = negative distinct stories in the ``w`` seconds of closed
   buckets ending at ``t`` (near-duplicates count once: :mod:`finsentry.monitor.novelty`).
2. **Share test** (the variable-sample-size p'-chart): ``x = k / n`` against an exponentially weighted mean
   ``m`` and variance ``v`` of the window's share over past buckets, weighted by ``n``
   (:class:`~finsentry.monitor.ewm.EWMeanVar`, half-life ``baseline_half_life_seconds``); std for this window
   ``s = max(sqrt(v * n_bar / n), sqrt(m (1 - m) / n), share_std_floor)`` (Laney's p'-chart with the binomial
   std as a floor: Shewhart's p-chart limits); ``z_share = (x - m) / s``, and where that is 1 or more the exact
   binomial tail instead (:func:`binomial_z`, mid-p), deflated by the same overdispersion ratio
   ``sqrt(m (1 - m) / n) / s``: exact for thin windows, where the normal approximation overstates a handful
   of stories. It speaks when the key has ``baseline_min_items`` older items and the window holds
   ``min_items`` stories, or while a spike is open.
3. **Negative-volume test** (quasi-Poisson surveillance, as in Farrington et al. and EARS), on scales of a day
   or longer (:data:`VOLUME_MIN_SCALE`): ``k`` against the EWMA mean ``mu`` and variance of the window's
   negative count over past buckets, zeros included; ``z_volume`` is the exact upper tail of ``k`` under a
   Poisson (or, when the variance exceeds the mean, negative binomial) law with that mean and variance, as a
   standard normal quantile (:func:`count_z`). It counts only where the share is not below its baseline
   (``z_share >= 0`` before the gates of step 2): a surge of negative news is a spike; a day when all news
   grows (a Monday after a weekend, a busy earnings day) and the share stays ordinary is judged by the share
   test alone. That gate is also why the count baseline needs no weekday profile: quiet weekends lower its
   mean and widen its variance, and a weekday cannot fire on volume while its share is ordinary.
4. **Warm-up.** A scale is silent until its baselines span ``warmup_windows`` windows of event time (default
   3: three days for the day scale), so a new key cannot compare itself with itself.
5. **One state per key.** The key's ``z`` is the largest score over the scales (``z_share``, or ``z_volume``
   where it is larger and the share gate holds); a spike *starts* at ``z >= start_z`` and *ends* at the first
   bucket with ``z < end_z`` (or no scale speaking). Events carry the scale and the test behind their ``z``
   (``window_seconds``, ``trigger``).
6. **Baselines do not learn from the spike they are in.** For the first longest-window of an open spike (a
   day by default) no baseline is updated; otherwise each window is added winsorized from above at
   ``mean + baseline_clamp_z * std`` (its own setting, 3 by default like ``start_z``), so a surge that has not
   yet crossed the threshold cannot raise the bar it is judged by. A spike still open after a whole longest
   window is a lasting level shift: the baselines learn it again (winsorized, a step at a time) and the spike
   ends once the new level is the baseline, instead of staying open for ever.

Parameters: the group ``monitor.spike`` (:class:`~finsentry.monitor.spike_settings.SpikeSettings`), taken as it
is: ``scales`` (s, default 3600 and 86400), ``baseline_half_life_seconds`` (s, default 7 days), ``min_items``
(10), ``baseline_min_items`` (10), ``start_z`` / ``end_z`` (3 / 1.5), ``baseline_clamp_z`` (3),
``share_std_floor`` (0.05), ``warmup_windows`` (3). The constants below are textbook conventions, not tuned
values.

References: S. W. Roberts, "Control chart tests based on geometric moving averages", Technometrics 1(3), 1959
(EWMA charts); D. B. Laney, "Improved control charts for attributes", Quality Engineering 14(4), 2002 (p'-chart);
C. P. Farrington et al., "A statistical algorithm for the early detection of outbreaks of infectious
disease", JRSS A 159(3), 1996 (overdispersed counts against a baseline); L. C. Hutwagner et al., "The
bioterrorism preparedness and response Early Aberration Reporting System (EARS)", J. Urban Health 80, 2003;
H. O. Lancaster, "Significance tests in discrete distributions", JASA 56, 1961 (mid-p values).

>>> p = SpikeSettings(scales_seconds=[3600, 86400], baseline_half_life_seconds=7 * 86400, warmup_windows=3)
>>> d = MultiScaleDetector(p)
>>> for h in range(24 * 14):       # two quiet weeks: 20 stories an hour, one in four negative
...     _ = d.observe(3600.0 * (h + 1), [(20, 5), (480, 120)], closed_items=10_000)
>>> obs, transition = d.observe(3600.0 * (24 * 14 + 1), [(20, 14), (480, 129)], closed_items=10_000)
>>> transition, obs.window_seconds, obs.trigger, round(obs.z, 2)   # binomial_z(14, 20, 0.25)
('started', 3600, 'share', 4.15)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, NamedTuple

from finsentry.ingest.contract import iso_epoch
from finsentry.monitor.ewm import EWMeanVar
from finsentry.monitor.spike_settings import SpikeSettings
from finsentry.monitor.spikes import Observation, hysteresis, share_against_baseline, share_std

MIN_EXPECTED_COUNT = 0.5
"""The volume test never expects fewer than half a negative story per window: a key quiet for a week is not
certain to stay at zero (without a floor, a first negative story would be infinitely unlikely)."""

EVALUATIONS_PER_WINDOW = 60
"""A scale's window is re-evaluated at least every 1/60 of its length (a minute for the hour scale, 24 minutes
for the day scale) and whenever new stories close; in between, only stories leaving the window change it."""

VOLUME_MIN_SCALE = 86_400
"""The negative-volume test runs on scales of a day or longer: a shorter window's count follows the daily
cycle (empty nights, or sources dated to the day), which an all-hours baseline would read as a surge."""


def binomial_z(k: int, n: int, p: float) -> float:
    """z-score of ``k`` negatives of ``n`` at a baseline share ``0 < p < 1``: the exact binomial mid-p tail as a z.

    ``P(X > k) + P(X = k) / 2`` for ``X ~ Binomial(n, p)`` (Lancaster's mid-p), as the standard normal quantile
    with that upper tail (scipy.special); capped at +-40.

    Raises:
        ValueError: ``k`` outside ``0..n`` or ``p`` outside ``(0, 1)`` (NaN included).

    >>> round(binomial_z(10, 35, 0.12), 2)    # the normal approximation says (10 - 4.2) / 1.92 = 3.02
    2.63
    """
    from scipy import special

    if not (0 <= k <= n) or not 0.0 < p < 1.0:
        raise ValueError(f"binomial_z needs 0 <= k <= n and 0 < p < 1, got k={k}, n={n}, p={p}")
    sf = float(special.bdtrc(k, n, p)) if k < n else 0.0
    log_pmf = special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    log_pmf += k * math.log(p) + (n - k) * math.log1p(-p)
    midp = sf + 0.5 * math.exp(log_pmf)
    if midp <= 0.0:
        return 40.0
    return max(min(-float(special.ndtri(midp)), 40.0), -40.0)


def count_z(k: int, mean: float, var: float) -> float:
    """z-score of a count ``k`` against a baseline ``mean`` and ``var`` (items): the exact upper tail, as a z.

    ``X`` is Poisson(``mean``) when ``var <= mean``, else negative binomial with that mean and variance (the
    quasi-Poisson overdispersion of Farrington et al.). The tail is the mid-p value ``P(X > k) + P(X = k) / 2``
    (Lancaster, 1961), turned into the standard normal quantile with the same upper tail, so it reads like the
    share test's z; exact for thin counts, where ``(k - mean) / sd`` overstates a handful of stories.
    Uses scipy.special (regularized incomplete gamma and beta functions); capped at +-40.

    Raises:
        ValueError: ``k < 0``, a mean that is not positive and finite, or a var that is not finite.

    >>> round(count_z(5, 1.0, 1.0), 2)        # Poisson(1): P(X > 5) + P(X = 5) / 2 = 0.00214
    2.86
    >>> round(count_z(5, 1.0, 4.0), 2)        # overdispersed: the same five stories say less
    1.65
    >>> round(count_z(0, 2.0, 2.0), 2)        # none where two are usual
    -1.49
    """
    from scipy import special

    if k < 0 or not 0.0 < mean < math.inf or not var < math.inf:
        raise ValueError(f"count_z needs k >= 0, a positive finite mean and a finite var, got {k}, {mean}, {var}")
    # negative binomial (r, q): sf(k) = I_{1-q}(k + 1, r); within 1e-9 of the mean it is Poisson, and unstable
    if var > mean * (1.0 + 1e-9):
        r = mean * mean / (var - mean)
        q = r / (r + mean)
        sf = float(special.betainc(k + 1, r, 1.0 - q))
        log_pmf = special.gammaln(k + r) - special.gammaln(r) - special.gammaln(k + 1) + r * math.log(q)
        log_pmf += k * math.log1p(-q)
    else:  # Poisson: sf(k) = P(k + 1, mean), the regularized lower incomplete gamma function
        sf = float(special.gammainc(k + 1, mean))
        log_pmf = k * math.log(mean) - mean - special.gammaln(k + 1)
    midp = sf + 0.5 * math.exp(log_pmf)
    if midp <= 0.0:
        return 40.0
    z = -float(special.ndtri(midp))
    return max(min(z, 40.0), -40.0)


class ScaleScore(NamedTuple):
    """What one scale saw at one bucket: counts, both tests and the scale's score (None when silent).

    A named tuple, not a frozen dataclass: one is made per scale and evaluated bucket, and a tuple is made 3x
    faster."""

    seconds: int
    items: int
    negative: int
    share: float | None
    baseline_mean: float | None
    baseline_std: float | None
    share_z: float | None
    volume_baseline: float | None
    volume_std: float | None
    volume_z: float | None
    z: float | None
    trigger: str | None


class ScaleChart:
    """Baselines of one time scale of one key: the share's p'-chart and the negative count's baseline.

    Args:
        seconds: window length of the scale (s). params: the spike settings (``monitor.spike``).
    """

    __slots__ = (
        "seconds",
        "params",
        "share",
        "volume",
        "first_t",
        "step",
        "counts_volume",
        "last_eval",
        "last",
        "silent",
    )

    def __init__(self, seconds: int, params: SpikeSettings) -> None:
        self.seconds = seconds
        self.params = params
        self.share = EWMeanVar(params.baseline_half_life_seconds)
        self.volume = EWMeanVar(params.baseline_half_life_seconds)
        self.first_t: float | None = None
        self.step = seconds / EVALUATIONS_PER_WINDOW
        self.counts_volume = seconds >= VOLUME_MIN_SCALE
        self.last_eval: float | None = None
        self.last: ScaleScore | None = None
        self.silent = ScaleScore(seconds, 0, 0, None, None, None, None, None, None, None, None, None)
        """The score of an empty window on a scale without the volume test (no baseline is touched)."""

    def due(self, t: float, fresh: bool) -> bool:
        """Whether the window ending at ``t`` is evaluated: new stories closed (``fresh``), or a step has passed."""
        return fresh or self.last_eval is None or t - self.last_eval >= self.step

    def score(self, t: float, items: int, negative: int, history_items: int, active: bool) -> ScaleScore:
        """Both tests of the window ``(items, negative)`` ending at ``t`` against the baselines before it."""
        p = self.params
        # warm: warmup_windows windows of event time have passed since this scale's first bucket
        warm = self.first_t is not None and t - self.first_t >= p.warmup_windows * self.seconds
        share_z = raw_share_z = None
        share, m, s = share_against_baseline(self.share, items, negative, p.share_std_floor)
        if share is not None and m is not None and s is not None:
            binomial = math.sqrt(m * (1 - m) / items) if 0 < m < 1 else 0.0
            raw_share_z = (share - m) / s
            if raw_share_z >= 1.0 and binomial > 0:
                # the exact binomial tail (mid-p), deflated by the overdispersion the p'-chart measured
                raw_share_z = binomial_z(negative, items, m) * binomial / s
            if warm and history_items >= p.baseline_min_items and (active or items >= p.min_items):
                share_z = raw_share_z
        vol = self.volume
        vm = vs = volume_z = None
        if vol.weight > 0:
            vm = vol.mean
            vv = vol.var
            vs = math.sqrt(vv)  # vol.std
            if warm and self.counts_volume:
                mu = max(vm, MIN_EXPECTED_COUNT)
                var = max(vv, mu)
                approx = (negative - mu) / math.sqrt(var)
                # the exact tail only where it can matter: far below 1, the approximation is as good a "no"
                volume_z = count_z(negative, mu, var) if approx >= 1.0 else approx
        z, trigger = share_z, ("share" if share_z is not None else None)
        gate = volume_z is not None and raw_share_z is not None and raw_share_z >= 0.0
        if gate and (z is None or volume_z > z):
            z, trigger = volume_z, "volume"
        return ScaleScore(self.seconds, items, negative, share, m, s, share_z, vm, vs, volume_z, z, trigger)

    def learn(self, t: float, items: int, negative: int, scored: ScaleScore | None = None) -> None:
        """Add the window ending at ``t`` to the baselines, winsorized from above at ``mean + baseline_clamp_z * std``
        (``monitor.spike.baseline_clamp_z``). ``scored``: what :meth:`score` gave for this very window with the
        baselines as they are now; its means and stds are the ones the caps need, so they are not computed again."""
        c = self.params.baseline_clamp_z
        if self.first_t is None:
            self.first_t = t
        vol = self.volume
        if vol.weight > 0:
            if scored is None:
                vm, vs = vol.mean, vol.std
            else:
                vm, vs = scored.volume_baseline, scored.volume_std
            cap = vm + c * max(vs, math.sqrt(vm), MIN_EXPECTED_COUNT)
            vol.update(min(negative, cap), t)
        else:
            vol.update(negative, t)
        if items > 0:
            sh = self.share
            x = negative / items
            if sh.weight > 0:
                if scored is None:
                    x = min(x, sh.mean + c * share_std(sh, items, self.params.share_std_floor))
                else:
                    x = min(x, scored.baseline_mean + c * scored.baseline_std)
            sh.update(x, t, w=items)

    def learn_empty(self, first_end: float, step: float, k: int) -> None:
        """``k`` empty windows at ``first_end, first_end + step, ...`` in O(1): the zeros the count baseline would
        have learnt at the evaluations :meth:`due` allows among them (none on scales without the volume test)."""
        if self.first_t is None:
            self.first_t = first_end
        if not self.counts_volume or k <= 0:
            self.last = None
            return
        every = max(1, math.ceil(self.step / step))  # buckets between evaluations of empty windows
        if self.last_eval is None:
            first = first_end
        else:
            first = first_end + step * max(0, math.ceil((self.last_eval + self.step - first_end) / step))
        last_end = first_end + step * (k - 1)
        if first > last_end:
            return
        count = int((last_end - first) // (step * every)) + 1
        self.volume.update_many(0.0, first, step * every, count)
        self.last_eval = first + step * every * (count - 1)
        self.last = None

    def state(self) -> dict[str, Any]:
        """The scale's baselines as a JSON-ready dict."""
        return {"seconds": self.seconds, "share": self.share.get(), "volume": self.volume.get(), "first": self.first_t}


class MultiScaleDetector:
    """One key's spike state over the scales of ``params.scales`` (``params``: ``monitor.spike``). Not thread-safe.

    :meth:`observe` takes the ``(items, negative)`` of each scale's window, in the order of ``params.scales``.
    """

    __slots__ = ("params", "charts", "active", "last", "started_at")

    def __init__(self, params: SpikeSettings) -> None:
        self.params = params
        self.charts = [ScaleChart(w, params) for w in params.scales]
        self.active = False
        self.last: Observation | None = None
        self.started_at: float | None = None

    def observe(
        self, bucket_end: float, windows: Sequence[tuple[int, int]], closed_items: int, fresh: bool = True
    ) -> tuple[Observation, str | None]:
        """Feed one closed bucket (end ``bucket_end``, epoch s): each scale's window counts and the key's stories.

        ``closed_items`` counts the key's distinct stories in every closed bucket so far, windows included; a
        scale's history (for ``baseline_min_items``) is what lies before its own window. ``fresh``: the closed
        bucket held new stories. A scale is evaluated when ``fresh``, or once :data:`EVALUATIONS_PER_WINDOW`
        of its window has passed since its last evaluation (a day window is re-judged every 24 minutes, not
        every minute, as stories only leave it); an empty window of a scale without the volume test is
        silent. When no scale is evaluated, the last observation stands and nothing changes.

        Returns:
            ``(observation, transition)``: the observation of the scale with the highest score (the shortest
            scale when none speaks) and ``started`` / ``updated`` / ``ended`` or None.

        Raises:
            ValueError: ``windows`` does not have one entry per scale.
        """
        obs, transition, _fed = self.observe_run(bucket_end, 0, 1, windows, closed_items, fresh)
        return obs, transition

    def observe_run(
        self,
        first_end: float,
        step: float,
        k: int,
        windows: Sequence[tuple[int, int]],
        closed_items: int,
        fresh: bool = False,
    ) -> tuple[Observation, str | None, int]:
        """Feed ``k`` closed buckets ending ``first_end, first_end + step, ...`` (s) whose windows are all
        ``windows``, as ``k`` calls of :meth:`observe` would (``fresh`` for the first, not for the others), but
        stop after the first bucket with a transition.

        The same steps in the same order, so the same baselines and spike state to the last bit; what it saves is
        the per-bucket overhead: runs of buckets where nothing is due are passed over at once (:meth:`idle_run`),
        and the observation is built once, for the last bucket judged, not for every bucket.

        Returns:
            ``(observation, transition, fed)``: the observation and transition after the last bucket fed (those of
            :meth:`observe` for it) and how many buckets were fed (``k``, or fewer when a transition came first).

        Raises:
            ValueError: ``windows`` does not have one entry per scale, or ``k < 1``.
        """
        charts = self.charts
        if len(windows) != len(charts):
            raise ValueError(f"expected {len(charts)} windows (one per scale), got {len(windows)}")
        if k < 1:
            raise ValueError(f"observe_run needs k >= 1 buckets, got {k}")
        p = self.params
        longest = charts[-1].seconds
        judged_last: tuple[float, ScaleScore, float | None] | None = None  # (t, best, z) of the last bucket judged
        has_last = self.last is not None
        transition = None
        fed = 0
        busy = False  # the bucket before was judged: this one most likely is too (the hour is due every minute)
        while fed < k:
            t = first_end + fed * step
            new = fresh and fed == 0
            fed += 1
            if has_last and not new and not busy and self._idle(t, windows):
                fed += self._idle_count(t + step, step, k - fed, windows)  # nothing is due: no work, no allocation
                continue
            scores: list[ScaleScore] = []
            evaluated: list[bool] = []
            judged = False
            for chart, (n, neg) in zip(charts, windows, strict=True):
                if n == 0 and not chart.counts_volume:
                    changed = chart.last is not None and chart.last.items > 0
                    score = chart.silent
                    evaluated.append(changed)
                    judged = judged or changed
                elif chart.due(t, new):
                    score = chart.score(t, n, neg, closed_items - n, self.active)
                    chart.last_eval = t
                    evaluated.append(True)
                    judged = True
                else:
                    score = chart.last if chart.last is not None else chart.silent
                    evaluated.append(False)
                chart.last = score
                scores.append(score)
            busy = judged
            if not judged and has_last:
                continue  # nothing new to judge: the last observation stands (as when idle, but with chart.last set)
            best = scores[0]  # the first scale with the highest score, the shortest when none speaks
            z = None
            for sc in scores:
                if sc.z is not None and (z is None or sc.z > z):
                    best, z = sc, sc.z
            self.active, transition = hysteresis(self.active, z, p.start_z, p.end_z)
            if transition == "started":
                self.started_at = t
            # a spike open longer than the longest window is a new level, not a burst: learn it (winsorized)
            shifted = self.active and self.started_at is not None and t - self.started_at > longest
            if transition is None or shifted:
                for chart, (n, neg), ev, sc in zip(charts, windows, evaluated, scores, strict=True):
                    if ev and (n > 0 or chart.counts_volume):
                        chart.learn(t, n, neg, sc)  # sc: just scored on these baselines
            judged_last = (t, best, z)
            has_last = True
            if transition is not None:
                break
        if judged_last is not None:
            t, best, z = judged_last
            self.last = Observation(
                t,
                best.items,
                best.negative,
                best.share,
                best.baseline_mean,
                best.baseline_std,
                z,
                best.volume_baseline,
                best.volume_std,
                best.volume_z,
                self.active,
                window_seconds=best.seconds,
                trigger=best.trigger,
                share_z=best.share_z,
            )
        obs = self.last
        assert obs is not None  # the first bucket fed to a detector without an observation is always judged
        return obs, transition, fed

    def next_due(
        self, t0: float, newest_bucket: int, bucket_seconds: int, scale_buckets: Sequence[int]
    ) -> float | None:
        """The first bucket end at or after ``t0`` (s) at which a key with no new stories must be closed again.

        That is the next evaluation of a scale with the volume test (:meth:`ScaleChart.due`), or the end of the
        bucket in which the newest story (bucket index ``newest_bucket``) leaves a shorter scale's window; None
        when neither will come (no window holds anything). Closing at that bucket end closes every bucket before
        it in order, so the state is the same as closing them one by one.
        """
        candidates = []
        for chart, m in zip(self.charts, scale_buckets, strict=True):
            if chart.counts_volume:
                at = t0 if chart.last_eval is None else max(t0, chart.last_eval + chart.step)
                candidates.append(at)
            elif chart.last is not None and chart.last.items > 0:
                candidates.append(max(t0, float((newest_bucket + m + 1) * bucket_seconds)))
        if not candidates:
            return None
        return float(math.ceil(min(candidates) / bucket_seconds) * bucket_seconds)

    def idle_run(self, first_end: float, step: float, k: int, windows: Sequence[tuple[int, int]]) -> int:
        """How many of the ``k`` bucket ends ``first_end, first_end + step, ...`` (s) in a row, from the first,
        :meth:`observe` would pass over without a change if fed ``windows`` each time without fresh stories: no
        scale is due (:meth:`ScaleChart.due`) and none turns silent. Feeding them is then a no-op, so a caller
        may skip them; 0 before the first observation. O(scales), not O(k)."""
        if self.last is None:
            return 0
        return self._idle_count(first_end, step, k, windows)

    def _idle_count(self, first_end: float, step: float, k: int, windows: Sequence[tuple[int, int]]) -> int:
        """:meth:`idle_run` once an observation exists (the checks per scale)."""
        if k <= 0:
            return 0
        run = k
        for chart, (n, _k) in zip(self.charts, windows, strict=True):
            if n == 0 and not chart.counts_volume:
                last = chart.last
                if last is not None and last.items > 0:
                    return 0  # the window has just emptied: observe() reports it
                continue  # an empty window of a scale without the volume test stays silent
            if chart.last_eval is None:
                return 0
            # the first i with due(first_end + i * step); found by division, then checked with due() itself
            i = max(0, math.ceil((chart.last_eval + chart.step - first_end) / step))
            while i > 0 and chart.due(first_end + (i - 1) * step, fresh=False):
                i -= 1
            while i < run and not chart.due(first_end + i * step, fresh=False):
                i += 1
            run = min(run, i)
            if run == 0:
                return 0
        return run

    def _idle(self, t: float, windows: Sequence[tuple[int, int]]) -> bool:
        """True when no scale would be evaluated at ``t`` (no fresh stories): the slow path's no-op, found cheaply."""
        for chart, (n, _k) in zip(self.charts, windows, strict=True):
            if n == 0 and not chart.counts_volume:
                last = chart.last
                if last is not None and last.items > 0:
                    return False
            elif chart.due(t, fresh=False):
                return False
        return True

    def skip_empty(self, first_end: float, step: float, k: int) -> None:
        """Feed ``k`` closed buckets whose windows are all empty, in O(1); only without an open spike.

        Raises:
            ValueError: a spike is open (an empty window would end it).
        """
        if self.active:
            raise ValueError("skip_empty() needs an inactive detector: an empty window ends a spike")
        for chart in self.charts:
            chart.learn_empty(first_end, step, k)
        self.last = None

    def state(self) -> dict[str, Any]:
        """Baselines per scale, last observation and spike flag as a JSON-ready dict (API, restart test)."""
        return {
            "active": self.active,
            "scales": [c.state() for c in self.charts],
            "last": None if self.last is None else asdict(self.last) | {"bucket_end": iso_epoch(self.last.bucket_end)},
        }
