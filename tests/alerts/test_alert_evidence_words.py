"""A spike event's evidence says which words drove each item's negative score, and the relay's notification shows
them next to each headline (model/attribution.py, monitor/aggregator.py, alerts/evidence.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from alerts_testkit import webhook_payload

from finsentry.alerts.evidence import spike_evidence
from finsentry.alerts.notification import build_notification
from finsentry.alerts.payload import parse_payload
from finsentry.alerts.spike_cache import CachedSpike
from finsentry.ingest.contract import KeyedItem
from finsentry.model.attribution import LazyAttributor
from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.settings import MonitorSettings
from finsentry.monitor.spikes import SpikeEvent

KEY = "ticker:ACME"
T0 = datetime(2024, 3, 4, tzinfo=UTC)
NEGATIVE = [
    "Shares plunge after the company misses earnings and faces a fraud lawsuit",
    "Acme cuts 2,000 jobs as quarterly profit collapses",
    "Acme warns of a steep loss and suspends its dividend",
    "Regulator opens a fraud probe into Acme accounts",
    "Acme stock crashes to a record low",
]


def run(attributor) -> list[SpikeEvent]:
    """Two quiet hours on ``ticker:ACME`` (two neutral items a minute), then 10 negative stories in 4 minutes."""
    settings = MonitorSettings(
        bucket_seconds=60,
        windows_seconds=[600],
        spike={"scales_seconds": [600], "warmup_windows": 0, "baseline_min_items": 0, "min_items": 5},
        grace_seconds=0,
    )
    events: list[SpikeEvent] = []
    agg = Aggregator(settings, on_spike=events.append, clock=lambda: 2e9, attributor=attributor)
    feed = []
    for m in range(120):
        feed += [(m, f"Acme holds its annual meeting number {m}", 0.1), (m, f"Acme product note {m}", 0.0)]
    feed += [(120 + j // 3, t if j < 5 else f"{t} again", -0.9 - j / 100) for j, t in enumerate(NEGATIVE * 2)]
    feed += [(m, f"Acme holds its annual meeting number {m}", 0.1) for m in range(125, 140)]
    for n, (minute, text, score) in enumerate(feed):
        agg.process(
            KeyedItem(
                id=f"i{n}",
                key=KEY,
                published_at=T0 + timedelta(minutes=minute, seconds=n % 50),
                sentiment="negative" if score < -0.3 else "neutral",
                sentiment_score=score,
                text=text,
                tickers=["ACME"],
            )
        )
    return events


def test_spike_evidence_carries_attribution_and_the_notification_shows_the_words(model_dir):
    events = run(LazyAttributor(model_dir))
    started = [e for e in events if e.event == "started"]
    assert len(started) == 1, [(e.event, e.z) for e in events]
    ev = started[0].evidence
    print("evidence seen:", [(e["text"], e.get("attribution")) for e in ev])
    assert len(ev) == 5 and all(isinstance(e.get("attribution"), list) for e in ev), ev
    for e in ev:
        deltas = [a["delta"] for a in e["attribution"]]
        assert len(deltas) <= 3 and all(d > 0 for d in deltas) and deltas == sorted(deltas, reverse=True), e
        assert all(a["word"] in e["text"] for a in e["attribution"]), e
    plunge = next(e for e in ev if e["text"].startswith("Shares plunge"))
    assert plunge["attribution"][0]["word"] == "plunge", plunge
    # every surface quotes the same event: its JSON (sentiment.spikes, the API) keeps the words
    assert SpikeEvent.from_dict(json.loads(json.dumps(started[0].to_dict()))).evidence == ev

    # the relay's notification: the top words next to each headline
    evidence = {KEY: spike_evidence(KEY, CachedSpike(started[0], list(ev)))}
    n = build_notification(parse_payload(json.dumps(webhook_payload(key=KEY)).encode()), evidence)
    print(n.text)
    words = ", ".join(a["word"] for a in plunge["attribution"])
    line = next(x for x in n.text.splitlines() if "Shares plunge" in x)
    assert line.endswith(f"  [{words}]") and "[plunge" in line, line
    assert f"_[{words}]_" in json.dumps(n.slack_message()), n.slack_message()
    assert evidence[KEY].to_json()["headlines"][0]["words"], evidence[KEY].to_json()


def test_attribution_is_the_same_in_a_rebuild_and_absent_without_a_model(model_dir):
    first, again = run(LazyAttributor(model_dir)), run(LazyAttributor(model_dir))
    assert [e.to_dict() for e in first] == [e.to_dict() for e in again]
    plain = run(None)
    assert [e.event for e in plain] == [e.event for e in first]
    assert all("attribution" not in x for e in plain for x in e.evidence), plain[0].evidence
