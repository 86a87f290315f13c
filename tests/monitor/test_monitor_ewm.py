"""The EWMA statistic against reference implementations (pandas, and the explicit weighted formula)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsentry.monitor.ewm import EWMeanVar


def explicit(xs, ts, ws, half_life):
    """Weighted mean / biased variance with weights w_i * 2**(-(t_n - t_i) / h), written out."""
    ts, xs, ws = np.asarray(ts, float), np.asarray(xs, float), np.asarray(ws, float)
    d = ws * 2.0 ** (-(ts[-1] - ts) / half_life)
    mean = (d * xs).sum() / d.sum()
    return mean, (d * (xs - mean) ** 2).sum() / d.sum()


def test_equal_spacing_matches_pandas_ewm():
    rng = np.random.default_rng(7)
    xs = rng.random(200)
    h, dt = 300.0, 60.0
    s = EWMeanVar(h)
    means, variances = [], []
    for i, x in enumerate(xs):
        s.update(float(x), t=i * dt)
        means.append(s.mean)
        variances.append(s.var)
    times = pd.to_datetime(np.arange(len(xs)) * dt, unit="s")
    ref_mean = pd.Series(xs).ewm(halflife=pd.Timedelta(seconds=h), times=times).mean()
    alpha = 1 - 2 ** (-dt / h)
    ref_var = pd.Series(xs).ewm(alpha=alpha, adjust=True).var(bias=True)
    np.testing.assert_allclose(means, ref_mean.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(variances[1:], ref_var.to_numpy()[1:], rtol=1e-9, atol=1e-12)


def test_uneven_times_and_weights_match_the_explicit_formula():
    rng = np.random.default_rng(11)
    ts = np.cumsum(rng.integers(1, 600, 80)).astype(float)
    xs, ws = rng.random(80), rng.integers(1, 40, 80).astype(float)
    s = EWMeanVar(3600.0)
    for x, t, w in zip(xs, ts, ws, strict=True):
        s.update(float(x), t=float(t), w=float(w))
    mean, var = explicit(xs, ts, ws, 3600.0)
    assert s.mean == pytest.approx(mean, rel=1e-12)
    assert s.var == pytest.approx(var, rel=1e-9)
    # mean_weight: decayed average of the weights (each observation counted once)
    d = 2.0 ** (-(ts[-1] - ts) / 3600.0)
    assert s.mean_weight == pytest.approx((d * ws).sum() / d.sum(), rel=1e-12)


def test_hand_computed_two_points_and_empty_state():
    s = EWMeanVar(60.0)
    assert s.mean is None and s.var is None and s.std is None
    s.update(1.0, t=0.0).update(3.0, t=60.0)  # weights 1/2 and 1
    assert s.mean == pytest.approx(3.5 / 1.5)
    assert s.var == pytest.approx(9.5 / 1.5 - (3.5 / 1.5) ** 2)
    s.decay_to(120.0)  # aging alone changes no ratio
    assert s.mean == pytest.approx(3.5 / 1.5) and s.weight == pytest.approx(0.75)
    with pytest.raises(ValueError, match="half_life"):
        EWMeanVar(0)
