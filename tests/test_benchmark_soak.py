"""The pure parts of the soak benchmark (``benchmarks/soak.py``): its plan, items, accounting and RESULTS.md block.

The soak itself (real processes, minutes to hours) is run by hand; these checks keep its bookkeeping honest.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import random
import sys
from types import ModuleType

from finsentry.common.paths import REPO_ROOT


def _load() -> ModuleType:
    name = "finsentry_soak_bench"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


soak = _load()


def test_soak_doctests():
    result = doctest.testmod(soak)
    assert result.attempted >= 15 and result.failed == 0


def test_plan_is_seeded_keeps_kills_inside_the_production_period_and_no_scorer_kill_in_the_outage():
    production, outage_at, outage_s = 1000.0, 0.4, 300.0
    actions = soak.plan(random.Random(15), production, 20, outage_at, outage_s)
    assert actions == soak.plan(random.Random(15), production, 20, outage_at, outage_s)
    kills = [a for a in actions if a.kind == "kill"]
    assert len(kills) == 20 and [a.t for a in actions] == sorted(a.t for a in actions)
    assert all(50.0 <= a.t <= 950.0 and 1.0 <= a.pause <= 5.0 for a in kills)
    assert not [a for a in kills if a.verb == "scorer" and 400.0 <= a.t <= 700.0]
    assert {a.verb for a in kills} == {"scorer", "aggregator"}
    assert [(a.kind, a.t) for a in actions if a.kind.startswith("outage")] == [
        ("outage_start", 400.0),
        ("outage_end", 700.0),
    ]
    assert [a.kind for a in soak.plan(random.Random(1), 100.0, 3, 0.4, 0.0)] == ["kill"] * 3


def test_items_get_unique_ids_and_only_the_skew_span_holds_fast_ones():
    rows = [{"id": "same", "text": f"t{i}", "lang": "en"} for i in range(1000)]
    items = soak.soak_items(rows, random.Random(0), 0.5, (0.5, 1.0))
    assert len({i["id"] for i in items}) == 1000
    assert not any(i["fast"] for i in items[:500])
    fast = [i for i in items if i["fast"]]
    assert 200 < len(fast) < 300 and all(i["source"] == soak.FAST_SOURCE for i in fast)
    assert all(set(i) <= {"id", "text", "lang", "source", "fast"} for i in items)


def test_compare_reports_missing_extra_and_changed_keys():
    live = {"all": (9, 1, 5, 3), "topic:markets": (2, 0, 2, 0), "ticker:X": (1, 1, 0, 0)}
    offline = {"all": (10, 2, 5, 3), "topic:markets": (2, 0, 2, 0), "ticker:AAPL": (4, 1, 2, 1)}
    c = soak.compare(live, offline)
    assert c.equal == 1 and c.keys_live == 3 and c.keys_offline == 3
    assert [(d["key"], d["delta"]) for d in c.differing] == [
        ("ticker:AAPL", (-4, -1, -2, -1)),
        ("all", (-1, -1, 0, 0)),
        ("ticker:X", (1, 1, 0, 0)),
    ]
    assert c.missing_keys == 1 and (c.items_live, c.items_offline) == (12, 16)
    assert soak.compare(offline, dict(offline)).differing == []


def test_counters_of_several_process_lives_add_up():
    first = "# TYPE finsentry_late_events counter\nfinsentry_late_events_total 3.0\n"
    second = (
        '# TYPE finsentry_late_events counter\nfinsentry_late_events_total{key="all"} 2.0\n'
        'finsentry_late_events_total{key="topic:markets"} 1.0\n'
    )
    total = soak.sum_counters([soak.metric_samples(first), soak.metric_samples(second)])
    assert soak.by_name(total, "finsentry_late_events_total") == 6.0
    assert soak.label_values(total, "finsentry_late_events_total", "key") == {"all": 2.0, "topic:markets": 1.0}


def test_record_replaces_its_own_label_and_leaves_other_sections_alone():
    text = "# Benchmark results\n\n## Pipeline\n\nrows\n\n## Aggregator\n\nmore\n"
    once = soak.upsert_block(text, soak.SECTION, "### smoke\n\nfirst", "intro")
    twice = soak.upsert_block(once, soak.SECTION, "### smoke\n\nsecond", "intro")
    assert twice.count("### smoke") == 1 and "second" in twice and "first" not in twice
    assert twice.startswith(text) and twice.count(soak.SECTION) == 1
    middle = "# R\n\n## Soak: no news lost\n\nintro\n\n### a\n\n1\n\n## Later\n\nx\n"
    out = soak.upsert_block(middle, soak.SECTION, "### b\n\n2", "intro")
    assert out == "# R\n\n## Soak: no news lost\n\nintro\n\n### a\n\n1\n\n### b\n\n2\n\n## Later\n\nx\n"


def test_the_table_states_the_verdict_and_the_differing_keys():
    result = {
        "meta": {
            "date": "2026-12-07 07:00 UTC",
            "load_start": 1.0,
            "load_end": 2.0,
            "bucket_seconds": 60,
            "grace_seconds": 120,
            "max_future_seconds": 600,
            "texts": 10,
            "fast_items": 1,
            "code": "working tree at abc",
            "cpu": "CPU X",
            "model_version": "v1",
            "wall_s": 120,
            "scored_drained": True,
            "scored_drain_s": 3.0,
            "aggregators_drained": True,
            "aggregator_drain_s": 4.0,
            "disturbed": {"scorer": 1},
            "outage_reform_s": 4.0,
            "health": {"aggregator-3": {"late": 5, "future": 0}},
        },
        "args": {
            "partitions": 6,
            "scorers": 2,
            "aggregators": 2,
            "set": [],
            "rate": 20.0,
            "seed": 15,
            "outage_seconds": 30.0,
            "outage_at": 0.4,
            "skew_seconds": 300.0,
        },
        "comparison": json.loads(json.dumps(soak.compare({"all": (9, 1, 5, 3)}, {"all": (10, 2, 5, 3)}).__dict__))
        | {"missing_keys": 0},
        "aggregator_counters": {
            "finsentry_late_events_total{key=all}": 1.0,
            "finsentry_aggregator_rejected_messages_total{reason=future_event_time}": 0.0,
        },
        "aggregator_gauges_final": {"finsentry_aggregator_unreconciled_records{partition=0}": 0.0},
        "aggregator_lives": 3,
        "scorer_counters": {"finsentry_scorer_scored_total": 10.0},
        "scorer_lives": 2,
        "missing": [],
        "sent": 12,
        "raw_distinct": 12,
        "scored_records": 11,
        "scored_distinct": 10,
        "relabelled": 0,
        "dlq": {"unsupported_language": 2},
        "live_read": True,
        "unexpected_exits": [],
        "offline_equals_fan_out": True,
    }
    md = soak.markdown(result, "smoke")
    assert md.startswith("### smoke\n")
    assert "| **missing** (sent, neither scored nor dead-lettered) | **0** |" in md
    assert "| duplicates on news.scored (records - distinct ids) | 1 of 11 records" in md
    assert "Verdict: **news lost or miscounted**." in md
    assert "| scorers hold every news.raw partition again after the outage | after 4 s |" in md
    assert "| `all` | 9 (1/5/3) | 10 (2/5/3) | -1 (-1/+0/+0) | 1 |" in md
    assert "`finsentry_aggregator_unreconciled_records` 0" in md
    assert not soak.no_news_lost(result)
    result["comparison"] = soak.compare({"all": (9, 1, 5, 3)}, {"all": (9, 1, 5, 3)}).__dict__
    assert soak.no_news_lost(result)
    assert "Verdict: **no news lost**." in soak.markdown(result, "smoke")
