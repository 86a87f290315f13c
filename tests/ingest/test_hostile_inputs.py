"""Regressions from a hostile-input review: inputs that used to slip through validation."""

from __future__ import annotations

import pytest
from ingest_testkit import obj

from finsentry.ingest.dlq import DlqReason, InvalidRecord
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
