"""One strict JSON reader and one pydantic-error -> dead-letter reason map for every record on the wire
(ingest/contract.py: decode_json_object, dlq_reason). The copies they replace differed; these cases pin the
stricter reading, which the docs promise (docs/contracts.md: NaN / Infinity are invalid_json)."""

from __future__ import annotations

import json

import pytest

from finsentry.alerts.payload import InvalidPayload, parse_payload
from finsentry.ingest.contract import KeyedMessageError, decode_json_object, dlq_reason, parse_keyed
from finsentry.ingest.dlq import DlqReason, InvalidRecord
from finsentry.ingest.model_events import BadModelEvent, parse_event
from finsentry.ingest.validation import parse_news_raw

KEYED = {
    "id": "n1",
    "key": "ticker:AAPL",
    "published_at": "2015-08-24T13:30:00Z",
    "sentiment": "negative",
    "sentiment_probs": [0.8, 0.15, 0.05],
    "sentiment_score": -0.75,
}
RAW = '{"id": "1", "text": "Apple slides", "published_at": "2015-08-24T13:30:00Z"'


def keyed_reason(raw: bytes) -> str:
    with pytest.raises(KeyedMessageError) as err:
        parse_keyed(raw)
    return err.value.reason


def test_a_keyed_value_with_a_repeated_key_is_a_dead_letter_not_its_last_copy() -> None:
    """The keyed parser used plain json.loads: ``"id"`` twice was read as its last value (``n2``)."""
    assert parse_keyed(json.dumps(KEYED).encode()).id == "n1"
    assert keyed_reason(json.dumps(KEYED)[:-1].encode() + b', "id": "n2"}') == "duplicate_field"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e99999"])
def test_a_keyed_value_with_a_non_json_number_is_invalid_json(token: str) -> None:
    """It used to give ``sentiment_probs`` a nan or inf, which reach the aggregator's means."""
    assert keyed_reason(json.dumps(KEYED).replace("0.15", token).encode()) == "invalid_json"


def test_sentiment_probs_of_four_numbers_is_a_wrong_value_not_a_wrong_type() -> None:
    """A JSON array is the right type for ``sentiment_probs``; four numbers is a wrong value (the keyed copy of the
    map said ``wrong_type`` for pydantic's ``too_long``; news.raw's said ``invalid_value``)."""
    assert keyed_reason(json.dumps(KEYED | {"sentiment_probs": [0.4, 0.3, 0.2, 0.1]}).encode()) == "invalid_value"
    assert keyed_reason(json.dumps(KEYED | {"sentiment_score": "low"}).encode()) == "wrong_type"
    assert keyed_reason(json.dumps(KEYED | {"published_at": "yesterday"}).encode()) == "bad_timestamp"
    assert keyed_reason(json.dumps(KEYED | {"published_at": "2015-08-24T13:30:00"}).encode()) == "missing_timezone"


def test_a_news_raw_number_too_large_for_a_float_is_invalid_json() -> None:
    """news.raw refused NaN but read ``1e99999`` as inf (then ``wrong_type`` for ``lang``)."""
    with pytest.raises(InvalidRecord) as err:
        parse_news_raw((RAW + ', "lang": 1e99999}').encode())
    assert (err.value.reason, err.value.message) == (DlqReason.INVALID_JSON, "1e99999 is not valid JSON")
    assert parse_news_raw((RAW + ', "lang": "en"}').encode()).lang == "en"


@pytest.mark.parametrize(
    "value",
    [b'{"action": "promote", "version": ' + b"9" * 5000 + b"}", b"[" * 100_000, b"", b"[1]"],
    ids=["5000-digit-int", "deeply-nested", "empty", "not-an-object"],
)
def test_a_bad_model_event_is_a_bad_model_event_never_another_exception(value: bytes) -> None:
    """A 5000-digit number or deep nesting escaped parse_event as ValueError / RecursionError."""
    with pytest.raises(BadModelEvent, match="^not a UTF-8 JSON object: "):
        parse_event(value)


def test_a_webhook_body_with_a_repeated_key_is_refused() -> None:
    with pytest.raises(InvalidPayload, match="key 'version' appears more than once"):
        parse_payload(b'{"version": "4", "version": "3"}')
    with pytest.raises(InvalidPayload, match="must be a JSON object"):
        parse_payload(b'"x"')


def test_decode_json_object_checks_in_order() -> None:
    cases = [
        (b"x" * 11, 10, DlqReason.MESSAGE_TOO_LARGE),
        (None, 10, DlqReason.EMPTY_MESSAGE),
        (b"\xff", 10, DlqReason.INVALID_UTF8),
        (b"{nope", 10, DlqReason.INVALID_JSON),
        (b'{"a":1,"a":1}', None, DlqReason.DUPLICATE_FIELD),
        (b"[1]", None, DlqReason.NOT_AN_OBJECT),
    ]
    for value, limit, reason in cases:
        with pytest.raises(InvalidRecord) as err:
            decode_json_object(value, limit)
        assert err.value.reason == reason, value
    assert decode_json_object('{"a": [1, 2.5]}') == {"a": [1, 2.5]}


def test_dlq_reason_uses_the_record_s_required_fields_and_length_reasons() -> None:
    null_text = {"type": "string_type", "loc": ("text",), "input": None}
    assert dlq_reason(null_text) == DlqReason.WRONG_TYPE
    assert dlq_reason(null_text, required=("text",)) == DlqReason.MISSING_FIELD
    long_id = {"type": "string_too_long", "loc": ("id",)}
    assert dlq_reason(long_id) == DlqReason.INVALID_VALUE
    assert dlq_reason(long_id, length_reasons={"id": DlqReason.INVALID_ID}) == DlqReason.INVALID_ID
    assert dlq_reason({"type": "datetime_parsing", "loc": ("at",)}, time_fields=("at",)) == DlqReason.BAD_TIMESTAMP
