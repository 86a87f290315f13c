"""Regressions from a hostile-input review: inputs that used to slip through validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from ingest_testkit import ahead, obj

from finsentry.ingest.dlq import DlqReason, InvalidRecord
from finsentry.ingest.scorer_service import ScorerService
from finsentry.ingest.settings import IngestSettings
from finsentry.ingest.topics import NEWS_DLQ, NEWS_RAW, NEWS_SCORED
from finsentry.ingest.validation import validate_news_raw


@pytest.mark.parametrize(
    "text",
    ["\u200b\u200c\u200d\u2060\ufeff", "\u202e\u202d\u200f\u200e", "\u0301\u0301\u0301", "\u200b \u00a0 \u200b"],
    ids=["zero-width", "direction-marks", "combining-only", "zero-width-and-spaces"],
)
def test_invisible_text_is_empty_text(text):
    with pytest.raises(InvalidRecord) as err:
        validate_news_raw(obj(text=text))
    assert err.value.reason is DlqReason.EMPTY_TEXT


def test_far_future_timestamp_is_bad_timestamp_but_near_future_and_past_are_fine():
    with pytest.raises(InvalidRecord) as err:
        validate_news_raw(obj(published_at="2099-12-31T23:59:59Z"))
    assert err.value.reason is DlqReason.BAD_TIMESTAMP and "future" in err.value.message
    assert validate_news_raw(obj(published_at="2015-08-24T13:30:00Z")).published_at.year == 2015


def test_emoji_and_rtl_text_are_still_scored():
    assert validate_news_raw(obj(text="📉📉📉")).text == "📉📉📉"
    assert validate_news_raw(obj(text="سهم أبل ينخفض")).text


# --- one future-dated item must not blind its partition (the scorer's side of the fix) ------------------------


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_item_23_hours_ahead_of_the_wall_clock_is_a_bad_timestamp_naming_the_setting():
    with pytest.raises(InvalidRecord) as err:
        validate_news_raw(obj(published_at=ahead(23 * 3600)))  # inside the contract's one-day bound
    assert err.value.reason is DlqReason.BAD_TIMESTAMP
    assert "in the future" in err.value.message
    assert "ingest.scorer.max_future_seconds = 600 s" in err.value.message
    assert validate_news_raw(obj(published_at=ahead(120))).id == "m1"  # two minutes of clock skew: scored


def test_the_future_bound_is_max_future_seconds_after_now_inclusive():
    def at(seconds: int) -> bytes:
        return obj(published_at=(NOW + timedelta(seconds=seconds)).isoformat())

    assert validate_news_raw(at(600), now=NOW).published_at == NOW + timedelta(seconds=600)
    with pytest.raises(InvalidRecord) as err:
        validate_news_raw(at(601), now=NOW)
    assert err.value.reason is DlqReason.BAD_TIMESTAMP
    assert "lies 601 s in the future (the wall clock is 2026-12-01T12:00:00Z)" in err.value.message
    with pytest.raises(InvalidRecord):
        validate_news_raw(at(1), now=NOW, max_future_seconds=0)
    assert validate_news_raw(at(0), now=NOW, max_future_seconds=0).published_at == NOW
    assert validate_news_raw(at(7200), now=NOW, max_future_seconds=7200).published_at == NOW + timedelta(hours=2)
    assert validate_news_raw(at(-10 * 365 * 86400), now=NOW).published_at.year == 2016  # the past is never refused


def test_max_future_seconds_setting_defaults_to_600_and_is_bounded_by_the_contract(monkeypatch):
    from finsentry.settings import SettingsError, load_settings

    assert load_settings().ingest.scorer.max_future_seconds == 600
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__MAX_FUTURE_SECONDS", "3600")
    assert load_settings().ingest.scorer.max_future_seconds == 3600
    for bad in ("86401", "-1"):
        monkeypatch.setenv("FINSENTRY_INGEST__SCORER__MAX_FUTURE_SECONDS", bad)
        with pytest.raises(SettingsError, match=r"ingest\.scorer\.max_future_seconds"):
            load_settings()


class _Ack:
    def succeeded(self) -> bool:
        return True


class _Producer:
    """Records what the scorer sends; every produce is acknowledged."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, dict[str, bytes]]] = []

    def send(self, topic, key=None, value=None, headers=None):
        self.sent.append((topic, key, value, dict(headers or [])))
        return _Ack()

    def flush(self, timeout=None) -> None:
        pass


def _records(values: list[bytes]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(topic=NEWS_RAW, partition=0, offset=i, key=f"k{i}".encode(), value=v, timestamp=None)
        for i, v in enumerate(values)
    ]


@pytest.mark.parametrize(("max_future", "scored"), [(None, []), (3600, ["soon"])], ids=["default", "one-hour"])
def test_the_scorer_dead_letters_items_beyond_its_setting(scorer, max_future, scored):
    overrides = {} if max_future is None else {"max_future_seconds": max_future}
    service = ScorerService(scorer, IngestSettings(scorer=overrides, company_table=None), serve_metrics=False)
    producer = _Producer()
    values = [obj(id="soon", published_at=ahead(1800)), obj(id="tomorrow", published_at=ahead(23 * 3600))]
    service.process(_records(values), producer)  # the loop's steps: produce, then (acknowledged) account
    service.acknowledged()
    assert [json.loads(v)["id"] for t, _, v, _ in producer.sent if t == NEWS_SCORED] == scored
    dead = [(v, h) for t, _, v, h in producer.sent if t == NEWS_DLQ]
    assert [h["reason"] for _, h in dead] == [b"bad_timestamp"] * (2 - len(scored))
    assert dead[-1][0] == values[1]  # the original bytes
    assert service.stats.dead_letters == {"bad_timestamp": 2 - len(scored)}
    assert service.metrics.registry.get_sample_value("finsentry_dead_letters_total", {"reason": "bad_timestamp"}) == (
        2 - len(scored)
    )
