"""Aggregate keys are checked on both sides (issue 15, finding 7): the aggregator dead-letters a key that is not
``all``, ``topic:<slug>`` of one of the model's 20 topics or ``ticker:<SYMBOL>`` (at most 15 characters) as
``invalid_key``, so a record written straight to ``sentiment.keyed`` cannot add a key per distinct string (a
5,000-character ticker key was accepted; 20,000 ``topic:*`` keys made ``/metrics`` 19 MB)."""

from __future__ import annotations

import json

import pytest
from keyed_testkit import keyed_record, keyed_value

from finsentry.ingest.contract import MAX_KEY_CHARS, KeyedMessageError, parse_keyed
from finsentry.ingest.dlq import DlqReason
from finsentry.ingest.topics import NEWS_DLQ
from finsentry.model.labels import TOPIC_SLUGS
from finsentry.monitor.service import AggregatorService
from finsentry.settings import load_settings


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("ticker:" + "A" * 5000, "key is 5,007 characters; an aggregate key has at most 31"),
        ("ticker:ABCDEFGHIJ.ABCDE", "ticker symbol 'ABCDEFGHIJ.ABCDE' is not an upper-case symbol"),  # 16 chars
        ("ticker:$AAPL", "ticker symbol '$AAPL' is not an upper-case symbol"),
        ("ticker:aapl", "ticker symbol 'aapl' is not an upper-case symbol"),
        ("ticker:AA PL", "ticker symbol 'AA PL' is not an upper-case symbol"),
        ("ticker:AAPL\n", "ticker symbol 'AAPL\\n' is not an upper-case symbol"),
        ("ticker:", "ticker symbol '' is not an upper-case symbol"),
        ("topic:crypto", "topic slug 'crypto' is not one of the model's 20 topics"),
        ("topic:t19999", "topic slug 't19999' is not one of the model's 20 topics"),
        ("topic:Markets", "topic slug 'Markets' is not one of the model's 20 topics"),
        ("sector:tech", "key 'sector:tech' is not all, topic:<slug> or ticker:<SYMBOL>"),
    ],
)
def test_an_invalid_key_is_refused_as_invalid_key_with_a_one_line_reason(key, why):
    with pytest.raises(KeyedMessageError) as err:
        parse_keyed(json.dumps(keyed_value(key)))
    assert err.value.reason == DlqReason.INVALID_KEY
    assert str(err.value).startswith(f"key: {why}") and "\n" not in str(err.value)


def test_every_key_the_scorer_can_write_is_accepted():
    keys = ["all", *(f"topic:{s}" for s in TOPIC_SLUGS), "ticker:A", "ticker:BRK.A", "ticker:RDS-B"]
    keys.append("ticker:ABCDEFGHIJ.ABCD")  # the longest symbol (15 characters)
    assert [parse_keyed(json.dumps(keyed_value(k))).key for k in keys] == keys
    assert MAX_KEY_CHARS == len("topic:treasuries_corporate_debt") == 31


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, bytes]]] = []

    def send(self, topic, key=None, value=None, headers=()):
        self.sent.append((topic, value, dict(headers)))


def test_the_service_dead_letters_a_5000_character_key_and_unknown_topics_and_holds_no_key_for_them():
    settings = load_settings(monitor={"http_port": 0})
    service = AggregatorService(settings.monitor, settings.ingest.kafka, settings.model.path)
    service.producer = _Producer()
    bad = ["ticker:" + "A" * 5000, *(f"topic:t{i}" for i in range(3))]
    for i, key in enumerate(bad):
        service._handle(keyed_record(i, keyed_value(key, f"b{i}")), 0)
    service._handle(keyed_record(len(bad), keyed_value("ticker:AAPL", "ok")), 0)
    assert service.aggregator.keys == ["ticker:AAPL"]
    assert [(t, h["reason"]) for t, _v, h in service.producer.sent] == [(NEWS_DLQ, b"invalid_key")] * 4
    assert service.producer.sent[0][2]["message"] == b"key: key is 5,007 characters; an aggregate key has at most 31"
    rejected = service.metrics.registry.get_sample_value(
        "finsentry_aggregator_rejected_messages_total", {"reason": "invalid_key"}
    )
    assert rejected == 4
